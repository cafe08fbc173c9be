//! The same-dialect fast path for Anthropic clients on Anthropic upstreams: the body is
//! forwarded with only `model` replaced; everything else (thinking, cache_control,
//! output_config, beta fields...) reaches the provider byte for byte.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::DecodeError;
use crate::openai::peek::{span_of, write_json_string};

/// `body` with its top-level `model` value replaced by `upstream_model`.
pub fn rewrite_model(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, DecodeError> {
    let fields: BTreeMap<&str, &RawValue> =
        serde_json::from_slice(body).map_err(|error| DecodeError::new(None, format!("invalid JSON body: {error}")))?;
    let model = fields.get("model").ok_or_else(|| DecodeError::new(Some("model"), "model: Field required"))?;
    let (start, end) = span_of(body, model);
    let mut out = Vec::with_capacity(body.len() + upstream_model.len());
    out.extend_from_slice(&body[..start]);
    write_json_string(&mut out, upstream_model);
    out.extend_from_slice(&body[end..]);
    Ok(out)
}

/// An `event: error` frame in Anthropic's format, for failures the gateway reports in
/// the middle of a forwarded stream.
pub fn error_event(error_type: &str, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: error\ndata: ");
    out.extend_from_slice(&super::error::error_body(error_type, message));
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_model_changes() {
        let body = br#"{"max_tokens":9,"model":"sonnet","thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"model"}]}"#;
        let out = rewrite_model(body, "claude-sonnet-4-6").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"max_tokens":9,"model":"claude-sonnet-4-6","thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"model"}]}"#
        );
        let escaped = rewrite_model(br#"{ "model" : "a" }"#, "b\"c").unwrap();
        assert_eq!(std::str::from_utf8(&escaped).unwrap(), r#"{ "model" : "b\"c" }"#);
        assert!(rewrite_model(br#"{"messages":[]}"#, "x").is_err());
        assert!(rewrite_model(b"not json", "x").is_err());
    }

    #[test]
    fn error_events_are_anthropic_frames() {
        let mut out = Vec::new();
        error_event("api_error", "upstream failed", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("event: error\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        let data: serde_json::Value =
            serde_json::from_str(text.trim_end().strip_prefix("event: error\ndata: ").unwrap()).unwrap();
        assert_eq!(data["error"]["type"], "api_error");
        assert_eq!(data["type"], "error");
    }
}
