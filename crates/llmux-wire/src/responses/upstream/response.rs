//! Responses API response object -> canonical response, and what the stream decoder
//! and the same-dialect path share with it (usage, finish reasons, error texts).
//!
//! - `message` items give their `output_text` parts as the content and their `refusal`
//!   parts too (the canonical model has no separate refusal; it reads as the answer);
//!   `reasoning` items give their summary texts (or, without a summary, their
//!   `reasoning_text` parts, as open-weight models served with the Responses API send
//!   them) as the reasoning, joined with a blank line; `function_call` items become tool
//!   calls (`call_id` is the id). Other items (hosted tool calls) are not shown.
//! - `status` `incomplete` is `Length` for `max_output_tokens`, `ContentFilter` for
//!   `content_filter`; `completed` is `ToolCalls` when the output calls a function, else
//!   `Stop`. A `failed` response (or a body with only an `error`) is a [`DecodeError`].
//! - Usage: `input_tokens` (cached included, as OpenAI counts), `input_tokens_details`
//!   `cached_tokens` and `cache_write_tokens`, `output_tokens` (reasoning included),
//!   `output_tokens_details.reasoning_tokens`.

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, Choice, FinishReason, ToolCall};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::json::compact_json;
use crate::upstream::{non_null, parse_body};

/// `usage` of a Responses API response object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsageWire {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Deserialize)]
struct InputDetails {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(wire: UsageWire) -> Usage {
        let input = wire.input_tokens_details.as_ref();
        Usage {
            input_tokens: wire.input_tokens.unwrap_or(0),
            output_tokens: wire.output_tokens.unwrap_or(0),
            cached_tokens: input.and_then(|details| details.cached_tokens).unwrap_or(0),
            reasoning_tokens: wire.output_tokens_details.and_then(|details| details.reasoning_tokens).unwrap_or(0),
            cache_write_tokens: input.and_then(|details| details.cache_write_tokens).unwrap_or(0),
        }
    }
}

/// How a response ended: its `status` and `incomplete_details.reason`, and whether its
/// output calls a function.
pub(crate) fn finish_reason(status: Option<&str>, incomplete: Option<&str>, made_tool_calls: bool) -> FinishReason {
    match (status, incomplete) {
        (Some("incomplete"), Some("max_output_tokens")) => FinishReason::Length,
        (Some("incomplete"), Some("content_filter")) => FinishReason::ContentFilter,
        (Some("incomplete"), Some(other)) => FinishReason::Other(other.to_owned()),
        (Some("incomplete"), None) => FinishReason::Length,
        _ if made_tool_calls => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// The text of an `error` object (`{"code", "message"}`): `code: message`, or what there is.
pub(crate) fn error_text(raw: &RawValue) -> String {
    #[derive(Deserialize)]
    struct ErrorIn {
        code: Option<serde_json::Value>,
        message: Option<String>,
    }
    match serde_json::from_str::<ErrorIn>(raw.get()) {
        Ok(ErrorIn { code: Some(serde_json::Value::String(code)), message: Some(message) }) => {
            format!("{code}: {message}")
        }
        Ok(ErrorIn { message: Some(message), .. }) => message,
        _ => compact_json(raw.get()),
    }
}

#[derive(Deserialize)]
struct ResponseIn<'a> {
    id: Option<String>,
    created_at: Option<f64>,
    model: Option<String>,
    status: Option<String>,
    incomplete_details: Option<IncompleteIn>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    output: Option<Vec<ItemIn<'a>>>,
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
pub(crate) struct IncompleteIn {
    pub reason: Option<String>,
}

#[derive(Deserialize)]
struct ItemIn<'a> {
    #[serde(rename = "type")]
    kind: String,
    content: Option<Vec<PartIn>>,
    summary: Option<Vec<PartIn>>,
    call_id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    id: Option<String>,
    encrypted_content: Option<String>,
}

#[derive(Deserialize)]
struct PartIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    refusal: Option<String>,
}

/// The canonical signature of OpenAI's reasoning item `id` with `encrypted_content`
/// (`openai:<id>:<encrypted content>`: OpenAI takes its reasoning back only with the
/// item's id), if it has both.
pub(crate) fn openai_signature(id: Option<&str>, encrypted_content: Option<&str>) -> Option<String> {
    let (id, sealed) = (id.filter(|id| !id.is_empty())?, encrypted_content.filter(|sealed| !sealed.is_empty())?);
    Some(format!("{}{id}:{sealed}", llmux_types::chat::OPENAI_SIGNATURE_PREFIX))
}

/// Function arguments as a string: a JSON string's value, or (a server that sends an
/// object) the compact JSON.
fn arguments_of(raw: Option<&RawValue>) -> String {
    match non_null(raw) {
        None => String::new(),
        Some(raw) => serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| compact_json(raw.get())),
    }
}

/// Appends `text` to `all`, a blank line between pieces.
fn join(all: &mut Option<String>, text: &str) {
    if text.is_empty() {
        return;
    }
    match all {
        Some(all) => {
            all.push_str("\n\n");
            all.push_str(text);
        }
        None => *all = Some(text.to_owned()),
    }
}

/// A Responses API response object -> canonical response (one choice).
pub fn decode_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: ResponseIn<'_> = parse_body("response", body)?;
    let error = non_null(wire.error);
    if let Some(error) = error
        && (wire.output.is_none() || wire.status.as_deref() == Some("failed"))
    {
        return Err(DecodeError::new(None, format!("upstream error: {}", error_text(error))));
    }
    if wire.status.as_deref() == Some("failed") {
        return Err(DecodeError::new(None, "upstream error: the response failed"));
    }
    let Some(output) = wire.output else {
        return Err(DecodeError::new(None, "upstream response has no `output`"));
    };
    let mut content = String::new();
    let mut reasoning = None;
    let mut reasoning_signature = None;
    let mut tool_calls = Vec::new();
    for item in output {
        match item.kind.as_str() {
            "message" => {
                for part in item.content.into_iter().flatten() {
                    match part.kind.as_deref() {
                        Some("refusal") => content.push_str(part.refusal.as_deref().unwrap_or_default()),
                        _ => content.push_str(part.text.as_deref().unwrap_or_default()),
                    }
                }
            }
            "reasoning" => {
                if let Some(signature) = openai_signature(item.id.as_deref(), item.encrypted_content.as_deref()) {
                    reasoning_signature = Some(signature);
                }
                let summary: Vec<PartIn> = item.summary.unwrap_or_default();
                let texts = if summary.iter().any(|part| part.text.as_deref().is_some_and(|text| !text.is_empty())) {
                    summary
                } else {
                    item.content.unwrap_or_default()
                };
                for part in texts {
                    join(&mut reasoning, part.text.as_deref().unwrap_or_default());
                }
            }
            "function_call" => tool_calls.push(ToolCall {
                id: item.call_id.unwrap_or_default(),
                name: item.name.unwrap_or_default(),
                arguments: arguments_of(item.arguments),
            }),
            _ => {}
        }
    }
    let reason = wire.incomplete_details.and_then(|details| details.reason);
    let finish_reason = finish_reason(wire.status.as_deref(), reason.as_deref(), !tool_calls.is_empty());
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        created: wire.created_at.filter(|at| at.is_finite() && *at >= 0.0).map_or(0, |at| at as u64),
        model: wire.model.unwrap_or_default(),
        choices: vec![Choice {
            index: 0,
            content: Some(content).filter(|text| !text.is_empty() || tool_calls.is_empty()),
            reasoning,
            reasoning_signature,
            redacted_reasoning: Vec::new(),
            finish_reason,
            tool_calls,
        }],
        usage: wire.usage.map(Usage::from).unwrap_or_default(),
    })
}

/// The usage of a complete response object, for metering a body forwarded as it is;
/// `None` if it has none (or is not a response object).
pub fn usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct BodyIn {
        usage: Option<UsageWire>,
    }
    let body: BodyIn = serde_json::from_slice(body.trim_ascii()).ok()?;
    body.usage.map(Usage::from)
}
