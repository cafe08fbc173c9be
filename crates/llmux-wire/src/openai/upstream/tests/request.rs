use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolCall, ToolChoice};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::openai::upstream::{ReasoningField, RequestOptions, chat_request, chat_request_with, dropped};
use crate::test_support::{arb_call, arb_system_message, arb_tool, arb_tool_choice, fixture, message, raw, text};

#[test]
fn request_from_anthropic_client_golden() {
    let body = fixture!("anthropic/request_tools.json");
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
    // What the body left out is named (user and parallel_tool_calls were held).
    assert_eq!(dropped(&request), ["top_k", "service_tier"]);
    request.extensions.insert("user".into(), raw("7"));
    request.extensions.insert("thinking".into(), raw(r#"{"type":"adaptive"}"#));
    assert_eq!(dropped(&request), ["top_k", "service_tier", "thinking", "user"]);
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
        let body = chat_request_with(
            &request,
            "up",
            &RequestOptions { reasoning_field: Some(field), ..RequestOptions::default() },
        );
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

proptest! {
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

fn arb_message() -> impl Strategy<Value = Message> {
    let texts = proptest::collection::vec(arb_text(), 0..3);
    prop_oneof![
        arb_system_message(texts.clone()),
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
        (
            texts.clone(),
            proptest::collection::vec(
                arb_call("[a-z0-9_]{1,8}".prop_map(|id| format!("call_{id}")), "\\{(\"[a-z]{1,3}\":[0-9]{1,3})?\\}"),
                0..3,
            ),
        )
            .prop_map(|(texts, calls)| {
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

fn arb_request() -> impl Strategy<Value = ChatRequest> {
    (
        "[a-z-]{1,10}",
        proptest::collection::vec(arb_message(), 1..6),
        proptest::collection::vec(arb_tool(r#"{"type":"object","properties":{}}"#), 0..3),
        proptest::collection::vec("[A-Z#]{1,5}", 0..4),
        proptest::option::of(1u64..100_000),
        any::<bool>(),
        arb_tool_choice(),
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

#[test]
fn a_reasoning_model_gets_an_effort_from_the_client_or_from_anthropic_thinking() {
    use crate::openai::upstream::dropped_with;
    let options = RequestOptions { reasoning_effort: true, ..RequestOptions::default() };
    let with = |pairs: &[(&str, &str)]| {
        let mut request = ChatRequest {
            model: "m".into(),
            messages: vec![llmux_types::chat::Message::new(
                llmux_types::chat::Role::User,
                vec![llmux_types::chat::ContentPart::Text("hi".into())],
            )],
            ..ChatRequest::default()
        };
        for (name, value) in pairs {
            request
                .extensions
                .insert((*name).into(), serde_json::value::RawValue::from_string((*value).into()).unwrap());
        }
        let body: Value = serde_json::from_slice(&chat_request_with(&request, "o4-mini", &options)).unwrap();
        (body.get("reasoning_effort").cloned(), dropped_with(&request, &options), dropped(&request))
    };
    // Claude Code: adaptive thinking with an effort.
    let (effort, held, plain) =
        with(&[("thinking", r#"{"type":"adaptive"}"#), ("output_config", r#"{"effort":"max"}"#)]);
    assert_eq!(effort, Some(json!("high")));
    assert!(held.is_empty(), "{held:?}");
    assert_eq!(plain, ["output_config", "thinking"], "a model not declared as reasoning gets none of it");
    // A client's own effort wins; budgets map by size; adaptive alone is the default.
    let own = with(&[("reasoning_effort", r#""low""#), ("output_config", r#"{"effort":"high"}"#)]);
    assert_eq!(own.0, Some(json!("low")));
    assert_eq!(with(&[("thinking", r#"{"type":"enabled","budget_tokens":2048}"#)]).0, Some(json!("low")));
    assert_eq!(with(&[("thinking", r#"{"type":"enabled","budget_tokens":8000}"#)]).0, Some(json!("medium")));
    assert_eq!(with(&[("thinking", r#"{"type":"enabled","budget_tokens":32000}"#)]).0, Some(json!("high")));
    assert_eq!(with(&[("thinking", r#"{"type":"adaptive"}"#)]).0, Some(json!("medium")));
    let (off, held, _) = with(&[("thinking", r#"{"type":"disabled"}"#)]);
    assert_eq!((off, held.is_empty()), (None, true));
    // What cannot be read as an effort is still named.
    let (none, held, _) = with(&[("output_config", r#"{"effort":"high","format":{"type":"json_schema"}}"#)]);
    assert_eq!((none, held), (None, vec!["output_config"]));
}
