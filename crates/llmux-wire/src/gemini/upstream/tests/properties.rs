//! Properties of requests, and of answers sent back as the next request.

use llmux_types::chat::{ChatRequest, ContentPart, FinishReason, Message, Role, StreamEvent, ToolCall};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{choice0, encode};
use crate::UpstreamDecoder;
use crate::gemini::upstream::{StreamDecoder, generate_content_request};
use crate::test_support::{
    arb_arguments, arb_assistant_message, arb_call, arb_part, arb_system_message, arb_text, arb_tool, arb_tool_choice,
    message, raw, text, tool_message,
};

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

/// Tool call ids: few, so that ids repeat across turns as generated `call_<n>` ids do.
const CALL_IDS: &str = "(call_[0-2]|fc_[a-z]{1,4}|)";

/// The URLs of images in generated requests.
const PART_URLS: &str = "https://[a-z]{1,6}\\.example/[a-z]{1,4}\\.(png|pdf|bin)";

fn arb_args() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        ("[a-z]{1,4}", any::<i32>()).prop_map(|(key, value)| json!({ key: value })),
        ("[a-z]{1,4}", "[a-z \u{e9}\"\\\\]{0,6}")
            .prop_map(|(key, value)| json!({ key: {"nested": [value, null, true]} })),
    ]
}

fn arb_tool_output() -> impl Strategy<Value = Vec<ContentPart>> {
    prop_oneof![
        2 => proptest::collection::vec(arb_part(PART_URLS), 0..3),
        1 => Just(vec![text(r#"{"ok": true, "n": 1.50}"#)]),
        1 => Just(vec![text("{\"a\":"), text(""), text("2}")]),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let texts = proptest::collection::vec(arb_text(), 0..3);
    let parts = proptest::collection::vec(arb_part(PART_URLS), 0..3);
    prop_oneof![
        1 => arb_system_message(texts.clone()),
        2 => parts.prop_map(|parts| message(Role::User, parts)),
        2 => arb_assistant_message(
            texts,
            arb_call(CALL_IDS, arb_arguments()),
            "[A-Za-z0-9+/=]{0,6}".prop_map(|signature| Some(format!("gemini:{signature}"))),
        ),
        2 => (arb_tool_output(), CALL_IDS, any::<bool>())
            .prop_map(|(parts, id, error)| tool_message(&id, parts, error)),
    ]
}

fn arb_request() -> impl Strategy<Value = ChatRequest> {
    (
        (
            proptest::collection::vec(arb_message(), 0..10),
            proptest::collection::vec(arb_tool(r#"{"type":"object","properties":{"a":{}}}"#), 0..3),
            proptest::collection::vec("[A-Z#]{1,5}", 0..4),
            proptest::option::of(1u64..100_000),
        ),
        (
            arb_tool_choice(),
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
