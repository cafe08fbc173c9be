use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ContentPart, FinishReason, Message, Role, StreamEvent, Tool, ToolCall, ToolChoice,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{EventDecoder, messages_request, messages_response};
use crate::openai::encode::ChatStreamEncoder;
use crate::sse::{Framer, parse_event};
use crate::test_support::{cut_at, decode_sse, message, raw, text};

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "request_expected" => include_bytes!("../../tests/fixtures/anthropic-upstream/request_expected.json"),
        "text" => include_bytes!("../../tests/fixtures/anthropic-upstream/response_text.json"),
        "tool_use" => include_bytes!("../../tests/fixtures/anthropic-upstream/response_tool_use.json"),
        "thinking" => include_bytes!("../../tests/fixtures/anthropic-upstream/response_thinking.json"),
        "cache" => include_bytes!("../../tests/fixtures/anthropic-upstream/response_max_tokens_cache.json"),
        "stream" => include_bytes!("../../tests/fixtures/anthropic-upstream/stream_thinking_tool.sse"),
        other => panic!("no fixture {other}"),
    }
}

fn image(url: &str) -> ContentPart {
    ContentPart::Image { url: url.to_owned(), detail: None }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
}

fn tool_message(id: &str, content: Vec<ContentPart>, error: bool) -> Message {
    let mut message = message(Role::Tool, content);
    message.tool_call_id = Some(id.into());
    message.tool_error = error;
    message
}

fn encode(request: &ChatRequest) -> (Value, Vec<&'static str>) {
    let (body, dropped) = messages_request(request, "claude-sonnet-4-5", 4096);
    (serde_json::from_slice(&body).unwrap(), dropped)
}

// ---------------------------------------------------------------------------------
// Requests (golden).

fn golden_request() -> ChatRequest {
    let mut assistant = message(Role::Assistant, vec![text("Checking both.")]);
    assistant.reasoning = Some("Two cities, so two calls.".into());
    assistant.reasoning_signature = Some("EqQBCkgIBRABGAIiQL==".into());
    assistant.redacted_reasoning = vec!["EmwKAhgBEgy3va3pzix".into()];
    assistant.tool_calls = vec![
        call("toolu_01", "get_weather", r#" {"city": "Paris", "units": {"z": 1, "a": 2.50}} "#),
        // Not valid JSON: sent as `{}`.
        call("toolu_02", "get_weather", r#"{"city":"#),
    ];
    let mut unsigned = message(Role::Assistant, vec![text("Paris is sunny; Oslo is unknown.")]);
    unsigned.reasoning = Some("No signature: must not be sent.".into());
    ChatRequest {
        model: "public-alias".into(),
        messages: vec![
            message(Role::System, vec![text("You are a weather assistant.")]),
            message(
                Role::User,
                vec![
                    text("Weather in Paris and Oslo?"),
                    ContentPart::Image { url: "data:image/png;base64,iVBORw0KGgo=".into(), detail: Some("low".into()) },
                    image("https://example.com/map.jpg"),
                ],
            ),
            assistant,
            tool_message("toolu_01", vec![text("18C, sunny")], false),
            tool_message(
                "toolu_02",
                vec![text("service unavailable"), text(""), image("https://example.com/status.png")],
                true,
            ),
            // Hoisted into `system` wherever it stands; the user turn around it still merges.
            message(Role::Developer, vec![text(""), text("Answer in one sentence.")]),
            message(Role::User, vec![text(""), text("Summarise please.")]),
            unsigned,
            message(Role::User, vec![text("Thanks!")]),
            // Nothing left to send: dropped rather than sent as an empty text block.
            message(Role::User, vec![text("")]),
        ],
        stream: true,
        stream_include_usage: true,
        max_tokens: None,
        temperature: Some(1.7),
        top_p: Some(0.9),
        top_k: Some(40),
        n: Some(2),
        stop: vec!["END".into()],
        seed: Some(7),
        tools: vec![
            Tool {
                name: "get_weather".into(),
                description: Some("Weather for a city".into()),
                parameters: Some(raw(
                    r#"{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}"#,
                )),
            },
            Tool { name: "now".into(), description: None, parameters: None },
        ],
        tool_choice: Some(ToolChoice::Function("get_weather".into())),
        response_format: Some(raw(r#"{"type":"json_schema","json_schema":{"name":"w","schema":{}}}"#)),
        extensions: [
            ("user".to_owned(), raw(r#""user-42""#)),
            ("parallel_tool_calls".to_owned(), raw("false")),
            ("logprobs".to_owned(), raw("true")),
            ("reasoning_effort".to_owned(), raw(r#""high""#)),
            ("x_vendor_knob".to_owned(), raw("3")),
            ("x_other_knob".to_owned(), raw("4")),
            ("service_tier".to_owned(), raw("null")),
        ]
        .into(),
    }
}

#[test]
fn request_golden() {
    let request = golden_request();
    let (actual, dropped) = encode(&request);
    let expected: Value = serde_json::from_slice(fixture("request_expected")).unwrap();
    assert_eq!(actual, expected);
    // Extensions in key order; unknown keys once as `extensions`; a null value is not a
    // loss. `reasoning_effort: high` became a 4096-token thinking budget (`max_tokens`
    // raised to leave room for the answer), which takes the default sampling: the
    // explicit temperature, top_p and top_k go. The JSON schema became structured output.
    assert_eq!(dropped, ["n", "seed", "logprobs", "extensions", "temperature", "top_p", "top_k"]);
    // The model's arguments are sent verbatim (number spelling kept), not re-serialized.
    let (body, _) = messages_request(&request, "claude-sonnet-4-5", 4096);
    let body = String::from_utf8(body).unwrap();
    assert!(body.contains(r#""input":{"city": "Paris", "units": {"z": 1, "a": 2.50}}"#), "{body}");
}

#[test]
fn request_defaults_and_small_cases() {
    let base = ChatRequest {
        model: "m".into(),
        messages: vec![message(Role::User, vec![text("hi")])],
        ..ChatRequest::default()
    };
    let (actual, dropped) = encode(&base);
    assert_eq!(
        actual,
        json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    );
    assert!(dropped.is_empty());

    // One system text is a string; max_tokens wins over the default; temperatures in range
    // are kept; n = 1 and a text response_format lose nothing.
    let request = ChatRequest {
        messages: vec![message(Role::Developer, vec![text("Be brief.")]), message(Role::User, vec![text("hi")])],
        max_tokens: Some(100),
        temperature: Some(0.3),
        n: Some(1),
        response_format: Some(raw(r#"{"type": "text"}"#)),
        extensions: [
            ("safety_identifier".to_owned(), raw(r#""hash-1""#)),
            ("parallel_tool_calls".to_owned(), raw("false")),
        ]
        .into(),
        ..base.clone()
    };
    let (actual, dropped) = encode(&request);
    assert_eq!(actual["system"], "Be brief.");
    assert_eq!(actual["max_tokens"], 100);
    assert_eq!(actual["temperature"], 0.3);
    assert_eq!(actual["metadata"], json!({"user_id": "hash-1"}));
    // No tools: no tool_choice is invented for `parallel_tool_calls: false`.
    assert_eq!(actual.get("tool_choice"), None);
    assert!(dropped.is_empty(), "{dropped:?}");

    // A non-string user cannot be held; `user` wins over `safety_identifier`.
    let request = ChatRequest {
        extensions: [("user".to_owned(), raw("17")), ("metadata".to_owned(), raw(r#"{"k":"v"}"#))].into(),
        ..base.clone()
    };
    let (actual, dropped) = encode(&request);
    assert_eq!(actual.get("metadata"), None);
    assert_eq!(dropped, ["metadata", "user"]);
    let request = ChatRequest {
        extensions: [("user".to_owned(), raw(r#""u""#)), ("safety_identifier".to_owned(), raw(r#""s""#))].into(),
        ..base.clone()
    };
    let (actual, dropped) = encode(&request);
    assert_eq!(actual["metadata"], json!({"user_id": "u"}));
    assert_eq!(dropped, ["safety_identifier"]);

    // Negative temperatures clamp to 0; streaming off sends no `stream`.
    let request = ChatRequest { temperature: Some(-0.5), ..base.clone() };
    let (actual, _) = encode(&request);
    assert_eq!(actual["temperature"], 0.0);
    assert_eq!(actual.get("stream"), None);
}

#[test]
fn tool_choice_mapping() {
    let tools = vec![Tool { name: "f".into(), description: None, parameters: None }];
    let cases = [
        (Some(ToolChoice::Auto), false, Some(json!({"type": "auto"}))),
        (Some(ToolChoice::Required), false, Some(json!({"type": "any"}))),
        (Some(ToolChoice::None), false, Some(json!({"type": "none"}))),
        (Some(ToolChoice::Function("f".into())), false, Some(json!({"type": "tool", "name": "f"}))),
        (Some(ToolChoice::Auto), true, Some(json!({"type": "auto", "disable_parallel_tool_use": true}))),
        (Some(ToolChoice::Required), true, Some(json!({"type": "any", "disable_parallel_tool_use": true}))),
        // `none` takes no flag.
        (Some(ToolChoice::None), true, Some(json!({"type": "none"}))),
        // The flag needs a tool_choice object: `auto`.
        (None, true, Some(json!({"type": "auto", "disable_parallel_tool_use": true}))),
        (None, false, None),
    ];
    for (choice, no_parallel, expected) in cases {
        let mut request = ChatRequest {
            messages: vec![message(Role::User, vec![text("x")])],
            tools: tools.clone(),
            tool_choice: choice.clone(),
            ..ChatRequest::default()
        };
        if no_parallel {
            request.extensions.insert("parallel_tool_calls".into(), raw("false"));
        }
        let (actual, dropped) = encode(&request);
        assert_eq!(actual.get("tool_choice").cloned(), expected, "{choice:?} {no_parallel}");
        assert!(dropped.is_empty());
    }
    // `parallel_tool_calls: true` is Anthropic's default: nothing to send, nothing lost.
    let request = ChatRequest {
        messages: vec![message(Role::User, vec![text("x")])],
        tools,
        extensions: [("parallel_tool_calls".to_owned(), raw("true"))].into(),
        ..ChatRequest::default()
    };
    let (actual, dropped) = encode(&request);
    assert_eq!(actual.get("tool_choice"), None);
    assert!(dropped.is_empty());
}

#[test]
fn turns_alternate_and_tool_results_lead_their_turn() {
    let mut assistant = message(Role::Assistant, vec![text("")]);
    assistant.tool_calls = vec![call("t1", "f", "")];
    let mut second = message(Role::Assistant, vec![text("more")]);
    second.reasoning_signature = Some("sig".into());
    let request = ChatRequest {
        messages: vec![
            message(Role::User, vec![text("a")]),
            message(Role::User, vec![image("data:image/jpeg;charset=x;base64,AAAA")]),
            assistant,
            second,
            // A user message before the tool result it follows: the result still leads.
            message(Role::User, vec![text("note")]),
            tool_message("t1", vec![], false),
            message(Role::Assistant, vec![text("")]),
        ],
        ..ChatRequest::default()
    };
    let (actual, _) = encode(&request);
    assert_eq!(
        actual["messages"],
        json!([
            {"role": "user", "content": [
                {"type": "text", "text": "a"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                // A signature without reasoning text is still a thinking block (display omitted).
                {"type": "thinking", "thinking": "", "signature": "sig"},
                {"type": "text", "text": "more"}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1"},
                {"type": "text", "text": "note"}
            ]}
        ])
    );
}

// ---------------------------------------------------------------------------------
// Responses (golden).

#[test]
fn text_response() {
    let response = messages_response(fixture("text")).unwrap();
    assert_eq!(response.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(response.model, "claude-sonnet-4-5-20250929");
    assert_eq!(response.created, 0);
    assert_eq!(response.choices.len(), 1);
    let choice = &response.choices[0];
    assert_eq!(choice.index, 0);
    assert_eq!(choice.content.as_deref(), Some("Hello! How can I help?"));
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature, None);
    assert!(choice.redacted_reasoning.is_empty());
    assert!(choice.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { input_tokens: 12, output_tokens: 9, ..Usage::default() });
}

#[test]
fn tool_use_response() {
    let response = messages_response(fixture("tool_use")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content.as_deref(), Some("I'll check both cities."));
    assert_eq!(
        choice.tool_calls,
        vec![
            call("toolu_01A09q90qw90lq917835lq9", "get_weather", r#"{"city":"Paris","units":{"z":1,"a":2.50}}"#),
            call("toolu_01B", "now", "{}"),
        ]
    );
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    assert_eq!(response.usage, Usage { input_tokens: 384, output_tokens: 76, ..Usage::default() });
}

#[test]
fn thinking_response() {
    let response = messages_response(fixture("thinking")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.reasoning.as_deref(), Some("17 * 23: 17 * 20 = 340, 17 * 3 = 51, total 391."));
    assert_eq!(choice.reasoning_signature.as_deref(), Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds=="));
    assert_eq!(choice.redacted_reasoning, vec!["EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"]);
    assert_eq!(choice.content.as_deref(), Some("391"));
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage { input_tokens: 50, output_tokens: 120, reasoning_tokens: 80, ..Usage::default() }
    );
}

#[test]
fn cache_usage_and_max_tokens() {
    let response = messages_response(fixture("cache")).unwrap();
    assert_eq!(response.choices[0].finish_reason, FinishReason::Length);
    assert_eq!(response.choices[0].content.as_deref(), Some("The first chapter opens with"));
    // Anthropic's input is exclusive of the cache; the canonical one is inclusive.
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 21 + 2048 + 1024,
            output_tokens: 64,
            cached_tokens: 2048,
            reasoning_tokens: 0,
            cache_write_tokens: 1024,
        }
    );
    // And back to an Anthropic client: the same exclusive numbers.
    let encoded: Value = serde_json::from_slice(&crate::anthropic::encode::messages_response(&response)).unwrap();
    assert_eq!(
        encoded["usage"],
        json!({"input_tokens": 21, "cache_creation_input_tokens": 1024, "cache_read_input_tokens": 2048, "output_tokens": 64})
    );
    assert_eq!(encoded["stop_reason"], "max_tokens");
}

#[test]
fn response_stop_reasons_and_variants() {
    let body = |content: &str, stop: &str| {
        format!(
            r#"{{"id":"msg_x","type":"message","role":"assistant","model":"c","content":{content},"stop_reason":{stop},"usage":{{"input_tokens":1,"output_tokens":1}}}}"#
        )
    };
    let text = r#"[{"type":"text","text":"x"}]"#;
    for (stop, expected) in [
        (r#""end_turn""#, FinishReason::Stop),
        (r#""stop_sequence""#, FinishReason::Stop),
        (r#""max_tokens""#, FinishReason::Length),
        (r#""tool_use""#, FinishReason::ToolCalls),
        (r#""refusal""#, FinishReason::ContentFilter),
        (r#""pause_turn""#, FinishReason::Other("pause_turn".into())),
        (r#""model_context_window_exceeded""#, FinishReason::Other("model_context_window_exceeded".into())),
        ("null", FinishReason::Stop),
    ] {
        let response = messages_response(body(text, stop).as_bytes()).unwrap();
        assert_eq!(response.choices[0].finish_reason, expected, "{stop}");
    }

    // Server tool blocks and unknown block types are skipped; tool calls without text give
    // `content: None`; a thinking block with no text keeps only its signature.
    let content = r#"[
        {"type":"thinking","thinking":"","signature":"sig-only"},
        {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"x"}},
        {"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},
        {"type":"hologram","data":7},
        {"type":"tool_use","id":"toolu_9","name":"f","input":null}
    ]"#;
    let response = messages_response(body(content, "null").as_bytes()).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.content, None);
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature.as_deref(), Some("sig-only"));
    assert_eq!(choice.tool_calls, vec![call("toolu_9", "f", "{}")]);
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);

    // No text and no calls: empty content, not absent.
    let response = messages_response(body("[]", r#""end_turn""#).as_bytes()).unwrap();
    assert_eq!(response.choices[0].content.as_deref(), Some(""));
    // Leading whitespace is fine; a missing usage is zero.
    let response = messages_response(b"\n {\"content\":[]}").unwrap();
    assert_eq!(response.usage, Usage::default());
}

#[test]
fn response_errors() {
    let error = messages_response(
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
    )
    .unwrap_err();
    assert_eq!(error.message, "upstream error: overloaded_error: Overloaded");
    assert_eq!(error.param, None);
    let error = messages_response(br#"{"error":{"message":"bad key"}}"#).unwrap_err();
    assert_eq!(error.message, "upstream error: bad key");
    for body in [
        &b"{\"id\":"[..],
        b"not json",
        b"[1]",
        br#"{"id":"msg","type":"message"}"#,
        br#"{"content":"text"}"#,
        br#"{"content":[7]}"#,
        br#"{"content":[{"text":"no type"}]}"#,
        br#"{"content":[{"type":"text"}]}"#,
        br#"{"content":[{"type":"tool_use","name":"f","input":{}}]}"#,
        br#"{"content":[{"type":"thinking","signature":"s"}]}"#,
        br#"{"content":[],"usage":{"input_tokens":"many"}}"#,
    ] {
        assert!(messages_response(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}

// ---------------------------------------------------------------------------------
// Stream events.

fn decode_transcript(chunks: &[&[u8]]) -> Vec<StreamEvent<'static>> {
    let mut decoder = EventDecoder::new();
    decode_sse(chunks, |data| decoder.decode(data))
}

fn expected_transcript_events() -> Vec<StreamEvent<'static>> {
    let input = Usage { input_tokens: 472 + 2048, cached_tokens: 2048, ..Usage::default() };
    let tool = |index: u32, arguments: &'static str| StreamEvent::ToolCall {
        choice: 0,
        index,
        id: None,
        name: None,
        arguments: arguments.into(),
    };
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
        StreamEvent::ToolCall {
            choice: 0,
            index: 0,
            id: Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6".into()),
            name: Some("get_weather".into()),
            arguments: "".into(),
        },
        tool(0, "{\"city\": \"Pa"),
        tool(0, "ris\"}"),
        StreamEvent::ToolCall {
            choice: 0,
            index: 1,
            id: Some("toolu_02Now".into()),
            name: Some("now".into()),
            arguments: "".into(),
        },
        // No input_json_delta came: the start's `input` at content_block_stop.
        tool(1, "{}"),
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        StreamEvent::Usage(Usage { output_tokens: 89, ..input }),
    ]
}

#[test]
fn decodes_the_golden_transcript() {
    assert_eq!(decode_transcript(&[fixture("stream")]), expected_transcript_events());
    // CRLF line endings, one byte at a time.
    let crlf = String::from_utf8(fixture("stream").to_vec()).unwrap().replace('\n', "\r\n");
    let bytes: Vec<&[u8]> = crlf.as_bytes().chunks(1).collect();
    assert_eq!(decode_transcript(&bytes), expected_transcript_events());
}

#[test]
fn transcript_through_the_openai_encoder() {
    let mut encoder = ChatStreamEncoder::new(true);
    let mut out = Vec::new();
    for event in decode_transcript(&[fixture("stream")]) {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let mut framer = Framer::new();
    framer.push(&out);
    let mut chunks = Vec::new();
    let mut done = false;
    while let Some(raw) = framer.next_event() {
        let data = parse_event(&raw).data.unwrap();
        assert!(!done, "nothing after [DONE]");
        if &*data == b"[DONE]" {
            done = true;
        } else {
            chunks.push(serde_json::from_slice::<Value>(&data).unwrap());
        }
    }
    assert!(done);
    for chunk in &chunks {
        assert_eq!(chunk["id"], "msg_01Stream");
        assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
        assert_eq!(chunk["object"], "chat.completion.chunk");
    }
    let deltas: Vec<&Value> =
        chunks.iter().flat_map(|chunk| chunk["choices"].as_array().unwrap()).map(|choice| &choice["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    let joined = |field: &str| deltas.iter().filter_map(|delta| delta[field].as_str()).collect::<String>();
    assert_eq!(joined("reasoning_content"), "The user wants the weather in Paris; call the tool.");
    assert_eq!(joined("content"), "Let me check the weather été 🌤.");

    let calls: Vec<&Value> = deltas.iter().filter_map(|delta| delta["tool_calls"].as_array()).flatten().collect();
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

    let finishes: Vec<&Value> = chunks
        .iter()
        .flat_map(|chunk| chunk["choices"].as_array().unwrap())
        .map(|choice| &choice["finish_reason"])
        .filter(|reason| !reason.is_null())
        .collect();
    assert_eq!(finishes, [&json!("tool_calls")]);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 2520, "completion_tokens": 89, "total_tokens": 2609, "prompt_tokens_details": {"cached_tokens": 2048}})
    );
}

fn decode_all(decoder: &mut EventDecoder, events: &[&str]) -> Vec<StreamEvent<'static>> {
    events.iter().flat_map(|data| decoder.decode(data.as_bytes()).unwrap()).collect()
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
    let usages: Vec<Usage> = events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::Usage(usage) => Some(*usage),
            _ => None,
        })
        .collect();
    assert_eq!(
        usages,
        [
            Usage { input_tokens: 15, cached_tokens: 5, output_tokens: 1, ..Usage::default() },
            Usage { input_tokens: 15, cached_tokens: 5, output_tokens: 30, ..Usage::default() },
            Usage { input_tokens: 18, cached_tokens: 5, cache_write_tokens: 3, output_tokens: 40, ..Usage::default() },
        ]
    );
    let finishes: Vec<&FinishReason> = events
        .iter()
        .filter_map(|event| match event {
            StreamEvent::Finish { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(finishes, [&FinishReason::Stop, &FinishReason::Length]);
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
            StreamEvent::ToolCall {
                choice: 0,
                index: 0,
                id: Some("toolu_1".into()),
                name: Some("f".into()),
                arguments: "".into(),
            },
            // Streamed arguments are not repeated at content_block_stop.
            StreamEvent::ToolCall { choice: 0, index: 0, id: None, name: None, arguments: "{}".into() },
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

// ---------------------------------------------------------------------------------
// Properties.

/// One Anthropic turn, normalised: what the conversion promises to keep.
#[derive(Debug, Default, PartialEq)]
struct Turn {
    user: bool,
    /// (tool_call_id, non-empty parts, is_error), in order.
    results: Vec<(String, Vec<ContentPart>, bool)>,
    /// Non-empty text and images, in order.
    content: Vec<ContentPart>,
    /// (id, name, arguments as a JSON value).
    calls: Vec<(String, String, Value)>,
    reasoning: Option<String>,
    signature: Option<String>,
    redacted: Vec<String>,
}

fn non_empty(content: &[ContentPart]) -> Vec<ContentPart> {
    content
        .iter()
        .filter(|part| !matches!(part, ContentPart::Text(text) if text.is_empty()))
        .map(|part| match part {
            ContentPart::Image { url, .. } => image(url),
            other => other.clone(),
        })
        .collect()
}

fn arguments_value(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({}),
    }
}

/// System texts, and the conversation as Anthropic turns: empty text dropped, unsigned
/// reasoning dropped, messages with nothing left dropped, same-role neighbours merged.
fn normalise(messages: &[Message]) -> (Vec<String>, Vec<Turn>) {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for message in messages {
        let mut turn = Turn { user: message.role != Role::Assistant, ..Turn::default() };
        match message.role {
            Role::System | Role::Developer => {
                system.extend(non_empty(&message.content).into_iter().map(|part| match part {
                    ContentPart::Text(text) => text,
                    ContentPart::Image { .. } => panic!("no images in system messages"),
                }));
                continue;
            }
            Role::User => turn.content = non_empty(&message.content),
            Role::Tool => turn.results.push((
                message.tool_call_id.clone().unwrap_or_default(),
                non_empty(&message.content),
                message.tool_error,
            )),
            Role::Assistant => {
                if let Some(signature) = message.reasoning_signature.clone().filter(|s| !s.is_empty()) {
                    turn.reasoning = Some(message.reasoning.clone().unwrap_or_default());
                    turn.signature = Some(signature);
                }
                turn.redacted = message.redacted_reasoning.clone();
                turn.content = non_empty(&message.content);
                turn.calls = message
                    .tool_calls
                    .iter()
                    .map(|call| (call.id.clone(), call.name.clone(), arguments_value(&call.arguments)))
                    .collect();
            }
        }
        if turn.results.is_empty()
            && turn.content.is_empty()
            && turn.calls.is_empty()
            && turn.signature.is_none()
            && turn.redacted.is_empty()
        {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.user == turn.user => {
                last.results.append(&mut turn.results);
                last.content.append(&mut turn.content);
                last.calls.append(&mut turn.calls);
                last.redacted.append(&mut turn.redacted);
                if let Some(reasoning) = turn.reasoning {
                    last.reasoning.get_or_insert_with(String::new).push_str(&reasoning);
                    last.signature = turn.signature;
                }
            }
            _ => turns.push(turn),
        }
    }
    (system, turns)
}

proptest! {
    /// Any byte-level chunking of the SSE transcript yields the same canonical events.
    #[test]
    fn transcript_chunking_does_not_change_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24)) {
        let chunks = cut_at(fixture("stream"), &cuts);
        prop_assert_eq!(decode_transcript(&chunks), expected_transcript_events());
    }

    /// canonical -> Anthropic body -> the Anthropic client decoder keeps what matters.
    #[test]
    fn request_round_trips_through_the_anthropic_decoder(request in arb_request()) {
        let (body, dropped) = messages_request(&request, "upstream-model", 2048);
        let wire: Value = serde_json::from_slice(&body).unwrap();
        // What Anthropic requires of the body itself.
        let turns = wire["messages"].as_array().unwrap();
        for (position, turn) in turns.iter().enumerate() {
            let role = turn["role"].as_str().unwrap();
            if position > 0 {
                prop_assert_ne!(role, turns[position - 1]["role"].as_str().unwrap(), "roles alternate");
            }
            let blocks = turn["content"].as_array().unwrap();
            prop_assert!(!blocks.is_empty());
            let results = blocks.iter().take_while(|block| block["type"] == "tool_result").count();
            prop_assert!(blocks[results..].iter().all(|block| block["type"] != "tool_result"), "tool results first");
            for block in blocks {
                prop_assert!(block["type"] != "text" || block["text"] != "", "no empty text block");
            }
        }

        let decoded = crate::anthropic::decode::messages_request(&body).unwrap();
        prop_assert_eq!(&decoded.model, "upstream-model");
        prop_assert_eq!(decoded.max_tokens, Some(request.max_tokens.unwrap_or(2048)));
        prop_assert_eq!(&decoded.stop, &request.stop);
        prop_assert_eq!(decoded.stream, request.stream);
        prop_assert_eq!(decoded.temperature, request.temperature.map(|t| t.clamp(0.0, 1.0)));
        prop_assert_eq!(decoded.top_k, request.top_k);

        let (system, expected_turns) = normalise(&request.messages);
        let (decoded_system, decoded_turns) = normalise(&decoded.messages);
        prop_assert_eq!(&decoded_system, &system);
        if system.is_empty() {
            prop_assert!(decoded.messages.iter().all(|message| message.role != Role::System));
        } else {
            prop_assert_eq!(decoded.messages[0].role, Role::System);
        }
        prop_assert_eq!(decoded_turns, expected_turns);

        prop_assert_eq!(decoded.tools.len(), request.tools.len());
        for (sent, got) in request.tools.iter().zip(&decoded.tools) {
            prop_assert_eq!(&got.name, &sent.name);
            prop_assert_eq!(&got.description, &sent.description);
            let schema = |tool: &Tool| tool.parameters.as_ref().map(|p| serde_json::from_str::<Value>(p.get()).unwrap());
            prop_assert_eq!(schema(got), Some(schema(sent).unwrap_or_else(|| json!({"type": "object"}))));
        }
        let no_parallel = request.extensions.get("parallel_tool_calls").is_some_and(|raw| raw.get() == "false");
        let synthesized = no_parallel && request.tool_choice.is_none() && !request.tools.is_empty();
        let expected_choice = if synthesized { Some(ToolChoice::Auto) } else { request.tool_choice.clone() };
        prop_assert_eq!(&decoded.tool_choice, &expected_choice);
        let flag = no_parallel && expected_choice.as_ref().is_some_and(|choice| *choice != ToolChoice::None);
        prop_assert_eq!(decoded.extensions.get("parallel_tool_calls").map(|raw| raw.get()), flag.then_some("false"));
        prop_assert_eq!(
            decoded.extensions.get("user").map(|raw| raw.get()),
            request.extensions.get("user").map(|raw| raw.get())
        );
        prop_assert_eq!(dropped.contains(&"n"), request.n.is_some_and(|n| n != 1));
        prop_assert_eq!(dropped.contains(&"seed"), request.seed.is_some());
    }
}

fn arb_text() -> impl Strategy<Value = String> + Clone {
    "[a-zA-Z0-9 \"\\\\\n\u{e9}\u{1f600}]{0,8}"
}

fn arb_part() -> impl Strategy<Value = ContentPart> + Clone {
    prop_oneof![
        3 => arb_text().prop_map(ContentPart::Text),
        1 => "https://[a-z]{1,6}\\.example/[a-z]{1,4}\\.png".prop_map(|url| image(&url)),
        1 => ("(png|jpeg|webp)", "[A-Za-z0-9+/]{0,8}={0,2}", proptest::option::of("(low|high)")).prop_map(
            |(kind, data, detail)| ContentPart::Image { url: format!("data:image/{kind};base64,{data}"), detail }
        ),
    ]
}

fn arb_call() -> impl Strategy<Value = ToolCall> {
    let arguments = prop_oneof![
        3 => "\\{( ?\"[a-z]{1,3}\": ?([0-9]{1,3}|\"[a-z ]{0,3}\"|\\[[0-9]?\\]),?)?\\}"
            .prop_filter("valid JSON", |json| serde_json::from_str::<Value>(json).is_ok()),
        1 => Just(String::new()),
        1 => Just("{\"a\":".to_owned()),
        1 => Just("[1, 2]".to_owned()),
    ];
    ("[a-zA-Z0-9_]{1,8}", "[a-z_]{1,8}", arguments).prop_map(|(id, name, arguments)| ToolCall {
        id: format!("toolu_{id}"),
        name,
        arguments,
    })
}

fn arb_message() -> impl Strategy<Value = Message> {
    let texts = proptest::collection::vec(arb_text(), 0..3);
    let parts = proptest::collection::vec(arb_part(), 0..3);
    prop_oneof![
        1 => (prop_oneof![Just(Role::System), Just(Role::Developer)], texts.clone())
            .prop_map(|(role, texts)| message(role, texts.into_iter().map(ContentPart::Text).collect())),
        2 => parts.clone().prop_map(|parts| message(Role::User, parts)),
        2 => (
            texts,
            proptest::collection::vec(arb_call(), 0..3),
            proptest::option::of((arb_text(), proptest::option::of("[A-Za-z0-9+/=]{0,6}"))),
            proptest::collection::vec("[A-Za-z0-9+/]{1,6}", 0..2),
        )
            .prop_map(|(texts, calls, reasoning, redacted)| {
                let mut message = message(Role::Assistant, texts.into_iter().map(ContentPart::Text).collect());
                message.tool_calls = calls;
                if let Some((reasoning, signature)) = reasoning {
                    message.reasoning = Some(reasoning);
                    message.reasoning_signature = signature;
                }
                message.redacted_reasoning = redacted;
                message
            }),
        2 => (parts, "toolu_[a-z0-9_]{1,8}", any::<bool>()).prop_map(|(parts, id, error)| tool_message(&id, parts, error)),
    ]
}

fn arb_tool() -> impl Strategy<Value = Tool> {
    ("[a-z_]{1,10}", proptest::option::of("[a-zA-Z .]{0,20}"), any::<bool>()).prop_map(|(name, description, schema)| {
        Tool { name, description, parameters: schema.then(|| raw(r#"{"type":"object","properties":{"a":{}}}"#)) }
    })
}

fn arb_request() -> impl Strategy<Value = ChatRequest> {
    (
        (
            proptest::collection::vec(arb_message(), 0..8),
            proptest::collection::vec(arb_tool(), 0..3),
            proptest::collection::vec("[A-Z#]{1,5}", 0..4),
            proptest::option::of(1u64..100_000),
            any::<bool>(),
        ),
        (
            proptest::option::of(prop_oneof![
                Just(ToolChoice::None),
                Just(ToolChoice::Auto),
                Just(ToolChoice::Required),
                "[a-z]{1,5}".prop_map(ToolChoice::Function),
            ]),
            proptest::option::of(prop_oneof![Just(0.0), Just(0.5), Just(1.0), Just(1.25), Just(2.0)]),
            proptest::option::of(0u32..100),
            proptest::option::of(any::<bool>()),
            proptest::option::of("[a-z0-9-]{1,8}"),
            proptest::option::of(1u32..3),
            proptest::option::of(any::<i64>()),
        ),
    )
        .prop_map(
            |(
                (messages, tools, stop, max_tokens, stream),
                (tool_choice, temperature, top_k, parallel, user, n, seed),
            )| {
                let mut extensions = std::collections::BTreeMap::new();
                if let Some(parallel) = parallel {
                    extensions.insert("parallel_tool_calls".to_owned(), raw(&parallel.to_string()));
                }
                if let Some(user) = user {
                    extensions.insert("user".to_owned(), raw(&format!("\"{user}\"")));
                }
                // Anthropic needs at least one message; the decoder checks it.
                let messages = std::iter::once(message(Role::User, vec![text("Hello")])).chain(messages).collect();
                ChatRequest {
                    model: "client-model".into(),
                    messages,
                    tools,
                    stop,
                    max_tokens,
                    stream,
                    tool_choice,
                    temperature,
                    top_k,
                    n,
                    seed,
                    extensions,
                    ..ChatRequest::default()
                }
            },
        )
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_and_json_schema_structured_output() {
    let request_with =
        |extensions: &[(&str, &str)], response_format: Option<&str>, temperature: Option<f64>| ChatRequest {
            messages: vec![message(Role::User, vec![text("q")])],
            max_tokens: Some(8000),
            temperature,
            response_format: response_format.map(raw),
            extensions: extensions.iter().map(|(name, value)| ((*name).to_owned(), raw(value))).collect(),
            ..ChatRequest::default()
        };
    let (body, dropped) = encode(&request_with(&[("reasoning_effort", r#""low""#)], None, Some(1.0)));
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 1280}));
    assert_eq!(body["max_tokens"], 8000, "already above the budget");
    assert_eq!(body["temperature"], 1.0, "the one temperature thinking accepts");
    assert!(dropped.is_empty(), "{dropped:?}");
    for off in ["none", "minimal"] {
        let (body, dropped) = encode(&request_with(&[("reasoning_effort", &format!("\"{off}\""))], None, Some(0.2)));
        assert!(body.get("thinking").is_none());
        assert_eq!(body["temperature"], 0.2);
        assert!(dropped.is_empty());
    }
    let (body, dropped) = encode(&request_with(&[("reasoning_effort", r#""extreme""#)], None, None));
    assert!(body.get("thinking").is_none());
    assert_eq!(dropped, ["reasoning_effort"]);

    // A tool loop whose assistant turn has no signed thinking block: Anthropic would refuse
    // it with thinking on, so no thinking.
    let mut tool_loop = request_with(&[("reasoning_effort", r#""high""#)], None, None);
    let mut assistant = message(Role::Assistant, vec![]);
    assistant.tool_calls = vec![call("toolu_1", "f", "{}")];
    tool_loop.messages.push(assistant.clone());
    tool_loop.messages.push(tool_message("toolu_1", vec![text("ok")], false));
    let (body, dropped) = encode(&tool_loop);
    assert!(body.get("thinking").is_none());
    assert_eq!(dropped, ["reasoning_effort"]);
    // With the signature Anthropic gave, thinking stays on.
    tool_loop.messages[1].reasoning = Some("thought".into());
    tool_loop.messages[1].reasoning_signature = Some("EqQBCkgIBRABGAIiQL==".into());
    let (body, dropped) = encode(&tool_loop);
    assert_eq!(body["thinking"]["type"], "enabled");
    assert!(dropped.is_empty(), "{dropped:?}");

    let schema = r#"{"type":"json_schema","json_schema":{"name":"city","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"}}}}}"#;
    let (body, dropped) = encode(&request_with(&[], Some(schema), None));
    assert_eq!(
        body["output_config"],
        json!({"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}})
    );
    assert!(dropped.is_empty());
    let (body, dropped) = encode(&request_with(&[], Some(r#"{"type":"json_object"}"#), None));
    assert!(body.get("output_config").is_none());
    assert_eq!(dropped, ["response_format"]);
}

#[test]
fn a_conversation_opening_with_the_assistant_gets_a_user_turn_first() {
    let request = ChatRequest {
        messages: vec![
            message(Role::System, vec![text("s")]),
            message(Role::Assistant, vec![text("Hello! How can I help?")]),
            message(Role::User, vec![text("Weather?")]),
        ],
        ..ChatRequest::default()
    };
    let (body, _) = encode(&request);
    let roles: Vec<&str> =
        body["messages"].as_array().unwrap().iter().map(|turn| turn["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(body["messages"][0]["content"], json!([{"type": "text", "text": "."}]));

    let (gemini, _) = crate::gemini::upstream::generate_content_request(&request);
    let gemini: Value = serde_json::from_slice(&gemini).unwrap();
    let roles: Vec<&str> = gemini["contents"].as_array().unwrap().iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "model", "user"]);
    assert_eq!(gemini["contents"][0]["parts"], json!([{"text": "."}]));
}
