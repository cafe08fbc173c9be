use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, Choice, ContentPart, FinishReason, Role, StreamEvent, ToolCall, ToolChoice};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::decode::{count_tokens_request, messages_request};
use super::encode::{MessagesStreamEncoder, messages_response, ping, stop_reason};
use super::error::error_body;
use crate::UpstreamDecoder;
use crate::json::compact_json;
use crate::openai::upstream::ChunkDecoder;
use crate::sse::{Framer, parse_event};

fn fixture(name: &str) -> &'static str {
    match name {
        "request_text" => include_str!("../../tests/fixtures/anthropic/request_text.json"),
        "request_system_blocks" => include_str!("../../tests/fixtures/anthropic/request_system_blocks.json"),
        "request_images" => include_str!("../../tests/fixtures/anthropic/request_images.json"),
        "request_tools" => include_str!("../../tests/fixtures/anthropic/request_tools.json"),
        "request_thinking" => include_str!("../../tests/fixtures/anthropic/request_thinking.json"),
        "response_expected" => include_str!("../../tests/fixtures/anthropic/response_expected.json"),
        "stream_expected" => include_str!("../../tests/fixtures/anthropic/stream_expected.json"),
        "openai_stream" => include_str!("../../tests/fixtures/openai/stream_tool_call.sse"),
        other => panic!("no fixture {other}"),
    }
}

fn text(value: &str) -> ContentPart {
    ContentPart::Text(value.to_owned())
}

/// Parses encoder output back into (event name, data) pairs, checking the framing:
/// every event has exactly an `event:` and a `data:` line and the data's `type` is the
/// event name.
fn events_of(out: &[u8]) -> Vec<(String, Value)> {
    assert!(out.is_empty() || out.ends_with(b"\n\n"), "output must end with a blank line");
    let mut framer = Framer::new();
    framer.push(out);
    let mut events = Vec::new();
    while let Some(raw) = framer.next_event() {
        let text = std::str::from_utf8(&raw).unwrap();
        assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 2, "{text:?}");
        let parsed = parse_event(&raw);
        let name = String::from_utf8(parsed.event.expect("event line").to_vec()).unwrap();
        let data: Value = serde_json::from_slice(&parsed.data.expect("data line")).unwrap();
        assert_eq!(data["type"], Value::String(name.clone()), "type inside data must equal the event name");
        events.push((name, data));
    }
    assert_eq!(framer.buffered(), 0);
    events
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

// ---------------------------------------------------------------------------------
// Request decoding (golden).

#[test]
fn decodes_text_request_with_parameters() {
    let request = messages_request(fixture("request_text").as_bytes()).unwrap();
    assert_eq!(request.model, "claude-alias");
    assert_eq!(request.max_tokens, Some(1024));
    assert_eq!(request.stop, vec!["END", "STOP"]);
    assert_eq!(request.temperature, Some(0.5));
    assert_eq!(request.top_p, Some(0.9));
    assert_eq!(request.top_k, Some(40));
    assert!(request.stream);
    assert!(request.stream_include_usage);
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::User]);
    assert_eq!(request.messages[0].content, vec![text("You are terse.")]);
    assert_eq!(request.messages[1].content, vec![text("Hello there")]);
    assert_eq!(request.messages[2].content, vec![text("Hi.")]);
    assert_eq!(request.messages[3].content, vec![text("Count to three.")]);
    assert_eq!(request.extensions["user"].get(), r#""user-42""#);
    // Unknown top-level fields are kept verbatim; known ones are not duplicated there.
    assert_eq!(request.extensions["thinking"].get(), r#"{"type": "enabled", "budget_tokens": 2048}"#);
    assert_eq!(request.extensions["service_tier"].get(), r#""auto""#);
    let keys: Vec<&str> = request.extensions.keys().map(String::as_str).collect();
    assert_eq!(keys, ["service_tier", "thinking", "user"]);
    assert!(request.tools.is_empty());
    assert_eq!(request.tool_choice, None);
}

#[test]
fn decodes_system_blocks_into_one_leading_system_message() {
    let request = messages_request(fixture("request_system_blocks").as_bytes()).unwrap();
    assert_eq!(request.messages.len(), 2);
    assert_eq!(request.messages[0].role, Role::System);
    assert_eq!(request.messages[0].content, vec![text("You are a helpful assistant."), text("Answer in French.")]);
    assert_eq!(request.messages[1].role, Role::User);
    assert!(!request.stream);
    assert!(request.extensions.is_empty());
}

#[test]
fn a_system_message_among_the_messages_stays_at_its_place() {
    // As current Claude Code sends it: the environment notes as a `system` message after
    // the first user turn, the top-level `system` as blocks.
    let body = br#"{"model":"m","max_tokens":8,"system":[{"type":"text","text":"top"}],"messages":[
        {"role":"user","content":[{"type":"text","text":"hi"}]},
        {"role":"system","content":[{"type":"text","text":"env","cache_control":{"type":"ephemeral"}},{"type":"text","text":"more"}]},
        {"role":"assistant","content":"hello"},
        {"role":"system","content":"late"}]}"#;
    let request = messages_request(body).unwrap();
    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::System, Role::Assistant, Role::System]);
    assert_eq!(request.messages[2].content, vec![text("env"), text("more")]);
    assert_eq!(request.messages[4].content, vec![text("late")]);
}

#[test]
fn decodes_base64_and_url_images() {
    let request = messages_request(fixture("request_images").as_bytes()).unwrap();
    assert_eq!(request.messages.len(), 1);
    assert_eq!(
        request.messages[0].content,
        vec![
            ContentPart::Image { url: "data:image/png;base64,iVBORw0KGgo=".into(), detail: None },
            ContentPart::Image { url: "https://example.com/cat.jpg".into(), detail: None },
            text("What differs between these?"),
        ]
    );
}

#[test]
fn decodes_multi_turn_tool_use() {
    let request = messages_request(fixture("request_tools").as_bytes()).unwrap();
    assert_eq!(request.tools.len(), 2);
    assert_eq!(request.tools[0].name, "get_weather");
    assert_eq!(request.tools[0].description.as_deref(), Some("Weather for a city"));
    let schema: Value = serde_json::from_str(request.tools[0].parameters.as_ref().unwrap().get()).unwrap();
    assert_eq!(schema["required"], json!(["city"]));
    assert_eq!(request.tools[1].description, None);
    assert_eq!(request.tool_choice, Some(ToolChoice::Required));
    assert_eq!(request.extensions["parallel_tool_calls"].get(), "false");

    let roles: Vec<Role> = request.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Tool, Role::User, Role::Assistant, Role::Tool],
        "tool results come first, then the rest of the user turn"
    );
    let assistant = &request.messages[1];
    assert_eq!(assistant.content, vec![text("Checking both.")]);
    assert_eq!(
        assistant.tool_calls,
        vec![
            ToolCall {
                id: "toolu_01".into(),
                name: "get_weather".into(),
                // Compact, key order and number spelling as sent.
                arguments: r#"{"city":"Paris","units":{"z":1,"a":2.50}}"#.into(),
            },
            ToolCall { id: "toolu_02".into(), name: "get_weather".into(), arguments: r#"{"city":"Oslo"}"#.into() },
        ]
    );
    let first = &request.messages[2];
    assert_eq!(first.tool_call_id.as_deref(), Some("toolu_01"));
    assert_eq!(first.content, vec![text("18C, sunny")]);
    assert!(!first.tool_error);
    let second = &request.messages[3];
    assert_eq!(second.tool_call_id.as_deref(), Some("toolu_02"));
    assert_eq!(second.content, vec![text("service"), text("unavailable")]);
    assert!(second.tool_error);
    assert_eq!(request.messages[4].content, vec![text("Summarise please.")]);
    assert_eq!(request.messages[5].tool_calls[0].arguments, "{}");
    assert!(request.messages[5].content.is_empty());
    assert_eq!(request.messages[6].tool_call_id.as_deref(), Some("toolu_03"));
    assert!(request.messages[6].content.is_empty());
}

#[test]
fn decodes_thinking_with_signature_and_redacted_thinking() {
    let request = messages_request(fixture("request_thinking").as_bytes()).unwrap();
    let assistant = &request.messages[1];
    assert_eq!(assistant.role, Role::Assistant);
    assert_eq!(assistant.reasoning.as_deref(), Some("17 * 23 = 391."));
    assert_eq!(assistant.reasoning_signature.as_deref(), Some("EuYBCkQYAiJAsig=="));
    assert_eq!(assistant.redacted_reasoning, vec!["EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"]);
    assert_eq!(assistant.tool_calls[0].arguments, r#"{"expr":"17*23"}"#);
    assert!(assistant.content.is_empty());
    assert_eq!(request.messages[2].role, Role::Tool);
    assert_eq!(request.messages[2].text(), "391");
    assert!(request.extensions.contains_key("thinking"));
}

#[test]
fn tool_choice_variants() {
    let body = |choice: &str| {
        format!(r#"{{"model":"m","max_tokens":1,"messages":[{{"role":"user","content":"x"}}],"tool_choice":{choice}}}"#)
    };
    let decode = |choice: &str| messages_request(body(choice).as_bytes());
    assert_eq!(decode(r#"{"type":"auto"}"#).unwrap().tool_choice, Some(ToolChoice::Auto));
    assert_eq!(decode(r#"{"type":"none"}"#).unwrap().tool_choice, Some(ToolChoice::None));
    assert_eq!(decode(r#"{"type":"any"}"#).unwrap().tool_choice, Some(ToolChoice::Required));
    let named = decode(r#"{"type":"tool","name":"f"}"#).unwrap();
    assert_eq!(named.tool_choice, Some(ToolChoice::Function("f".into())));
    assert!(!named.extensions.contains_key("parallel_tool_calls"));
    assert_eq!(decode(r#"{"type":"tool"}"#).unwrap_err().param.as_deref(), Some("tool_choice.name"));
    assert_eq!(decode(r#"{"type":"sometimes"}"#).unwrap_err().param.as_deref(), Some("tool_choice.type"));
}

#[test]
fn count_tokens_does_not_need_max_tokens() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"system":"s"}"#;
    assert_eq!(messages_request(body).unwrap_err().param.as_deref(), Some("max_tokens"));
    let request = count_tokens_request(body).unwrap();
    assert_eq!(request.model, "m");
    assert_eq!(request.max_tokens, None);
    assert_eq!(request.messages.len(), 2);
}

#[test]
fn decode_errors_name_the_offending_path() {
    let cases: &[(&str, Option<&str>)] = &[
        (r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#, Some("max_tokens")),
        (r#"{"model":"m","max_tokens":null,"messages":[{"role":"user","content":"x"}]}"#, Some("max_tokens")),
        (r#"{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}"#, Some("max_tokens")),
        (r#"{"max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#, Some("model")),
        (r#"{"model":"m","max_tokens":5,"messages":"hello"}"#, Some("messages")),
        (r#"{"model":"m","max_tokens":5,"messages":{"role":"user"}}"#, Some("messages")),
        (r#"{"model":"m","max_tokens":5,"messages":[]}"#, Some("messages")),
        (r#"{"model":"m","max_tokens":5,"messages":[7]}"#, Some("messages.0")),
        (r#"{"model":"m","max_tokens":5,"messages":[{"role":"tool","content":"x"}]}"#, Some("messages.0.role")),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":[{"type":"image"}]}]}"#,
            Some("messages.0.content.0"),
        ),
        (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user"}]}"#, Some("messages.0.content")),
        (r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]}"#, Some("messages.0.content")),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":[{"type":"text","text":"ok"},{"type":"hologram","data":"x"}]}]}"#,
            Some("messages.2.content.1"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"text":"no type"}]}]}"#,
            Some("messages.0.content.0"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
            Some("messages.0.content.0"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}]}"#,
            Some("messages.0.content.0"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_result","tool_use_id":"t"}]}]}"#,
            Some("messages.0.content.0"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
            Some("messages.0.content.0.source.type"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AA=="}}]}]}"#,
            Some("messages.0.content.0.source"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"document"}]}]}]}"#,
            Some("messages.0.content.0.content.0"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"system":[{"type":"image"}],"messages":[{"role":"user","content":"x"}]}"#,
            Some("system.0"),
        ),
        (r#"{"model":"m","max_tokens":5,"system":5,"messages":[{"role":"user","content":"x"}]}"#, Some("system")),
        (
            r#"{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}"#,
            Some("tools.0.type"),
        ),
        (r#"{"model":"m","max_tokens":5,"tools":[{}],"messages":[{"role":"user","content":"x"}]}"#, Some("tools.0")),
        (
            r#"{"model":"m","max_tokens":5,"temperature":"hot","messages":[{"role":"user","content":"x"}]}"#,
            Some("temperature"),
        ),
        (
            r#"{"model":"m","max_tokens":5,"stop_sequences":"END","messages":[{"role":"user","content":"x"}]}"#,
            Some("stop_sequences"),
        ),
        (r#"{"model":"m","max_tokens":5,"messages":"#, None),
        (r#"not json"#, None),
        (r#"[1,2]"#, None),
    ];
    for (body, param) in cases {
        let error = messages_request(body.as_bytes()).expect_err(body);
        assert_eq!(error.param.as_deref(), *param, "{body}: {}", error.message);
        if let Some(param) = param {
            assert!(error.message.starts_with(&format!("{param}: ")), "{}", error.message);
        } else {
            assert!(error.message.starts_with("invalid JSON body"), "{}", error.message);
        }
    }
}

#[test]
fn unknown_block_error_names_the_type() {
    let body = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"hologram"}]}]}"#;
    let error = messages_request(body).unwrap_err();
    assert!(error.message.contains("`hologram`"), "{}", error.message);
}

#[test]
fn compact_json_keeps_strings_and_order() {
    assert_eq!(compact_json(r#" { "b" : "x y\" }" , "a":[1, 2.50 ,{ }] } "#), r#"{"b":"x y\" }","a":[1,2.50,{}]}"#);
    assert_eq!(compact_json("\"\\\\\" "), "\"\\\\\"");
}

// ---------------------------------------------------------------------------------
// Response encoding.

fn response(choice: Choice, usage: Usage) -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-abc123".into(),
        created: 1,
        model: "deepseek-chat".into(),
        choices: vec![choice],
        usage,
    }
}

fn choice(content: Option<&str>, tool_calls: Vec<ToolCall>, finish_reason: FinishReason) -> Choice {
    Choice {
        index: 0,
        content: content.map(str::to_owned),
        reasoning: None,
        reasoning_signature: None,
        redacted_reasoning: Vec::new(),
        tool_calls,
        finish_reason,
    }
}

#[test]
fn encodes_response_golden() {
    let mut choice = choice(
        Some("Let me check."),
        vec![
            ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: r#"{"city": "Paris"}"#.into() },
            ToolCall { id: "call_2".into(), name: "now".into(), arguments: String::new() },
        ],
        FinishReason::ToolCalls,
    );
    choice.reasoning = Some("The user wants weather.".into());
    let usage =
        Usage { input_tokens: 100, output_tokens: 25, cached_tokens: 30, reasoning_tokens: 5, cache_write_tokens: 10 };
    let mut second = choice.clone();
    second.index = 1;
    second.content = Some("ignored".into());
    let mut response = response(choice, usage);
    response.choices.push(second);
    let actual: Value = serde_json::from_slice(&messages_response(&response)).unwrap();
    let expected: Value = serde_json::from_str(fixture("response_expected")).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn response_keeps_msg_ids_signatures_and_redacted_blocks() {
    let mut choice = choice(Some("391"), Vec::new(), FinishReason::Stop);
    choice.reasoning = Some("math".into());
    choice.reasoning_signature = Some("sig==".into());
    choice.redacted_reasoning = vec!["opaque".into()];
    let mut response = response(choice, Usage { input_tokens: 3, output_tokens: 1, ..Usage::default() });
    response.id = "msg_01XYZ".into();
    let actual: Value = serde_json::from_slice(&messages_response(&response)).unwrap();
    assert_eq!(actual["id"], "msg_01XYZ");
    assert_eq!(
        actual["content"],
        json!([
            {"type": "thinking", "thinking": "math", "signature": "sig=="},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "391"}
        ])
    );
    assert_eq!(actual["stop_reason"], "end_turn");
    assert_eq!(
        actual["usage"],
        json!({"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1})
    );
}

#[test]
fn response_edge_cases() {
    // Empty text is not a block; unparsable or non-object arguments become `{}`.
    let calls = vec![
        ToolCall { id: "a".into(), name: "f".into(), arguments: "{not json".into() },
        ToolCall { id: "b".into(), name: "g".into(), arguments: "[1,2]".into() },
    ];
    let encoded = messages_response(&response(choice(Some(""), calls, FinishReason::Stop), Usage::default()));
    let actual: Value = serde_json::from_slice(&encoded).unwrap();
    assert_eq!(actual["content"][0], json!({"type": "tool_use", "id": "a", "name": "f", "input": {}}));
    assert_eq!(actual["content"][1]["input"], json!({}));
    assert_eq!(actual["content"].as_array().unwrap().len(), 2);
    // `stop` with tool calls is a tool_use turn for Anthropic clients.
    assert_eq!(actual["stop_reason"], "tool_use");

    // No choices at all: an empty message.
    let empty =
        ChatResponse { id: "x".into(), created: 0, model: "m".into(), choices: Vec::new(), usage: Usage::default() };
    let actual: Value = serde_json::from_slice(&messages_response(&empty)).unwrap();
    assert_eq!(actual["content"], json!([]));
    assert_eq!(actual["stop_reason"], "end_turn");
    assert_eq!(actual["stop_sequence"], Value::Null);

    // Cache counts larger than the input never underflow.
    let usage = Usage { input_tokens: 5, cached_tokens: 4, cache_write_tokens: 4, ..Usage::default() };
    let actual: Value =
        serde_json::from_slice(&messages_response(&response(choice(Some("x"), vec![], FinishReason::Stop), usage)))
            .unwrap();
    assert_eq!(actual["usage"]["input_tokens"], 0);
}

#[test]
fn stop_reason_mapping() {
    assert_eq!(stop_reason(&FinishReason::Stop, false), "end_turn");
    assert_eq!(stop_reason(&FinishReason::Stop, true), "tool_use");
    assert_eq!(stop_reason(&FinishReason::Length, false), "max_tokens");
    assert_eq!(stop_reason(&FinishReason::ToolCalls, false), "tool_use");
    assert_eq!(stop_reason(&FinishReason::ContentFilter, false), "refusal");
    assert_eq!(stop_reason(&FinishReason::Other("pause_turn".into()), false), "pause_turn");
    assert_eq!(stop_reason(&FinishReason::Other("function_call".into()), false), "tool_use");
    assert_eq!(stop_reason(&FinishReason::Other("insufficient_system_resource".into()), false), "end_turn");
    assert_eq!(stop_reason(&FinishReason::Other("model_length".into()), false), "max_tokens");
}

// ---------------------------------------------------------------------------------
// Stream encoding.

fn encode_all(model: &str, events: &[StreamEvent<'_>]) -> Vec<(String, Value)> {
    let mut encoder = MessagesStreamEncoder::new(model);
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.finish(&mut out);
    // A second finish writes nothing.
    let before = out.len();
    encoder.finish(&mut out);
    assert_eq!(out.len(), before);
    events_of(&out)
}

#[test]
fn openai_stream_transcript_becomes_exact_anthropic_events() {
    let mut framer = Framer::new();
    framer.push(fixture("openai_stream").as_bytes());
    let mut decoder = ChunkDecoder::new();
    let mut encoder = MessagesStreamEncoder::new("client-model");
    let mut out = Vec::new();
    let mut raws = Vec::new();
    while let Some(raw) = framer.next_event() {
        raws.push(raw);
    }
    raws.extend(framer.finish());
    for raw in raws {
        if let Some(data) = parse_event(&raw).data {
            for event in decoder.decode(&data).unwrap() {
                encoder.encode(&event, &mut out);
            }
        }
    }
    encoder.finish(&mut out);
    let actual = events_of(&out);
    let expected: Vec<(String, Value)> = serde_json::from_str(fixture("stream_expected")).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn stream_with_thinking_signature_and_late_usage() {
    let events = [
        StreamEvent::Start { id: "msg_1".into(), model: "".into(), created: 0 },
        StreamEvent::Reasoning { choice: 0, text: "Hmm".into() },
        StreamEvent::Reasoning { choice: 0, text: "".into() },
        StreamEvent::Reasoning { choice: 0, text: ".".into() },
        StreamEvent::ReasoningSignature { choice: 0, signature: "sig".into() },
        StreamEvent::RedactedReasoning { choice: 0, data: "opaque".into() },
        StreamEvent::Text { choice: 1, text: "other choice".into() },
        StreamEvent::Text { choice: 0, text: "".into() },
        StreamEvent::Text { choice: 0, text: "Hi".into() },
        StreamEvent::Finish { choice: 0, reason: FinishReason::Length },
        StreamEvent::Usage(Usage {
            input_tokens: 50,
            output_tokens: 7,
            cached_tokens: 20,
            reasoning_tokens: 3,
            cache_write_tokens: 5,
        }),
    ];
    let actual = encode_all("fallback-model", &events);
    let expected: Vec<(String, Value)> = serde_json::from_value(json!([
        ["message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "fallback-model", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}}}],
        ["content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}],
        ["ping", {"type": "ping"}],
        ["content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}}],
        ["content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "."}}],
        ["content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig"}}],
        ["content_block_stop", {"type": "content_block_stop", "index": 0}],
        ["content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "opaque"}}],
        ["content_block_stop", {"type": "content_block_stop", "index": 1}],
        ["content_block_start", {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}],
        ["content_block_delta", {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Hi"}}],
        ["content_block_stop", {"type": "content_block_stop", "index": 2}],
        ["message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null}, "usage": {"input_tokens": 25, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 20, "output_tokens": 7}}],
        ["message_stop", {"type": "message_stop"}]
    ]))
    .unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn stream_error_ends_the_stream() {
    let events = [
        StreamEvent::Start { id: "c".into(), model: "m".into(), created: 0 },
        StreamEvent::Text { choice: 0, text: "partial".into() },
        StreamEvent::Error { message: "upstream reset".into() },
        StreamEvent::Text { choice: 0, text: "late".into() },
        StreamEvent::Finish { choice: 0, reason: FinishReason::Stop },
    ];
    let actual = encode_all("m", &events);
    assert_eq!(names(&actual), ["message_start", "content_block_start", "ping", "content_block_delta", "error"]);
    assert_eq!(actual[4].1, json!({"type": "error", "error": {"type": "api_error", "message": "upstream reset"}}));
}

#[test]
fn stream_without_start_or_finish_still_completes() {
    // No Start, no Finish: message_start comes with the first content, the stop reason
    // defaults from the content (tool calls -> tool_use), the tool id is generated.
    let events =
        [StreamEvent::ToolCall { choice: 0, index: 3, id: None, name: Some("f".into()), arguments: "{}".into() }];
    let actual = encode_all("fallback", &events);
    assert_eq!(
        names(&actual),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(actual[0].1["message"]["model"], "fallback");
    assert_eq!(actual[0].1["message"]["id"], "msg_");
    assert_eq!(actual[1].1["content_block"], json!({"type": "tool_use", "id": "toolu_0", "name": "f", "input": {}}));
    assert_eq!(actual[5].1["delta"]["stop_reason"], "tool_use");

    // An empty stream is an empty message.
    let actual = encode_all("m", &[]);
    assert_eq!(names(&actual), ["message_start", "message_delta", "message_stop"]);
    assert_eq!(actual[1].1["delta"]["stop_reason"], "end_turn");
}

#[test]
fn parallel_tool_calls_get_their_own_blocks() {
    let call = |index: u32, id: Option<&'static str>, arguments: &'static str| StreamEvent::ToolCall {
        choice: 0,
        index,
        id: id.map(Into::into),
        name: id.map(|_| "f".into()),
        arguments: arguments.into(),
    };
    let events = [
        StreamEvent::Text { choice: 0, text: "x".into() },
        call(0, Some("a"), ""),
        call(0, None, "{\"n\":"),
        call(1, Some("b"), "{}"),
        // A late fragment of call 0 goes to its own block, not a new one.
        call(0, None, "1}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
    ];
    let actual = encode_all("m", &events);
    let summary: Vec<(String, Option<u64>)> =
        actual.iter().map(|(name, data)| (name.clone(), data["index"].as_u64())).collect();
    let expected: Vec<(String, Option<u64>)> = [
        ("message_start", None),
        ("content_block_start", Some(0)),
        ("ping", None),
        ("content_block_delta", Some(0)),
        ("content_block_stop", Some(0)),
        ("content_block_start", Some(1)),
        ("content_block_delta", Some(1)),
        ("content_block_stop", Some(1)),
        ("content_block_start", Some(2)),
        ("content_block_delta", Some(2)),
        ("content_block_delta", Some(1)),
        ("content_block_stop", Some(2)),
        ("message_delta", None),
        ("message_stop", None),
    ]
    .into_iter()
    .map(|(name, index)| (name.to_owned(), index))
    .collect();
    assert_eq!(summary, expected);
    assert_eq!(actual[10].1["delta"]["partial_json"], "1}");
}

#[test]
fn ping_and_error_bodies() {
    let mut out = Vec::new();
    ping(&mut out);
    assert_eq!(out, b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
    let body: Value = serde_json::from_slice(&error_body("rate_limit_error", "slow \"down\"")).unwrap();
    assert_eq!(body, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow \"down\""}}));
}

fn arb_event() -> impl Strategy<Value = StreamEvent<'static>> {
    prop_oneof![
        ("[a-z]{0,4}", 0u32..2).prop_map(|(text, choice)| StreamEvent::Text { choice, text: text.into() }),
        ("[a-z]{0,4}", 0u32..2).prop_map(|(text, choice)| StreamEvent::Reasoning { choice, text: text.into() }),
        "[a-z]{1,4}".prop_map(|signature| StreamEvent::ReasoningSignature { choice: 0, signature: signature.into() }),
        "[a-z]{1,4}".prop_map(|data| StreamEvent::RedactedReasoning { choice: 0, data: data.into() }),
        (0u32..3, any::<bool>(), "[a-z{}:\"]{0,4}").prop_map(|(index, first, arguments)| StreamEvent::ToolCall {
            choice: 0,
            index,
            id: first.then(|| format!("call_{index}").into()),
            name: first.then(|| "f".into()),
            arguments: arguments.into(),
        }),
        Just(StreamEvent::Finish { choice: 0, reason: FinishReason::Stop }),
        (0u64..100).prop_map(|output| StreamEvent::Usage(Usage {
            input_tokens: 9,
            output_tokens: output,
            ..Usage::default()
        })),
        Just(StreamEvent::Error { message: "boom".into() }),
    ]
}

proptest! {
    /// Whatever the canonical events, the output is a well-formed Anthropic stream:
    /// one message_start first; blocks opened with consecutive indices and closed before
    /// the next opens; deltas only on opened blocks; message_delta (after all blocks are
    /// closed, with the last usage seen) then message_stop last, or an error last.
    #[test]
    fn encoder_output_is_well_formed(events in proptest::collection::vec(arb_event(), 0..24)) {
        let mut encoder = MessagesStreamEncoder::new("m");
        let mut out = Vec::new();
        for event in &events {
            encoder.encode(event, &mut out);
        }
        encoder.finish(&mut out);
        let actual = events_of(&out);
        let errored = events.iter().any(|e| matches!(e, StreamEvent::Error { .. }));
        let mut open: Option<u64> = None;
        let mut opened = 0u64;
        let mut started = false;
        let mut pings = 0;
        for (position, (name, data)) in actual.iter().enumerate() {
            match name.as_str() {
                "message_start" => {
                    prop_assert_eq!(position, 0);
                    started = true;
                }
                "content_block_start" => {
                    prop_assert!(started);
                    prop_assert_eq!(open, None);
                    prop_assert_eq!(data["index"].as_u64(), Some(opened));
                    open = Some(opened);
                    opened += 1;
                }
                "content_block_delta" => {
                    let index = data["index"].as_u64().unwrap();
                    prop_assert!(index < opened);
                    // Deltas go to the open block, except late tool-call fragments.
                    if data["delta"]["type"] != "input_json_delta" {
                        prop_assert_eq!(Some(index), open);
                    }
                }
                "content_block_stop" => {
                    prop_assert_eq!(data["index"].as_u64(), open);
                    open = None;
                }
                "message_delta" => {
                    prop_assert!(!errored);
                    prop_assert_eq!(open, None);
                    prop_assert_eq!(position, actual.len() - 2);
                    let last_output = events.iter().rev().find_map(|e| match e {
                        StreamEvent::Usage(usage) => Some(usage.output_tokens),
                        _ => None,
                    });
                    prop_assert_eq!(data["usage"]["output_tokens"].as_u64(), Some(last_output.unwrap_or(0)));
                }
                "message_stop" => prop_assert_eq!(position, actual.len() - 1),
                // One ping, right after the first block opens (as Anthropic sends it).
                "ping" => {
                    pings += 1;
                    prop_assert_eq!(pings, 1);
                    prop_assert_eq!(actual[position - 1].0.as_str(), "content_block_start");
                    prop_assert_eq!(data["index"].as_u64(), None);
                    prop_assert_eq!(opened, 1);
                }
                "error" => {
                    prop_assert!(errored);
                    prop_assert_eq!(position, actual.len() - 1);
                }
                other => prop_assert!(false, "unexpected event {}", other),
            }
        }
        if !errored {
            prop_assert_eq!(actual.last().map(|(name, _)| name.as_str()), Some("message_stop"));
        }
    }
}
