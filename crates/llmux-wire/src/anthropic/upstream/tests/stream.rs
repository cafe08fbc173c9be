use llmux_types::Usage;
use llmux_types::chat::{FinishReason, StreamEvent};
use proptest::prelude::*;
use serde_json::json;

use crate::UpstreamDecoder;
use crate::anthropic::upstream::EventDecoder;
use crate::test_support::{
    call_more, call_start, cut_at, decode_all, decode_sse, finishes, fixture, joined, openai_calls, openai_chunks,
    openai_deltas, openai_finish_reasons, usages,
};

fn decode_transcript(chunks: &[&[u8]]) -> Vec<StreamEvent<'static>> {
    let mut decoder = EventDecoder::new();
    decode_sse(chunks, |data| decoder.decode(data))
}

fn expected_transcript_events() -> Vec<StreamEvent<'static>> {
    let input = Usage { input_tokens: 472 + 2048, cached_tokens: 2048, ..Usage::default() };
    vec![
        StreamEvent::Start { id: "msg_01Stream".into(), model: "claude-sonnet-4-5-20250929".into(), created: 0 },
        StreamEvent::Usage(Usage { output_tokens: 2, ..input }),
        StreamEvent::Reasoning { choice: 0, text: "The user wants the weather".into() },
        StreamEvent::Reasoning { choice: 0, text: " in Paris; call the tool.".into() },
        StreamEvent::ReasoningSignature {
            choice: 0,
            signature: "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds==".into(),
        },
        StreamEvent::Text { choice: 0, text: "Let me check ".into() },
        StreamEvent::Text { choice: 0, text: "the weather été 🌤.".into() },
        // Anthropic block 2 is the first tool call: index 0.
        call_start(0, 0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", ""),
        call_more(0, 0, "{\"city\": \"Pa"),
        call_more(0, 0, "ris\"}"),
        call_start(0, 1, "toolu_02Now", "now", ""),
        // No input_json_delta came: the start's `input` at content_block_stop.
        call_more(0, 1, "{}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        StreamEvent::Usage(Usage { output_tokens: 89, ..input }),
    ]
}

#[test]
fn decodes_the_golden_transcript() {
    assert_eq!(
        decode_transcript(&[fixture!("anthropic-upstream/stream_thinking_tool.sse")]),
        expected_transcript_events()
    );
    // CRLF line endings, one byte at a time.
    let crlf = String::from_utf8(fixture!("anthropic-upstream/stream_thinking_tool.sse").to_vec())
        .unwrap()
        .replace('\n', "\r\n");
    let bytes: Vec<&[u8]> = crlf.as_bytes().chunks(1).collect();
    assert_eq!(decode_transcript(&bytes), expected_transcript_events());
}

#[test]
fn transcript_through_the_openai_encoder() {
    let chunks = openai_chunks(decode_transcript(&[fixture!("anthropic-upstream/stream_thinking_tool.sse")]));
    for chunk in &chunks {
        assert_eq!(chunk["id"], "msg_01Stream");
        assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    let deltas = openai_deltas(&chunks);
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!(joined(&deltas, "reasoning_content"), "The user wants the weather in Paris; call the tool.");
    assert_eq!(joined(&deltas, "content"), "Let me check the weather été 🌤.");

    let calls = openai_calls(&deltas);
    assert_eq!(calls[0]["index"], 0, "the ordinal, not Anthropic's block index 2");
    assert_eq!(calls[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let second = calls.iter().find(|call| call["id"] == "toolu_02Now").unwrap();
    assert_eq!(second["index"], 1);
    assert!(calls.iter().all(|call| call["index"] == 0 || call["index"] == 1));
    let arguments = |index: u64| {
        calls
            .iter()
            .filter(|call| call["index"] == index)
            .map(|call| call["function"]["arguments"].as_str().unwrap())
            .collect::<String>()
    };
    assert_eq!(arguments(0), r#"{"city": "Paris"}"#);
    assert_eq!(arguments(1), "{}");

    assert_eq!(openai_finish_reasons(&chunks), [&json!("tool_calls")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 2520, "completion_tokens": 89, "total_tokens": 2609, "prompt_tokens_details": {"cached_tokens": 2048}})
    );
}

#[test]
fn stream_usage_is_replaced_never_added() {
    let mut decoder = EventDecoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":null,"output_tokens":1}}}"#,
            // Newer API versions repeat the input side in message_delta.
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":30}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":40,"cache_creation_input_tokens":3}}"#,
            r#"{"type":"message_stop"}"#,
        ],
    );
    assert_eq!(
        usages(&events),
        [
            Usage { input_tokens: 15, cached_tokens: 5, output_tokens: 1, ..Usage::default() },
            Usage { input_tokens: 15, cached_tokens: 5, output_tokens: 30, ..Usage::default() },
            Usage { input_tokens: 18, cached_tokens: 5, cache_write_tokens: 3, output_tokens: 40, ..Usage::default() },
        ]
    );
    assert_eq!(finishes(&events), [&FinishReason::Stop, &FinishReason::Length]);
}

#[test]
fn stream_block_kinds() {
    let mut decoder = EventDecoder::default();
    let events = decode_all(
        &mut decoder,
        &[
            // No message_start: a Start is still emitted first.
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"EmwKAhgB"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            // A server tool's block streams input_json_delta too: skipped, and it takes no ordinal.
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"x\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"text","text":"Hi"}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location"}}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":""}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"future_delta","stuff":1}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            r#"{"type":"content_block_stop","index":3}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"some_future_event","index":"not a number","usage":"whatever"}"#,
            "",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ],
    );
    assert_eq!(
        events,
        vec![
            StreamEvent::Start { id: "".into(), model: "".into(), created: 0 },
            StreamEvent::RedactedReasoning { choice: 0, data: "EmwKAhgB".into() },
            StreamEvent::Text { choice: 0, text: "Hi".into() },
            call_start(0, 0, "toolu_1", "f", ""),
            // Streamed arguments are not repeated at content_block_stop.
            call_more(0, 0, "{}"),
            StreamEvent::Error { message: "overloaded_error: Overloaded".into() },
        ]
    );
}

#[test]
fn stream_errors() {
    let start = r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
    let cases = [
        "not json",
        r#"{"no":"type"}"#,
        r#"[1]"#,
        r#"{"type":"message_start"}"#,
        r#"{"type":"message_start","message":{"usage":{"input_tokens":-1}}}"#,
        r#"{"type":"content_block_start","content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_start","index":0}"#,
        r#"{"type":"content_block_start","index":"0","content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"f"}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":"text"}"#,
        r#"{"type":"content_block_delta","index":5,"delta":{"type":"text_delta","text":"x"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
        r#"{"type":"content_block_delta","index":0}"#,
        r#"{"type":"content_block_stop"}"#,
        r#"{"type":"message_delta","usage":{"output_tokens":1}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":"x"}}"#,
        r#"{"type":"error"}"#,
    ];
    for case in cases {
        let mut decoder = EventDecoder::new();
        decoder.decode(start.as_bytes()).unwrap();
        let error = decoder.decode(case.as_bytes()).expect_err(case);
        assert!(error.message.starts_with("invalid upstream"), "{case}: {}", error.message);
    }
}

proptest! {
    /// Any byte-level chunking of the SSE transcript yields the same canonical events.
    #[test]
    fn transcript_chunking_does_not_change_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24)) {
        let chunks = cut_at(fixture!("anthropic-upstream/stream_thinking_tool.sse"), &cuts);
        prop_assert_eq!(decode_transcript(&chunks), expected_transcript_events());
    }
}
