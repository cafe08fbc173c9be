//! The same-dialect path for Responses clients on providers that serve the Responses
//! API: the body goes with only `model` replaced ([`rewrite_model`]), and the answer
//! comes back byte for byte, metered on the side: a stream's events are classified by
//! their `type` ([`classify_event`]) and only the terminal one, which carries the usage,
//! is parsed.

use std::borrow::Cow;

use llmux_types::Usage;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::upstream::usage;
use crate::DecodeError;
use crate::openai::peek::{span_of, write_json_string};

/// `body` (a JSON object) with its top-level `model` value replaced by `upstream_model`;
/// every other byte as it was.
pub fn rewrite_model(body: &[u8], upstream_model: &str) -> Result<Vec<u8>, DecodeError> {
    #[derive(Deserialize)]
    struct ModelIn<'a> {
        #[serde(borrow)]
        model: Option<&'a RawValue>,
    }
    // serde also reads a struct from an array of its members: only an object will do.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(DecodeError::new(None, "the request body must be a JSON object"));
    }
    let wire: ModelIn<'_> =
        serde_json::from_slice(body).map_err(|error| DecodeError::new(None, format!("invalid JSON body: {error}")))?;
    let model = wire
        .model
        .filter(|model| model.get().starts_with('"'))
        .ok_or_else(|| DecodeError::new(Some("model"), "`model` must be a string"))?;
    let (start, end) = span_of(body, model);
    let mut out = Vec::with_capacity(body.len() + upstream_model.len());
    out.extend_from_slice(&body[..start]);
    write_json_string(&mut out, upstream_model);
    out.extend_from_slice(&body[end..]);
    Ok(out)
}

/// What one streamed event means to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `response.completed` or `response.incomplete` (`failed` false), or
    /// `response.failed`: the stream's end, with the response's usage if it has one.
    End { usage: Option<Usage>, failed: bool },
    /// An `error` event.
    Error,
    /// Anything else (forwarded without a look inside).
    Other,
}

/// Classifies one event's `data` by its `type`: read from the payload's start when it
/// is the first member (as OpenAI writes it), else from the parsed payload. Only a
/// terminal event's response is parsed further, for its usage.
pub fn classify_event(data: &[u8]) -> Event {
    let data = data.trim_ascii();
    let Some(kind) = event_type(data) else { return Event::Other };
    match &*kind {
        "response.completed" | "response.incomplete" | "response.failed" => {
            #[derive(Deserialize)]
            struct EndIn<'a> {
                #[serde(borrow)]
                response: Option<&'a RawValue>,
            }
            let usage = serde_json::from_slice::<EndIn<'_>>(data)
                .ok()
                .and_then(|end| end.response)
                .and_then(|response| usage(response.get().as_bytes()));
            Event::End { usage, failed: kind == "response.failed" }
        }
        "error" => Event::Error,
        _ => Event::Other,
    }
}

/// The `type` of an event payload.
fn event_type(data: &[u8]) -> Option<Cow<'_, str>> {
    const PREFIX: &[u8] = b"{\"type\":\"";
    if let Some(rest) = data.strip_prefix(PREFIX)
        && let Some(end) = memchr::memchr2(b'"', b'\\', rest)
        && rest[end] == b'"'
    {
        return std::str::from_utf8(&rest[..end]).ok().map(Cow::Borrowed);
    }
    #[derive(Deserialize)]
    struct TypeIn<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    if data.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<TypeIn<'_>>(data).ok()?.kind
}

/// An `error` event as OpenAI sends one mid-stream, for failures the gateway reports in
/// the middle of a forwarded stream; `sequence_number` continues the stream's count.
pub fn error_event(code: &str, message: &str, sequence_number: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: error\ndata: {\"type\":\"error\",\"sequence_number\":");
    out.extend_from_slice(sequence_number.to_string().as_bytes());
    out.extend_from_slice(b",\"code\":");
    write_json_string(out, code);
    out.extend_from_slice(b",\"message\":");
    write_json_string(out, message);
    out.extend_from_slice(b",\"param\":null}\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn only_the_model_changes() {
        let body = br#"{"input":"model","model" : "codex","store":false,"tools":[{"type":"web_search","model":"x"}]}"#;
        let out = rewrite_model(body, "gpt-5-codex").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"input":"model","model" : "gpt-5-codex","store":false,"tools":[{"type":"web_search","model":"x"}]}"#
        );
        let escaped_key = rewrite_model(br#"{"mod\u0065l":"a","input":"x"}"#, "b\"c").unwrap();
        assert_eq!(std::str::from_utf8(&escaped_key).unwrap(), r#"{"mod\u0065l":"b\"c","input":"x"}"#);
        for bad in
            [&br#"{"input":"x"}"#[..], br#"{"model":1}"#, br#"["m"]"#, b"not json", br#"{"model":"a","model":"b"}"#]
        {
            assert!(rewrite_model(bad, "x").is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn only_terminal_events_are_read_for_usage() {
        let mut ends = Vec::new();
        let mut framer = crate::sse::Framer::new();
        framer.push(fixture!("responses-upstream/stream_reasoning_tool.sse"));
        while let Some(event) = framer.next_event() {
            let data = crate::sse::parse_event(&event).data.unwrap();
            match classify_event(&data) {
                Event::Other => {}
                end => ends.push(end),
            }
        }
        let usage = Usage {
            input_tokens: 120,
            output_tokens: 90,
            cached_tokens: 64,
            reasoning_tokens: 40,
            cache_write_tokens: 0,
        };
        assert_eq!(ends, [Event::End { usage: Some(usage), failed: false }]);

        let failed = br#"{ "sequence_number":9, "type":"response.failed","response":{"status":"failed","usage":null}}"#;
        assert_eq!(classify_event(failed), Event::End { usage: None, failed: true });
        let incomplete = br#"{"type":"response.incomplete","response":{"usage":{"input_tokens":4,"output_tokens":2}}}"#;
        let usage = Usage { input_tokens: 4, output_tokens: 2, ..Usage::default() };
        assert_eq!(classify_event(incomplete), Event::End { usage: Some(usage), failed: false });
        assert_eq!(classify_event(br#"{"type":"error","code":"server_error","message":"x"}"#), Event::Error);
        assert_eq!(
            classify_event(br#"{"type":"response.comple\u0074ed","response":{}}"#),
            Event::End { usage: None, failed: false }
        );
        for other in [
            &b"[DONE]"[..],
            b"",
            b"{",
            br#"{"type":5}"#,
            br#"{"type":"response.output_text.delta","delta":"response.completed"}"#,
        ] {
            assert_eq!(classify_event(other), Event::Other, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn error_events_continue_the_sequence() {
        let mut out = Vec::new();
        error_event("upstream_timeout", "The upstream \"stopped\".", 7, &mut out);
        let text = String::from_utf8(out).unwrap();
        let data: serde_json::Value =
            serde_json::from_str(text.strip_prefix("event: error\ndata: ").unwrap().strip_suffix("\n\n").unwrap())
                .unwrap();
        assert_eq!(
            data,
            serde_json::json!({"type": "error", "sequence_number": 7, "code": "upstream_timeout",
                               "message": "The upstream \"stopped\".", "param": null})
        );
    }
}
