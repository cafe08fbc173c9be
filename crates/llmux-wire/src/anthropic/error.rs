//! The Anthropic error body: `{"type":"error","error":{"type","message"}}`.

use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type":<error_type>,"message":<message>}}`.
pub fn error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&Body { kind: "error", error: Inner { kind: error_type, message } }).unwrap_or_default()
}

/// The Anthropic error type for an HTTP status, as the Messages API documents it:
/// 400 `invalid_request_error` (also any other 4xx), 401 `authentication_error`,
/// 402 `billing_error`, 403 `permission_error`, 404 `not_found_error`,
/// 413 `request_too_large`, 429 `rate_limit_error`, 408 and 504 `timeout_error`,
/// 503 and 529 `overloaded_error`, anything else `api_error`.
pub fn error_type_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}
