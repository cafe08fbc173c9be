//! The OpenAI surface: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
//! `/v1/models`.

use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use llmux_gateway::error::ErrorCode;
use llmux_wire::openai::peek::Endpoint;

use crate::AppState;
use crate::api::{Client, api_key, json_response, request_id};
use crate::error::{Dialect, render, render_gateway};

pub async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Endpoint::ChatCompletions).await
}

pub async fn completions(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Endpoint::Completions).await
}

pub async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    handle(state, request, Endpoint::Embeddings).await
}

async fn handle(state: AppState, request: Request, endpoint: Endpoint) -> Response {
    super::serve(state, request, super::Surface::OpenAi(endpoint)).await
}

/// `GET /v1/models` serves both SDKs: Anthropic's clients always send
/// `anthropic-version`, and get Anthropic's list shape and errors.
fn models_dialect(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") { Dialect::Anthropic } else { Dialect::OpenAi }
}

pub async fn models(State(state): State<AppState>, client: Client, headers: HeaderMap) -> Response {
    let request_id = request_id(&headers);
    let dialect = models_dialect(&headers);
    match state.gateway.authenticate_from(api_key(&headers).as_deref(), client.ip()).await {
        Ok(caller) => {
            let names = state.gateway.models_for(&caller);
            let names = names.iter().map(String::as_str);
            json_response(llmux_gateway::dialect::model_list(dialect, names), dialect, &request_id)
        }
        Err(error) => render_gateway(dialect, &error, &request_id),
    }
}

pub async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    let request_id = request_id(&headers);
    let dialect = models_dialect(&headers);
    match state.gateway.authenticate_from(api_key(&headers).as_deref(), client.ip()).await {
        Ok(caller) => {
            if state.gateway.models_for(&caller).contains(&id) {
                json_response(llmux_gateway::dialect::model(dialect, &id), dialect, &request_id)
            } else {
                let message = format!("The model `{id}` does not exist.");
                render(dialect, ErrorCode::ModelNotFound, &message, Some("model"), &request_id)
            }
        }
        Err(error) => render_gateway(dialect, &error, &request_id),
    }
}
