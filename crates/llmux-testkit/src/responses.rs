//! The OpenAI Responses API side of [`FakeUpstream`](crate::FakeUpstream): answers as
//! OpenAI writes them (response objects, and the event sequence with `sequence_number`
//! on every event), and the checks OpenAI makes of a request body before answering
//! ([`body_problems`]; the fake answers 400 to a body that fails them).

use serde_json::{Value, json};

use crate::Reply;

/// `usage` of a response object.
pub fn usage(input: u64, output: u64, cached: u64, reasoning: u64) -> Value {
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output
    })
}

/// A response object of `model` with `status`, `output` items and `usage`.
pub fn response_object(status: &str, output: Vec<Value>, usage: Value) -> Value {
    json!({
        "id": "resp_fake0001", "object": "response", "created_at": 1756000000, "status": status,
        "background": false, "error": null, "incomplete_details": null, "instructions": null,
        "max_output_tokens": null, "model": "fake-responses-model", "output": output,
        "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null}, "service_tier": "default", "store": false,
        "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto", "tools": [], "top_p": 1.0, "truncation": "disabled",
        "usage": usage, "user": null, "metadata": {}
    })
}

/// A completed `message` output item saying `text`.
pub fn message_item(text: &str) -> Value {
    json!({"id": "msg_fake0001", "type": "message", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]})
}

/// A completed `function_call` output item.
pub fn call_item(call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": "fc_fake0001", "type": "function_call", "status": "completed", "arguments": arguments,
           "call_id": call_id, "name": name})
}

/// A stream body: each event named by its `type`, numbered from 0.
pub fn sse(events: Vec<Value>) -> String {
    let mut body = String::new();
    for (sequence, mut event) in events.into_iter().enumerate() {
        event["sequence_number"] = json!(sequence);
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        body.push_str(&format!("event: {kind}\ndata: {event}\n\n"));
    }
    body
}

impl Reply {
    /// A complete response saying `text`.
    pub fn responses_text(text: &str, usage: Value) -> Reply {
        Reply::status(200, &response_object("completed", vec![message_item(text)], usage).to_string())
    }

    /// A complete response calling function `name`.
    pub fn responses_call(call_id: &str, name: &str, arguments: &str, usage: Value) -> Reply {
        Reply::status(200, &response_object("completed", vec![call_item(call_id, name, arguments)], usage).to_string())
    }

    /// A streamed response saying `pieces`, as OpenAI streams it.
    pub fn responses_stream(pieces: &[&str], usage: Value) -> Reply {
        let text: String = pieces.concat();
        let (item, part) = (json!({"item_id": "msg_fake0001", "output_index": 0}), json!({"content_index": 0}));
        let with = |mut event: Value, extra: &Value| {
            for (name, value) in extra.as_object().into_iter().flatten() {
                event[name] = value.clone();
            }
            event
        };
        let open = json!({"id": "msg_fake0001", "type": "message", "status": "in_progress", "role": "assistant", "content": []});
        let empty = json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""});
        let mut events = start_events();
        events.push(json!({"type": "response.output_item.added", "output_index": 0, "item": open}));
        events.push(with(with(json!({"type": "response.content_part.added", "part": empty}), &item), &part));
        for piece in pieces {
            let delta =
                json!({"type": "response.output_text.delta", "delta": piece, "logprobs": [], "obfuscation": "Xy"});
            events.push(with(with(delta, &item), &part));
        }
        let done = json!({"type": "response.output_text.done", "text": text, "logprobs": []});
        events.push(with(with(done, &item), &part));
        let whole = message_item(&text);
        let part_done = json!({"type": "response.content_part.done", "part": whole["content"][0].clone()});
        events.push(with(with(part_done, &item), &part));
        events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": whole}));
        events
            .push(json!({"type": "response.completed", "response": response_object("completed", vec![whole], usage)}));
        Reply::RawSse(sse(events))
    }

    /// A streamed response calling function `name`, its arguments in `pieces`.
    pub fn responses_call_stream(call_id: &str, name: &str, pieces: &[&str], usage: Value) -> Reply {
        let arguments: String = pieces.concat();
        let mut events = start_events();
        let open = json!({"id": "fc_fake0001", "type": "function_call", "status": "in_progress", "arguments": "",
                          "call_id": call_id, "name": name});
        events.push(json!({"type": "response.output_item.added", "output_index": 0, "item": open}));
        for piece in pieces {
            events.push(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_fake0001",
                               "output_index": 0, "delta": piece, "obfuscation": "Q"}));
        }
        events.push(json!({"type": "response.function_call_arguments.done", "item_id": "fc_fake0001",
                           "output_index": 0, "arguments": arguments}));
        let whole = call_item(call_id, name, &arguments);
        events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": whole}));
        events
            .push(json!({"type": "response.completed", "response": response_object("completed", vec![whole], usage)}));
        Reply::RawSse(sse(events))
    }
}

fn start_events() -> Vec<Value> {
    let head = response_object("in_progress", Vec::new(), Value::Null);
    vec![
        json!({"type": "response.created", "response": head}),
        json!({"type": "response.in_progress", "response": head}),
    ]
}

/// Chat Completions parameters the Responses API does not know (OpenAI answers
/// `Unknown parameter`).
const CHAT_ONLY: &[&str] = &[
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "seed",
    "response_format",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "functions",
    "function_call",
    "reasoning_effort",
];

/// What OpenAI would refuse in a Responses API request body (empty: nothing).
pub fn body_problems(body: &[u8]) -> Vec<String> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return vec!["We could not parse the JSON body of your request.".to_owned()];
    };
    let mut problems = Vec::new();
    for required in ["model", "input"] {
        if !body.contains_key(required) {
            problems.push(format!("Missing required parameter: '{required}'."));
        }
    }
    if body.get("model").is_some_and(|model| !model.is_string()) {
        problems.push("Invalid type for 'model': expected a string.".to_owned());
    }
    for name in CHAT_ONLY.iter().filter(|name| body.contains_key(**name)) {
        problems.push(format!("Unknown parameter: '{name}'."));
    }
    for flag in ["store", "stream"] {
        if body.get(flag).is_some_and(|value| !value.is_boolean()) {
            problems.push(format!("Invalid type for '{flag}': expected a boolean."));
        }
    }
    if let Some(max) = body.get("max_output_tokens").and_then(Value::as_u64)
        && max < 16
    {
        problems.push(format!(
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {max} instead."
        ));
    }
    for (index, tool) in body.get("tools").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if tool.get("type").and_then(Value::as_str) == Some("function") {
            if tool.get("function").is_some() {
                problems.push(format!("Unknown parameter: 'tools[{index}].function'."));
            }
            if !tool.get("name").is_some_and(Value::is_string) {
                problems.push(format!("Missing required parameter: 'tools[{index}].name'."));
            }
        }
    }
    if body.get("tool_choice").is_some_and(|choice| choice.get("function").is_some()) {
        problems.push("Unknown parameter: 'tool_choice.function'.".to_owned());
    }
    if let Some(items) = body.get("input").and_then(Value::as_array) {
        input_problems(items, &mut problems);
    } else if body.get("input").is_some_and(|input| !input.is_string()) {
        problems.push("Invalid type for 'input': expected a string or an array of items.".to_owned());
    }
    problems
}

fn input_problems(items: &[Value], problems: &mut Vec<String>) {
    let mut calls = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        let string = |name: &str| item.get(name).and_then(Value::as_str);
        match kind {
            "message" => {
                let role = string("role").unwrap_or_default();
                if !["user", "assistant", "system", "developer"].contains(&role) {
                    problems.push(format!(
                        "Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user' (input[{index}].role)."
                    ));
                }
                let parts = match item.get("content") {
                    Some(Value::String(_)) => Vec::new(),
                    Some(Value::Array(parts)) => parts.iter().filter_map(|part| part["type"].as_str()).collect(),
                    _ => {
                        problems.push(format!("Missing required parameter: 'input[{index}].content'."));
                        Vec::new()
                    }
                };
                let allowed: &[&str] = if role == "assistant" {
                    &["output_text", "refusal"]
                } else {
                    &["input_text", "input_image", "input_file"]
                };
                for part in parts.iter().filter(|part| !allowed.contains(part)) {
                    problems
                        .push(format!("Invalid value: '{part}' for a content part of role '{role}' (input[{index}])."));
                }
            }
            "function_call" => {
                for name in ["call_id", "name", "arguments"] {
                    if string(name).is_none() {
                        problems.push(format!("Missing required parameter: 'input[{index}].{name}'."));
                    }
                }
                calls.extend(string("call_id"));
            }
            "function_call_output" => match string("call_id") {
                None => problems.push(format!("Missing required parameter: 'input[{index}].call_id'.")),
                Some(call_id) if !calls.contains(&call_id) => {
                    problems.push(format!("No tool call found for function call output with call_id {call_id}."));
                }
                Some(_) if item.get("output").is_none() => {
                    problems.push(format!("Missing required parameter: 'input[{index}].output'."));
                }
                Some(_) => {}
            },
            "reasoning" => {
                if string("id").is_none() {
                    problems.push(format!("Missing required parameter: 'input[{index}].id'."));
                }
            }
            // Items of hosted and custom tools, and references to stored items.
            "item_reference"
            | "web_search_call"
            | "custom_tool_call"
            | "custom_tool_call_output"
            | "local_shell_call"
            | "local_shell_call_output" => {}
            other => problems.push(format!("Invalid value: '{other}' (input[{index}].type).")),
        }
    }
}
