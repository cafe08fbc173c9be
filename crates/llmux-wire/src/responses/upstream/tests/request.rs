use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolChoice};
use serde_json::{Value, json};

use crate::responses::decode::responses_request;
use crate::responses::upstream::{dropped, request_body};
use crate::test_support::{call, fixture, image, message, raw, text, tool_message};

fn body_of(request: &ChatRequest, model: &str) -> Value {
    serde_json::from_slice(&request_body(request, model)).unwrap()
}

#[test]
fn a_chat_conversation_becomes_input_items() {
    let mut assistant = message(Role::Assistant, vec![text("Checking both.")]);
    assistant.tool_calls =
        vec![call("call_1", "get_weather", r#"{"city":"Paris"}"#), call("call_2", "get_weather", "{}")];
    assistant.reasoning = Some("The user wants weather.".into());
    let mut only_calls = message(Role::Assistant, Vec::new());
    only_calls.tool_calls = vec![call("call_3", "now", "")];
    let request = ChatRequest {
        model: "public".into(),
        messages: vec![
            message(Role::System, vec![text("Be brief."), text("Be kind.")]),
            message(Role::User, vec![text("Weather in Paris and Oslo?")]),
            assistant,
            tool_message("call_1", vec![text("18C")], false),
            tool_message("call_2", vec![text("unavailable"), image("https://x/err.png")], true),
            message(Role::System, vec![text("Mid-conversation note.")]),
            message(Role::Developer, vec![text("Use metric.")]),
            message(
                Role::User,
                vec![
                    text("And this?"),
                    ContentPart::Image { url: "data:image/png;base64,AA==".into(), detail: Some("low".into()) },
                ],
            ),
            only_calls,
            tool_message("call_3", vec![text("12:00")], false),
            message(Role::Assistant, Vec::new()),
        ],
        stream: true,
        stream_include_usage: true,
        max_tokens: Some(300),
        temperature: Some(0.5),
        top_p: Some(0.9),
        tools: vec![
            llmux_types::chat::Tool {
                name: "get_weather".into(),
                description: Some("Weather for a city".into()),
                parameters: Some(raw(r#"{"type":"object","properties":{"city":{"type":"string"}}}"#)),
            },
            llmux_types::chat::Tool { name: "now".into(), description: None, parameters: None },
        ],
        tool_choice: Some(ToolChoice::Function("get_weather".into())),
        response_format: Some(raw(
            r#"{"type":"json_schema","json_schema":{"name":"weather","description":"A report","schema":{"type":"object"},"strict":true}}"#,
        )),
        ..ChatRequest::default()
    };
    let mut request = request;
    for (name, value) in [
        ("reasoning_effort", r#""high""#),
        ("verbosity", r#""low""#),
        ("user", r#""u-1""#),
        ("parallel_tool_calls", "false"),
        ("metadata", r#"{"team":"a"}"#),
        ("service_tier", r#""flex""#),
        ("prompt_cache_key", r#""conv-9""#),
        ("store", "false"),
    ] {
        request.extensions.insert(name.into(), raw(value));
    }
    assert_eq!(
        body_of(&request, "o3-pro"),
        json!({
            "include": ["reasoning.encrypted_content"],
            "model": "o3-pro",
            "instructions": "Be brief.\nBe kind.",
            "input": [
                {"type": "message", "role": "user", "content": "Weather in Paris and Oslo?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both."}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": [
                    {"type": "input_text", "text": "Error: unavailable"},
                    {"type": "input_image", "image_url": "https://x/err.png", "detail": "auto"}
                ]},
                {"type": "message", "role": "system", "content": "Mid-conversation note."},
                {"type": "message", "role": "developer", "content": "Use metric."},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "And this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"}
                ]},
                {"type": "function_call", "call_id": "call_3", "name": "now", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_3", "output": "12:00"}
            ],
            "tools": [
                {"type": "function", "name": "get_weather", "description": "Weather for a city",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": false},
                {"type": "function", "name": "now", "parameters": {"type": "object", "properties": {}}, "strict": false}
            ],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {
                "format": {"type": "json_schema", "name": "weather", "description": "A report", "schema": {"type": "object"}, "strict": true},
                "verbosity": "low"
            },
            "reasoning": {"effort": "high"},
            "max_output_tokens": 300,
            "temperature": 0.5,
            "top_p": 0.9,
            "parallel_tool_calls": false,
            "user": "u-1",
            "prompt_cache_key": "conv-9",
            "metadata": {"team": "a"},
            "service_tier": "flex",
            "store": false,
            "stream": true
        })
    );
    assert!(dropped(&request).is_empty(), "{:?}", dropped(&request));
}

#[test]
fn an_anthropic_request_keeps_its_shape_and_names_what_is_dropped() {
    let mut request = crate::anthropic::decode::messages_request(fixture!("anthropic/request_tools.json")).unwrap();
    request.top_k = Some(5);
    request.stop = vec!["END".into()];
    request.seed = Some(7);
    request.n = Some(2);
    request.max_tokens = Some(1);
    request.extensions.insert("service_tier".into(), raw(r#""standard_only""#));
    request.extensions.insert("store".into(), raw("true"));
    request.extensions.insert("x_vendor".into(), raw("1"));
    let body = body_of(&request, "gpt-5");
    assert_eq!(body["max_output_tokens"], 16, "raised to the API's minimum");
    assert_eq!(body["store"], false);
    assert!(body.get("service_tier").is_none() && body.get("stop").is_none() && body.get("seed").is_none());
    let kinds: Vec<&str> =
        body["input"].as_array().unwrap().iter().map(|item| item["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
            "message",
            "function_call",
            "function_call_output"
        ]
    );
    let mut names = dropped(&request);
    names.sort_unstable();
    let mut expected = vec!["stop", "seed", "n", "top_k", "service_tier", "store", "extensions"];
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[test]
fn a_responses_request_keeps_its_hosted_tools_and_tool_choice() {
    let body = br#"{"model":"m","input":[{"role":"user","content":"hi"}],
        "tools":[{"type":"function","name":"f","parameters":{"type":"object"}},{"type":"web_search"}],
        "tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"web_search"}]},
        "reasoning":{"effort":"low","summary":"auto"},"text":{"format":{"type":"json_object"}},
        "max_tool_calls":3}"#;
    let request = responses_request(body).unwrap().chat;
    let sent = body_of(&request, "gpt-5");
    assert_eq!(
        sent["tools"],
        json!([
            {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": false},
            {"type": "web_search"}
        ])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "web_search"}]})
    );
    assert_eq!(sent["reasoning"], json!({"effort": "low"}));
    assert_eq!(sent["text"], json!({"format": {"type": "json_object"}}));
    assert_eq!(dropped(&request), ["extensions"], "max_tool_calls has no canonical name");
    // A first system message is `instructions`; without one there are none.
    assert!(sent.get("instructions").is_none());
    assert_eq!(sent["input"], json!([{"type": "message", "role": "user", "content": "hi"}]));
}

#[test]
fn extensions_of_the_wrong_type_are_dropped_not_sent() {
    let mut request = ChatRequest { model: "m".into(), ..ChatRequest::default() };
    request.messages.push(Message::new(Role::User, vec![text("x")]));
    for (name, value) in [
        ("reasoning_effort", "3"),
        ("parallel_tool_calls", r#""yes""#),
        ("metadata", "[1]"),
        ("top_logprobs", "-1"),
        ("tools", "{}"),
    ] {
        request.extensions.insert(name.into(), raw(value));
    }
    let body = body_of(&request, "m");
    for name in ["reasoning", "parallel_tool_calls", "metadata", "top_logprobs", "tools"] {
        assert!(body.get(name).is_none(), "{name}: {body}");
    }
    let mut names = dropped(&request);
    names.sort_unstable();
    assert_eq!(names, ["metadata", "parallel_tool_calls", "reasoning_effort", "tools", "top_logprobs"]);
    // A named tool choice wins over a kept one of another form.
    request.extensions.insert("tool_choice".into(), raw(r#"{"type":"web_search"}"#));
    request.tool_choice = Some(ToolChoice::Required);
    assert_eq!(body_of(&request, "m")["tool_choice"], "required");
    assert!(dropped(&request).contains(&"tool_choice"));
}

#[test]
fn openai_signed_reasoning_goes_back_as_its_reasoning_item_and_no_other() {
    let mut signed = Message::new(Role::Assistant, vec![ContentPart::Text("Sure.".into())]);
    signed.reasoning = Some("Thinking.".into());
    signed.reasoning_signature = Some("openai:rs_42:gAAAAB".into());
    let mut anthropic = Message::new(Role::Assistant, vec![ContentPart::Text("Again.".into())]);
    anthropic.reasoning = Some("Hm.".into());
    anthropic.reasoning_signature = Some("EqQB".into());
    let request = ChatRequest {
        model: "m".into(),
        messages: vec![
            Message::new(Role::User, vec![ContentPart::Text("q".into())]),
            signed,
            Message::new(Role::User, vec![ContentPart::Text("q2".into())]),
            anthropic,
            Message::new(Role::User, vec![ContentPart::Text("q3".into())]),
        ],
        ..ChatRequest::default()
    };
    let body = body_of(&request, "o3");
    let input = body["input"].as_array().unwrap();
    assert_eq!(
        input[1],
        json!({"type": "reasoning", "id": "rs_42", "summary": [{"type": "summary_text", "text": "Thinking."}],
               "encrypted_content": "gAAAAB"})
    );
    assert_eq!(input[2]["role"], "assistant");
    assert_eq!(input.iter().filter(|item| item["type"] == "reasoning").count(), 1, "Anthropic's stays out");
    assert!(body.get("include").is_none(), "no effort asked: no encrypted content asked for");
}
