//! The Anthropic Messages dialect on the upstream side: canonical request -> Messages
//! body, Messages response / SSE events -> canonical. Used when a client of another
//! dialect (OpenAI), or an Anthropic client whose request went through the canonical
//! model, reaches an Anthropic upstream.
//!
//! Request notes ([`messages_request`]):
//! - Every `Role::System` and `Role::Developer` message, wherever it stands, goes to the
//!   top-level `system`, in order: a string when there is one text, text blocks otherwise.
//! - Content is always sent as blocks. Empty text is never sent (Anthropic rejects empty
//!   text blocks); a message left with no block is dropped, and turns are merged so that
//!   roles alternate. A conversation that opens with the assistant gets a user turn of
//!   `"."` before it (the first turn must be the user's). In a merged user turn the `tool_result` blocks come first, as
//!   Anthropic requires.
//! - Images: `data:<type>;base64,<data>` URLs become `base64` sources, any other URL a
//!   `url` source (Anthropic answers 400 to schemes it cannot fetch); `detail` is dropped.
//! - Assistant turns: a `thinking` block (only when an Anthropic signature is present:
//!   Anthropic rejects unsigned thinking and other providers' signatures, and signatures
//!   are never invented), `redacted_thinking`
//!   blocks, text, then `tool_use` blocks whose `input` is the arguments when they are a
//!   JSON object and `{}` otherwise.
//! - Tool messages become `tool_result` blocks in a user turn: content as a string when it
//!   is one text, blocks when there are several parts or images, absent when empty.
//! - `temperature` is clamped to Anthropic's 0..=1. `max_tokens` is required by Anthropic:
//!   the caller's default fills it.
//! - `reasoning_effort` becomes `thinking: {"type": "enabled", "budget_tokens"}` (see
//!   `thinking_budget`); `max_tokens` is raised to leave 1024 tokens for the answer, and a
//!   `temperature` other than 1, `top_p` and `top_k` are dropped (Anthropic refuses them
//!   with thinking). Not when an assistant turn of the history called tools without a
//!   signed (Anthropic) thinking block: Anthropic would refuse that history with thinking
//!   on, so the effort is dropped and reported. `response_format` `json_schema` becomes structured output,
//!   `output_config.format`; `json_object` has no equivalent and is dropped.
//! - Extensions are not copied (they may come from another dialect and mean something else
//!   there), except the two keys both client decoders fill with the OpenAI meaning,
//!   `user` (a string; OpenAI's newer `safety_identifier` when there is no `user`) ->
//!   `metadata.user_id` and `parallel_tool_calls: false` ->
//!   `tool_choice.disable_parallel_tool_use` (with `tool_choice: auto` when the request
//!   has tools but no tool choice). Everything dropped is reported by name.
//!
//! Usage: Anthropic's `input_tokens` excludes cache reads and writes; canonical
//! `input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.

use std::borrow::Cow;

use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, Message, Role, StreamEvent, ToolCall, ToolChoice,
    gemini_signature,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::decode::{Head, RedactedThinkingBlock, TextBlock, ThinkingBlock, ToolUseBlock, compact_json, first_byte};
use super::encode::tool_input;
use crate::DecodeError;
use crate::few::Str;

/// Anthropic's upper bound for `temperature` (OpenAI's is 2).
const MAX_TEMPERATURE: f64 = 1.0;

/// Extension keys Anthropic cannot hold that are reported by their own name when dropped.
const KNOWN_EXTENSIONS: &[&str] = &[
    "audio",
    "cache_control",
    "container",
    "context_management",
    "frequency_penalty",
    "function_call",
    "functions",
    "inference_geo",
    "logit_bias",
    "logprobs",
    "mcp_servers",
    "metadata",
    "modalities",
    "output_config",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "reasoning_effort",
    "safety_identifier",
    "service_tier",
    "store",
    "thinking",
    "top_logprobs",
    "user",
    "verbosity",
    "web_search_options",
];

/// How dropped extensions not in [`KNOWN_EXTENSIONS`] are reported (the names are
/// `&'static`, so an unknown key cannot be returned as itself).
const OTHER_EXTENSIONS: &str = "extensions";

/// Canonical request -> Anthropic Messages request body with `model` = `upstream_model`,
/// and the names of the parameters Anthropic cannot hold and that were dropped, in the
/// order `n` (unless 1), `seed`, `response_format` (unless `{"type":"text"}`), then
/// extension keys (unknown keys reported once as `extensions`; `null` values ignored).
pub fn messages_request(
    request: &ChatRequest,
    upstream_model: &str,
    default_max_tokens: u64,
) -> (Vec<u8>, Vec<&'static str>) {
    let mut dropped = Vec::new();
    if request.n.is_some_and(|n| n != 1) {
        dropped.push("n");
    }
    if request.seed.is_some() {
        dropped.push("seed");
    }
    // `json_schema` becomes structured output (`output_config.format`); `json_object`
    // has no Anthropic equivalent.
    let output_format = request.response_format.as_deref().and_then(json_schema_format);
    if request.response_format.as_deref().is_some_and(|format| !is_text_format(format)) && output_format.is_none() {
        dropped.push("response_format");
    }
    let mut user = None;
    let mut safety_identifier = None;
    let mut parallel_tool_calls = None;
    // `Some(None)`: an effort that asks for no thinking.
    let mut budget: Option<Option<u64>> = None;
    for (name, raw) in &request.extensions {
        let first = first_byte(raw);
        match name.as_str() {
            _ if raw.get().trim() == "null" => {}
            "user" if first == b'"' => user = Some(&**raw),
            "safety_identifier" if first == b'"' => safety_identifier = Some(&**raw),
            "parallel_tool_calls" if first == b't' || first == b'f' => {
                parallel_tool_calls = Some(raw.get().trim() == "true")
            }
            "reasoning_effort" if thinking_budget(raw.get()).is_some() => budget = thinking_budget(raw.get()),
            other => {
                let name = KNOWN_EXTENSIONS.iter().copied().find(|known| *known == other).unwrap_or(OTHER_EXTENSIONS);
                if !dropped.contains(&name) {
                    dropped.push(name);
                }
            }
        }
    }
    if user.is_some() && safety_identifier.is_some() {
        dropped.push("safety_identifier");
    }

    let disable_parallel = parallel_tool_calls == Some(false);
    let choice = |kind, name, parallel_flag: bool| ToolChoiceWire {
        kind,
        name,
        disable_parallel_tool_use: (parallel_flag && disable_parallel).then_some(true),
    };
    let tool_choice = match &request.tool_choice {
        // `none` takes no `disable_parallel_tool_use`; it would mean nothing there.
        Some(ToolChoice::None) => Some(choice("none", None, false)),
        Some(ToolChoice::Auto) => Some(choice("auto", None, true)),
        Some(ToolChoice::Required) => Some(choice("any", None, true)),
        Some(ToolChoice::Function(name)) => Some(choice("tool", Some(name.as_str()), true)),
        None if disable_parallel && !request.tools.is_empty() => Some(choice("auto", None, true)),
        None => None,
    };

    let object_schema = RawValue::from_string(r#"{"type":"object"}"#.to_owned()).expect("valid JSON");
    let system_texts: Vec<&str> = request
        .messages
        .iter()
        .filter(|message| matches!(message.role, Role::System | Role::Developer))
        .flat_map(|message| texts(&message.content))
        .collect();
    let system = match system_texts.as_slice() {
        [] => None,
        [text] => Some(ContentWire::Text(text)),
        texts => Some(ContentWire::Blocks(texts.iter().map(|text| BlockWire::Text { text }).collect())),
    };
    // Thinking takes its budget out of `max_tokens` and wants the default sampling.
    // With thinking on, Anthropic wants every assistant turn that called tools to start
    // with its signed thinking block; a history without one (from a client that cannot
    // carry Anthropic signatures, or from another provider) would be refused, so such a
    // request goes without thinking.
    let unsigned_tool_turn = request.messages.iter().any(|message| {
        message.role == Role::Assistant
            && !message.tool_calls.is_empty()
            && !message
                .reasoning_signature
                .as_deref()
                .is_some_and(|signature| !signature.is_empty() && gemini_signature(signature).is_none())
    });
    let budget = budget.flatten();
    let budget = if unsigned_tool_turn && budget.is_some() {
        dropped.push("reasoning_effort");
        None
    } else {
        budget
    };
    let mut max_tokens = request.max_tokens.unwrap_or(default_max_tokens);
    let (mut temperature, mut top_p, mut top_k) = (request.temperature, request.top_p, request.top_k);
    if let Some(budget) = budget {
        max_tokens = max_tokens.max(budget + MIN_ANSWER_TOKENS);
        if temperature.is_some_and(|temperature| temperature != 1.0) {
            temperature = None;
            dropped.push("temperature");
        }
        if top_p.take().is_some() {
            dropped.push("top_p");
        }
        if top_k.take().is_some() {
            dropped.push("top_k");
        }
    }
    let wire = RequestWire {
        model: upstream_model,
        max_tokens,
        system,
        messages: turns(&request.messages),
        stop_sequences: &request.stop,
        temperature: temperature.map(|temperature| temperature.clamp(0.0, MAX_TEMPERATURE)),
        top_p,
        top_k,
        stream: request.stream.then_some(true),
        tools: request
            .tools
            .iter()
            .map(|tool| ToolWire {
                name: &tool.name,
                description: tool.description.as_deref(),
                input_schema: tool.parameters.as_deref().unwrap_or(&object_schema),
            })
            .collect(),
        tool_choice,
        metadata: user.or(safety_identifier).map(|user_id| MetadataWire { user_id }),
        thinking: budget.map(|budget_tokens| ThinkingWire { kind: "enabled", budget_tokens }),
        output_config: output_format
            .map(|schema| OutputConfigWire { format: OutputFormatWire { kind: "json_schema", schema } }),
    };
    (serde_json::to_vec(&wire).unwrap_or_default(), dropped)
}

/// Whether `response_format` is the default `{"type":"text"}` (nothing lost by dropping it).
fn is_text_format(format: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct FormatWire<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<FormatWire<'_>>(format.get()).is_ok_and(|wire| wire.kind.as_deref() == Some("text"))
}

/// The non-empty text parts of `content`.
fn texts(content: &[ContentPart]) -> impl Iterator<Item = &str> {
    content.iter().filter_map(|part| match part {
        ContentPart::Text(text) if !text.is_empty() => Some(text.as_str()),
        _ => None,
    })
}

#[derive(Serialize)]
struct RequestWire<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<ContentWire<'a>>,
    messages: Vec<TurnWire<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<ThinkingWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfigWire<'a>>,
}

#[derive(Serialize)]
struct ThinkingWire {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u64,
}

#[derive(Serialize)]
struct OutputConfigWire<'a> {
    format: OutputFormatWire<'a>,
}

#[derive(Serialize)]
struct OutputFormatWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a RawValue,
}

/// Tokens left for the answer when thinking raises `max_tokens` above its budget.
const MIN_ANSWER_TOKENS: u64 = 1024;

/// An OpenAI `reasoning_effort` as a thinking budget (`Some(None)`: no thinking), the
/// buckets other gateways use: `low` 1280, `medium` 2048, `high` 4096, `xhigh`/`max`
/// 8192 tokens (Anthropic's minimum is 1024); `none` and `minimal` turn thinking off.
/// `None` for a value it does not know (reported as dropped).
fn thinking_budget(raw: &str) -> Option<Option<u64>> {
    match serde_json::from_str::<&str>(raw).ok()? {
        "none" | "minimal" => Some(None),
        "low" => Some(Some(1280)),
        "medium" => Some(Some(2048)),
        "high" => Some(Some(4096)),
        "xhigh" | "max" => Some(Some(8192)),
        _ => None,
    }
}

/// The schema of an OpenAI `response_format: {"type": "json_schema", "json_schema":
/// {"schema": ...}}`, for Anthropic's structured output.
fn json_schema_format(format: &RawValue) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct FormatIn<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        json_schema: Option<JsonSchemaIn<'a>>,
    }
    #[derive(Deserialize)]
    struct JsonSchemaIn<'a> {
        #[serde(borrow)]
        schema: Option<&'a RawValue>,
    }
    let format: FormatIn<'_> = serde_json::from_str(format.get()).ok()?;
    (format.kind == "json_schema").then_some(())?;
    format.json_schema?.schema.filter(|schema| schema.get().trim_start().starts_with('{'))
}

/// Content Anthropic takes as a plain string or as blocks (`system`, tool results).
#[derive(Serialize)]
#[serde(untagged)]
enum ContentWire<'a> {
    Text(&'a str),
    Blocks(Vec<BlockWire<'a>>),
}

#[derive(Serialize)]
struct TurnWire<'a> {
    role: &'static str,
    content: Vec<BlockWire<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockWire<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: SourceWire<'a>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Box<RawValue>,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ContentWire<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SourceWire<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct ToolWire<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a RawValue,
}

#[derive(Serialize)]
struct ToolChoiceWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
struct MetadataWire<'a> {
    user_id: &'a RawValue,
}

/// The conversation without system/developer messages, as alternating turns.
fn turns(messages: &[Message]) -> Vec<TurnWire<'_>> {
    let mut turns: Vec<TurnWire<'_>> = Vec::with_capacity(messages.len());
    for message in messages {
        let (role, blocks) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", message.content.iter().filter_map(content_block).collect()),
            Role::Assistant => ("assistant", assistant_blocks(message)),
            Role::Tool => ("user", vec![tool_result(message)]),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(turn) if turn.role == role => {
                for block in blocks {
                    if matches!(block, BlockWire::ToolResult { .. }) {
                        // After the turn's leading tool results, before its other blocks.
                        let at = turn.content.iter().take_while(|b| matches!(b, BlockWire::ToolResult { .. })).count();
                        turn.content.insert(at, block);
                    } else {
                        turn.content.push(block);
                    }
                }
            }
            _ => turns.push(TurnWire { role, content: blocks }),
        }
    }
    // Anthropic wants the conversation to open with the user (an OpenAI history may open
    // with the assistant): a minimal user turn goes first.
    if turns.first().is_some_and(|turn| turn.role == "assistant") {
        turns.insert(0, TurnWire { role: "user", content: vec![BlockWire::Text { text: LEADING_USER_TEXT }] });
    }
    turns
}

/// The text of the user turn put before a conversation that opens with the assistant
/// (Anthropic rejects empty text).
const LEADING_USER_TEXT: &str = ".";

/// A text or image block; `None` for empty text.
fn content_block(part: &ContentPart) -> Option<BlockWire<'_>> {
    match part {
        ContentPart::Text(text) if text.is_empty() => None,
        ContentPart::Text(text) => Some(BlockWire::Text { text }),
        ContentPart::Image { url, .. } => Some(BlockWire::Image { source: image_source(url) }),
    }
}

fn image_source(url: &str) -> SourceWire<'_> {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((header, data)) = rest.split_once(',')
        && let Some(media_type) = header.strip_suffix(";base64")
    {
        // Parameters other than `base64` (`;charset=...`) are not part of the media type.
        let media_type = media_type.split(';').next().unwrap_or(media_type);
        return SourceWire::Base64 { media_type, data };
    }
    SourceWire::Url { url }
}

fn assistant_blocks(message: &Message) -> Vec<BlockWire<'_>> {
    let mut blocks = Vec::new();
    // Gemini's signatures mean nothing to Anthropic (it would answer 400): such
    // reasoning counts as unsigned.
    let signature = message.reasoning_signature.as_deref().filter(|signature| gemini_signature(signature).is_none());
    if let Some(signature) = signature.filter(|signature| !signature.is_empty()) {
        blocks.push(BlockWire::Thinking { thinking: message.reasoning.as_deref().unwrap_or(""), signature });
    }
    blocks.extend(message.redacted_reasoning.iter().map(|data| BlockWire::RedactedThinking { data }));
    // Anthropic takes no images in assistant turns; OpenAI assistant content is text only.
    blocks.extend(texts(&message.content).map(|text| BlockWire::Text { text }));
    blocks.extend(message.tool_calls.iter().map(|call| BlockWire::ToolUse {
        id: &call.id,
        name: &call.name,
        input: tool_input(&call.arguments),
    }));
    blocks
}

fn tool_result(message: &Message) -> BlockWire<'_> {
    let parts: Vec<BlockWire<'_>> = message.content.iter().filter_map(content_block).collect();
    let content = match parts.as_slice() {
        [] => None,
        [BlockWire::Text { text }] => Some(ContentWire::Text(text)),
        _ => Some(ContentWire::Blocks(parts)),
    };
    BlockWire::ToolResult {
        tool_use_id: message.tool_call_id.as_deref().unwrap_or(""),
        content,
        is_error: message.tool_error,
    }
}

// ---------------------------------------------------------------------------------
// Responses.

#[derive(Deserialize)]
struct UsageIn {
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
struct UsageState {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    thinking: u64,
}

impl UsageState {
    fn update(&mut self, wire: &UsageIn) {
        let replace = |field: &mut u64, value: Option<u64>| {
            if let Some(value) = value {
                *field = value;
            }
        };
        replace(&mut self.input, wire.input_tokens);
        replace(&mut self.cache_read, wire.cache_read_input_tokens);
        replace(&mut self.cache_write, wire.cache_creation_input_tokens);
        replace(&mut self.output, wire.output_tokens);
        replace(&mut self.thinking, wire.output_tokens_details.as_ref().and_then(|details| details.thinking_tokens));
    }

    fn canonical(&self) -> Usage {
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
struct ErrorIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// `<type>: <message>` of an Anthropic error object (the type lets the gateway tell
/// `overloaded_error` from the rest).
fn error_text(error: ErrorIn) -> String {
    match (error.kind.filter(|kind| !kind.is_empty()), error.message.filter(|message| !message.is_empty())) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => "unknown upstream error".to_owned(),
    }
}

fn finish_reason(stop_reason: Option<&str>, made_tool_calls: bool) -> FinishReason {
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

/// Deserializes `raw`, reporting failures as an invalid upstream `what`.
fn parse<'a, T: Deserialize<'a>>(what: &str, raw: &'a RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|error| malformed(what, error))
}

fn malformed(what: &str, message: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(None, format!("invalid upstream {what}: {message}"))
}

/// A tool_use `input` as arguments: its compact JSON (`{}` when absent or null).
fn arguments_of(input: Option<&RawValue>) -> String {
    match input {
        Some(input) if input.get().trim() != "null" => compact_json(input.get()),
        _ => "{}".to_owned(),
    }
}

/// A content block of an upstream response or `content_block_start`.
enum BlockIn<'a> {
    Text(String),
    Thinking(ThinkingBlock),
    RedactedThinking(String),
    ToolUse(ToolUseBlock<'a>),
    /// Server tool blocks and block types this gateway does not know.
    Other,
}

fn block_in<'a>(what: &str, raw: &'a RawValue) -> Result<BlockIn<'a>, DecodeError> {
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
    let wire: ResponseIn<'_> = serde_json::from_slice(body.trim_ascii()).map_err(|e| malformed("response", e))?;
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
    if let Some(raw) = wire.usage.filter(|raw| raw.get().trim() != "null") {
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

// ---------------------------------------------------------------------------------
// Stream events.

/// The envelope of one stream event; the payloads are parsed once the type is known, so
/// events of unknown types are skipped whatever they carry.
#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    index: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    content_block: Option<&'a RawValue>,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageStartIn<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BlockDeltaIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    thinking: Option<Str<'a>>,
    #[serde(borrow)]
    signature: Option<Str<'a>>,
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct MessageDeltaIn {
    stop_reason: Option<String>,
}

/// What an open (or closed) content block of the stream is.
#[derive(Debug)]
enum BlockState {
    Text,
    Thinking,
    RedactedThinking,
    /// A tool_use block: canonical tool call `ordinal`; `start_input` is the compact
    /// `input` of `content_block_start`, sent as the arguments at `content_block_stop`
    /// when no `input_json_delta` carried any (a tool without arguments).
    Tool {
        ordinal: u32,
        start_input: String,
        streamed: bool,
    },
    /// Server tool blocks and unknown block types: their deltas are skipped.
    Other,
}

/// Decodes the `data` of Anthropic Messages SSE events into canonical events (choice 0).
///
/// - `message_start` -> `Start { id, model, created: 0 }` and `Usage` (the input side and
///   the output so far).
/// - `content_block_start`: text / thinking -> their text if any (normally none);
///   `redacted_thinking` -> `RedactedReasoning`; `tool_use` -> `ToolCall { index, id,
///   name, arguments: "" }` where `index` is the ordinal among the message's tool_use
///   blocks, not the Anthropic block index.
/// - `content_block_delta`: `text_delta` -> `Text`, `thinking_delta` -> `Reasoning`,
///   `signature_delta` -> `ReasoningSignature`, `input_json_delta` -> a `ToolCall` fragment
///   of the block's call; empty deltas yield nothing; deltas of server-tool blocks and
///   unknown delta types (`citations_delta`) are skipped.
/// - `content_block_stop` of a tool_use block that got no (non-empty) `input_json_delta`
///   -> a fragment with the start's `input` (`{}`), so the call's arguments are the same
///   as in a non-streamed response.
/// - `message_delta` -> `Finish` (stop reason mapped as in [`messages_response`]) and
///   `Usage`: the counters it reports replace those of `message_start` (cumulative: the
///   last value wins, nothing is added).
/// - `message_stop`, `ping` and unknown event types -> nothing; `error` ->
///   `Error { message: "<type>: <message>" }`.
///
/// A `Start` is emitted before the first content event even if `message_start` is
/// missing. Malformed JSON, a known event missing its fields, or a delta for a block that
/// never started is a [`DecodeError`].
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    usage: UsageState,
    /// Anthropic block index -> what the block is.
    blocks: Vec<(u32, BlockState)>,
    tools: u32,
}

impl EventDecoder {
    pub fn new() -> EventDecoder {
        EventDecoder::default()
    }

    /// [`decode_with`](Self::decode_with), collecting owned events.
    pub fn decode(&mut self, data: &[u8]) -> Result<Vec<StreamEvent<'static>>, DecodeError> {
        let mut events = Vec::new();
        self.decode_with(data, &mut |event| events.push(event.into_owned()))?;
        Ok(events)
    }

    /// Decodes one `data` payload, handing each event to `emit` as it is decoded; the
    /// events borrow from `data`.
    pub fn decode_with<'d>(
        &mut self,
        data: &'d [u8],
        emit: &mut dyn FnMut(StreamEvent<'d>),
    ) -> Result<(), DecodeError> {
        let data = data.trim_ascii();
        if data.is_empty() {
            return Ok(());
        }
        let event: EventIn<'d> = serde_json::from_slice(data).map_err(|e| malformed("stream event", e))?;
        match &*event.kind {
            "message_start" => {
                let message: MessageStartIn<'d> = parse("message_start", required(event.message, "message")?)?;
                if let Some(raw) = message.usage.filter(|raw| raw.get().trim() != "null") {
                    self.usage.update(&parse("message_start usage", raw)?);
                }
                if !self.started {
                    self.started = true;
                    emit(StreamEvent::Start {
                        id: message.id.map(Into::into).unwrap_or_default(),
                        model: message.model.map(Into::into).unwrap_or_default(),
                        created: 0,
                    });
                }
                emit(StreamEvent::Usage(self.usage.canonical()));
            }
            "content_block_start" => {
                let index = block_index(event.index, "content_block_start")?;
                let block = required(event.content_block, "content_block")?;
                let state = match block_in("content_block_start", block)? {
                    BlockIn::Text(text) => {
                        self.start(emit);
                        if !text.is_empty() {
                            emit(StreamEvent::Text { choice: 0, text: Cow::Owned(text) });
                        }
                        BlockState::Text
                    }
                    BlockIn::Thinking(thinking) => {
                        self.start(emit);
                        if !thinking.thinking.is_empty() {
                            emit(StreamEvent::Reasoning { choice: 0, text: Cow::Owned(thinking.thinking) });
                        }
                        if let Some(signature) = thinking.signature.filter(|signature| !signature.is_empty()) {
                            emit(StreamEvent::ReasoningSignature { choice: 0, signature: Cow::Owned(signature) });
                        }
                        BlockState::Thinking
                    }
                    BlockIn::RedactedThinking(data) => {
                        self.start(emit);
                        emit(StreamEvent::RedactedReasoning { choice: 0, data: Cow::Owned(data) });
                        BlockState::RedactedThinking
                    }
                    BlockIn::ToolUse(call) => {
                        self.start(emit);
                        let ordinal = self.tools;
                        self.tools += 1;
                        emit(StreamEvent::ToolCall {
                            choice: 0,
                            index: ordinal,
                            id: Some(Cow::Owned(call.id)),
                            name: Some(Cow::Owned(call.name)),
                            arguments: Cow::Borrowed(""),
                        });
                        BlockState::Tool { ordinal, start_input: arguments_of(call.input), streamed: false }
                    }
                    BlockIn::Other => BlockState::Other,
                };
                match self.blocks.iter_mut().find(|(known, _)| *known == index) {
                    Some((_, known)) => *known = state,
                    None => self.blocks.push((index, state)),
                }
            }
            "content_block_delta" => {
                let index = block_index(event.index, "content_block_delta")?;
                let delta: BlockDeltaIn<'d> = parse("content_block_delta", required(event.delta, "delta")?)?;
                let Some((_, state)) = self.blocks.iter_mut().find(|(known, _)| *known == index) else {
                    return Err(malformed("content_block_delta", format!("block {index} was never started")));
                };
                if matches!(state, BlockState::Other) {
                    return Ok(());
                }
                let BlockDeltaIn { kind, text, thinking, signature, partial_json } = delta;
                let field = |value: Option<Str<'d>>, name: &str| {
                    value
                        .map(Cow::from)
                        .ok_or_else(|| malformed("content_block_delta", format!("`{kind}` without `{name}`")))
                };
                match &*kind {
                    "text_delta" => {
                        let text = field(text, "text")?;
                        if !text.is_empty() {
                            emit(StreamEvent::Text { choice: 0, text });
                        }
                    }
                    "thinking_delta" => {
                        let text = field(thinking, "thinking")?;
                        if !text.is_empty() {
                            emit(StreamEvent::Reasoning { choice: 0, text });
                        }
                    }
                    "signature_delta" => {
                        let signature = field(signature, "signature")?;
                        if !signature.is_empty() {
                            emit(StreamEvent::ReasoningSignature { choice: 0, signature });
                        }
                    }
                    "input_json_delta" => {
                        let arguments = field(partial_json, "partial_json")?;
                        let BlockState::Tool { ordinal, streamed, .. } = state else {
                            return Err(malformed(
                                "content_block_delta",
                                format!("input_json_delta for block {index}, which is not a tool_use block"),
                            ));
                        };
                        if !arguments.is_empty() {
                            *streamed = true;
                            emit(StreamEvent::ToolCall { choice: 0, index: *ordinal, id: None, name: None, arguments });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = block_index(event.index, "content_block_stop")?;
                if let Some((_, BlockState::Tool { ordinal, start_input, streamed })) =
                    self.blocks.iter_mut().find(|(known, _)| *known == index)
                    && !*streamed
                {
                    *streamed = true;
                    emit(StreamEvent::ToolCall {
                        choice: 0,
                        index: *ordinal,
                        id: None,
                        name: None,
                        arguments: Cow::Owned(std::mem::take(start_input)),
                    });
                }
            }
            "message_delta" => {
                let delta: MessageDeltaIn = parse("message_delta", required(event.delta, "delta")?)?;
                if let Some(raw) = event.usage.filter(|raw| raw.get().trim() != "null") {
                    self.usage.update(&parse("message_delta usage", raw)?);
                }
                self.start(emit);
                emit(StreamEvent::Finish {
                    choice: 0,
                    reason: finish_reason(delta.stop_reason.as_deref(), self.tools > 0),
                });
                emit(StreamEvent::Usage(self.usage.canonical()));
            }
            "error" => {
                let error: ErrorIn = parse("error event", required(event.error, "error")?)?;
                emit(StreamEvent::Error { message: Cow::Owned(error_text(error)) });
            }
            // `message_stop`, `ping`, and event types added after this was written.
            _ => {}
        }
        Ok(())
    }

    /// Emits `Start` if no `message_start` came first.
    fn start<'d>(&mut self, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        if !self.started {
            self.started = true;
            emit(StreamEvent::Start { id: Cow::Borrowed(""), model: Cow::Borrowed(""), created: 0 });
        }
    }
}

/// The `index` of a content block event.
fn block_index(raw: Option<&RawValue>, what: &str) -> Result<u32, DecodeError> {
    parse(what, required(raw, "index")?)
}

/// A field a known event cannot do without.
fn required<'a>(raw: Option<&'a RawValue>, name: &str) -> Result<&'a RawValue, DecodeError> {
    raw.filter(|raw| raw.get().trim() != "null")
        .ok_or_else(|| DecodeError::new(None, format!("invalid upstream stream event: missing `{name}`")))
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
