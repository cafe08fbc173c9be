//! The OpenAI Responses API surface, answered in OpenAI's shapes (errors included):
//! `POST /v1/responses`; for responses kept with `store: true`, `GET` and `DELETE
//! /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`; and `POST
//! /v1/responses/input_tokens`.

use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use crate::AppState;
use crate::api::{Client, Surface, api_key, json_response, read_request, request_id, serve};
use crate::error::{Dialect, render_gateway};

pub async fn create(State(state): State<AppState>, request: Request) -> Response {
    serve(state, request, Surface::Responses).await
}

/// The query of `GET /v1/responses/{id}` (`include` is accepted: a stored response
/// holds what it held).
#[derive(Debug, Default, Deserialize)]
pub struct RetrieveQuery {
    stream: Option<bool>,
}

pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<RetrieveQuery>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    let request_id = request_id(&headers);
    if query.stream == Some(true) {
        let error = bad_request("stream", "Streaming a stored response again is not supported; omit `stream`.");
        return render_gateway(Dialect::OpenAi, &error, &request_id);
    }
    match state.gateway.stored_response(api_key(&headers).as_deref(), client.ip(), &id).await {
        Ok(stored) => json_response(stored.response.into_bytes(), Dialect::OpenAi, &request_id),
        Err(error) => render_gateway(Dialect::OpenAi, &error, &request_id),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    let request_id = request_id(&headers);
    match state.gateway.delete_stored_response(api_key(&headers).as_deref(), client.ip(), &id).await {
        Ok(()) => {
            let body = serde_json::json!({"id": id, "object": "response", "deleted": true});
            json_response(body.to_string().into_bytes(), Dialect::OpenAi, &request_id)
        }
        Err(error) => render_gateway(Dialect::OpenAi, &error, &request_id),
    }
}

/// The query of `GET /v1/responses/{id}/input_items`.
#[derive(Debug, Default, Deserialize)]
pub struct ItemsQuery {
    order: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

pub async fn input_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ItemsQuery>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    let request_id = request_id(&headers);
    if let Some(order) = query.order.as_deref().filter(|order| !matches!(*order, "asc" | "desc")) {
        let error = bad_request("order", &format!("Invalid order `{order}`: expected `asc` or `desc`."));
        return render_gateway(Dialect::OpenAi, &error, &request_id);
    }
    match state.gateway.stored_response(api_key(&headers).as_deref(), client.ip(), &id).await {
        Ok(stored) => {
            let page = llmux_gateway::stored::input_items_page(
                &stored,
                query.order.as_deref(),
                query.after.as_deref(),
                query.limit,
            );
            json_response(page, Dialect::OpenAi, &request_id)
        }
        Err(error) => render_gateway(Dialect::OpenAi, &error, &request_id),
    }
}

pub async fn input_tokens(State(state): State<AppState>, request: Request) -> Response {
    let incoming = match read_request(&state, request, Dialect::OpenAi).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let request_id = incoming.request_id;
    match state.gateway.responses_input_tokens(incoming.caller, incoming.body).await {
        Ok(tokens) => {
            let body = format!("{{\"object\":\"response.input_tokens\",\"input_tokens\":{tokens}}}");
            json_response(body.into_bytes(), Dialect::OpenAi, &request_id)
        }
        Err(failure) => render_gateway(Dialect::OpenAi, &failure.error, &request_id),
    }
}

fn bad_request(param: &str, message: &str) -> llmux_gateway::error::GatewayError {
    llmux_gateway::error::GatewayError::BadRequest(llmux_wire::DecodeError::new(Some(param), message))
}
