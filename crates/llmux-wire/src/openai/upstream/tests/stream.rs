use llmux_types::Usage;
use llmux_types::chat::{FinishReason, StreamEvent};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::UpstreamDecoder;
use crate::openai::upstream::{ChunkDecoder, split_think};
use crate::test_support::{call_more, call_start, cut_at, decode_sse, fixture};

fn decode_transcript(chunks: &[&[u8]]) -> Vec<StreamEvent<'static>> {
    let mut decoder = ChunkDecoder::new();
    decode_sse(chunks, |data| decoder.decode(data))
}

fn expected_transcript_events() -> Vec<StreamEvent<'static>> {
    vec![
        StreamEvent::Start { id: "chatcmpl-s1".into(), model: "gpt-4.1".into(), created: 1767225605 },
        StreamEvent::Text { choice: 0, text: "Let me ".into() },
        StreamEvent::Text { choice: 0, text: "check été 🌤.".into() },
        call_start(0, 0, "call_w1", "get_weather", ""),
        call_more(0, 0, "{\"ci"),
        call_more(0, 0, "ty\": \"Par"),
        call_more(0, 0, "is\"}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        StreamEvent::Usage(Usage { input_tokens: 120, output_tokens: 31, cached_tokens: 100, ..Usage::default() }),
    ]
}

#[test]
fn decodes_the_golden_transcript() {
    assert_eq!(decode_transcript(&[fixture!("openai/stream_tool_call.sse")]), expected_transcript_events());
}

#[test]
fn chunk_decoder_reasoning_errors_and_done() {
    let mut decoder = ChunkDecoder::new();
    assert_eq!(decoder.decode(b"[DONE]").unwrap(), vec![]);
    assert_eq!(decoder.decode(b"  ").unwrap(), vec![]);
    let events = decoder
        .decode(br#"{"id":"d","model":"deepseek-reasoner","created":3,"choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Let"}}]}"#)
        .unwrap();
    assert_eq!(
        events,
        vec![
            StreamEvent::Start { id: "d".into(), model: "deepseek-reasoner".into(), created: 3 },
            StreamEvent::Reasoning { choice: 0, text: "Let".into() },
        ]
    );
    // vLLM's `reasoning`, then content with finish and usage in the same chunk.
    let events = decoder.decode(br#"{"id":"d","choices":[{"index":0,"delta":{"reasoning":" me"}}]}"#).unwrap();
    assert_eq!(events, vec![StreamEvent::Reasoning { choice: 0, text: " me".into() }]);
    let events = decoder
        .decode(br#"{"id":"d","choices":[{"index":0,"delta":{"content":"<think>not a tag here"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"prompt_cache_hit_tokens":1}}"#)
        .unwrap();
    assert_eq!(
        events,
        vec![
            StreamEvent::Text { choice: 0, text: "<think>not a tag here".into() },
            StreamEvent::Finish { choice: 0, reason: FinishReason::Stop },
            StreamEvent::Usage(Usage { input_tokens: 4, output_tokens: 2, cached_tokens: 1, ..Usage::default() }),
        ]
    );
    assert_eq!(
        decoder.decode(br#"{"error":{"message":"overloaded","type":"server_error"}}"#).unwrap(),
        vec![StreamEvent::Error { message: "overloaded".into() }]
    );
    assert_eq!(decoder.decode(br#"{"error":"plain"}"#).unwrap(), vec![StreamEvent::Error { message: "plain".into() }]);
    assert!(decoder.decode(b"{\"choices\":[").is_err());
}

#[test]
fn error_as_first_chunk_has_no_start() {
    let mut decoder = ChunkDecoder::new();
    assert_eq!(
        decoder.decode(br#"{"error":{"message":"boom"}}"#).unwrap(),
        vec![StreamEvent::Error { message: "boom".into() }]
    );
}

#[test]
fn tool_calls_without_index_and_repeated_ids() {
    let mut decoder = ChunkDecoder::new();
    // Gemini-compat style: no index, whole calls; a second provider style repeats the id.
    let events = decoder
        .decode(br#"{"id":"g","choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"function","function":{"name":"g","arguments":"{\"x\":1}"}}]}}]}"#)
        .unwrap();
    assert_eq!(events[1..], [call_start(0, 0, "a", "f", "{}"), call_start(0, 1, "b", "g", "{\"x\":1}"),]);
    let events = decoder
        .decode(br#"{"id":"g","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":""}}]},"finish_reason":"stop"}]}"#)
        .unwrap();
    // Repeated id/name with no arguments: nothing new; `stop` after tool calls is ToolCalls.
    assert_eq!(events, vec![StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls }]);
}

/// Concatenated (reasoning, text) of choice 0.
fn split_output(events: &[StreamEvent<'_>]) -> (String, String) {
    let mut reasoning = String::new();
    let mut text = String::new();
    for event in events {
        match event {
            StreamEvent::Reasoning { choice: 0, text: piece } => reasoning.push_str(piece),
            StreamEvent::Text { choice: 0, text: piece } => text.push_str(piece),
            _ => {}
        }
    }
    (reasoning, text)
}

fn content_chunk(piece: &str, finish: bool) -> Vec<u8> {
    let chunk = json!({
        "id": "t",
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": if finish { json!("stop") } else { Value::Null }}]
    });
    serde_json::to_vec(&chunk).unwrap()
}

#[test]
fn inline_think_in_streams() {
    let pieces = ["\n<th", "ink>\n Pon", "der </", "thi", "nk>\n\nAns", "wer", ""];
    let mut decoder = ChunkDecoder::new();
    let mut events = Vec::new();
    for (index, piece) in pieces.iter().enumerate() {
        events.extend(decoder.decode(&content_chunk(piece, index == pieces.len() - 1)).unwrap());
    }
    assert_eq!(split_output(&events), ("Ponder".into(), "Answer".into()));
    // Never an empty delta.
    assert!(events.iter().all(|event| !matches!(event, StreamEvent::Text { text, .. } | StreamEvent::Reasoning { text, .. } if text.is_empty())));
    assert_eq!(events.last(), Some(&StreamEvent::Finish { choice: 0, reason: FinishReason::Stop }));

    // Unclosed at the end: all reasoning. A prefix that turns out not to be the tag: text.
    let mut decoder = ChunkDecoder::new();
    let mut events = decoder.decode(&content_chunk("<think>still going ", false)).unwrap();
    events.extend(decoder.decode(&content_chunk("</th", false)).unwrap());
    events.extend(decoder.decode(b"[DONE]").unwrap());
    assert_eq!(split_output(&events), ("still going </th".into(), String::new()));
    let mut decoder = ChunkDecoder::new();
    let mut events = decoder.decode(&content_chunk("<thi", false)).unwrap();
    events.extend(decoder.decode(&content_chunk("s is text", true)).unwrap());
    assert_eq!(split_output(&events), (String::new(), "<this is text".into()));
}

proptest! {
    /// Any byte-level chunking of the SSE transcript yields the same canonical events.
    #[test]
    fn transcript_chunking_does_not_change_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16)) {
        let chunks = cut_at(fixture!("openai/stream_tool_call.sse"), &cuts);
        prop_assert_eq!(decode_transcript(&chunks), expected_transcript_events());
    }

    /// Any split of `<think>` content across chunks yields the same reasoning and text as
    /// the non-streamed split.
    #[test]
    fn think_splitting_is_chunking_independent(
        thought in "[a-z <>/]{0,12}",
        answer in "[a-z <>/]{0,12}",
        lead in "[ \n]{0,2}",
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        prop_assume!(!thought.contains("</think>"));
        let content = format!("{lead}<think>{thought}</think>{answer}");
        let (expected_reasoning, expected_text) = split_think(&content).unwrap();
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(content.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut decoder = ChunkDecoder::new();
        let mut events = Vec::new();
        let mut from = 0;
        for point in points {
            events.extend(decoder.decode(&content_chunk(&content[from..point], false)).unwrap());
            from = point;
        }
        events.extend(decoder.decode(&content_chunk(&content[from..], true)).unwrap());
        prop_assert_eq!(split_output(&events), (expected_reasoning, expected_text));
    }
}
