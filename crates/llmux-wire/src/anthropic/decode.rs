//! Anthropic Messages requests -> canonical requests.
//!
//! Paths in errors follow Anthropic's own style (`messages.2.content.0`), so a client sees
//! the same `param` it would get from the API.
//!
//! Mapping notes:
//! - `system` (a string or text blocks) becomes one leading `Role::System` message, one
//!   text part per block (`cache_control` is dropped). A message of role `system` among
//!   `messages` (current Claude Code sends them, e.g. its environment notes after the
//!   first user turn) becomes a `Role::System` message at its place.
//! - A user turn's `tool_result` blocks become `Role::Tool` messages placed before a user
//!   message holding the turn's remaining text and images (Anthropic requires tool results
//!   to come first in a turn anyway). `is_error` becomes [`Message::tool_error`].
//! - An assistant turn's `thinking` blocks become `reasoning` (texts joined in order) and
//!   `reasoning_signature` (the last non-empty signature); `redacted_thinking` blocks
//!   become `redacted_reasoning`. `tool_use` blocks become tool calls whose arguments are
//!   the compact JSON of `input` (key order and number spelling kept).
//! - `metadata.user_id` becomes `extensions["user"]` and `tool_choice.disable_parallel_tool_use:
//!   true` becomes `extensions["parallel_tool_calls"] = false`: both keys mean the same in
//!   the OpenAI dialect, which is what [`crate::openai::upstream`] relies on. Other
//!   `metadata` keys are dropped.
//! - Every other top-level field (`thinking`, `output_config`, `service_tier`, ...) is kept
//!   verbatim in `extensions`.

use std::collections::BTreeMap;

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, Tool, ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::json::{at, at_borrowed, compact_json, error, first_byte, to_raw};

/// Anthropic Messages request body -> canonical. `max_tokens` is required.
pub fn messages_request(body: &[u8]) -> Result<ChatRequest, DecodeError> {
    decode(body, true)
}

/// A `/v1/messages/count_tokens` body: the Messages body without `max_tokens` (and
/// without `stream`); decoded the same way, `max_tokens` optional.
pub fn count_tokens_request(body: &[u8]) -> Result<ChatRequest, DecodeError> {
    decode(body, false)
}

fn decode(body: &[u8], require_max_tokens: bool) -> Result<ChatRequest, DecodeError> {
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|error| DecodeError::new(None, format!("invalid JSON body: {error}")))?;
    let mut request = ChatRequest::default();
    let mut system = None;
    let mut messages = Vec::new();
    let mut user = None;
    let mut parallel_tool_calls = None;
    for (name, raw) in fields {
        let name = name.as_str();
        match name {
            "model" => request.model = at::<Option<String>>(name, raw)?.unwrap_or_default(),
            "messages" => messages = decode_messages(raw)?,
            "system" => system = decode_system(raw)?,
            "max_tokens" => request.max_tokens = at(name, raw)?,
            "stop_sequences" => request.stop = at::<Option<Vec<String>>>(name, raw)?.unwrap_or_default(),
            "temperature" => request.temperature = at(name, raw)?,
            "top_p" => request.top_p = at(name, raw)?,
            "top_k" => request.top_k = at(name, raw)?,
            "stream" => request.stream = at::<Option<bool>>(name, raw)?.unwrap_or(false),
            "tools" => request.tools = decode_tools(raw)?,
            "tool_choice" => {
                if let Some(choice) = at::<Option<ToolChoiceWire>>(name, raw)? {
                    if choice.disable_parallel_tool_use == Some(true) {
                        parallel_tool_calls = Some(false);
                    }
                    request.tool_choice = Some(match choice.kind.as_str() {
                        "auto" => ToolChoice::Auto,
                        "any" => ToolChoice::Required,
                        "none" => ToolChoice::None,
                        "tool" => match choice.name {
                            Some(name) => ToolChoice::Function(name),
                            None => return Err(error("tool_choice.name", "field required for `tool` tool_choice")),
                        },
                        other => {
                            return Err(error(
                                "tool_choice.type",
                                format!("invalid tool_choice type `{other}`; expected auto, any, tool or none"),
                            ));
                        }
                    });
                }
            }
            "metadata" => {
                if let Some(metadata) = at::<Option<MetadataWire>>(name, raw)? {
                    user = metadata.user_id;
                }
            }
            _ => {
                request.extensions.insert(name.to_owned(), raw.to_owned());
            }
        }
    }
    if request.model.is_empty() {
        return Err(error("model", "field required"));
    }
    if require_max_tokens && request.max_tokens.is_none() {
        return Err(error("max_tokens", "field required"));
    }
    // Anthropic clients always receive usage in `message_delta`.
    request.stream_include_usage = request.stream;
    if let Some(user) = user {
        request.extensions.insert("user".to_owned(), to_raw(&user));
    }
    if let Some(parallel) = parallel_tool_calls {
        request.extensions.insert("parallel_tool_calls".to_owned(), to_raw(&parallel));
    }
    request.messages = system.into_iter().chain(messages).collect();
    Ok(request)
}

#[derive(Deserialize)]
struct ToolChoiceWire {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Deserialize)]
struct MetadataWire {
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct MessageWire<'a> {
    role: String,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(crate) struct Head {
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

#[derive(Deserialize)]
pub(crate) struct TextBlock {
    pub(crate) text: String,
}

#[derive(Deserialize)]
struct ImageBlock {
    source: SourceWire,
}

#[derive(Deserialize)]
struct SourceWire {
    #[serde(rename = "type")]
    kind: String,
    media_type: Option<String>,
    data: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct ToolUseBlock<'a> {
    pub(crate) id: String,
    pub(crate) name: String,
    #[serde(borrow)]
    pub(crate) input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolResultBlock<'a> {
    tool_use_id: String,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    is_error: Option<bool>,
}

#[derive(Deserialize)]
pub(crate) struct ThinkingBlock {
    pub(crate) thinking: String,
    pub(crate) signature: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RedactedThinkingBlock {
    pub(crate) data: String,
}

#[derive(Deserialize)]
struct ToolWire<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    description: Option<String>,
    #[serde(borrow)]
    input_schema: Option<&'a RawValue>,
}

/// The blocks of a `string | blocks[]` value, a string being one text block.
enum Blocks<'a> {
    Text(String),
    List(Vec<&'a RawValue>),
}

fn blocks<'a>(path: &str, raw: &'a RawValue) -> Result<Blocks<'a>, DecodeError> {
    match first_byte(raw) {
        b'"' => Ok(Blocks::Text(at(path, raw)?)),
        b'[' => Ok(Blocks::List(at_borrowed(path, raw)?)),
        _ => Err(error(path, "expected a string or an array of content blocks")),
    }
}

fn block_kind(path: &str, raw: &RawValue) -> Result<String, DecodeError> {
    if first_byte(raw) != b'{' {
        return Err(error(path, "expected a content block object"));
    }
    Ok(at::<Head>(path, raw)?.kind)
}

fn decode_system(raw: &RawValue) -> Result<Option<Message>, DecodeError> {
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    Ok(Some(system_turn("system", blocks("system", raw)?)?))
}

/// System text (the top-level `system`, or a `system` message among `messages`, as
/// current Claude Code sends): a `Role::System` message, one text part per block.
fn system_turn(path: &str, content: Blocks<'_>) -> Result<Message, DecodeError> {
    let content = match content {
        Blocks::Text(text) => vec![ContentPart::Text(text)],
        Blocks::List(list) => {
            let mut parts = Vec::with_capacity(list.len());
            for (index, block) in list.into_iter().enumerate() {
                let path = format!("{path}.{index}");
                match block_kind(&path, block)?.as_str() {
                    "text" => parts.push(ContentPart::Text(at::<TextBlock>(&path, block)?.text)),
                    other => return Err(error(&path, format!("system blocks must be text blocks, got `{other}`"))),
                }
            }
            parts
        }
    };
    Ok(message(Role::System, content))
}

fn message(role: Role, content: Vec<ContentPart>) -> Message {
    Message::new(role, content)
}

fn decode_messages(raw: &RawValue) -> Result<Vec<Message>, DecodeError> {
    if first_byte(raw) != b'[' {
        return Err(error("messages", "expected an array of messages"));
    }
    let list: Vec<&RawValue> = at_borrowed("messages", raw)?;
    if list.is_empty() {
        return Err(error("messages", "at least one message is required"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (index, raw) in list.into_iter().enumerate() {
        let path = format!("messages.{index}");
        if first_byte(raw) != b'{' {
            return Err(error(&path, "expected a message object"));
        }
        let wire: MessageWire<'_> = at_borrowed(&path, raw)?;
        let content_path = format!("{path}.content");
        let Some(content) = wire.content else { return Err(error(&content_path, "field required")) };
        let content = blocks(&content_path, content)?;
        match wire.role.as_str() {
            "user" => user_turn(&content_path, content, &mut out)?,
            "assistant" => out.push(assistant_turn(&content_path, content)?),
            "system" => out.push(system_turn(&content_path, content)?),
            other => {
                return Err(error(
                    &format!("{path}.role"),
                    format!("invalid role `{other}`; expected user, assistant or system"),
                ));
            }
        }
    }
    Ok(out)
}

fn user_turn(path: &str, content: Blocks<'_>, out: &mut Vec<Message>) -> Result<(), DecodeError> {
    let list = match content {
        Blocks::Text(text) => {
            out.push(message(Role::User, vec![ContentPart::Text(text)]));
            return Ok(());
        }
        Blocks::List(list) => list,
    };
    let mut parts = Vec::new();
    let mut results = Vec::new();
    for (index, block) in list.into_iter().enumerate() {
        let path = format!("{path}.{index}");
        match block_kind(&path, block)?.as_str() {
            "text" => parts.push(ContentPart::Text(at::<TextBlock>(&path, block)?.text)),
            "image" => parts.push(image(&path, block)?),
            "tool_result" => results.push(tool_result(&path, block)?),
            kind @ ("tool_use" | "thinking" | "redacted_thinking") => {
                return Err(error(&path, format!("`{kind}` blocks are only allowed in assistant messages")));
            }
            other => return Err(error(&path, format!("unsupported content block type `{other}`"))),
        }
    }
    let only_results = parts.is_empty() && !results.is_empty();
    out.append(&mut results);
    if !only_results {
        out.push(message(Role::User, parts));
    }
    Ok(())
}

fn assistant_turn(path: &str, content: Blocks<'_>) -> Result<Message, DecodeError> {
    let list = match content {
        Blocks::Text(text) => return Ok(message(Role::Assistant, vec![ContentPart::Text(text)])),
        Blocks::List(list) => list,
    };
    let mut turn = message(Role::Assistant, Vec::new());
    for (index, block) in list.into_iter().enumerate() {
        let path = format!("{path}.{index}");
        match block_kind(&path, block)?.as_str() {
            "text" => turn.content.push(ContentPart::Text(at::<TextBlock>(&path, block)?.text)),
            "tool_use" => {
                let call: ToolUseBlock<'_> = at_borrowed(&path, block)?;
                let arguments = match call.input {
                    Some(input) if input.get().trim() != "null" => compact_json(input.get()),
                    _ => "{}".to_owned(),
                };
                // A Gemini signature riding in the id (see `tool_ids`) goes back where it
                // belongs.
                let (split_id, signature) = match super::tool_ids::split(&call.id) {
                    (id, Some(signature)) => (Some(id.to_owned()), Some(signature)),
                    (_, None) => (None, None),
                };
                if turn.reasoning_signature.is_none() {
                    turn.reasoning_signature = signature;
                }
                turn.tool_calls.push(ToolCall { id: split_id.unwrap_or(call.id), name: call.name, arguments });
            }
            "thinking" => {
                let thinking: ThinkingBlock = at(&path, block)?;
                turn.reasoning.get_or_insert_with(String::new).push_str(&thinking.thinking);
                if let Some(signature) = thinking.signature.filter(|s| !s.is_empty()) {
                    turn.reasoning_signature = Some(signature);
                }
            }
            "redacted_thinking" => turn.redacted_reasoning.push(at::<RedactedThinkingBlock>(&path, block)?.data),
            kind @ ("tool_result" | "image") => {
                return Err(error(&path, format!("`{kind}` blocks are not allowed in assistant messages")));
            }
            other => return Err(error(&path, format!("unsupported content block type `{other}`"))),
        }
    }
    Ok(turn)
}

fn image(path: &str, block: &RawValue) -> Result<ContentPart, DecodeError> {
    let source = at::<ImageBlock>(path, block)?.source;
    let source_path = format!("{path}.source");
    let url = match source.kind.as_str() {
        "base64" => {
            let (Some(media_type), Some(data)) = (source.media_type, source.data) else {
                return Err(error(&source_path, "base64 image sources need `media_type` and `data`"));
            };
            format!("data:{media_type};base64,{data}")
        }
        "url" => match source.url {
            Some(url) => url,
            None => return Err(error(&format!("{source_path}.url"), "field required")),
        },
        other => {
            return Err(error(&format!("{source_path}.type"), format!("image source type `{other}` is not supported")));
        }
    };
    Ok(ContentPart::Image { url, detail: None })
}

fn tool_result(path: &str, block: &RawValue) -> Result<Message, DecodeError> {
    let result: ToolResultBlock<'_> = at_borrowed(path, block)?;
    let mut parts = Vec::new();
    if let Some(content) = result.content.filter(|c| c.get().trim() != "null") {
        let content_path = format!("{path}.content");
        match blocks(&content_path, content)? {
            Blocks::Text(text) => parts.push(ContentPart::Text(text)),
            Blocks::List(list) => {
                for (index, block) in list.into_iter().enumerate() {
                    let path = format!("{content_path}.{index}");
                    match block_kind(&path, block)?.as_str() {
                        "text" => parts.push(ContentPart::Text(at::<TextBlock>(&path, block)?.text)),
                        "image" => parts.push(image(&path, block)?),
                        other => {
                            return Err(error(&path, format!("unsupported tool_result content block type `{other}`")));
                        }
                    }
                }
            }
        }
    }
    let mut message = message(Role::Tool, parts);
    let split_id = match super::tool_ids::split(&result.tool_use_id) {
        (id, Some(_)) => Some(id.to_owned()),
        (_, None) => None,
    };
    message.tool_call_id = Some(split_id.unwrap_or(result.tool_use_id));
    message.tool_error = result.is_error.unwrap_or(false);
    Ok(message)
}

fn decode_tools(raw: &RawValue) -> Result<Vec<Tool>, DecodeError> {
    if raw.get().trim() == "null" {
        return Ok(Vec::new());
    }
    let list: Vec<&RawValue> = at_borrowed("tools", raw)?;
    let mut tools = Vec::with_capacity(list.len());
    for (index, raw) in list.into_iter().enumerate() {
        let path = format!("tools.{index}");
        let tool: ToolWire<'_> = at_borrowed(&path, raw)?;
        if let Some(kind) = tool.kind.as_deref().filter(|kind| *kind != "custom") {
            return Err(error(
                &format!("{path}.type"),
                format!("server tool `{kind}` is not supported by the selected backend"),
            ));
        }
        tools.push(Tool {
            name: tool.name,
            description: tool.description,
            parameters: tool.input_schema.filter(|schema| schema.get().trim() != "null").map(RawValue::to_owned),
        });
    }
    Ok(tools)
}
