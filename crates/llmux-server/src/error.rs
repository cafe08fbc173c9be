//! Rendering errors for clients: the body shape of each dialect, filled from the one
//! error table in `llmux_gateway::error`.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
pub use llmux_gateway::dialect::Dialect;
use llmux_gateway::error::{ErrorCode, GatewayError};

pub const REQUEST_ID: &str = "x-request-id";
pub const PROVIDER: &str = "x-llmux-provider";
pub const ATTEMPTS: &str = "x-llmux-attempts";
/// The delay of `Retry-After` in milliseconds (read first by the official SDKs).
pub const RETRY_AFTER_MS: &str = "retry-after-ms";
/// `false` tells the official SDKs not to retry an error they would retry by default.
pub const SHOULD_RETRY: &str = "x-should-retry";
/// Request parameters the provider's dialect could not hold, comma-separated.
pub const DROPPED_PARAMS: &str = "x-llmux-dropped-params";

/// A client-facing error response.
pub fn render(dialect: Dialect, code: ErrorCode, message: &str, param: Option<&str>, request_id: &str) -> Response {
    let row = code.row();
    let body = llmux_gateway::dialect::error_body(dialect, &row, message, param);
    let mut response = (
        StatusCode::from_u16(row.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    request_id_headers(response.headers_mut(), dialect, request_id);
    response
}

/// The request id in the headers `dialect`'s clients read it from.
pub fn request_id_headers(headers: &mut HeaderMap, dialect: Dialect, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        for name in llmux_gateway::dialect::request_id_headers(dialect) {
            headers.insert(*name, value.clone());
        }
    }
}

/// Renders a gateway error, adding `Retry-After` and `retry-after-ms` where the error
/// has a delay, and `x-should-retry` where a client's default retry would be wrong.
pub fn render_gateway(dialect: Dialect, error: &GatewayError, request_id: &str) -> Response {
    let mut response = render(dialect, error.code(), &error.message(request_id), error.param(), request_id);
    let headers = response.headers_mut();
    if let Some(delay) = error.retry_after() {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(millis.div_ceil(1000)));
        headers.insert(RETRY_AFTER_MS, HeaderValue::from(millis));
    }
    if let Some(retry) = error.should_retry() {
        headers.insert(SHOULD_RETRY, HeaderValue::from_static(if retry { "true" } else { "false" }));
    }
    response
}
