//! The Anthropic surface: `/v1/messages` and `/v1/messages/count_tokens`, with
//! Anthropic-shaped errors for every failure (auth, limits, bad input, upstream).
//!
//! The `anthropic-version` header is accepted and not required; `anthropic-beta`
//! flags are not interpreted.

use axum::extract::{Request, State};
use axum::response::Response;

use crate::AppState;
use crate::api::{Surface, json_response, read_request, serve};
use crate::error::{Dialect, render_gateway};

pub async fn messages(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, Surface::Anthropic).await
}

pub async fn count_tokens(State(state): State<AppState>, request: Request) -> Response {
    let incoming = match read_request(&state, request, Dialect::Anthropic).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let request_id = incoming.request_id;
    match state.gateway.anthropic_count_tokens(incoming.caller, incoming.body).await {
        Ok(tokens) => {
            json_response(format!("{{\"input_tokens\":{tokens}}}").into_bytes(), Dialect::Anthropic, &request_id)
        }
        Err(failure) => render_gateway(Dialect::Anthropic, &failure.error, &request_id),
    }
}
