//! Anthropic Messages response -> canonical response, and what the stream decoder shares
//! with it: usage counters, stop reasons, content blocks, error objects.

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, Choice, FinishReason, ToolCall};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::anthropic::decode::{Head, RedactedThinkingBlock, TextBlock, ThinkingBlock, ToolUseBlock};
use crate::json::{compact_json, first_byte};
use crate::upstream::{malformed, non_null, parse, parse_body, replace};

#[derive(Deserialize)]
pub(super) struct UsageIn {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens_details: Option<OutputDetailsIn>,
}

#[derive(Deserialize)]
struct OutputDetailsIn {
    thinking_tokens: Option<u64>,
}

/// Anthropic's usage counters as last reported; every reported field replaces the
/// previous value (stream usage is cumulative, never added).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct UsageState {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    thinking: u64,
}

impl UsageState {
    pub(super) fn update(&mut self, wire: &UsageIn) {
        replace(&mut self.input, wire.input_tokens);
        replace(&mut self.cache_read, wire.cache_read_input_tokens);
        replace(&mut self.cache_write, wire.cache_creation_input_tokens);
        replace(&mut self.output, wire.output_tokens);
        replace(&mut self.thinking, wire.output_tokens_details.as_ref().and_then(|details| details.thinking_tokens));
    }

    pub(super) fn canonical(&self) -> Usage {
        Usage {
            input_tokens: self.input.saturating_add(self.cache_read).saturating_add(self.cache_write),
            output_tokens: self.output,
            cached_tokens: self.cache_read,
            reasoning_tokens: self.thinking,
            cache_write_tokens: self.cache_write,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ErrorIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// `<type>: <message>` of an Anthropic error object (the type lets the gateway tell
/// `overloaded_error` from the rest).
pub(super) fn error_text(error: ErrorIn) -> String {
    match (error.kind.filter(|kind| !kind.is_empty()), error.message.filter(|message| !message.is_empty())) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => "unknown upstream error".to_owned(),
    }
}

pub(super) fn finish_reason(stop_reason: Option<&str>, made_tool_calls: bool) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None if made_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}

/// A tool_use `input` as arguments: its compact JSON (`{}` when absent or null).
pub(super) fn arguments_of(input: Option<&RawValue>) -> String {
    match input {
        Some(input) if input.get().trim() != "null" => compact_json(input.get()),
        _ => "{}".to_owned(),
    }
}

/// A content block of an upstream response or `content_block_start`.
pub(super) enum BlockIn<'a> {
    Text(String),
    Thinking(ThinkingBlock),
    RedactedThinking(String),
    ToolUse(ToolUseBlock<'a>),
    /// Server tool blocks and block types this gateway does not know.
    Other,
}

pub(super) fn block_in<'a>(what: &str, raw: &'a RawValue) -> Result<BlockIn<'a>, DecodeError> {
    if first_byte(raw) != b'{' {
        return Err(malformed(what, "expected a content block object"));
    }
    Ok(match parse::<Head>(what, raw)?.kind.as_str() {
        "text" => BlockIn::Text(parse::<TextBlock>(what, raw)?.text),
        "thinking" => BlockIn::Thinking(parse(what, raw)?),
        "redacted_thinking" => BlockIn::RedactedThinking(parse::<RedactedThinkingBlock>(what, raw)?.data),
        "tool_use" => BlockIn::ToolUse(parse(what, raw)?),
        _ => BlockIn::Other,
    })
}

#[derive(Deserialize)]
struct ResponseIn<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    model: Option<String>,
    #[serde(borrow)]
    content: Option<Vec<&'a RawValue>>,
    stop_reason: Option<String>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Anthropic Messages response JSON -> canonical response (one choice, index 0).
///
/// Text blocks are concatenated (`content` is `None` when there is no text but tool
/// calls); thinking blocks become `reasoning` (texts concatenated, `None` when empty) and
/// `reasoning_signature` (the last non-empty one); `redacted_thinking` blocks become
/// `redacted_reasoning`; `tool_use` blocks become tool calls whose arguments are the
/// compact JSON of `input` (key order and number spelling kept). Server tool blocks and
/// unknown block types are skipped. `created` is 0 (Anthropic sends none; no clock here).
/// An error body (`{"type":"error",...}`) is a [`DecodeError`].
pub fn messages_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: ResponseIn<'_> = parse_body("response", body)?;
    if wire.kind.as_deref() == Some("error") || (wire.error.is_some() && wire.content.is_none()) {
        let error = match wire.error {
            Some(raw) => error_text(parse("error body", raw)?),
            None => "unknown upstream error".to_owned(),
        };
        return Err(DecodeError::new(None, format!("upstream error: {error}")));
    }
    let Some(blocks) = wire.content else {
        return Err(DecodeError::new(None, "upstream response has no `content`"));
    };
    let mut text = String::new();
    let mut reasoning: Option<String> = None;
    let mut reasoning_signature = None;
    let mut redacted_reasoning = Vec::new();
    let mut tool_calls = Vec::new();
    for (index, raw) in blocks.into_iter().enumerate() {
        match block_in(&format!("response content.{index}"), raw)? {
            BlockIn::Text(part) => text.push_str(&part),
            BlockIn::Thinking(thinking) => {
                reasoning.get_or_insert_with(String::new).push_str(&thinking.thinking);
                if let Some(signature) = thinking.signature.filter(|signature| !signature.is_empty()) {
                    reasoning_signature = Some(signature);
                }
            }
            BlockIn::RedactedThinking(data) => redacted_reasoning.push(data),
            BlockIn::ToolUse(call) => {
                tool_calls.push(ToolCall { id: call.id, name: call.name, arguments: arguments_of(call.input) })
            }
            BlockIn::Other => {}
        }
    }
    let mut usage = UsageState::default();
    if let Some(raw) = non_null(wire.usage) {
        usage.update(&parse("response usage", raw)?);
    }
    let choice = Choice {
        index: 0,
        content: Some(text).filter(|text| !text.is_empty() || tool_calls.is_empty()),
        reasoning: reasoning.filter(|reasoning| !reasoning.is_empty()),
        reasoning_signature,
        redacted_reasoning,
        finish_reason: finish_reason(wire.stop_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
    };
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        created: 0,
        model: wire.model.unwrap_or_default(),
        choices: vec![choice],
        usage: usage.canonical(),
    })
}
