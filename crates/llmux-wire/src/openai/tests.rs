use llmux_types::Usage;
use llmux_types::chat::{FinishReason, StreamEvent};

use super::peek::{Endpoint, peek, rewrite};
use super::usage::{Chunk, classify_chunk, from_response};
use crate::test_support::{call_more, call_start};

fn rewritten(body: &str, model: &str, force: bool) -> String {
    let peeked = peek(body.as_bytes(), Endpoint::ChatCompletions).expect("valid body");
    String::from_utf8(rewrite(body.as_bytes(), &peeked, model, force)).unwrap()
}

#[test]
fn rewrite_replaces_only_the_model() {
    let body =
        r#"{"messages":[{"role":"user","content":"hi \"there\""}],"model":"chat-default","x_custom":{"a":[1,2]}}"#;
    assert_eq!(
        rewritten(body, "deepseek-chat", false),
        r#"{"messages":[{"role":"user","content":"hi \"there\""}],"model":"deepseek-chat","x_custom":{"a":[1,2]}}"#
    );
}

#[test]
fn rewrite_escapes_the_new_model() {
    let body = r#"{"model":"a","messages":[{"role":"user","content":"x"}]}"#;
    assert_eq!(rewritten(body, "we\"ird", false), r#"{"model":"we\"ird","messages":[{"role":"user","content":"x"}]}"#);
}

#[test]
fn rewrite_inserts_stream_options_when_absent() {
    let body = r#" { "model" : "m", "stream": true, "messages":[{"role":"user","content":"x"}]}"#;
    let out = rewritten(body, "up", true);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["stream_options"]["include_usage"], true);
    assert_eq!(value["model"], "up");
    assert_eq!(value["stream"], true);
}

#[test]
fn rewrite_merges_existing_stream_options() {
    let body = r#"{"stream_options":{"include_obfuscation":false},"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let out = rewritten(body, "up", true);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["stream_options"], serde_json::json!({"include_obfuscation": false, "include_usage": true}));
    assert_eq!(value["model"], "up");
}

#[test]
fn rewrite_leaves_client_requested_usage_alone() {
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}"#;
    let peeked = peek(body.as_bytes(), Endpoint::ChatCompletions).unwrap();
    assert!(peeked.include_usage);
    assert_eq!(rewritten(body, "m", true), body);
}

#[test]
fn peek_reports_field_errors() {
    let cases = [
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, Some("model")),
        (r#"{"model":"m"}"#, Some("messages")),
        (r#"{"model":"m","messages":[]}"#, Some("messages")),
        (r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#, Some("messages[0].role")),
        (r#"{"model":"m","messages":[{"content":"x"}]}"#, Some("messages[0].role")),
        (r#"{"model":"m","messages":[{"role":"user"}],"temperature":"hot"}"#, Some("temperature")),
        (r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#, Some("stream")),
        (r#"{"model":7,"messages":[{"role":"user"}]}"#, Some("model")),
        (r#"{"model":"m","messages":[{"role":"user"}],"n":0}"#, Some("n")),
        (r#"{"model":"m","messages":"#, None),
        (r#"[1,2]"#, None),
        // serde would read this array as the struct's fields in order (found by fuzzing).
        (r#"["m",[{"role":"user"}],null,null,null,null,null,null,null,null,null,null,null,null,null,null]"#, None),
    ];
    for (body, param) in cases {
        let error = peek(body.as_bytes(), Endpoint::ChatCompletions).expect_err(body);
        assert_eq!(error.param.as_deref(), param, "{body}: {}", error.message);
        assert!(!error.message.is_empty());
    }
    // Invalid UTF-8 inside a value peek skips would otherwise be forwarded (found by fuzzing).
    let mut body = br#"{"model":"m","messages":[{"role":"user"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"_ype":"object"}}}]}"#.to_vec();
    let at = body.windows(4).position(|window| window == b"_ype").unwrap();
    body[at] = 0x82;
    assert!(peek(&body, Endpoint::ChatCompletions).unwrap_err().message.contains("UTF-8"));
}

#[test]
fn peek_other_endpoints_require_their_fields() {
    assert_eq!(peek(br#"{"model":"e"}"#, Endpoint::Embeddings).unwrap_err().param.as_deref(), Some("input"));
    assert!(peek(br#"{"model":"e","input":["a","b"]}"#, Endpoint::Embeddings).is_ok());
    assert_eq!(peek(br#"{"model":"c"}"#, Endpoint::Completions).unwrap_err().param.as_deref(), Some("prompt"));
}

#[test]
fn peek_reads_the_conversation_names_when_they_are_strings() {
    let body =
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"prompt_cache_key":"sess-1","user":"a\u00e9"}"#;
    let peeked = peek(body, Endpoint::ChatCompletions).unwrap();
    assert_eq!(peeked.prompt_cache_key.as_deref(), Some("sess-1"));
    assert!(matches!(peeked.prompt_cache_key, Some(std::borrow::Cow::Borrowed(_))), "no escapes: borrowed");
    assert_eq!(peeked.user.as_deref(), Some("a\u{e9}"));
    // Other types are not names, and not errors: the body passes through as it is.
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"prompt_cache_key":7,"user":null}"#;
    let peeked = peek(body, Endpoint::ChatCompletions).unwrap();
    assert_eq!((peeked.prompt_cache_key, peeked.user), (None, None));
}

#[test]
fn usage_from_openai_and_deepseek_bodies() {
    let openai = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
    assert_eq!(
        from_response(openai),
        Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 4,
            reasoning_tokens: 2,
            cache_write_tokens: 0
        })
    );
    let deepseek = br#"{"usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":36}}"#;
    // `usage` not last, and a message that mentions "usage": the full parse decides.
    let early = br#"{"usage":{"prompt_tokens":2,"completion_tokens":1},"choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 99}"}}]}"#;
    assert_eq!(from_response(early).map(|u| u.input_tokens), Some(2));
    let spoof = br#"{"choices":[{"message":{"content":"x"}}],"note":"\"usage\":{\"prompt_tokens\":99}}"}"#;
    assert_eq!(from_response(spoof), None);
    assert_eq!(from_response(deepseek).unwrap().cached_tokens, 64);
}

#[test]
fn classify_stream_chunks() {
    assert_eq!(classify_chunk(b"[DONE]"), Chunk::Done);
    assert_eq!(classify_chunk(br#"{"error":{"message":"boom"}}"#), Chunk::Error);
    assert_eq!(
        classify_chunk(br#"{"choices":[{"delta":{"content":"usage"}}],"usage":null}"#),
        Chunk::Data { usage: None, usage_only: false }
    );
    assert_eq!(
        classify_chunk(br#"{"choices":[{"delta":{"content":"\"usage\": 5"}}]}"#),
        Chunk::Data { usage: None, usage_only: false }
    );
    let usage = Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() };
    assert_eq!(
        classify_chunk(br#"{"choices":[],"usage": {"prompt_tokens":3,"completion_tokens":2}}"#),
        Chunk::Data { usage: Some(usage), usage_only: true }
    );
    assert_eq!(
        classify_chunk(
            br#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#
        ),
        Chunk::Data { usage: Some(usage), usage_only: false }
    );
}

#[test]
fn decode_chat_to_canonical() {
    let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"stop":"END","max_completion_tokens":9,"logit_bias":{"1":2}}"#;
    let request = super::decode::chat_request(body).unwrap();
    assert_eq!(request.messages.len(), 4);
    assert_eq!(request.messages[1].text(), "hi");
    assert_eq!(request.messages[2].tool_calls[0].name, "f");
    assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(request.tools[0].parameters.as_ref().unwrap().get(), r#"{"type":"object"}"#);
    assert_eq!(request.tool_choice, Some(llmux_types::chat::ToolChoice::Function("f".into())));
    assert_eq!(request.stop, vec!["END"]);
    assert_eq!(request.max_tokens, Some(9));
    assert_eq!(request.extensions["logit_bias"].get(), r#"{"1":2}"#);
}

#[test]
fn stream_encoder_emits_openai_chunks() {
    let mut encoder = super::encode::ChatStreamEncoder::new(true);
    let mut out = Vec::new();
    for event in [
        StreamEvent::Start { id: "chatcmpl-1".into(), model: "mock".into(), created: 7 },
        StreamEvent::Text { choice: 0, text: "Hel".into() },
        call_start(0, 0, "call_1", "f", ""),
        call_more(0, 0, "{}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        StreamEvent::Usage(Usage { input_tokens: 1, output_tokens: 2, ..Usage::default() }),
    ] {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.len(), 6);
    assert_eq!(
        frames[0],
        r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"mock","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}"#
    );
    assert!(frames[1].contains(
        r#""tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]"#
    ));
    assert!(frames[2].contains(r#""tool_calls":[{"index":0,"function":{"arguments":"{}"}}]"#));
    assert!(frames[3].contains(r#""finish_reason":"tool_calls""#));
    assert!(frames[4].contains(r#""choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}"#));
    assert_eq!(frames[5], "data: [DONE]");
}

#[test]
fn peek_bounds_choices_and_inputs() {
    let chat = |n: u64| format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"n":{n}}}"#);
    assert_eq!(peek(chat(128).as_bytes(), Endpoint::ChatCompletions).unwrap().n, 128);
    for n in [129, 4_000_000_000] {
        let error = peek(chat(n).as_bytes(), Endpoint::ChatCompletions).unwrap_err();
        assert_eq!(error.param.as_deref(), Some("n"));
        assert!(error.message.contains("at most 128"), "{}", error.message);
    }
    let strings = |count: usize| format!(r#"{{"model":"m","input":[{}]}}"#, vec![r#""a""#; count].join(","));
    assert!(peek(strings(2048).as_bytes(), Endpoint::Embeddings).is_ok());
    let error = peek(strings(2049).as_bytes(), Endpoint::Embeddings).unwrap_err();
    assert_eq!(error.param.as_deref(), Some("input"));
    assert!(error.message.contains("2049"), "{}", error.message);
    // One list of token ids is one input, however long; a list of lists is one per list.
    let tokens = format!(r#"{{"model":"m","input":[{}]}}"#, vec!["7"; 5000].join(","));
    assert!(peek(tokens.as_bytes(), Endpoint::Embeddings).is_ok());
    let batches = format!(r#"{{"model":"m","input":[{}]}}"#, vec!["[1,2]"; 2049].join(","));
    assert!(peek(batches.as_bytes(), Endpoint::Embeddings).is_err());
    let prompts = format!(r#"{{"model":"m","prompt":[{}]}}"#, vec![r#""p""#; 2049].join(","));
    assert_eq!(peek(prompts.as_bytes(), Endpoint::Completions).unwrap_err().param.as_deref(), Some("prompt"));
    let counted = peek(
        br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}],"tools":[{"type":"function"}]}"#,
        Endpoint::ChatCompletions,
    )
    .unwrap();
    assert_eq!((counted.messages, counted.tools), (2, 1));
}
