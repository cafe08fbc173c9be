//! The OpenAI error body: `{"error":{"message","type","param","code"}}`.

use serde::Serialize;

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// Renders an error body.
pub fn body(message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&Body { error: Inner { message, kind, param, code } }).unwrap_or_default()
}

/// Renders an in-stream error event (`data: {"error":...}\n\n`).
pub fn stream_event(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    crate::sse::write_data_event(&mut out, &body(message, kind, code, None));
    out
}

#[derive(serde::Deserialize)]
struct UpstreamBody {
    error: UpstreamInner,
}

#[derive(serde::Deserialize)]
struct UpstreamInner {
    message: Option<String>,
    code: Option<serde_json::Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// What an upstream said in an OpenAI-shaped error body (`message`, `code`, `type`).
/// `code` is rendered as a string whether the upstream sent a string or a number.
pub fn parse_upstream(body: &[u8]) -> Option<(Option<String>, Option<String>, Option<String>)> {
    let parsed: UpstreamBody = serde_json::from_slice(body).ok()?;
    let code = parsed.error.code.and_then(|code| match code {
        serde_json::Value::String(code) => Some(code),
        serde_json::Value::Number(code) => Some(code.to_string()),
        _ => None,
    });
    Some((parsed.error.message, code, parsed.error.kind))
}
