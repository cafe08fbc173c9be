use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, Tool, ToolChoice};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::encode;
use crate::anthropic::upstream::messages_request;
use crate::test_support::{
    arb_arguments, arb_assistant_message, arb_call, arb_part, arb_system_message, arb_text, arb_tool, arb_tool_choice,
    call, fixture, image, message, raw, text, tool_message,
};

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
    let expected: Value = serde_json::from_slice(fixture!("anthropic-upstream/request_expected.json")).unwrap();
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

fn arb_message() -> impl Strategy<Value = Message> {
    let texts = proptest::collection::vec(arb_text(), 0..3);
    let parts = proptest::collection::vec(arb_part("https://[a-z]{1,6}\\.example/[a-z]{1,4}\\.png"), 0..3);
    prop_oneof![
        1 => arb_system_message(texts.clone()),
        2 => parts.clone().prop_map(|parts| message(Role::User, parts)),
        2 => arb_assistant_message(
            texts,
            arb_call("[a-zA-Z0-9_]{1,8}".prop_map(|id| format!("toolu_{id}")), arb_arguments()),
            proptest::option::of("[A-Za-z0-9+/=]{0,6}"),
        ),
        2 => (parts, "toolu_[a-z0-9_]{1,8}", any::<bool>()).prop_map(|(parts, id, error)| tool_message(&id, parts, error)),
    ]
}

fn arb_request() -> impl Strategy<Value = ChatRequest> {
    (
        (
            proptest::collection::vec(arb_message(), 0..8),
            proptest::collection::vec(arb_tool(r#"{"type":"object","properties":{"a":{}}}"#), 0..3),
            proptest::collection::vec("[A-Z#]{1,5}", 0..4),
            proptest::option::of(1u64..100_000),
            any::<bool>(),
        ),
        (
            arb_tool_choice(),
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
