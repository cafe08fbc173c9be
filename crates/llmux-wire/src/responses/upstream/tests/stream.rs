use llmux_types::Usage;
use llmux_types::chat::{FinishReason, StreamEvent};
use serde_json::json;

use crate::UpstreamDecoder;
use crate::responses::upstream::EventDecoder;
use crate::test_support::{call_more, call_start, decode_all, decode_sse, fixture};

fn said(text: &str) -> StreamEvent<'static> {
    StreamEvent::Text { choice: 0, text: text.to_owned().into() }
}

fn thought(text: &str) -> StreamEvent<'static> {
    StreamEvent::Reasoning { choice: 0, text: text.to_owned().into() }
}

fn finish(reason: FinishReason) -> StreamEvent<'static> {
    StreamEvent::Finish { choice: 0, reason }
}

#[test]
fn openai_stream_golden() {
    let stream = fixture!("responses-upstream/stream_reasoning_tool.sse");
    let mut decoder = EventDecoder::new();
    let events = decode_sse(&[stream], |data| decoder.decode(data));
    assert_eq!(
        events,
        [
            StreamEvent::Start { id: "resp_68a1f0".into(), model: "gpt-5-2025-08-07".into(), created: 1756000000 },
            thought("**Checking weather**"),
            thought("\n\n"),
            thought("Call the tool."),
            said("Let me "),
            said("check."),
            call_start(0, 0, "call_A", "get_weather", ""),
            call_more(0, 0, "{\"city\":"),
            call_more(0, 0, "\"Paris\"}"),
            finish(FinishReason::ToolCalls),
            StreamEvent::Usage(Usage {
                input_tokens: 120,
                output_tokens: 90,
                cached_tokens: 64,
                reasoning_tokens: 40,
                cache_write_tokens: 0
            }),
        ]
    );
}

#[test]
fn deltas_borrow_from_the_payload() {
    let mut decoder = EventDecoder::new();
    let data = br#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello","logprobs":[]}"#;
    let mut borrowed = Vec::new();
    decoder
        .decode_with(data, &mut |event| {
            if let StreamEvent::Text { text, .. } | StreamEvent::Reasoning { text, .. } = event {
                borrowed.push(matches!(text, std::borrow::Cow::Borrowed(_)));
            }
        })
        .unwrap();
    assert_eq!(borrowed, [true]);
}

#[test]
fn arguments_that_come_only_whole_and_calls_seen_only_when_done() {
    let payloads = [
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.done", "output_index": 0, "arguments": "{\"a\":1}"}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"}}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"}}),
        json!({"type": "response.incomplete", "response": {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "usage": null}}),
    ]
    .map(|payload| payload.to_string());
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    let events = decode_all(&mut EventDecoder::new(), &payloads);
    assert_eq!(
        events,
        [
            StreamEvent::Start { id: "".into(), model: "".into(), created: 0 },
            call_start(0, 0, "c1", "f", ""),
            call_more(0, 0, "{\"a\":1}"),
            call_start(0, 1, "c2", "g", "{}"),
            finish(FinishReason::Length),
            StreamEvent::Usage(Usage::default()),
        ]
    );
}

#[test]
fn reasoning_texts_that_follow_each_other_are_separated_but_not_across_text() {
    let delta = |kind: &str, output: u32, part: u32, text: &str| {
        let part_member = if kind.contains("summary") { "summary_index" } else { "content_index" };
        json!({"type": kind, "output_index": output, part_member: part, "delta": text}).to_string()
    };
    let payloads = [
        delta("response.reasoning_summary_text.delta", 0, 0, "a"),
        delta("response.reasoning_summary_text.delta", 0, 0, "b"),
        delta("response.reasoning_summary_text.delta", 0, 1, "c"),
        delta("response.output_text.delta", 1, 0, "text"),
        delta("response.reasoning_text.delta", 2, 0, "d"),
        delta("response.reasoning_summary_text.delta", 2, 0, ""),
    ];
    let payloads: Vec<&str> = payloads.iter().map(String::as_str).collect();
    let events = decode_all(&mut EventDecoder::new(), &payloads);
    assert_eq!(events[1..], [thought("a"), thought("b"), thought("\n\n"), thought("c"), said("text"), thought("d")]);
}

#[test]
fn failures_and_errors_end_the_stream_with_an_error() {
    let failed = json!({"type": "response.failed", "response": {"status": "failed",
        "error": {"code": "server_error", "message": "The model crashed."},
        "usage": {"input_tokens": 3, "output_tokens": 1}}})
    .to_string();
    let events = decode_all(&mut EventDecoder::new(), &[&failed]);
    assert_eq!(
        events[1..],
        [
            StreamEvent::Usage(Usage { input_tokens: 3, output_tokens: 1, ..Usage::default() }),
            StreamEvent::Error { message: "server_error: The model crashed.".into() },
        ]
    );
    let error =
        r#"{"type":"error","sequence_number":3,"code":"rate_limit_exceeded","message":"Slow down.","param":null}"#;
    let nested = r#"{"type":"error","error":{"type":"server_error","message":"Boom."}}"#;
    let events = decode_all(&mut EventDecoder::new(), &[error, nested]);
    assert_eq!(
        events,
        [
            StreamEvent::Error { message: "rate_limit_exceeded: Slow down.".into() },
            StreamEvent::Error { message: "Boom.".into() },
        ]
    );
}

#[test]
fn unknown_events_are_skipped_and_malformed_ones_are_errors() {
    let mut decoder = EventDecoder::new();
    for skipped in [
        r#"{"type":"response.web_search_call.searching","output_index":0,"item_id":"ws","sequence_number":2}"#,
        r#"{"type":"response.output_text.annotation.added","annotation":{"type":"url_citation"}}"#,
        r#"{"type":"response.audio.delta","delta":{"not":"a string"}}"#,
        r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"message","content":[]}}"#,
        "   ",
    ] {
        assert_eq!(decoder.decode(skipped.as_bytes()).unwrap(), [], "{skipped}");
    }
    for malformed in [
        "not json",
        r#"{"no_type":1}"#,
        r#"{"type":"response.output_text.delta"}"#,
        r#"{"type":"response.output_text.delta","delta":5}"#,
        r#"{"type":"response.function_call_arguments.delta","output_index":7,"delta":"{}"}"#,
        r#"{"type":"response.output_item.added","item":{"type":"function_call"}}"#,
        r#"{"type":"response.output_item.added","output_index":-1,"item":{"type":"function_call"}}"#,
        r#"{"type":"response.completed"}"#,
        r#"{"type":"response.created","response":{"created_at":"soon"}}"#,
        r#"{"type":"error","code":"x"}"#,
    ] {
        let error = EventDecoder::new().decode(malformed.as_bytes()).unwrap_err();
        assert!(error.message.starts_with("invalid upstream"), "{malformed}: {}", error.message);
    }
}

#[test]
fn a_finished_reasoning_item_with_encrypted_content_is_openais_signature() {
    let mut decoder = EventDecoder::new();
    let mut events = Vec::new();
    let payloads: [&[u8]; 2] = [
        br#"{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"rs_42","type":"reasoning","summary":[]}}"#,
        br#"{"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"id":"rs_42","type":"reasoning","summary":[],"encrypted_content":"gAAAAB"}}"#,
    ];
    for payload in payloads {
        decoder.decode_with(payload, &mut |event| events.push(event.into_owned())).unwrap();
    }
    let signatures: Vec<&str> = events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::ReasoningSignature { signature, .. } => Some(signature.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(signatures, ["openai:rs_42:gAAAAB"]);
}
