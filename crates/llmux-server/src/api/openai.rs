//! The OpenAI surface: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
//! `/v1/models`.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use llmux_gateway::error::{ErrorCode, GatewayError};
use llmux_wire::openai::peek::Endpoint;

use crate::AppState;
use crate::api::{api_key, request_id};
use crate::error::{Dialect, REQUEST_ID, render, render_gateway};

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
    let incoming = match super::read_request(&state, request, Dialect::OpenAi).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let outcome = state.gateway.openai(incoming.meta, endpoint, incoming.body).await;
    super::respond(Dialect::OpenAi, outcome, &incoming.request_id)
}

/// Reads the body, refusing more than `limit` bytes with 413.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(GatewayError::TooLarge { limit });
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let inner = error.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some()
                || inner.source().is_some_and(|source| source.is::<http_body_util::LengthLimitError>())
            {
                Err(GatewayError::TooLarge { limit })
            } else {
                Err(GatewayError::BadRequest(llmux_wire::DecodeError::new(None, "the request body could not be read")))
            }
        }
    }
}

/// `GET /v1/models` serves both SDKs: Anthropic's clients always send
/// `anthropic-version`, and get Anthropic's list shape and errors.
fn models_dialect(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") { Dialect::Anthropic } else { Dialect::OpenAi }
}

pub async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let request_id = request_id(&headers);
    let dialect = models_dialect(&headers);
    match state.gateway.authenticate(api_key(&headers).as_deref()).await {
        Ok(caller) => {
            let names = state.gateway.models_for(&caller);
            let names = names.iter().map(String::as_str);
            let body = match dialect {
                Dialect::OpenAi => llmux_wire::openai::encode::model_list(names),
                Dialect::Anthropic => llmux_wire::anthropic::encode::model_list(names),
            };
            json_response(body, &request_id)
        }
        Err(error) => render_gateway(dialect, &error, &request_id),
    }
}

pub async fn model(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let request_id = request_id(&headers);
    let dialect = models_dialect(&headers);
    match state.gateway.authenticate(api_key(&headers).as_deref()).await {
        Ok(caller) => {
            if state.gateway.models_for(&caller).contains(&id) {
                let body = match dialect {
                    Dialect::OpenAi => {
                        serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "llmux"})
                            .to_string()
                            .into_bytes()
                    }
                    Dialect::Anthropic => llmux_wire::anthropic::encode::model(&id),
                };
                json_response(body, &request_id)
            } else {
                let message = format!("The model `{id}` does not exist.");
                render(dialect, ErrorCode::ModelNotFound, &message, Some("model"), &request_id)
            }
        }
        Err(error) => render_gateway(dialect, &error, &request_id),
    }
}

pub fn json_response(body: Vec<u8>, request_id: &str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
