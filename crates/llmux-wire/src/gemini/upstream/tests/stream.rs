use llmux_types::Usage;
use llmux_types::chat::{FinishReason, StreamEvent};
use proptest::prelude::*;
use serde_json::json;

use crate::UpstreamDecoder;
use crate::gemini::upstream::StreamDecoder;
use crate::test_support::{
    call_start, cut_at, decode_all, decode_sse, fixture, joined, openai_calls, openai_chunks, openai_deltas,
    openai_finish_reasons, usages,
};

fn decode_transcript(chunks: &[&[u8]]) -> Vec<StreamEvent<'static>> {
    let mut decoder = StreamDecoder::new();
    decode_sse(chunks, |data| decoder.decode(data))
}

fn expected_transcript_events() -> Vec<StreamEvent<'static>> {
    let usage = |candidates: u64, thoughts: u64| {
        StreamEvent::Usage(Usage {
            input_tokens: 472,
            output_tokens: candidates + thoughts,
            cached_tokens: 256,
            reasoning_tokens: thoughts,
            cache_write_tokens: 0,
        })
    };
    vec![
        StreamEvent::Start { id: "Vx9LaPqZBdGSz7IP0f2R8QM".into(), model: "gemini-3-pro-preview".into(), created: 0 },
        StreamEvent::Reasoning { choice: 0, text: "**Checking the weather**\n\nThe user wants the weather".into() },
        usage(0, 38),
        StreamEvent::Reasoning { choice: 0, text: " in Paris; call the tool.".into() },
        usage(0, 61),
        StreamEvent::Text { choice: 0, text: "Let me check ".into() },
        usage(3, 61),
        StreamEvent::Text { choice: 0, text: "the weather été 🌤.".into() },
        // Before the call that carries it, marked as Gemini's.
        StreamEvent::ReasoningSignature {
            choice: 0,
            signature: "gemini:CiQBVKhc7l5mzkoZSRQfFeCS44vjuGk3o7tGr8==".into(),
        },
        call_start(0, 0, "fc_7q1", "get_weather", r#"{"city":"Paris"}"#),
        call_start(0, 1, "call_Vx9LaPqZBdGSz7IP0f2R8QM_1", "now", "{}"),
        usage(20, 61),
        // The last chunk's empty text yields nothing.
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        usage(28, 61),
    ]
}

#[test]
fn decodes_the_golden_transcript() {
    assert_eq!(
        decode_transcript(&[fixture!("gemini-upstream/stream_thinking_tool.sse")]),
        expected_transcript_events()
    );
    // LF line endings, one byte at a time.
    let lf =
        String::from_utf8(fixture!("gemini-upstream/stream_thinking_tool.sse").to_vec()).unwrap().replace("\r\n", "\n");
    let bytes: Vec<&[u8]> = lf.as_bytes().chunks(1).collect();
    assert_eq!(decode_transcript(&bytes), expected_transcript_events());
}

#[test]
fn transcript_through_the_openai_encoder() {
    let chunks = openai_chunks(decode_transcript(&[fixture!("gemini-upstream/stream_thinking_tool.sse")]));
    for chunk in &chunks {
        assert_eq!(chunk["id"], "Vx9LaPqZBdGSz7IP0f2R8QM");
        assert_eq!(chunk["model"], "gemini-3-pro-preview");
    }
    let deltas = openai_deltas(&chunks);
    assert_eq!(joined(&deltas, "content"), "Let me check the weather été 🌤.");
    let calls = openai_calls(&deltas);
    assert_eq!(calls.len(), 2, "each call whole, in one delta");
    assert_eq!(calls[0]["id"], "fc_7q1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(calls[1]["index"], 1);
    assert_eq!(calls[1]["id"], "call_Vx9LaPqZBdGSz7IP0f2R8QM_1");
    assert_eq!(openai_finish_reasons(&chunks), [&json!("tool_calls")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 472);
    assert_eq!(usage["completion_tokens"], 89);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 256);
}

#[test]
fn stream_choices_signatures_and_finish() {
    let mut decoder = StreamDecoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            // No id or model: Start still comes first, empty.
            r#"{"candidates":[
                {"content":{"role":"model","parts":[{"text":"a","thoughtSignature":"on-text"}]},"index":1},
                {"content":{"role":"model","parts":[{"text":"b"}]}}
            ]}"#,
            "",
            "  \r\n",
            // A later call signature supersedes a text one; later ones are not repeated.
            r#"{"candidates":[{"content":{"parts":[
                {"functionCall":{"name":"f","args":{"x":1}},"thoughtSignature":"on-call"},
                {"functionCall":{"name":"g"},"thoughtSignature":"again"},
                {"text":"","thoughtSignature":"and-again"}
            ]},"index":1}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"c","thoughtSignature":"text-0"}]},"finishReason":"MAX_TOKENS","index":0},
                             {"finishReason":"STOP","index":1}]}"#,
            // A finish reason repeated for a finished choice is not a second Finish.
            r#"{"candidates":[{"finishReason":"STOP","index":1}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}"#,
        ],
    );
    assert_eq!(
        events,
        vec![
            StreamEvent::Start { id: "".into(), model: "".into(), created: 0 },
            StreamEvent::Text { choice: 1, text: "a".into() },
            StreamEvent::ReasoningSignature { choice: 1, signature: "gemini:on-text".into() },
            // Position 1, no index: choice 1 as well.
            StreamEvent::Text { choice: 1, text: "b".into() },
            StreamEvent::ReasoningSignature { choice: 1, signature: "gemini:on-call".into() },
            call_start(1, 0, "call_0", "f", r#"{"x":1}"#),
            call_start(1, 1, "call_1", "g", "{}"),
            StreamEvent::Text { choice: 0, text: "c".into() },
            StreamEvent::ReasoningSignature { choice: 0, signature: "gemini:text-0".into() },
            StreamEvent::Finish { choice: 0, reason: FinishReason::Length },
            StreamEvent::Finish { choice: 1, reason: FinishReason::ToolCalls },
            StreamEvent::Usage(Usage { input_tokens: 3, output_tokens: 4, ..Usage::default() }),
        ]
    );
}

#[test]
fn stream_usage_is_replaced_never_added() {
    let mut decoder = StreamDecoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            r#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}],"usageMetadata":{"promptTokenCount":10,"cachedContentTokenCount":4,"thoughtsTokenCount":5}}"#,
            // A counter left out keeps its last value; reported ones replace theirs.
            r#"{"candidates":[{"content":{"parts":[{"text":"y"}]}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2}}"#,
            r#"{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":7,"thoughtsTokenCount":9,"toolUsePromptTokenCount":1}}"#,
        ],
    );
    let usages = usages(&events);
    assert_eq!(
        usages,
        [
            Usage { input_tokens: 10, cached_tokens: 4, output_tokens: 5, reasoning_tokens: 5, ..Usage::default() },
            Usage { input_tokens: 10, cached_tokens: 4, output_tokens: 7, reasoning_tokens: 5, ..Usage::default() },
            Usage { input_tokens: 11, cached_tokens: 4, output_tokens: 16, reasoning_tokens: 9, ..Usage::default() },
        ]
    );
    assert_eq!(events.last(), Some(&StreamEvent::Usage(usages[2])));
}

#[test]
fn stream_blocked_prompt_and_errors() {
    let mut decoder = StreamDecoder::new();
    let events = decode_all(
        &mut decoder,
        &[
            r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":7},"responseId":"b","modelVersion":"m"}"#,
        ],
    );
    assert_eq!(
        events,
        vec![
            StreamEvent::Start { id: "b".into(), model: "m".into(), created: 0 },
            StreamEvent::Finish { choice: 0, reason: FinishReason::ContentFilter },
            StreamEvent::Usage(Usage { input_tokens: 7, ..Usage::default() }),
        ]
    );
    // An error mid-stream.
    let events = decode_all(
        &mut decoder,
        &[
            r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
        ],
    );
    assert_eq!(
        events,
        vec![StreamEvent::Error { message: "UNAVAILABLE: The model is overloaded. Please try again later.".into() }]
    );
    // As the first chunk: no Start before it.
    let mut decoder = StreamDecoder::new();
    assert_eq!(
        decode_all(&mut decoder, &[r#"{"error":{"message":"bad"}}"#]),
        vec![StreamEvent::Error { message: "bad".into() }]
    );

    for case in [
        "not json",
        "[DONE]",
        r#"[1]"#,
        r#"{"candidates":"x"}"#,
        r#"{"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]}"#,
        r#"{"candidates":[{"content":{"parts":[{"thought":"yes","text":"x"}]}}]}"#,
        r#"{"usageMetadata":{"promptTokenCount":-1}}"#,
        r#"{"error":{"code":"five"}}"#,
        r#"{"error":[]}"#,
    ] {
        let mut decoder = StreamDecoder::new();
        let error = decoder.decode(case.as_bytes()).expect_err(case);
        assert!(error.message.starts_with("invalid upstream"), "{case}: {}", error.message);
    }
}

proptest! {
    /// Any byte-level chunking of the SSE transcript yields the same canonical events.
    #[test]
    fn transcript_chunking_does_not_change_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24)) {
        let chunks = cut_at(fixture!("gemini-upstream/stream_thinking_tool.sse"), &cuts);
        prop_assert_eq!(decode_transcript(&chunks), expected_transcript_events());
    }
}
