//! Responses API requests (`POST /v1/responses`) -> canonical requests.
//!
//! Mapping notes:
//! - `instructions` becomes a leading `Role::System` message; `input` as a string is one
//!   user message. Input items, in order:
//!   - `message` (also an item with a `role` and no `type`): roles `user`, `assistant`,
//!     `system`, `developer`; content a string or parts (`input_text` / `output_text` /
//!     `refusal` as text, `input_image` as an image by URL);
//!   - `function_call` joins the assistant message right before it (or starts one), as a
//!     tool call whose id is its `call_id`;
//!   - `function_call_output` becomes a `Role::Tool` message answering `call_id`;
//!   - `reasoning` gives its summary texts to the next assistant message, and its
//!     `encrypted_content` as that message's reasoning signature: one llmux made
//!     (`llmux:` + the canonical signature, see `encode`) is the canonical signature
//!     again; any other was minted by OpenAI (`openai:<item id>:` + it), so it goes
//!     back to OpenAI only.
//! - Function tools become tools; other tool types (hosted tools, namespaces, custom
//!   tools) are kept in `extensions["tools"]`, which no canonical encoder holds, so they
//!   are dropped and named. `tool_choice` likewise: the four canonical forms map, any
//!   other is kept under `extensions["tool_choice"]`.
//! - `text.format` becomes the Chat Completions `response_format` (`json_schema` moves
//!   its `name`, `schema`, `strict` and `description` under `json_schema`);
//!   `text.verbosity` becomes `extensions["verbosity"]`; `reasoning.effort` becomes
//!   `extensions["reasoning_effort"]` (the OpenAI spelling the upstream encoders map).
//! - `max_output_tokens` is `max_tokens`; `user`, `safety_identifier`,
//!   `prompt_cache_key`, `metadata`, `parallel_tool_calls`, `service_tier` and
//!   `top_logprobs` are kept under their names in `extensions`.
//! - What only the Responses layer uses is returned beside the request
//!   ([`ResponsesRequest`]): `store`, `previous_response_id`, `include`, and the members
//!   the answer echoes as sent. `truncation`, `background`, `reasoning.summary` and
//!   `client_metadata` are read and not passed on.

use std::collections::BTreeMap;

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, Tool, ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::json::{at, at_borrowed, error, first_byte, to_raw};

/// A Responses API request: the canonical request (`chat`) and what only the Responses
/// layer uses: whether to `store` the response (the API's default is `true`), the
/// `previous_response_id`, what else to `include` (`reasoning.encrypted_content`, ...),
/// and the request members the answer repeats as sent (`echoed`: `instructions`,
/// `tools`, `tool_choice`, `text`, `reasoning`, `parallel_tool_calls`, `metadata`).
#[derive(Debug, Default)]
pub struct ResponsesRequest {
    pub chat: ChatRequest,
    pub store: bool,
    pub previous_response_id: Option<String>,
    pub include: Vec<String>,
    pub echoed: BTreeMap<&'static str, Box<RawValue>>,
    /// The `input` as sent, kept only when the response is to be stored.
    pub input: Option<Box<RawValue>>,
}

/// The request members a response object repeats as the client sent them.
const ECHOED: &[&str] =
    &["instructions", "tools", "tool_choice", "text", "reasoning", "parallel_tool_calls", "metadata"];

/// Decodes a Responses API request body.
pub fn responses_request(body: &[u8]) -> Result<ResponsesRequest, DecodeError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(error("", "the request body must be a JSON object"));
    }
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|error| DecodeError::new(None, format!("invalid JSON body: {error}")))?;
    let mut request = ResponsesRequest { store: true, ..ResponsesRequest::default() };
    let chat = &mut request.chat;
    let mut input = None;
    let mut instructions = None;
    for (name, raw) in fields {
        let path = name.as_str();
        if raw.get().trim() == "null" {
            continue;
        }
        if let Some(echoed) = ECHOED.iter().find(|echoed| **echoed == path) {
            request.echoed.insert(echoed, raw.to_owned());
        }
        match path {
            "model" => chat.model = at(path, raw)?,
            "input" => input = Some(raw),
            "instructions" => instructions = Some(at::<String>(path, raw)?),
            "stream" => chat.stream = at(path, raw)?,
            "max_output_tokens" => chat.max_tokens = Some(at(path, raw)?),
            "temperature" => chat.temperature = Some(at(path, raw)?),
            "top_p" => chat.top_p = Some(at(path, raw)?),
            "tools" => chat.tools = tools(raw, &mut chat.extensions)?,
            "tool_choice" => chat.tool_choice = tool_choice(raw, &mut chat.extensions)?,
            "text" => text(raw, chat)?,
            "reasoning" => {
                if let Some(effort) = at::<ReasoningWire>(path, raw)?.effort {
                    chat.extensions.insert("reasoning_effort".into(), to_raw(&effort));
                }
            }
            "parallel_tool_calls" => {
                at::<bool>(path, raw)?;
                chat.extensions.insert(name, raw.to_owned());
            }
            "store" => request.store = at(path, raw)?,
            "previous_response_id" => request.previous_response_id = Some(at(path, raw)?),
            "include" => request.include = at(path, raw)?,
            "user" | "safety_identifier" | "prompt_cache_key" | "metadata" | "service_tier" | "top_logprobs" => {
                chat.extensions.insert(name, raw.to_owned());
            }
            "truncation" | "background" | "client_metadata" | "stream_options" => {}
            _ => {
                chat.extensions.insert(name, raw.to_owned());
            }
        }
    }
    if chat.model.is_empty() {
        return Err(error("model", "field required"));
    }
    if let Some(instructions) = instructions {
        chat.messages.push(Message::new(Role::System, vec![ContentPart::Text(instructions)]));
    }
    match input {
        None => return Err(error("input", "field required")),
        Some(raw) => {
            input_items(raw, &mut chat.messages)?;
            if request.store {
                request.input = Some(raw.to_owned());
            }
        }
    }
    // Streams always end with the usage, in `response.completed`.
    chat.stream_include_usage = chat.stream;
    Ok(request)
}

/// The items of a stored conversation (a JSON array of input and output items, as
/// `input` takes them) appended to `out` as canonical messages.
pub fn conversation(raw: &RawValue, out: &mut Vec<Message>) -> Result<(), DecodeError> {
    input_items(raw, out)
}

fn input_items(raw: &RawValue, out: &mut Vec<Message>) -> Result<(), DecodeError> {
    if first_byte(raw) == b'"' {
        out.push(Message::new(Role::User, vec![ContentPart::Text(at("input", raw)?)]));
        return Ok(());
    }
    let items: Vec<&RawValue> = at_borrowed("input", raw)?;
    // Reasoning summaries and signature waiting for the assistant message they belong to.
    let mut reasoning: Option<String> = None;
    let mut signature: Option<String> = None;
    for (index, raw) in items.into_iter().enumerate() {
        let path = format!("input.{index}");
        let item: ItemWire<'_> = at_borrowed(&path, raw)?;
        let kind = item.kind.as_deref().unwrap_or(if item.role.is_some() { "message" } else { "" });
        match kind {
            "message" => {
                let role = match item.role.as_deref() {
                    Some("user") => Role::User,
                    Some("assistant") => Role::Assistant,
                    Some("system") => Role::System,
                    Some("developer") => Role::Developer,
                    Some(other) => {
                        return Err(error(
                            &format!("{path}.role"),
                            format!("invalid role `{other}`; expected user, assistant, system or developer"),
                        ));
                    }
                    None => return Err(error(&format!("{path}.role"), "field required")),
                };
                let Some(content) = item.content else {
                    return Err(error(&format!("{path}.content"), "field required"));
                };
                let mut message = Message::new(role, content_parts(&format!("{path}.content"), content)?);
                if role == Role::Assistant {
                    message.reasoning = reasoning.take();
                    message.reasoning_signature = signature.take();
                }
                out.push(message);
            }
            "function_call" => {
                let call = ToolCall {
                    id: required(&path, "call_id", item.call_id)?,
                    name: required(&path, "name", item.name)?,
                    arguments: item.arguments.unwrap_or_default(),
                };
                match out.last_mut() {
                    Some(last) if last.role == Role::Assistant && reasoning.is_none() && signature.is_none() => {
                        last.tool_calls.push(call);
                    }
                    _ => {
                        let mut message = Message::new(Role::Assistant, Vec::new());
                        message.reasoning = reasoning.take();
                        message.reasoning_signature = signature.take();
                        message.tool_calls.push(call);
                        out.push(message);
                    }
                }
            }
            "function_call_output" => {
                let call_id = required(&path, "call_id", item.call_id)?;
                let Some(output) = item.output else { return Err(error(&format!("{path}.output"), "field required")) };
                let mut message = Message::new(Role::Tool, content_parts(&format!("{path}.output"), output)?);
                message.tool_call_id = Some(call_id);
                out.push(message);
            }
            "reasoning" => {
                let texts: Vec<String> = item.summary.into_iter().flatten().filter_map(|part| part.text).collect();
                if !texts.is_empty() {
                    let joined = texts.join("\n\n");
                    reasoning = Some(match reasoning.take() {
                        Some(before) => format!("{before}\n\n{joined}"),
                        None => joined,
                    });
                }
                if let Some(sealed) = item.encrypted_content.filter(|sealed| !sealed.is_empty()) {
                    signature = Some(canonical_signature(item.id.as_deref(), &sealed));
                }
            }
            "" => return Err(error(&format!("{path}.type"), "field required")),
            other => {
                return Err(error(&format!("{path}.type"), format!("input items of type `{other}` are not supported")));
            }
        }
    }
    Ok(())
}

/// Message content: a string, or parts.
fn content_parts(path: &str, raw: &RawValue) -> Result<Vec<ContentPart>, DecodeError> {
    if first_byte(raw) == b'"' {
        return Ok(vec![ContentPart::Text(at(path, raw)?)]);
    }
    let parts: Vec<PartWire> = at(path, raw)?;
    let mut out = Vec::with_capacity(parts.len());
    for (index, part) in parts.into_iter().enumerate() {
        let path = format!("{path}.{index}");
        match part.kind.as_str() {
            "input_text" | "output_text" | "text" => out.push(ContentPart::Text(required(&path, "text", part.text)?)),
            "refusal" => out.push(ContentPart::Text(required(&path, "refusal", part.refusal)?)),
            "input_image" => match part.image_url {
                Some(url) => {
                    out.push(ContentPart::Image { url, detail: part.detail.filter(|detail| detail != "auto") })
                }
                None => return Err(error(&path, "only images by `image_url` are supported (not `file_id`)")),
            },
            other => return Err(error(&path, format!("content parts of type `{other}` are not supported"))),
        }
    }
    Ok(out)
}

fn tools(raw: &RawValue, extensions: &mut BTreeMap<String, Box<RawValue>>) -> Result<Vec<Tool>, DecodeError> {
    let list: Vec<&RawValue> = at_borrowed("tools", raw)?;
    let mut tools = Vec::new();
    let mut others = Vec::new();
    for (index, raw) in list.into_iter().enumerate() {
        let path = format!("tools.{index}");
        let tool: ToolWire = at(&path, raw)?;
        if tool.kind != "function" {
            others.push(raw);
            continue;
        }
        tools.push(Tool {
            name: required(&path, "name", tool.name)?,
            description: tool.description,
            parameters: tool.parameters,
        });
    }
    if !others.is_empty() {
        extensions.insert("tools".into(), to_raw(&others));
    }
    Ok(tools)
}

fn tool_choice(
    raw: &RawValue,
    extensions: &mut BTreeMap<String, Box<RawValue>>,
) -> Result<Option<ToolChoice>, DecodeError> {
    if first_byte(raw) == b'"' {
        return Ok(Some(match at::<String>("tool_choice", raw)?.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(error("tool_choice", format!("expected none, auto or required, got `{other}`")));
            }
        }));
    }
    let choice: ToolChoiceWire = at("tool_choice", raw)?;
    match (choice.kind.as_str(), choice.name) {
        ("function", Some(name)) => Ok(Some(ToolChoice::Function(name))),
        _ => {
            extensions.insert("tool_choice".into(), raw.to_owned());
            Ok(None)
        }
    }
}

/// `text`: the output format and verbosity.
fn text(raw: &RawValue, chat: &mut ChatRequest) -> Result<(), DecodeError> {
    let text: TextWire = at("text", raw)?;
    if let Some(verbosity) = text.verbosity {
        chat.extensions.insert("verbosity".into(), verbosity);
    }
    let Some(format) = text.format else { return Ok(()) };
    let wire: FormatWire<'_> = at_borrowed("text.format", &format)?;
    chat.response_format = match wire.kind.as_str() {
        "text" => None,
        "json_object" => Some(to_raw(&serde_json::json!({"type": "json_object"}))),
        "json_schema" => {
            let mut schema = serde_json::Map::new();
            schema.insert("name".into(), serde_json::Value::String(required("text.format", "name", wire.name)?));
            if let Some(description) = wire.description {
                schema.insert("description".into(), serde_json::Value::String(description));
            }
            if let Some(raw) = wire.schema {
                let value: serde_json::Value = at("text.format.schema", raw)?;
                schema.insert("schema".into(), value);
            }
            if let Some(strict) = wire.strict {
                schema.insert("strict".into(), serde_json::Value::Bool(strict));
            }
            Some(to_raw(&serde_json::json!({"type": "json_schema", "json_schema": schema})))
        }
        other => {
            return Err(error("text.format.type", format!("expected text, json_object or json_schema, got `{other}`")));
        }
    };
    Ok(())
}

fn required<T>(path: &str, field: &str, value: Option<T>) -> Result<T, DecodeError> {
    value.ok_or_else(|| error(&format!("{path}.{field}"), "field required"))
}

#[derive(Deserialize)]
struct ItemWire<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    summary: Option<Vec<SummaryWire>>,
    encrypted_content: Option<String>,
    id: Option<String>,
}

/// What llmux puts before a canonical signature in a reasoning item's
/// `encrypted_content`.
pub(crate) const SEALED_PREFIX: &str = "llmux:";

/// The canonical signature of reasoning item `id`'s `encrypted_content`: llmux's seal
/// opened, or OpenAI's own as `openai:<item id>:<encrypted content>` (OpenAI takes its
/// reasoning back only with the item's id).
fn canonical_signature(id: Option<&str>, sealed: &str) -> String {
    match sealed.strip_prefix(SEALED_PREFIX) {
        Some(canonical) => canonical.to_owned(),
        None => format!("{}{}:{sealed}", llmux_types::chat::OPENAI_SIGNATURE_PREFIX, id.unwrap_or_default()),
    }
}

#[derive(Deserialize)]
struct SummaryWire {
    text: Option<String>,
}

#[derive(Deserialize)]
struct PartWire {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    refusal: Option<String>,
    image_url: Option<String>,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct ToolWire {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    description: Option<String>,
    parameters: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct ToolChoiceWire {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct TextWire {
    format: Option<Box<RawValue>>,
    verbosity: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct FormatWire<'a> {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    description: Option<String>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    strict: Option<bool>,
}

#[derive(Deserialize)]
struct ReasoningWire {
    effort: Option<String>,
}
