use llmux_types::chat::{ChatRequest, ContentPart, Role, Tool, ToolChoice};
use serde_json::{Value, json};

use super::{encode, user};
use crate::gemini::upstream::generate_content_request;
use crate::test_support::{call, fixture, image, message, raw, text, tool_message};

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
    let expected: Value = serde_json::from_slice(fixture!("gemini-upstream/request_expected.json")).unwrap();
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

    // Claude Code's adaptive thinking with an effort: the level of Gemini's thinking.
    let adaptive = r#"{"type":"adaptive"}"#;
    let (config_value, dropped) = config(&[("output_config", r#"{"effort":"max"}"#), ("thinking", adaptive)]);
    assert_eq!(config_value, json!({"thinkingConfig": {"includeThoughts": true, "thinkingLevel": "HIGH"}}));
    assert!(dropped.is_empty());
    let (config_value, _) = config(&[("output_config", r#"{"effort":"low"}"#)]);
    assert_eq!(config_value, json!({"thinkingConfig": {"includeThoughts": true, "thinkingLevel": "LOW"}}));
    // Never over a budget, never turning thinking back on; what else `output_config`
    // holds (a format) cannot be held, so it is named.
    let budget = r#"{"type":"enabled","budget_tokens":2048}"#;
    let (config_value, _) = config(&[("output_config", r#"{"effort":"high"}"#), ("thinking", budget)]);
    assert_eq!(config_value, json!({"thinkingConfig": {"includeThoughts": true, "thinkingBudget": 2048}}));
    let disabled = r#"{"type":"disabled"}"#;
    let (config_value, _) = config(&[("output_config", r#"{"effort":"high"}"#), ("thinking", disabled)]);
    assert_eq!(config_value, Value::Null);
    let (_, dropped) = config(&[("output_config", r#"{"effort":"low","format":{"type":"json_schema"}}"#)]);
    assert_eq!(dropped, ["output_config"]);
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
        assert_eq!(crate::gemini::upstream::contents::mime_type(url), mime, "{url}");
    }
}
