//! Canonical request -> Anthropic Messages request body.
//!
//! Notes ([`messages_request`]):
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

use std::borrow::Cow;

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolChoice, anthropic_signature};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::anthropic::encode::tool_input;
use crate::extensions::report_dropped;
use crate::json::first_byte;
use crate::upstream::{base64_data, texts};

/// Anthropic's upper bound for `temperature` (OpenAI's is 2).
const MAX_TEMPERATURE: f64 = 1.0;

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
            other => report_dropped(&mut dropped, other),
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
            && message.reasoning_signature.as_deref().and_then(anthropic_signature).is_none()
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
    match base64_data(url) {
        Some((media_type, data)) => SourceWire::Base64 { media_type, data },
        None => SourceWire::Url { url },
    }
}

fn assistant_blocks(message: &Message) -> Vec<BlockWire<'_>> {
    let mut blocks = Vec::new();
    // Gemini's signatures mean nothing to Anthropic (it would answer 400): such
    // reasoning counts as unsigned.
    // Another provider's signature means nothing to Anthropic (it would answer 400).
    if let Some(signature) = message.reasoning_signature.as_deref().and_then(anthropic_signature) {
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
