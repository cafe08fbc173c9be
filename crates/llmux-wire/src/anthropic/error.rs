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
