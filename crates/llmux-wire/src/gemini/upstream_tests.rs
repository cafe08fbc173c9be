use std::time::Duration;

use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ContentPart, FinishReason, Message, Role, StreamEvent, Tool, ToolCall, ToolChoice,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{StreamDecoder, error_message, generate_content_request, generate_content_response, retry_delay};
use crate::openai::encode::ChatStreamEncoder;
use crate::sse::{Framer, parse_event};
use crate::test_support::{cut_at, decode_sse, message, raw, text};

fn fixture(name: &str) -> &'static [u8] {
    match name {
        "request_expected" => include_bytes!("../../tests/fixtures/gemini-upstream/request_expected.json"),
        "text" => include_bytes!("../../tests/fixtures/gemini-upstream/response_text.json"),
        "function_call" => include_bytes!("../../tests/fixtures/gemini-upstream/response_function_call.json"),
        "thinking" => include_bytes!("../../tests/fixtures/gemini-upstream/response_thinking.json"),
        "blocked" => include_bytes!("../../tests/fixtures/gemini-upstream/response_prompt_blocked.json"),
        "max_tokens" => include_bytes!("../../tests/fixtures/gemini-upstream/response_max_tokens.json"),
        "stream" => include_bytes!("../../tests/fixtures/gemini-upstream/stream_thinking_tool.sse"),
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
    let (body, dropped) = generate_content_request(request);
    (serde_json::from_slice(&body).unwrap(), dropped)
}

fn user(texts: &[&str]) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![message(Role::User, texts.iter().map(|t| text(t)).collect())],
        ..ChatRequest::default()
    }
}

// ---------------------------------------------------------------------------------
// Requests (golden).

fn golden_request() -> ChatRequest {
    let mut assistant = message(Role::Assistant, vec![text("Checking both.")]);
    assistant.reasoning = Some("Two cities, so two calls.".into());
    assistant.reasoning_signature = Some("gemini:CiQBVKhc7l5mzkoZSRQfFeCS44vjuGk3o7tGr8==".into());
    assistant.redacted_reasoning = vec!["EmwKAhgBEgy3va3pzix".into()];
    assistant.tool_calls = vec![
        call("fc_7q1", "get_weather", r#" {"city": "Paris", "units": {"z": 1, "a": 2.50}} "#),
        // Not valid JSON: sent as `{}`.
        call("call_1", "get_weather", r#"{"city":"#),
    ];
    let mut answered = message(Role::Assistant, vec![text("Paris is sunny; "), text(""), text("Oslo is unknown.")]);
    answered.reasoning = Some("Thought text is never sent back.".into());
    answered.reasoning_signature = Some("gemini:Ct8BAVKhc8w==".into());
    ChatRequest {
        model: "public-alias".into(),
        messages: vec![
            message(Role::System, vec![text("You are a weather assistant.")]),
            message(
                Role::User,
                vec![
                    text("Weather in Paris and Oslo?"),
                    ContentPart::Image { url: "data:image/png;base64,iVBORw0KGgo=".into(), detail: Some("low".into()) },
                    image("https://example.com/map.JPG?size=large"),
                    image("gs://bucket/report.pdf"),
                    image("https://example.com/photo"),
                ],
            ),
            assistant,
            tool_message("fc_7q1", vec![text(r#"{"temp_c": 18, "sky": "sunny"}"#)], false),
            tool_message(
                "call_1",
                vec![text("service unavailable"), text(""), image("https://example.com/status.png")],
                true,
            ),
            // Hoisted into `systemInstruction` wherever it stands; the user content around
            // it still merges.
            message(Role::Developer, vec![text(""), text("Answer in one sentence.")]),
            message(Role::User, vec![text(""), text("Summarise please.")]),
            answered,
            message(Role::User, vec![text("Thanks!")]),
            // Nothing left to send: dropped rather than sent as an empty part.
            message(Role::User, vec![text("")]),
        ],
        stream: true,
        stream_include_usage: true,
        max_tokens: Some(1024),
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
                parameters: Some(raw(r##"{
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "units": {"$ref": "#/$defs/units"}},
                    "required": ["city"],
                    "additionalProperties": false,
                    "$defs": {"units": {"type": "string", "enum": ["metric", "imperial"]}}
                }"##)),
            },
            Tool { name: "now".into(), description: None, parameters: None },
        ],
        tool_choice: Some(ToolChoice::Function("get_weather".into())),
        response_format: Some(raw(
            r#"{"type":"json_schema","json_schema":{"name":"w","strict":true,"schema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"summary":{"type":"string"}},"required":["summary"],"additionalProperties":false}}}"#,
        )),
        extensions: [
            ("presence_penalty".to_owned(), raw("0.5")),
            ("frequency_penalty".to_owned(), raw("-0.25")),
            ("logprobs".to_owned(), raw("true")),
            ("top_logprobs".to_owned(), raw("3")),
            ("reasoning_effort".to_owned(), raw(r#""high""#)),
            ("user".to_owned(), raw(r#""user-42""#)),
            ("parallel_tool_calls".to_owned(), raw("false")),
            ("metadata".to_owned(), raw(r#"{"k":"v"}"#)),
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
    // loss; the mapped keys are not reported.
    assert_eq!(dropped, ["metadata", "parallel_tool_calls", "user", "extensions"]);
    let (body, _) = generate_content_request(&request);
    let body = String::from_utf8(body).unwrap();
    // The model's arguments and the tool's JSON output are sent verbatim, not re-serialized.
    assert!(body.contains(r#""args":{"city": "Paris", "units": {"z": 1, "a": 2.50}}"#), "{body}");
    assert!(body.contains(r#""response":{"temp_c": 18, "sky": "sunny"}"#), "{body}");
    // The schema minus `$schema`, members in the client's order.
    let properties = body.find(r#""properties":{"city""#).unwrap();
    let required = body.find(r#""required":["city"]"#).unwrap();
    let defs = body.find(r#""$defs""#).unwrap();
    assert!(properties < required && required < defs, "{body}");
    assert!(!body.contains("$schema"), "{body}");
    // Neither the model, nor the stream flag, nor thought text goes in the body.
    assert!(!body.contains("public-alias") && !body.contains("\"stream\"") && !body.contains("never sent"));
}

#[test]
fn request_defaults_and_small_cases() {
    let (actual, dropped) = encode(&user(&["hi"]));
    assert_eq!(actual, json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}));
    assert!(dropped.is_empty());

    // No messages at all: `contents` is still sent (Gemini requires the field).
    let (actual, _) = encode(&ChatRequest::default());
    assert_eq!(actual, json!({"contents": []}));

    // A seed outside int32 cannot be held; one inside can, negative included.
    let request = ChatRequest { seed: Some(i64::from(i32::MAX) + 1), ..user(&["x"]) };
    let (actual, dropped) = encode(&request);
    assert_eq!(actual.get("generationConfig"), None);
    assert_eq!(dropped, ["seed"]);
    let request = ChatRequest { seed: Some(i64::from(i32::MIN)), ..user(&["x"]) };
    let (actual, dropped) = encode(&request);
    assert_eq!(actual["generationConfig"], json!({"seed": i32::MIN}));
    assert!(dropped.is_empty());

    // Temperatures are not clamped (Gemini's range is OpenAI's); n = 1 is sent as is.
    let request = ChatRequest { temperature: Some(2.0), n: Some(1), ..user(&["x"]) };
    let (actual, _) = encode(&request);
    assert_eq!(actual["generationConfig"], json!({"temperature": 2.0, "candidateCount": 1}));
}

#[test]
fn response_format_mapping() {
    let cases: [(&str, Option<Value>, bool); 7] = [
        (r#"{"type":"text"}"#, None, false),
        (r#"{"type":"json_object"}"#, Some(json!({"responseMimeType": "application/json"})), false),
        (
            r#"{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}"#,
            Some(json!({"responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}})),
            false,
        ),
        // No schema: JSON mode is all that is left.
        (
            r#"{"type":"json_schema","json_schema":{"name":"n"}}"#,
            Some(json!({"responseMimeType": "application/json"})),
            false,
        ),
        (
            r#"{"type":"json_schema","json_schema":{"name":"n","schema":null}}"#,
            Some(json!({"responseMimeType": "application/json"})),
            false,
        ),
        (r#"{"type":"grammar","grammar":"root ::= x"}"#, None, true),
        (r#""json""#, None, true),
    ];
    for (format, config, dropped_format) in cases {
        let request = ChatRequest { response_format: Some(raw(format)), ..user(&["x"]) };
        let (actual, dropped) = encode(&request);
        assert_eq!(actual.get("generationConfig").cloned(), config, "{format}");
        assert_eq!(dropped == ["response_format"], dropped_format, "{format}: {dropped:?}");
    }
}

#[test]
fn extension_mapping_and_reporting() {
    let config = |extensions: &[(&str, &str)]| {
        let request = ChatRequest {
            extensions: extensions.iter().map(|(key, value)| ((*key).to_owned(), raw(value))).collect(),
            ..user(&["x"])
        };
        let (actual, dropped) = encode(&request);
        (actual.get("generationConfig").cloned().unwrap_or(Value::Null), dropped)
    };
    for (effort, level, include) in [
        ("minimal", "MINIMAL", Some(true)),
        ("low", "LOW", Some(true)),
        ("medium", "MEDIUM", Some(true)),
        ("high", "HIGH", Some(true)),
        ("xhigh", "HIGH", Some(true)),
        // Gemini 3 cannot turn thinking off: the least there is, and no thoughts shown.
        ("none", "MINIMAL", None),
    ] {
        let (config, dropped) = config(&[("reasoning_effort", &format!("\"{effort}\""))]);
        let mut expected = json!({"thinkingLevel": level});
        if let Some(include) = include {
            expected["includeThoughts"] = json!(include);
        }
        assert_eq!(config, json!({"thinkingConfig": expected}), "{effort}");
        assert!(dropped.is_empty());
    }
    // Values that cannot be used are reported under their own names.
    let (config_value, dropped) = config(&[
        ("reasoning_effort", r#""maximal""#),
        ("presence_penalty", r#""high""#),
        ("frequency_penalty", "[1]"),
        ("logprobs", "1"),
        ("top_logprobs", "-1"),
    ]);
    assert_eq!(config_value, Value::Null);
    assert_eq!(dropped, ["frequency_penalty", "logprobs", "presence_penalty", "reasoning_effort", "top_logprobs"]);
    // Nothing lost: `logprobs: false`, `parallel_tool_calls: true`, nulls.
    let (config_value, dropped) =
        config(&[("logprobs", "false"), ("parallel_tool_calls", "true"), ("user", "null"), ("seed_x", "null")]);
    assert_eq!(config_value, Value::Null);
    assert!(dropped.is_empty(), "{dropped:?}");
    // Numbers are sent verbatim.
    let request = ChatRequest {
        extensions: [("presence_penalty".to_owned(), raw("1e-1")), ("frequency_penalty".to_owned(), raw("2"))].into(),
        ..user(&["x"])
    };
    let body = String::from_utf8(generate_content_request(&request).0).unwrap();
    assert!(body.contains(r#""generationConfig":{"presencePenalty":1e-1,"frequencyPenalty":2}"#), "{body}");
    // Anthropic's `thinking` becomes a thinking budget; other dialect-specific keys are
    // not guessed at.
    let (config_value, dropped) = config(&[
        ("thinking", r#"{"type":"enabled","budget_tokens":2048}"#),
        ("safety_identifier", r#""s""#),
        ("store", "true"),
        ("zz_unknown", "1"),
        ("aa_unknown", "1"),
    ]);
    assert_eq!(config_value, json!({"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 2048}}));
    assert_eq!(dropped, ["extensions", "safety_identifier", "store"]);
    let (config_value, dropped) = config(&[("thinking", r#"{"type":"adaptive"}"#)]);
    assert_eq!(config_value, json!({"thinkingConfig": {"includeThoughts": true}}));
    assert!(dropped.is_empty());
    let (config_value, dropped) = config(&[("thinking", r#"{"type":"disabled"}"#)]);
    assert_eq!((config_value, dropped.is_empty()), (Value::Null, true));
    let (_, dropped) = config(&[("thinking", r#"{"type":"enabled"}"#)]);
    assert_eq!(dropped, ["thinking"], "enabled without a budget is not an Anthropic request");
    // An effort wins over a budget.
    let (config_value, _) = config(&[("reasoning_effort", r#""low""#), ("thinking", r#"{"type":"adaptive"}"#)]);
    assert_eq!(config_value["thinkingConfig"]["thinkingLevel"], "LOW");
}

#[test]
fn tool_choice_mapping() {
    let tools = vec![Tool { name: "f".into(), description: None, parameters: None }];
    let cases = [
        (Some(ToolChoice::Auto), Some(json!({"mode": "AUTO"}))),
        (Some(ToolChoice::None), Some(json!({"mode": "NONE"}))),
        (Some(ToolChoice::Required), Some(json!({"mode": "ANY"}))),
        (Some(ToolChoice::Function("f".into())), Some(json!({"mode": "ANY", "allowedFunctionNames": ["f"]}))),
        (None, None),
    ];
    for (choice, expected) in cases {
        let request = ChatRequest { tools: tools.clone(), tool_choice: choice.clone(), ..user(&["x"]) };
        let (actual, dropped) = encode(&request);
        assert_eq!(
            actual.get("toolConfig").cloned(),
            expected.map(|config| json!({"functionCallingConfig": config})),
            "{choice:?}"
        );
        assert_eq!(actual["tools"], json!([{"functionDeclarations": [{"name": "f"}]}]));
        assert!(dropped.is_empty());
        // Without tools there is nothing to choose from: no toolConfig, no `tools`.
        let request = ChatRequest { tool_choice: choice.clone(), ..user(&["x"]) };
        let (actual, _) = encode(&request);
        assert_eq!(actual.get("toolConfig"), None, "{choice:?}");
        assert_eq!(actual.get("tools"), None);
    }
}

#[test]
fn schemas_lose_only_a_top_level_dollar_schema() {
    let tool = |schema: &str| Tool { name: "f".into(), description: Some("d".into()), parameters: Some(raw(schema)) };
    let body = |schema: &str| {
        let request = ChatRequest { tools: vec![tool(schema)], ..user(&["x"]) };
        String::from_utf8(generate_content_request(&request).0).unwrap()
    };
    // No top-level `$schema`: verbatim, whitespace and number spelling included.
    let verbatim = r#"{"type": "object", "properties": {"n": {"type": "number", "maximum": 1.50}}}"#;
    assert!(body(verbatim).contains(&format!(r#""parametersJsonSchema":{verbatim}"#)));
    // A nested `$schema` is a property name here, not the dialect marker: kept.
    let nested = r#"{"type":"object","properties":{"$schema":{"type":"string"}}}"#;
    assert!(body(nested).contains(&format!(r#""parametersJsonSchema":{nested}"#)));
    // Top level: removed; the rest stays in order, nested values verbatim.
    let marked = r#"{"b": {"x": 1.0}, "$schema": "http://json-schema.org/draft-07/schema#", "a\u00e9": 2}"#;
    assert!(body(marked).contains(r#""parametersJsonSchema":{"b":{"x": 1.0},"aé":2}"#), "{}", body(marked));
    // Not an object: sent as is (Gemini judges it).
    assert!(body("true").contains(r#""parametersJsonSchema":true"#));
}

#[test]
fn contents_alternate_and_function_responses_lead_their_content() {
    let mut first = message(Role::Assistant, vec![text("")]);
    first.tool_calls = vec![call("call_0", "lookup", "{}")];
    let mut second = message(Role::Assistant, vec![]);
    // The same generated id in a later turn: its response takes the nearest call's name.
    second.tool_calls = vec![call("call_0", "fetch", r#"{"url":"u"}"#), call("", "anonymous", "[1]")];
    second.reasoning_signature = Some("gemini:sig-calls".into());
    let mut signed_text = message(Role::Assistant, vec![text("a"), text("b")]);
    signed_text.reasoning_signature = Some("gemini:sig-text".into());
    let mut signature_only = message(Role::Assistant, vec![text("")]);
    signature_only.reasoning = Some("r".into());
    signature_only.reasoning_signature = Some("gemini:lost".into());
    let mut empty_signature = message(Role::Assistant, vec![text("c")]);
    empty_signature.reasoning_signature = Some(String::new());
    let request = ChatRequest {
        messages: vec![
            message(Role::User, vec![text("q"), image("data:image/webp;charset=x;base64,AAAA")]),
            first,
            tool_message("call_0", vec![text("first"), text(""), text("second")], false),
            second,
            // A user message before the results of the calls it follows: the results lead.
            message(Role::User, vec![text("note")]),
            tool_message("call_0", vec![], false),
            tool_message("unknown_id", vec![text(r#"  {"ok": true}  "#)], false),
            tool_message("call_0", vec![text("{\"a\":"), text("1}")], false),
            message(Role::Tool, vec![text("no id")]),
            signed_text,
            signature_only,
            empty_signature,
            message(Role::User, vec![image("data:text/plain,hello"), image("data:;base64,QUJD")]),
        ],
        ..ChatRequest::default()
    };
    let (actual, _) = encode(&request);
    assert_eq!(
        actual["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "q"},
                {"inlineData": {"mimeType": "image/webp", "data": "AAAA"}}
            ]},
            {"role": "model", "parts": [{"functionCall": {"id": "call_0", "name": "lookup", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "call_0", "name": "lookup", "response": {"output": "first\nsecond"}}}
            ]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "call_0", "name": "fetch", "args": {"url": "u"}}, "thoughtSignature": "sig-calls"},
                {"functionCall": {"name": "anonymous", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "call_0", "name": "fetch", "response": {"output": ""}}},
                {"functionResponse": {"id": "unknown_id", "name": "unknown_id", "response": {"ok": true}}},
                // Several text parts that together are a JSON object: an object all the same.
                {"functionResponse": {"id": "call_0", "name": "fetch", "response": {"a": 1}}},
                {"functionResponse": {"name": "", "response": {"output": "no id"}}},
                {"text": "note"}
            ]},
            {"role": "model", "parts": [
                {"text": "a"},
                {"text": "b", "thoughtSignature": "sig-text"},
                // `lost`: a turn with no text and no call has no part to carry a signature.
                // An empty signature is no signature.
                {"text": "c"}
            ]},
            {"role": "user", "parts": [
                // Not base64: a URL Gemini will have to judge.
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "data:text/plain,hello"}},
                {"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}}
            ]}
        ])
    );
}

#[test]
fn mime_types_from_extensions() {
    for (url, mime) in [
        ("https://x.test/a.png", "image/png"),
        ("https://x.test/a.PNG", "image/png"),
        ("https://x.test/a.jpg", "image/jpeg"),
        ("https://x.test/a.jpeg?w=1", "image/jpeg"),
        ("https://x.test/a.gif#frag", "image/gif"),
        ("https://x.test/a.webp", "image/webp"),
        ("https://x.test/a.heic", "image/heic"),
        ("https://x.test/a.HEIF", "image/heif"),
        ("gs://bucket/dir/doc.pdf", "application/pdf"),
        ("https://x.test/a.svg", "image/jpeg"),
        ("https://x.test/no-extension", "image/jpeg"),
        ("https://x.test.png/path", "image/jpeg"),
        ("https://x.test/dir.png/", "image/jpeg"),
        ("https://x.test/a?file=b.png", "image/jpeg"),
    ] {
        assert_eq!(super::mime_type(url), mime, "{url}");
    }
}

// ---------------------------------------------------------------------------------
// Responses (golden).

fn choice0(body: &[u8]) -> llmux_types::chat::Choice {
    let mut response = generate_content_response(body).unwrap();
    assert_eq!(response.choices.len(), 1);
    response.choices.remove(0)
}

#[test]
fn text_response() {
    let response = generate_content_response(fixture("text")).unwrap();
    assert_eq!(response.id, "u6VpaL-ZCpnUz7IPkb6Q6Ak");
    assert_eq!(response.model, "gemini-2.0-flash");
    assert_eq!(response.created, 0);
    assert_eq!(response.choices.len(), 1);
    let choice = &response.choices[0];
    // No `index` on the candidate: its position.
    assert_eq!(choice.index, 0);
    assert_eq!(choice.content.as_deref(), Some("Hello! How can I help you today?"));
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature, None);
    assert!(choice.redacted_reasoning.is_empty());
    assert!(choice.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage, Usage { input_tokens: 5, output_tokens: 9, ..Usage::default() });
}

#[test]
fn function_call_response() {
    let response = generate_content_response(fixture("function_call")).unwrap();
    assert_eq!(response.model, "gemini-3-pro-preview");
    let choice = &response.choices[0];
    assert_eq!(choice.content.as_deref(), Some("I'll check both cities."));
    assert_eq!(
        choice.tool_calls,
        vec![
            // Gemini's id kept; arguments compact, key order and number spelling kept.
            call("8f2b1c0d", "get_weather", r#"{"city":"Paris","units":{"z":1,"a":2.50}}"#),
            // No id from Gemini: generated from the call's position.
            call("call_kz5LaNm3H6qGz7IP2bqJ8Qs_1", "now", "{}"),
        ]
    );
    assert_eq!(choice.reasoning_signature.as_deref(), Some("gemini:CpwCAdHtim9Ssn0QeV6V7ZKpqQ7yZPMl0p1sCw=="));
    assert_eq!(choice.reasoning, None);
    // STOP with function calls.
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    // Thinking is output even though candidatesTokenCount leaves it out.
    assert_eq!(
        response.usage,
        Usage { input_tokens: 384, output_tokens: 41 + 105, reasoning_tokens: 105, ..Usage::default() }
    );
}

#[test]
fn thinking_response() {
    let response = generate_content_response(fixture("thinking")).unwrap();
    let choice = &response.choices[0];
    assert_eq!(
        choice.reasoning.as_deref(),
        Some("**Multiplying the numbers**\n\n17 * 20 = 340 and 17 * 3 = 51, so the total is 391.")
    );
    assert_eq!(choice.content.as_deref(), Some("391"));
    assert_eq!(choice.reasoning_signature.as_deref(), Some("gemini:EtQDCtEDAdHtim8zUPn4GlKwFn0Rg8d2Gf8s0R1q"));
    assert_eq!(choice.finish_reason, FinishReason::Stop);
    assert_eq!(
        response.usage,
        Usage { input_tokens: 12, output_tokens: 1 + 210, reasoning_tokens: 210, ..Usage::default() }
    );
    // And back to an OpenAI client: thinking billed as completion tokens.
    let encoded: Value = serde_json::from_slice(&crate::openai::encode::chat_response(&response)).unwrap();
    assert_eq!(encoded["usage"]["completion_tokens"], 211);
    assert_eq!(encoded["usage"]["prompt_tokens"], 12);
}

#[test]
fn prompt_blocked_response() {
    let response = generate_content_response(fixture("blocked")).unwrap();
    assert_eq!(response.id, "2L5LaL_0Ls2Gz7IPqu2y8Ak");
    let choice = &response.choices[0];
    assert_eq!(choice.index, 0);
    assert_eq!(choice.content, None);
    assert!(choice.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, FinishReason::ContentFilter);
    // The prompt was read: it is billed.
    assert_eq!(response.usage, Usage { input_tokens: 7, ..Usage::default() });
}

#[test]
fn max_tokens_response_with_cache_and_tool_use_prompt() {
    let choice = choice0(fixture("max_tokens"));
    assert_eq!(choice.finish_reason, FinishReason::Length);
    assert_eq!(choice.content.as_deref(), Some("The first chapter opens with"));
    let response = generate_content_response(fixture("max_tokens")).unwrap();
    // promptTokenCount already includes the cached tokens (canonical semantics); the
    // tool-use prompt is counted apart by Gemini and added.
    assert_eq!(
        response.usage,
        Usage {
            input_tokens: 3100 + 12,
            output_tokens: 16 + 48,
            cached_tokens: 2048,
            reasoning_tokens: 48,
            cache_write_tokens: 0
        }
    );
    assert_eq!(response.usage.uncached_input(), 3112 - 2048);
}

fn candidate_body(parts: &str, finish: &str) -> String {
    format!(r#"{{"candidates":[{{"content":{{"role":"model","parts":{parts}}},"finishReason":{finish}}}]}}"#)
}

#[test]
fn response_finish_reasons() {
    let text = r#"[{"text":"x"}]"#;
    let with_call = r#"[{"functionCall":{"name":"f","args":{}}}]"#;
    for (finish, parts, expected) in [
        (r#""STOP""#, text, FinishReason::Stop),
        (r#""STOP""#, with_call, FinishReason::ToolCalls),
        ("null", text, FinishReason::Stop),
        ("null", with_call, FinishReason::ToolCalls),
        (r#""FINISH_REASON_UNSPECIFIED""#, with_call, FinishReason::ToolCalls),
        (r#""MAX_TOKENS""#, text, FinishReason::Length),
        // Cut short: the client must know, even though a call came whole.
        (r#""MAX_TOKENS""#, with_call, FinishReason::Length),
        (r#""SAFETY""#, text, FinishReason::ContentFilter),
        (r#""RECITATION""#, text, FinishReason::ContentFilter),
        (r#""BLOCKLIST""#, text, FinishReason::ContentFilter),
        (r#""PROHIBITED_CONTENT""#, text, FinishReason::ContentFilter),
        (r#""SPII""#, text, FinishReason::ContentFilter),
        (r#""IMAGE_SAFETY""#, text, FinishReason::ContentFilter),
        (r#""LANGUAGE""#, text, FinishReason::ContentFilter),
        (r#""MALFORMED_FUNCTION_CALL""#, text, FinishReason::Other("malformed_function_call".into())),
        (r#""OTHER""#, text, FinishReason::Other("other".into())),
        (r#""TOO_MANY_TOOL_CALLS""#, with_call, FinishReason::Other("too_many_tool_calls".into())),
    ] {
        let choice = choice0(candidate_body(parts, finish).as_bytes());
        assert_eq!(choice.finish_reason, expected, "{finish} {parts}");
    }
}

#[test]
fn response_variants() {
    // Several candidates, each with its index; a filtered one has no content at all.
    let body = r#"{"candidates":[
        {"content":{"role":"model","parts":[{"text":"one"}]},"finishReason":"STOP","index":0},
        {"finishReason":"SAFETY","index":1,"safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]},
        {"content":{"role":"model"},"finishReason":"STOP","index":2}
    ],"responseId":"r","modelVersion":"m"}"#;
    let response = generate_content_response(body.as_bytes()).unwrap();
    let summary: Vec<(u32, Option<&str>, &FinishReason)> =
        response.choices.iter().map(|c| (c.index, c.content.as_deref(), &c.finish_reason)).collect();
    assert_eq!(
        summary,
        [
            (0, Some("one"), &FinishReason::Stop),
            (1, Some(""), &FinishReason::ContentFilter),
            (2, Some(""), &FinishReason::Stop)
        ]
    );
    assert_eq!(response.usage, Usage::default());

    // Calls without text: no content. Absent or null args are `{}`. The signature on a
    // call wins over one seen earlier on a text part; later ones change nothing.
    let parts = r#"[
        {"text":"","thoughtSignature":"on-text"},
        {"functionCall":{"name":"a"}},
        {"functionCall":{"id":"","name":"b","args":null},"thoughtSignature":"on-call"},
        {"functionCall":{"name":"c","args":{"k":[1, 2]}},"thoughtSignature":"later"},
        {"inlineData":{"mimeType":"image/png","data":"AAAA"}},
        {"executableCode":{"language":"PYTHON","code":"print(1)"}},
        {"text":"","thought":true,"thoughtSignature":"later-still"}
    ]"#;
    let choice = choice0(candidate_body(parts, r#""STOP""#).as_bytes());
    assert_eq!(choice.content, None);
    assert_eq!(choice.reasoning, None);
    assert_eq!(choice.reasoning_signature.as_deref(), Some("gemini:on-call"));
    assert_eq!(
        choice.tool_calls,
        vec![call("call_0", "a", "{}"), call("call_1", "b", "{}"), call("call_2", "c", r#"{"k":[1,2]}"#)]
    );

    // Only text-part signatures: the first one.
    let parts = r#"[{"text":"x","thoughtSignature":"first"},{"text":"y","thoughtSignature":"second"}]"#;
    assert_eq!(
        choice0(candidate_body(parts, r#""STOP""#).as_bytes()).reasoning_signature.as_deref(),
        Some("gemini:first")
    );
    // A signature on a call is kept over a text part's that comes after it.
    let parts = r#"[{"functionCall":{"name":"f"},"thoughtSignature":"call"},{"text":"y","thoughtSignature":"text"}]"#;
    assert_eq!(
        choice0(candidate_body(parts, r#""STOP""#).as_bytes()).reasoning_signature.as_deref(),
        Some("gemini:call")
    );

    // Escaped strings decode; leading whitespace is fine.
    let body = format!("\n {}", candidate_body(r#"[{"text":"caf\u00e9 \"q\"\n"}]"#, "null"));
    assert_eq!(choice0(body.as_bytes()).content.as_deref(), Some("café \"q\"\n"));
}

#[test]
fn response_errors() {
    let error = generate_content_response(
        br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#,
    )
    .unwrap_err();
    assert_eq!(error.message, "upstream error: RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).");
    assert_eq!(error.param, None);
    let error = generate_content_response(br#"{"error":{"code":500}}"#).unwrap_err();
    assert_eq!(error.message, "upstream error: upstream error 500");
    for body in [
        &b"{\"candidates\":"[..],
        b"not json",
        b"[1]",
        b"{}",
        br#"{"candidates":[]}"#,
        br#"{"candidates":[],"promptFeedback":{"safetyRatings":[]}}"#,
        br#"{"candidates":"text"}"#,
        br#"{"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]}"#,
        br#"{"candidates":[{"content":{"parts":[{"text":7}]}}]}"#,
        br#"{"candidates":[{"index":-1}]}"#,
        br#"{"candidates":[{}],"usageMetadata":{"promptTokenCount":"many"}}"#,
        br#"{"error":"flat string"}"#,
    ] {
        assert!(generate_content_response(body).is_err(), "{}", String::from_utf8_lossy(body));
    }
}

// ---------------------------------------------------------------------------------
// Stream chunks.

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
        StreamEvent::ToolCall {
            choice: 0,
            index: 0,
            id: Some("fc_7q1".into()),
            name: Some("get_weather".into()),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
        StreamEvent::ToolCall {
            choice: 0,
            index: 1,
            id: Some("call_Vx9LaPqZBdGSz7IP0f2R8QM_1".into()),
            name: Some("now".into()),
            arguments: "{}".into(),
        },
        usage(20, 61),
        // The last chunk's empty text yields nothing.
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
        usage(28, 61),
    ]
}

#[test]
fn decodes_the_golden_transcript() {
    assert_eq!(decode_transcript(&[fixture("stream")]), expected_transcript_events());
    // LF line endings, one byte at a time.
    let lf = String::from_utf8(fixture("stream").to_vec()).unwrap().replace("\r\n", "\n");
    let bytes: Vec<&[u8]> = lf.as_bytes().chunks(1).collect();
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
    while let Some(raw) = framer.next_event() {
        let data = parse_event(&raw).data.unwrap();
        if &*data != b"[DONE]" {
            chunks.push(serde_json::from_slice::<Value>(&data).unwrap());
        }
    }
    for chunk in &chunks {
        assert_eq!(chunk["id"], "Vx9LaPqZBdGSz7IP0f2R8QM");
        assert_eq!(chunk["model"], "gemini-3-pro-preview");
    }
    let deltas: Vec<&Value> =
        chunks.iter().flat_map(|chunk| chunk["choices"].as_array().unwrap()).map(|choice| &choice["delta"]).collect();
    let joined = |field: &str| deltas.iter().filter_map(|delta| delta[field].as_str()).collect::<String>();
    assert_eq!(joined("content"), "Let me check the weather été 🌤.");
    let calls: Vec<&Value> = deltas.iter().filter_map(|delta| delta["tool_calls"].as_array()).flatten().collect();
    assert_eq!(calls.len(), 2, "each call whole, in one delta");
    assert_eq!(calls[0]["id"], "fc_7q1");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(calls[1]["index"], 1);
    assert_eq!(calls[1]["id"], "call_Vx9LaPqZBdGSz7IP0f2R8QM_1");
    let finishes: Vec<&Value> = chunks
        .iter()
        .flat_map(|chunk| chunk["choices"].as_array().unwrap())
        .map(|choice| &choice["finish_reason"])
        .filter(|reason| !reason.is_null())
        .collect();
    assert_eq!(finishes, [&json!("tool_calls")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 472);
    assert_eq!(usage["completion_tokens"], 89);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 256);
}

fn decode_all(decoder: &mut StreamDecoder, chunks: &[&str]) -> Vec<StreamEvent<'static>> {
    chunks.iter().flat_map(|data| decoder.decode(data.as_bytes()).unwrap()).collect()
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
    let tool = |index: u32, id: &'static str, name: &'static str, arguments: &'static str| StreamEvent::ToolCall {
        choice: 1,
        index,
        id: Some(id.into()),
        name: Some(name.into()),
        arguments: arguments.into(),
    };
    assert_eq!(
        events,
        vec![
            StreamEvent::Start { id: "".into(), model: "".into(), created: 0 },
            StreamEvent::Text { choice: 1, text: "a".into() },
            StreamEvent::ReasoningSignature { choice: 1, signature: "gemini:on-text".into() },
            // Position 1, no index: choice 1 as well.
            StreamEvent::Text { choice: 1, text: "b".into() },
            StreamEvent::ReasoningSignature { choice: 1, signature: "gemini:on-call".into() },
            tool(0, "call_0", "f", r#"{"x":1}"#),
            tool(1, "call_1", "g", "{}"),
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

// ---------------------------------------------------------------------------------
// Error bodies.

const QUOTA_ERROR: &str = r#"{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "10"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "22s"
      }
    ]
  }
}"#;

#[test]
fn error_bodies() {
    assert_eq!(
        error_message(QUOTA_ERROR.as_bytes()),
        Some((
            "RESOURCE_EXHAUSTED".to_owned(),
            "You exceeded your current quota, please check your plan and billing details.".to_owned()
        ))
    );
    assert_eq!(retry_delay(QUOTA_ERROR.as_bytes()), Some(Duration::from_secs(22)));
    // The array form (streamGenerateContent without alt=sse).
    let array = format!("[{QUOTA_ERROR}]");
    assert_eq!(error_message(array.as_bytes()).unwrap().0, "RESOURCE_EXHAUSTED");
    assert_eq!(retry_delay(array.as_bytes()), Some(Duration::from_secs(22)));
    // Missing fields are empty.
    assert_eq!(error_message(br#"{"error":{"code":400}}"#), Some((String::new(), String::new())));
    assert_eq!(
        error_message(br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#),
        Some(("INVALID_ARGUMENT".to_owned(), "API key not valid.".to_owned()))
    );
    for body in [&b"not json"[..], b"{}", br#"{"error":null}"#, br#"{"error":"text"}"#, b"[]", br#"{"candidates":[]}"#]
    {
        assert_eq!(error_message(body), None, "{}", String::from_utf8_lossy(body));
        assert_eq!(retry_delay(body), None);
    }
}

#[test]
fn retry_delays() {
    let body = |delay: &str| {
        format!(
            r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{delay}}}]}}}}"#
        )
    };
    for (delay, expected) in [
        (r#""22s""#, Some(Duration::from_secs(22))),
        (r#""1.5s""#, Some(Duration::from_millis(1500))),
        (r#""0.000001s""#, Some(Duration::from_micros(1))),
        (r#""3.123456789s""#, Some(Duration::new(3, 123_456_789))),
        (r#""0s""#, Some(Duration::ZERO)),
        (r#""3.1234567891s""#, None),
        (r#""-1s""#, None),
        (r#""+1s""#, None),
        (r#""1""#, None),
        (r#"".5s""#, None),
        (r#""1.s""#, Some(Duration::from_secs(1))),
        (r#""abc""#, None),
        ("22", None),
        (r#"{"seconds":22}"#, None),
    ] {
        assert_eq!(retry_delay(body(delay).as_bytes()), expected, "{delay}");
    }
    // Only a RetryInfo detail counts.
    let other = r#"{"error":{"details":[{"@type":"type.googleapis.com/google.rpc.Help","retryDelay":"5s"},{"retryDelay":"6s"}]}}"#;
    assert_eq!(retry_delay(other.as_bytes()), None);
    assert_eq!(retry_delay(br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}"#), None);
}

// ---------------------------------------------------------------------------------
// Properties.

fn arguments_value(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => json!({}),
    }
}

/// What the request promises to keep, read from the canonical messages: the calls
/// (id, name, args, signature of the part) in order, the text parts of model turns (text,
/// signature) in order, and the function responses (id, name, response) in order.
#[derive(Debug, Default, PartialEq)]
struct Kept {
    calls: Vec<(Option<String>, String, Value, Option<String>)>,
    model_texts: Vec<(String, Option<String>)>,
    responses: Vec<(Option<String>, String, Value)>,
}

fn expected_kept(messages: &[Message]) -> Kept {
    let mut kept = Kept::default();
    for (position, message) in messages.iter().enumerate() {
        let signature =
            message.reasoning_signature.as_deref().and_then(llmux_types::chat::gemini_signature).map(str::to_owned);
        match message.role {
            Role::Assistant => {
                let texts: Vec<&String> = message
                    .content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text(text) if !text.is_empty() => Some(text),
                        _ => None,
                    })
                    .collect();
                for (at, text) in texts.iter().enumerate() {
                    let signed = message.tool_calls.is_empty() && at + 1 == texts.len();
                    kept.model_texts.push(((*text).clone(), signature.clone().filter(|_| signed)));
                }
                for (at, call) in message.tool_calls.iter().enumerate() {
                    kept.calls.push((
                        Some(call.id.clone()).filter(|id| !id.is_empty()),
                        call.name.clone(),
                        arguments_value(&call.arguments),
                        signature.clone().filter(|_| at == 0),
                    ));
                }
            }
            Role::Tool => {
                let id = message.tool_call_id.clone().filter(|id| !id.is_empty());
                let mut name = id.clone().unwrap_or_default();
                'search: for earlier in messages[..position].iter().rev() {
                    if earlier.role == Role::Assistant {
                        for call in &earlier.tool_calls {
                            if Some(&call.id) == id.as_ref() {
                                name = call.name.clone();
                                break 'search;
                            }
                        }
                    }
                }
                let output = message
                    .content
                    .iter()
                    .filter_map(|part| match part {
                        ContentPart::Text(text) if !text.is_empty() => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                let response = match serde_json::from_str::<Value>(&output) {
                    _ if message.tool_error => json!({"error": output}),
                    Ok(object @ Value::Object(_)) => object,
                    _ => json!({"output": output}),
                };
                kept.responses.push((id, name, response));
            }
            _ => {}
        }
    }
    kept
}

fn wire_kept(contents: &[Value]) -> Kept {
    let mut kept = Kept::default();
    let string = |value: &Value| value.as_str().map(str::to_owned);
    for content in contents {
        for part in content["parts"].as_array().unwrap() {
            let signature = string(&part["thoughtSignature"]);
            if let Some(call) = part.get("functionCall") {
                kept.calls.push((string(&call["id"]), string(&call["name"]).unwrap(), call["args"].clone(), signature));
            } else if let Some(response) = part.get("functionResponse") {
                kept.responses.push((
                    string(&response["id"]),
                    string(&response["name"]).unwrap(),
                    response["response"].clone(),
                ));
            } else if content["role"] == "model"
                && let Some(text) = string(&part["text"])
            {
                kept.model_texts.push((text, signature));
            }
        }
    }
    kept
}

proptest! {
    /// Any byte-level chunking of the SSE transcript yields the same canonical events.
    #[test]
    fn transcript_chunking_does_not_change_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24)) {
        let chunks = cut_at(fixture("stream"), &cuts);
        prop_assert_eq!(decode_transcript(&chunks), expected_transcript_events());
    }

    /// canonical -> Gemini body: what Gemini requires of the body holds, and tool call ids,
    /// names, arguments, responses and signatures survive where they belong.
    #[test]
    fn request_keeps_calls_responses_and_signatures(request in arb_request()) {
        let (body, dropped) = generate_content_request(&request);
        let wire: Value = serde_json::from_slice(&body).unwrap();
        let contents = wire["contents"].as_array().unwrap();
        for (position, content) in contents.iter().enumerate() {
            let role = content["role"].as_str().unwrap();
            prop_assert!(role == "user" || role == "model");
            if position > 0 {
                prop_assert_ne!(role, contents[position - 1]["role"].as_str().unwrap(), "roles alternate");
            }
            let parts = content["parts"].as_array().unwrap();
            prop_assert!(!parts.is_empty());
            let responses = parts.iter().take_while(|part| part.get("functionResponse").is_some()).count();
            prop_assert!(parts[responses..].iter().all(|part| part.get("functionResponse").is_none()), "responses first");
            for part in parts {
                let data = ["text", "inlineData", "fileData", "functionCall", "functionResponse"]
                    .iter()
                    .filter(|field| part.get(**field).is_some())
                    .count();
                prop_assert_eq!(data, 1, "one data field per part: {}", part);
                prop_assert!(part.get("text").is_none_or(|text| text != ""), "no empty text");
                prop_assert!(part.get("functionCall").is_none() || role == "model");
                prop_assert!(part.get("functionResponse").is_none() || role == "user");
                if let Some(response) = part.get("functionResponse") {
                    prop_assert!(response["response"].is_object());
                }
                if let Some(call) = part.get("functionCall") {
                    prop_assert!(call["args"].is_object());
                }
            }
        }
        prop_assert_eq!(wire_kept(contents), expected_kept(&request.messages));

        let system: Vec<String> = request
            .messages
            .iter()
            .filter(|message| matches!(message.role, Role::System | Role::Developer))
            .flat_map(|message| message.content.iter())
            .filter_map(|part| match part {
                ContentPart::Text(text) if !text.is_empty() => Some(text.clone()),
                _ => None,
            })
            .collect();
        let wire_system: Vec<String> = wire["systemInstruction"]["parts"]
            .as_array()
            .map(|parts| parts.iter().map(|part| part["text"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        prop_assert_eq!(wire_system, system);

        let config = &wire["generationConfig"];
        prop_assert_eq!(config.get("maxOutputTokens").and_then(Value::as_u64), request.max_tokens);
        prop_assert_eq!(config.get("topK").and_then(Value::as_u64), request.top_k.map(u64::from));
        prop_assert_eq!(config.get("candidateCount").and_then(Value::as_u64), request.n.map(u64::from));
        let stops: Vec<String> = config
            .get("stopSequences")
            .map(|stops| serde_json::from_value(stops.clone()).unwrap())
            .unwrap_or_default();
        prop_assert_eq!(&stops, &request.stop);
        let fits = request.seed.map(|seed| i32::try_from(seed).is_ok());
        prop_assert_eq!(config.get("seed").and_then(Value::as_i64), request.seed.filter(|_| fits == Some(true)));
        prop_assert_eq!(dropped.contains(&"seed"), fits == Some(false));
        prop_assert_eq!(
            dropped.contains(&"parallel_tool_calls"),
            request.extensions.get("parallel_tool_calls").is_some_and(|raw| raw.get() == "false")
        );
        let declarations = wire["tools"][0]["functionDeclarations"].as_array().map_or(0, Vec::len);
        prop_assert_eq!(declarations, request.tools.len());
        prop_assert_eq!(wire.get("toolConfig").is_some(), request.tool_choice.is_some() && !request.tools.is_empty());
    }

    /// Gemini response -> canonical -> the next request: the model turn goes back with the
    /// same calls (ids, names, arguments), text, and the signature on its first call.
    #[test]
    fn response_calls_and_signature_go_back_unchanged(
        text in "[a-zA-Z0-9 \u{e9}\u{1f600}]{0,8}",
        calls in proptest::collection::vec(
            (proptest::option::of("[a-zA-Z0-9_-]{1,10}"), "[a-z_]{1,8}", arb_args()),
            0..4,
        ),
        signature in proptest::option::of("[A-Za-z0-9+/]{4,16}={0,2}"),
        streamed in any::<bool>(),
    ) {
        let mut parts = Vec::new();
        if !text.is_empty() {
            parts.push(json!({"text": text}));
        }
        for (at, (id, name, args)) in calls.iter().enumerate() {
            let mut call = json!({"name": name, "args": args});
            if let Some(id) = id {
                call["id"] = json!(id);
            }
            let mut part = json!({"functionCall": call});
            if at == 0 && let Some(signature) = &signature {
                part["thoughtSignature"] = json!(signature);
            }
            parts.push(part);
        }
        if calls.is_empty() && let Some(signature) = &signature {
            parts.push(json!({"text": "", "thoughtSignature": signature}));
        }
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "responseId": "r",
            "modelVersion": "m"
        })
        .to_string();

        let mut assistant = message(Role::Assistant, Vec::new());
        if streamed {
            // The same, streamed in one chunk, accumulated as a relay would.
            let mut decoder = StreamDecoder::new();
            for event in decoder.decode(body.as_bytes()).unwrap() {
                match event {
                    StreamEvent::Text { text, .. } => assistant.content.push(ContentPart::Text(text.into_owned())),
                    StreamEvent::ToolCall { id, name, arguments, .. } => assistant.tool_calls.push(ToolCall {
                        id: id.unwrap().into_owned(),
                        name: name.unwrap().into_owned(),
                        arguments: arguments.into_owned(),
                    }),
                    StreamEvent::ReasoningSignature { signature, .. } => assistant.reasoning_signature = Some(signature.into_owned()),
                    _ => {}
                }
            }
        } else {
            let choice = choice0(body.as_bytes());
            prop_assert_eq!(choice.finish_reason, if calls.is_empty() { FinishReason::Stop } else { FinishReason::ToolCalls });
            assistant.content = choice.content.into_iter().map(ContentPart::Text).collect();
            assistant.tool_calls = choice.tool_calls;
            assistant.reasoning_signature = choice.reasoning_signature;
        }
        let request = ChatRequest {
            messages: vec![message(Role::User, vec![self::text("q")]), assistant],
            ..ChatRequest::default()
        };
        let (wire, _) = encode(&request);
        let model_parts: Vec<Value> = wire["contents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|content| content["role"] == "model")
            .flat_map(|content| content["parts"].as_array().unwrap().clone())
            .collect();
        let sent_calls: Vec<&Value> = model_parts.iter().filter(|part| part.get("functionCall").is_some()).collect();
        prop_assert_eq!(sent_calls.len(), calls.len());
        for (at, (sent, (id, name, args))) in sent_calls.iter().zip(&calls).enumerate() {
            let expected_id = id.clone().unwrap_or_else(|| format!("call_r_{at}"));
            prop_assert_eq!(&sent["functionCall"]["id"], &json!(expected_id));
            prop_assert_eq!(&sent["functionCall"]["name"], &json!(name));
            prop_assert_eq!(&sent["functionCall"]["args"], args);
            prop_assert_eq!(sent.get("thoughtSignature").cloned(), signature.clone().filter(|_| at == 0).map(Value::from));
        }
        let sent_text: String = model_parts.iter().filter_map(|part| part["text"].as_str()).collect();
        prop_assert_eq!(&sent_text, &text);
        if calls.is_empty() {
            // The signature rides on the last text part, or is lost with no text to carry it.
            let carried = model_parts.last().and_then(|part| part.get("thoughtSignature")).cloned();
            prop_assert_eq!(carried, signature.filter(|_| !text.is_empty()).map(Value::from));
        }
    }
}

fn arb_args() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        ("[a-z]{1,4}", any::<i32>()).prop_map(|(key, value)| json!({ key: value })),
        ("[a-z]{1,4}", "[a-z \u{e9}\"\\\\]{0,6}")
            .prop_map(|(key, value)| json!({ key: {"nested": [value, null, true]} })),
    ]
}

fn arb_text() -> impl Strategy<Value = String> + Clone {
    "[a-zA-Z0-9 \"\\\\\n\u{e9}\u{1f600}]{0,8}"
}

fn arb_part() -> impl Strategy<Value = ContentPart> + Clone {
    prop_oneof![
        3 => arb_text().prop_map(ContentPart::Text),
        1 => "https://[a-z]{1,6}\\.example/[a-z]{1,4}\\.(png|pdf|bin)".prop_map(|url| image(&url)),
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
    // Few ids, so that ids repeat across turns as generated `call_<n>` ids do.
    ("(call_[0-2]|fc_[a-z]{1,4}|)", "[a-z_]{1,8}", arguments).prop_map(|(id, name, arguments)| ToolCall {
        id,
        name,
        arguments,
    })
}

fn arb_tool_output() -> impl Strategy<Value = Vec<ContentPart>> {
    prop_oneof![
        2 => proptest::collection::vec(arb_part(), 0..3),
        1 => Just(vec![text(r#"{"ok": true, "n": 1.50}"#)]),
        1 => Just(vec![text("{\"a\":"), text(""), text("2}")]),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let texts = proptest::collection::vec(arb_text(), 0..3);
    let parts = proptest::collection::vec(arb_part(), 0..3);
    prop_oneof![
        1 => (prop_oneof![Just(Role::System), Just(Role::Developer)], texts.clone())
            .prop_map(|(role, texts)| message(role, texts.into_iter().map(ContentPart::Text).collect())),
        2 => parts.prop_map(|parts| message(Role::User, parts)),
        2 => (
            texts,
            proptest::collection::vec(arb_call(), 0..3),
            proptest::option::of((arb_text(), "[A-Za-z0-9+/=]{0,6}")),
            proptest::collection::vec("[A-Za-z0-9+/]{1,6}", 0..2),
        )
            .prop_map(|(texts, calls, reasoning, redacted)| {
                let mut message = message(Role::Assistant, texts.into_iter().map(ContentPart::Text).collect());
                message.tool_calls = calls;
                if let Some((reasoning, signature)) = reasoning {
                    message.reasoning = Some(reasoning);
                    message.reasoning_signature = Some(format!("gemini:{signature}"));
                }
                message.redacted_reasoning = redacted;
                message
            }),
        2 => (arb_tool_output(), "(call_[0-2]|fc_[a-z]{1,4}|)", any::<bool>())
            .prop_map(|(parts, id, error)| tool_message(&id, parts, error)),
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
            proptest::collection::vec(arb_message(), 0..10),
            proptest::collection::vec(arb_tool(), 0..3),
            proptest::collection::vec("[A-Z#]{1,5}", 0..4),
            proptest::option::of(1u64..100_000),
        ),
        (
            proptest::option::of(prop_oneof![
                Just(ToolChoice::None),
                Just(ToolChoice::Auto),
                Just(ToolChoice::Required),
                "[a-z]{1,5}".prop_map(ToolChoice::Function),
            ]),
            proptest::option::of(0u32..100),
            proptest::option::of(any::<bool>()),
            proptest::option::of(1u32..3),
            proptest::option::of(prop_oneof![any::<i64>(), any::<i32>().prop_map(i64::from)]),
        ),
    )
        .prop_map(|((messages, tools, stop, max_tokens), (tool_choice, top_k, parallel, n, seed))| {
            let mut extensions = std::collections::BTreeMap::new();
            if let Some(parallel) = parallel {
                extensions.insert("parallel_tool_calls".to_owned(), raw(&parallel.to_string()));
            }
            ChatRequest {
                model: "client-model".into(),
                messages,
                tools,
                stop,
                max_tokens,
                tool_choice,
                top_k,
                n,
                seed,
                extensions,
                ..ChatRequest::default()
            }
        })
}

// ---------------------------------------------------------------------------------
// Signatures across dialects: Gemini's reach OpenAI clients on the call they sign and
// come back; no provider ever gets another's.

fn signed_turn(signature: &str) -> Message {
    let mut turn = message(Role::Assistant, vec![text("Checking.")]);
    turn.tool_calls = vec![call("fc_1", "get_weather", r#"{"city":"Paris"}"#), call("fc_2", "now", "{}")];
    turn.reasoning = Some("thought".into());
    turn.reasoning_signature = Some(signature.into());
    turn
}

fn request_with(turn: Message) -> ChatRequest {
    ChatRequest {
        messages: vec![message(Role::User, vec![text("q")]), turn, tool_message("fc_1", vec![text("sunny")], false)],
        ..ChatRequest::default()
    }
}

#[test]
fn another_providers_signature_is_never_sent_to_gemini_nor_gemini_s_to_anthropic() {
    let (body, _) = generate_content_request(&request_with(signed_turn("EqQBCkgIBRABGAIiQL==")));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["contents"][1]["parts"].as_array().unwrap().iter().all(|part| part.get("thoughtSignature").is_none()));

    let (body, _) =
        crate::anthropic::upstream::messages_request(&request_with(signed_turn("gemini:c2ln")), "claude", 1024);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let blocks = body["messages"][1]["content"].as_array().unwrap();
    assert!(blocks.iter().all(|block| block["type"] != "thinking"), "{blocks:?}");
    assert_eq!(blocks.iter().filter(|block| block["type"] == "tool_use").count(), 2);
}

#[test]
fn gemini_signatures_ride_on_the_first_openai_tool_call_and_come_back() {
    let answer = generate_content_response(fixture("function_call")).unwrap();
    let signature = answer.choices[0].reasoning_signature.clone().unwrap();
    let raw = signature.strip_prefix("gemini:").unwrap().to_owned();
    let body: Value = serde_json::from_slice(&crate::openai::encode::chat_response(&answer)).unwrap();
    let calls = body["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["extra_content"], json!({"google": {"thought_signature": raw}}));
    assert!(calls[1..].iter().all(|call| call.get("extra_content").is_none()));

    // The client sends the message back as it got it; the signature is Gemini's again.
    let next = json!({"model": "m", "messages": [
        {"role": "user", "content": "q"},
        body["choices"][0]["message"].clone(),
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
    ]});
    let request = crate::openai::decode::chat_request(next.to_string().as_bytes()).unwrap();
    assert_eq!(request.messages[1].reasoning_signature.as_deref(), Some(signature.as_str()));
    let (sent, _) = generate_content_request(&request);
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    let first_call =
        sent["contents"][1]["parts"].as_array().unwrap().iter().find(|part| part.get("functionCall").is_some());
    assert_eq!(first_call.unwrap()["thoughtSignature"], json!(raw));

    // Anthropic's signatures have no place in OpenAI's answer.
    let mut anthropic = answer.clone();
    anthropic.choices[0].reasoning_signature = Some("EqQBCkgIBRABGAIiQL==".into());
    let body: Value = serde_json::from_slice(&crate::openai::encode::chat_response(&anthropic)).unwrap();
    assert!(body["choices"][0]["message"]["tool_calls"][0].get("extra_content").is_none());
}

#[test]
fn streamed_gemini_signatures_ride_on_the_first_fragment_of_the_call() {
    let mut encoder = ChatStreamEncoder::new(false);
    let mut out = Vec::new();
    for event in [
        StreamEvent::Start { id: "r".into(), model: "g".into(), created: 0 },
        StreamEvent::Text { choice: 0, text: "hi".into() },
        // A text part's signature, no call after it on this choice yet: held.
        StreamEvent::ReasoningSignature { choice: 0, signature: "gemini:c2ln".into() },
        StreamEvent::ToolCall {
            choice: 0,
            index: 0,
            id: Some("fc_1".into()),
            name: Some("f".into()),
            arguments: "{}".into(),
        },
        StreamEvent::ToolCall {
            choice: 0,
            index: 1,
            id: Some("fc_2".into()),
            name: Some("g".into()),
            arguments: "{}".into(),
        },
        StreamEvent::ReasoningSignature { choice: 0, signature: "EqQBCkgIBRABGAIiQL==".into() },
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
    ] {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    let calls: Vec<Value> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| {
            serde_json::from_str::<Value>(data).unwrap()["choices"][0]["delta"]["tool_calls"].get(0).cloned()
        })
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["extra_content"], json!({"google": {"thought_signature": "c2ln"}}));
    assert!(calls[1].get("extra_content").is_none());
}

#[test]
fn gemini_signatures_ride_in_anthropic_tool_use_ids_and_come_back() {
    let answer = generate_content_response(fixture("function_call")).unwrap();
    let signature = answer.choices[0].reasoning_signature.clone().unwrap();
    let raw = signature.strip_prefix("gemini:").unwrap().to_owned();
    let first_id = answer.choices[0].tool_calls[0].id.clone();

    // Complete answer: no thinking block for it; the first tool_use id carries it.
    let message: Value = serde_json::from_slice(&crate::anthropic::encode::messages_response(&answer)).unwrap();
    let blocks = message["content"].as_array().unwrap();
    assert!(blocks.iter().all(|block| block["type"] != "thinking" || block["signature"] == ""), "{blocks:?}");
    let tool_uses: Vec<&Value> = blocks.iter().filter(|block| block["type"] == "tool_use").collect();
    let signed_id = tool_uses[0]["id"].as_str().unwrap().to_owned();
    assert!(signed_id.starts_with(&format!("{first_id}__gsig")), "{signed_id}");
    assert!(signed_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "Anthropic's id pattern");
    assert!(tool_uses[1..].iter().all(|block| !block["id"].as_str().unwrap().contains("__gsig")));

    // Streamed: the same id.
    let mut encoder = crate::anthropic::encode::MessagesStreamEncoder::new("m");
    let mut out = Vec::new();
    for event in [
        StreamEvent::Text { choice: 0, text: "Checking.".into() },
        StreamEvent::ReasoningSignature { choice: 0, signature: signature.clone().into() },
        StreamEvent::ToolCall {
            choice: 0,
            index: 0,
            id: Some(first_id.clone().into()),
            name: Some("f".into()),
            arguments: "{}".into(),
        },
        StreamEvent::Finish { choice: 0, reason: FinishReason::ToolCalls },
    ] {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(&mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("\"thinking\""), "no thinking block after text: {text}");
    assert!(text.contains(&format!("\"id\":\"{signed_id}\"")), "{text}");

    // The client sends the turn and its tool result back; Gemini gets its signature and
    // the plain ids.
    let next = json!({"model": "m", "max_tokens": 100, "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": signed_id, "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": signed_id, "content": "sunny"}]},
    ]});
    let request = crate::anthropic::decode::messages_request(next.to_string().as_bytes()).unwrap();
    assert_eq!(request.messages[1].tool_calls[0].id, first_id);
    assert_eq!(request.messages[1].reasoning_signature.as_deref(), Some(signature.as_str()));
    assert_eq!(request.messages[2].tool_call_id.as_deref(), Some(first_id.as_str()));
    let (sent, _) = generate_content_request(&request);
    let sent: Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(sent["contents"][1]["parts"][0]["thoughtSignature"], json!(raw));
    assert_eq!(sent["contents"][1]["parts"][0]["functionCall"]["id"], json!(first_id));
    assert_eq!(sent["contents"][2]["parts"][0]["functionResponse"]["id"], json!(first_id));
}
