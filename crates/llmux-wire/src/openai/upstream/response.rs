//! OpenAI Chat Completions response -> canonical response, and what the stream decoder
//! shares with it (finish reasons, error messages, inline `<think>` tags).

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, Choice, FinishReason, ToolCall};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::json::compact_json;
use crate::openai::usage::UsageWire as UsageIn;
use crate::upstream::parse_body;

#[derive(Deserialize)]
struct ResponseIn {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    choices: Option<Vec<ChoiceIn>>,
    usage: Option<UsageIn>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    index: Option<u32>,
    message: Option<MessageIn>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct MessageIn {
    content: Option<ContentIn>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ContentIn {
    Text(String),
    Parts(Vec<PartIn>),
}

#[derive(Deserialize)]
struct PartIn {
    text: Option<String>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    id: Option<String>,
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    name: Option<String>,
    arguments: Option<Box<RawValue>>,
}

/// Tool arguments as a string: a JSON string's value, or (non-standard upstreams that
/// send an object) the compact JSON.
fn arguments_of(raw: Option<&RawValue>) -> String {
    match raw {
        None => String::new(),
        Some(raw) if raw.get().trim() == "null" => String::new(),
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(text) => text,
            Err(_) => compact_json(raw.get()),
        },
    }
}

pub(super) fn finish_reason(reason: Option<&str>, made_tool_calls: bool) -> FinishReason {
    match reason {
        Some("stop") | None if made_tool_calls => FinishReason::ToolCalls,
        Some("stop") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

pub(super) fn error_message(error: &serde_json::Value) -> String {
    match error {
        serde_json::Value::String(message) => message.clone(),
        serde_json::Value::Object(object) => match object.get("message") {
            Some(serde_json::Value::String(message)) => message.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// Splits an inline `<think>...</think>` at the very start of `content` (leading
/// whitespace allowed) into (reasoning, rest). An unclosed tag makes everything
/// reasoning. Both sides are trimmed where they meet the tags.
pub fn split_think(content: &str) -> Option<(String, String)> {
    let rest = content.trim_start().strip_prefix(THINK_OPEN)?;
    Some(match rest.find(THINK_CLOSE) {
        Some(end) => (rest[..end].trim().to_owned(), rest[end + THINK_CLOSE.len()..].trim_start().to_owned()),
        None => (rest.trim().to_owned(), String::new()),
    })
}

pub(super) const THINK_OPEN: &str = "<think>";
pub(super) const THINK_CLOSE: &str = "</think>";

/// OpenAI `chat.completion` JSON -> canonical response (all choices).
pub fn chat_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: ResponseIn = parse_body("response", body)?;
    if let Some(error) = &wire.error
        && wire.choices.is_none()
    {
        return Err(DecodeError::new(None, format!("upstream error: {}", error_message(error))));
    }
    let Some(choices_in) = wire.choices else {
        return Err(DecodeError::new(None, "upstream response has no `choices`"));
    };
    let mut choices = Vec::with_capacity(choices_in.len());
    for (position, choice) in choices_in.into_iter().enumerate() {
        let message = choice.message.unwrap_or(MessageIn {
            content: None,
            reasoning_content: None,
            reasoning: None,
            tool_calls: None,
        });
        let mut content = match message.content {
            None => None,
            Some(ContentIn::Text(text)) => Some(text),
            Some(ContentIn::Parts(parts)) => Some(parts.into_iter().filter_map(|part| part.text).collect()),
        };
        let mut reasoning = message.reasoning_content.or(message.reasoning).filter(|r| !r.is_empty());
        if reasoning.is_none()
            && let Some((thought, rest)) = content.as_deref().and_then(split_think)
        {
            reasoning = Some(thought).filter(|r| !r.is_empty());
            content = Some(rest);
        }
        let tool_calls: Vec<ToolCall> = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .map(|call| {
                let function = call.function.unwrap_or(FunctionIn { name: None, arguments: None });
                ToolCall {
                    id: call.id.unwrap_or_default(),
                    name: function.name.unwrap_or_default(),
                    arguments: arguments_of(function.arguments.as_deref()),
                }
            })
            .collect();
        choices.push(Choice {
            index: choice.index.unwrap_or(position as u32),
            content: content.filter(|text| !text.is_empty() || tool_calls.is_empty()),
            reasoning,
            reasoning_signature: None,
            redacted_reasoning: Vec::new(),
            finish_reason: finish_reason(choice.finish_reason.as_deref(), !tool_calls.is_empty()),
            tool_calls,
        });
    }
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        created: wire.created.unwrap_or(0),
        model: wire.model.unwrap_or_default(),
        choices,
        usage: wire.usage.map(Usage::from).unwrap_or_default(),
    })
}
