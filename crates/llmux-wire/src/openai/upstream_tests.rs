use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ContentPart, FinishReason, Message, Role, StreamEvent, Tool, ToolCall, ToolChoice,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{
    ChunkDecoder, ReasoningField, RequestOptions, chat_request, chat_request_with, chat_response, split_think,
};
use crate::test_support::{cut_at, decode_sse, message, raw, text};

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "plain" => include_bytes!("../../tests/fixtures/openai/response_plain.json"),
        "tools" => include_bytes!("../../tests/fixtures/openai/response_tool_calls.json"),
        "deepseek" => include_bytes!("../../tests/fixtures/openai/response_deepseek.json"),
        "deepseek_hit" => include_bytes!("../../tests/fixtures/openai/response_deepseek_hit_only.json"),
        "think" => include_bytes!("../../tests/fixtures/openai/response_think_inline.json"),
        "stream" => include_bytes!("../../tests/fixtures/openai/stream_tool_call.sse"),
        other => panic!("no fixture {other}"),
    }
}

// ---------------------------------------------------------------------------------
// Responses (golden).

#[test]
fn plain_response_keeps_all_choices() {
    let response = chat_response(fixture("plain")).unwrap();
    assert_eq!(response.id, "chatcmpl-plain");
    assert_eq!(response.created, 1767225600);
    assert_eq!(response.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(response.choices.len(), 2);
    assert_eq!(response.choices[0].content.as_deref(), Some("Hello! How can I help?"));
    assert_eq!(response.choices[0].finish_reason, FinishReason::Stop);
    assert_eq!(response.choices[0].reasoning, None);
    assert_eq!(response.choices[1].index, 1);
    assert_eq!(response.choices[1].content.as_deref(), Some("Hi."));
    assert_eq!(response.choices[1].finish_reason, FinishReason::Length);
    assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 9, ..Usage::default() });
}

#[test]
fn tool_call_response() {
    let response = chat_response(fixture("tools")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content, None);
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        choice.tool_calls,
        vec![
            ToolCall { id: "call_a".into(), name: "get_weather".into(), arguments: r#"{"city":"Paris"}"#.into() },
            ToolCall { id: "call_b".into(), name: "now".into(), arguments: String::new() },
        ]
    );
    assert_eq!(
        response.usage,
        Usage { input_tokens: 100, output_tokens: 20, cached_tokens: 64, cache_write_tokens: 16, reasoning_tokens: 0 }
    );
}

#[test]
fn deepseek_reasoning_and_cache_hits() {
    let response = chat_response(fixture("deepseek")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content.as_deref(), Some("391"));
    assert_eq!(choice.reasoning.as_deref(), Some("17 * 23: 17 * 20 = 340, 17 * 3 = 51, total 391."));
    assert_eq!(
        response.usage,
        Usage { input_tokens: 200, output_tokens: 80, cached_tokens: 128, reasoning_tokens: 60, cache_write_tokens: 0 }
    );
    // Only DeepSeek's own field: still counted as cached.
    let response = chat_response(fixture("deepseek_hit")).unwrap();
    assert_eq!(response.usage.cached_tokens, 64);
    assert_eq!(response.usage.input_tokens, 90);
}

#[test]
fn inline_think_is_split_into_reasoning() {
    let response = chat_response(fixture("think")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.reasoning.as_deref(), Some("The user greets me; reply briefly."));
    assert_eq!(choice.content.as_deref(), Some("Hello!"));
}

#[test]
fn split_think_rules() {
    assert_eq!(split_think("<think>a</think>b"), Some(("a".into(), "b".into())));
    assert_eq!(split_think("  \n<think> a </think>\n b "), Some(("a".into(), "b ".into())));
    assert_eq!(split_think("<think>unfinished"), Some(("unfinished".into(), String::new())));
    assert_eq!(split_think("Hi <think>x</think>"), None);
    assert_eq!(split_think("<thinking>x</thinking>"), None);
}

#[test]
fn response_variants() {
    // A reasoning field wins over an inline tag, which then stays content.
    let body =
        br#"{"id":"x","choices":[{"message":{"content":"<think>a</think>b","reasoning":"r"},"finish_reason":"stop"}]}"#;
    let response = chat_response(body).unwrap();
    assert_eq!(response.choices[0].reasoning.as_deref(), Some("r"));
    assert_eq!(response.choices[0].content.as_deref(), Some("<think>a</think>b"));
    assert_eq!(response.usage, Usage::default());

    // Content as parts, arguments as an object, unknown finish reason, `stop` with calls.
    let body = br#"{"id":"y","choices":[{"index":0,"message":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"tool_calls":[{"id":"c","function":{"name":"f","arguments":{"k": [1, 2]}}}]},"finish_reason":"stop"},{"index":1,"message":{"content":"z"},"finish_reason":"insufficient_system_resource"}]}"#;
    let response = chat_response(body).unwrap();
    assert_eq!(response.choices[0].content.as_deref(), Some("ab"));
    assert_eq!(response.choices[0].tool_calls[0].arguments, r#"{"k":[1,2]}"#);
    assert_eq!(response.choices[0].finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.choices[1].finish_reason, FinishReason::Other("insufficient_system_resource".into()));

    // Errors.
    let error = chat_response(br#"{"error":{"message":"model overloaded","type":"server_error"}}"#).unwrap_err();
    assert!(error.message.contains("model overloaded"), "{}", error.message);
    assert!(chat_response(b"{\"id\":").is_err());
    assert!(chat_response(br#"{"id":"x"}"#).is_err());
    // Leading blank lines (DeepSeek keep-alive while queued) are fine.
    assert!(chat_response(b"\n\n{\"choices\":[]}").is_ok());
}

// ---------------------------------------------------------------------------------
// Requests.

#[test]
fn request_from_anthropic_client_golden() {
    let body = include_bytes!("../../tests/fixtures/anthropic/request_tools.json");
    let mut request = crate::anthropic::decode::messages_request(body).unwrap();
    request.stream = true;
    request.top_k = Some(5);
    request.stop = vec!["END".into()];
    request.extensions.insert("user".into(), raw(r#""u-1""#));
    request.extensions.insert("service_tier".into(), raw(r#""standard_only""#));
    let actual: Value = serde_json::from_slice(&chat_request(&request, "gpt-4.1")).unwrap();
    let expected = json!({
        "model": "gpt-4.1",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": "Checking both.", "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"units\":{\"z\":1,\"a\":2.50}}"}},
                {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
            ]},
            {"role": "tool", "content": "18C, sunny", "tool_call_id": "toolu_01"},
            {"role": "tool", "content": "Error: service\nunavailable", "tool_call_id": "toolu_02"},
            {"role": "user", "content": "Summarise please."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_03", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]},
            {"role": "tool", "content": "", "tool_call_id": "toolu_03"}
        ],
        "max_tokens": 512,
        "stop": ["END"],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "user": "u-1",
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    assert_eq!(actual, expected);
}

#[test]
fn request_images_system_reasoning_and_choices() {
    let mut assistant = message(Role::Assistant, vec![text("a")]);
    assistant.reasoning = Some("because".into());
    assistant.reasoning_signature = Some("sig".into());
    assistant.redacted_reasoning = vec!["opaque".into()];
    let mut tool = message(
        Role::Tool,
        vec![text("see image"), ContentPart::Image { url: "https://x/i.png".into(), detail: None }],
    );
    tool.tool_call_id = Some("c1".into());
    assistant.tool_calls = vec![ToolCall { id: "c1".into(), name: "shot".into(), arguments: "{}".into() }];
    let request = ChatRequest {
        model: "client-name".into(),
        messages: vec![
            message(Role::System, vec![text("one"), text("two")]),
            message(Role::Developer, vec![text("dev")]),
            message(
                Role::User,
                vec![
                    text("look"),
                    ContentPart::Image { url: "data:image/png;base64,AA==".into(), detail: Some("low".into()) },
                ],
            ),
            assistant,
            tool,
            message(Role::User, vec![text("thanks")]),
        ],
        temperature: Some(0.25),
        top_p: Some(1.0),
        top_k: Some(40),
        n: Some(2),
        seed: Some(-7),
        tool_choice: Some(ToolChoice::Function("shot".into())),
        response_format: Some(raw(r#"{"type":"json_object"}"#)),
        extensions: [("metadata".to_owned(), raw(r#"{"user_id":"x"}"#)), ("user".to_owned(), raw("17"))].into(),
        ..ChatRequest::default()
    };
    let actual: Value = serde_json::from_slice(&chat_request(&request, "up")).unwrap();
    assert_eq!(actual["messages"][0], json!({"role": "system", "content": "one\ntwo"}));
    assert_eq!(actual["messages"][1], json!({"role": "system", "content": "dev"}));
    assert_eq!(
        actual["messages"][2]["content"],
        json!([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}}
        ])
    );
    // Reasoning is not sent by default.
    assert_eq!(actual["messages"][3].get("reasoning_content"), None);
    assert_eq!(actual["messages"][3].get("reasoning"), None);
    assert_eq!(actual["messages"][4], json!({"role": "tool", "content": "see image", "tool_call_id": "c1"}));
    assert_eq!(
        actual["messages"][5],
        json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/i.png"}}]})
    );
    assert_eq!(actual["messages"][6], json!({"role": "user", "content": "thanks"}));
    assert_eq!(actual["tool_choice"], json!({"type": "function", "function": {"name": "shot"}}));
    assert_eq!(actual["response_format"], json!({"type": "json_object"}));
    assert_eq!(actual["temperature"], json!(0.25));
    assert_eq!(actual["n"], 2);
    assert_eq!(actual["seed"], -7);
    let keys: Vec<&str> = actual.as_object().unwrap().keys().map(String::as_str).collect();
    for absent in ["top_k", "metadata", "user", "stream", "stream_options", "stop", "tools", "max_tokens"] {
        assert!(!keys.contains(&absent), "{absent} must not be sent: {keys:?}");
    }

    let with = |field| {
        let body = chat_request_with(&request, "up", &RequestOptions { reasoning_field: Some(field) });
        serde_json::from_slice::<Value>(&body).unwrap()["messages"][3].clone()
    };
    assert_eq!(with(ReasoningField::ReasoningContent)["reasoning_content"], "because");
    assert_eq!(with(ReasoningField::ReasoningContent).get("reasoning"), None);
    assert_eq!(with(ReasoningField::Reasoning)["reasoning"], "because");
}

#[test]
fn tool_choice_modes() {
    for (choice, expected) in [
        (ToolChoice::None, json!("none")),
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::Required, json!("required")),
    ] {
        let request = ChatRequest { tool_choice: Some(choice), ..ChatRequest::default() };
        let actual: Value = serde_json::from_slice(&chat_request(&request, "m")).unwrap();
        assert_eq!(actual["tool_choice"], expected);
    }
}

// ---------------------------------------------------------------------------------
// Stream chunks.

fn decode_transcript(chunks: &[&[u8]]) -> Vec<StreamEvent<'static>> {
    let mut decoder = ChunkDecoder::new();
    decode_sse(chunks, |data| decoder.decode(data))
}

fn expected_transcript_events() -> Vec<StreamEvent<'static>> {
    vec![
        StreamEvent::Start { id: "chatcmpl-s1".into(), model: "gpt-4.1".into(), created: 1767225605 },
        StreamEvent::Text { choice: 0, text: "Let me ".into() },
        StreamEvent::Text { choice: 0, text: "check été 🌤.".into() },
        StreamEvent::ToolCall {
            choice: 0,
            index: 0,
            id: Some("call_w1".into()),
            name: Some("get_weather".into()),
            arguments: "".into(),
        },
        StreamEvent::ToolCall { choice: 0, index: 0, id: None, name: None, arguments: "{\"ci".into() },
        StreamEvent::ToolCall { choice: 0, index: 0, id: None, name: None, arguments: "ty\": \"Par".into() },
        StreamEvent::ToolCall { choice: 0, index: 0, id: None, name: None, arguments: "is\"}".into() },
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        StreamEvent::Usage(Usage { input_tokens: 120, output_tokens: 31, cached_tokens: 100, ..Usage::default() }),
    ]
}

#[test]
fn decodes_the_golden_transcript() {
    assert_eq!(decode_transcript(&[fixture("stream")]), expected_transcript_events());
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
    assert_eq!(
        events[1..],
        [
            StreamEvent::ToolCall {
                choice: 0,
                index: 0,
                id: Some("a".into()),
                name: Some("f".into()),
                arguments: "{}".into()
            },
            StreamEvent::ToolCall {
                choice: 0,
                index: 1,
                id: Some("b".into()),
                name: Some("g".into()),
                arguments: "{\"x\":1}".into()
            },
        ]
    );
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

// ---------------------------------------------------------------------------------
// Properties.

proptest! {
    /// Any byte-level chunking of the SSE transcript yields the same canonical events.
    #[test]
    fn transcript_chunking_does_not_change_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..16)) {
        let chunks = cut_at(fixture("stream"), &cuts);
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

    /// canonical -> upstream Chat Completions body -> OpenAI decoder keeps what matters.
    #[test]
    fn request_round_trips_through_the_openai_decoder(request in arb_request()) {
        let body = chat_request(&request, "upstream-model");
        let decoded = crate::openai::decode::chat_request(&body).unwrap();
        prop_assert_eq!(&decoded.model, "upstream-model");
        prop_assert_eq!(decoded.messages.len(), request.messages.len());
        for (sent, got) in request.messages.iter().zip(&decoded.messages) {
            let role = if sent.role == Role::Developer { Role::System } else { sent.role };
            prop_assert_eq!(got.role, role);
            let texts: Vec<&str> = sent.content.iter().filter_map(|part| match part {
                ContentPart::Text(text) => Some(text.as_str()),
                ContentPart::Image { .. } => None,
            }).collect();
            let has_image = sent.content.iter().any(|part| matches!(part, ContentPart::Image { .. }));
            if has_image {
                prop_assert_eq!(&got.content, &sent.content);
            } else {
                prop_assert_eq!(got.text(), texts.join("\n"));
            }
            prop_assert_eq!(&got.tool_calls, &sent.tool_calls);
            prop_assert_eq!(&got.tool_call_id, &sent.tool_call_id);
        }
        prop_assert_eq!(decoded.tools.len(), request.tools.len());
        for (sent, got) in request.tools.iter().zip(&decoded.tools) {
            prop_assert_eq!(&got.name, &sent.name);
            prop_assert_eq!(&got.description, &sent.description);
            prop_assert_eq!(got.parameters.as_ref().map(|p| p.get()), sent.parameters.as_ref().map(|p| p.get()));
        }
        prop_assert_eq!(&decoded.stop, &request.stop);
        prop_assert_eq!(decoded.max_tokens, request.max_tokens);
        prop_assert_eq!(&decoded.tool_choice, &request.tool_choice);
        prop_assert_eq!(decoded.stream, request.stream);
        prop_assert_eq!(decoded.stream_include_usage, request.stream);
        prop_assert_eq!(decoded.temperature, request.temperature);
        prop_assert!(!decoded.extensions.contains_key("top_k"));
    }
}

fn arb_text() -> impl Strategy<Value = String> + Clone {
    "[a-zA-Z0-9 \"\\\\\n\u{e9}\u{1f600}]{0,12}"
}

fn arb_call() -> impl Strategy<Value = ToolCall> {
    ("[a-z0-9_]{1,8}", "[a-z_]{1,8}", "\\{(\"[a-z]{1,3}\":[0-9]{1,3})?\\}").prop_map(|(id, name, arguments)| ToolCall {
        id: format!("call_{id}"),
        name,
        arguments,
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let texts = proptest::collection::vec(arb_text(), 0..3);
    prop_oneof![
        (prop_oneof![Just(Role::System), Just(Role::Developer)], texts.clone())
            .prop_map(|(role, texts)| message(role, texts.into_iter().map(ContentPart::Text).collect())),
        (texts.clone(), proptest::option::of("https://[a-z]{1,6}\\.example/[a-z]{1,4}\\.png"), any::<bool>()).prop_map(
            |(texts, image, image_first)| {
                let mut content: Vec<ContentPart> = texts.into_iter().map(ContentPart::Text).collect();
                if let Some(url) = image {
                    let part = ContentPart::Image { url, detail: None };
                    if image_first { content.insert(0, part) } else { content.push(part) }
                }
                message(Role::User, content)
            }
        ),
        (texts.clone(), proptest::collection::vec(arb_call(), 0..3)).prop_map(|(texts, calls)| {
            let mut message = message(Role::Assistant, texts.into_iter().map(ContentPart::Text).collect());
            message.tool_calls = calls;
            message
        }),
        (texts, "[a-z0-9_]{1,8}").prop_map(|(texts, id)| {
            let mut message = message(Role::Tool, texts.into_iter().map(ContentPart::Text).collect());
            message.tool_call_id = Some(id);
            message
        }),
    ]
}

fn arb_tool() -> impl Strategy<Value = Tool> {
    ("[a-z_]{1,10}", proptest::option::of("[a-zA-Z .]{0,20}"), any::<bool>()).prop_map(|(name, description, schema)| {
        Tool { name, description, parameters: schema.then(|| raw(r#"{"type":"object","properties":{}}"#)) }
    })
}

fn arb_request() -> impl Strategy<Value = ChatRequest> {
    (
        "[a-z-]{1,10}",
        proptest::collection::vec(arb_message(), 1..6),
        proptest::collection::vec(arb_tool(), 0..3),
        proptest::collection::vec("[A-Z#]{1,5}", 0..4),
        proptest::option::of(1u64..100_000),
        any::<bool>(),
        proptest::option::of(prop_oneof![
            Just(ToolChoice::None),
            Just(ToolChoice::Auto),
            Just(ToolChoice::Required),
            "[a-z]{1,5}".prop_map(ToolChoice::Function),
        ]),
        proptest::option::of(prop_oneof![Just(0.0), Just(0.5), Just(1.0), Just(1.25)]),
    )
        .prop_map(|(model, messages, tools, stop, max_tokens, stream, tool_choice, temperature)| ChatRequest {
            model,
            messages,
            tools,
            stop,
            max_tokens,
            stream,
            tool_choice,
            temperature,
            top_k: Some(3),
            extensions: [("top_k".to_owned(), raw("3"))].into(),
            ..ChatRequest::default()
        })
}
