//! The OpenAI dialect on the upstream side, for clients of another dialect (Anthropic)
//! reaching an OpenAI-compatible provider: canonical request -> Chat Completions body,
//! Chat Completions response / stream chunks -> canonical.
//!
//! (An OpenAI client reaching an OpenAI upstream never comes here: that path splices
//! bytes, see [`super::peek`].)
//!
//! Request notes:
//! - Developer messages are sent as `system` (most compatible upstreams reject
//!   `developer`; OpenAI treats `system` as developer for newer models).
//! - Text-only content is sent as a string, text parts joined with `\n` (many compatible
//!   upstreams accept only strings outside user messages); content with images is sent
//!   as parts.
//! - Tool messages carry text only: `tool_error` prefixes the text with `Error: `, and
//!   images from tool results go in a user message right after the run of tool messages.
//! - Assistant reasoning, its signature and encrypted reasoning are not sent by
//!   [`chat_request`]. Some upstreams need the reasoning back (DeepSeek thinking models
//!   answer 400 when a tool-calling turn's `reasoning_content` is missing; vLLM reads
//!   `reasoning`): [`chat_request_with`] can send it under the field they read.
//! - `top_k` is not an OpenAI parameter and is dropped. Extensions are not copied (they
//!   may come from another dialect and mean something else there), except the two keys
//!   both client decoders fill with the OpenAI meaning: `user` (a string) and
//!   `parallel_tool_calls` (a boolean).
//! - When the request streams, `stream_options.include_usage` is always set: the gateway
//!   meters streams.

use std::borrow::Cow;

use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, Message, Role, StreamEvent, ToolCall, ToolChoice,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::usage::UsageWire as UsageIn;
use crate::DecodeError;
use crate::anthropic::decode::compact_json;
use crate::few::{Few, Str};

/// Under which assistant-message field reasoning is sent back upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningField {
    /// `reasoning_content` (DeepSeek, Qwen, GLM, Kimi, SiliconFlow, llama.cpp).
    ReasoningContent,
    /// `reasoning` (vLLM, Ollama).
    Reasoning,
}

/// Knobs of [`chat_request_with`]; the default is what [`chat_request`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Send assistant reasoning back under this field; `None`: do not send it.
    pub reasoning_field: Option<ReasoningField>,
}

/// Canonical request -> OpenAI Chat Completions request body with `model` = `upstream_model`.
pub fn chat_request(request: &ChatRequest, upstream_model: &str) -> Vec<u8> {
    chat_request_with(request, upstream_model, &RequestOptions::default())
}

/// [`chat_request`] with options.
pub fn chat_request_with(request: &ChatRequest, upstream_model: &str, options: &RequestOptions) -> Vec<u8> {
    let wire = RequestWire {
        model: upstream_model,
        messages: messages(&request.messages, options),
        max_tokens: request.max_tokens,
        temperature: request.temperature,
        top_p: request.top_p,
        n: request.n,
        stop: &request.stop,
        seed: request.seed,
        tools: request
            .tools
            .iter()
            .map(|tool| ToolWire {
                kind: "function",
                function: FunctionWire {
                    name: &tool.name,
                    description: tool.description.as_deref(),
                    parameters: tool.parameters.as_deref(),
                },
            })
            .collect(),
        tool_choice: request.tool_choice.as_ref().map(|choice| match choice {
            ToolChoice::None => ToolChoiceWire::Mode("none"),
            ToolChoice::Auto => ToolChoiceWire::Mode("auto"),
            ToolChoice::Required => ToolChoiceWire::Mode("required"),
            ToolChoice::Function(name) => ToolChoiceWire::Named { kind: "function", function: NameWire { name } },
        }),
        parallel_tool_calls: extension(request, "parallel_tool_calls", |first| first == b't' || first == b'f'),
        user: extension(request, "user", |first| first == b'"'),
        response_format: request.response_format.as_deref(),
        stream: request.stream.then_some(true),
        stream_options: request.stream.then_some(StreamOptionsWire { include_usage: true }),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// The extension `name` if the first byte of its JSON value (its type) passes `accept`.
fn extension<'a>(request: &'a ChatRequest, name: &str, accept: fn(u8) -> bool) -> Option<&'a RawValue> {
    let raw = request.extensions.get(name)?;
    raw.get().trim_start().as_bytes().first().copied().filter(|first| accept(*first)).map(|_| &**raw)
}

#[derive(Serialize)]
struct RequestWire<'a> {
    model: &'a str,
    messages: Vec<MessageWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptionsWire>,
}

#[derive(Serialize)]
struct StreamOptionsWire {
    include_usage: bool,
}

#[derive(Serialize)]
struct ToolWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionWire<'a>,
}

#[derive(Serialize)]
struct FunctionWire<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoiceWire<'a> {
    Mode(&'static str),
    Named {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NameWire<'a>,
    },
}

#[derive(Serialize)]
struct NameWire<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct MessageWire<'a> {
    role: &'static str,
    content: ContentWire<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentWire<'a> {
    Text(String),
    Parts(Vec<PartWire<'a>>),
    Null,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartWire<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrlWire<'a> },
}

#[derive(Serialize)]
struct ImageUrlWire<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolCallWire<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CallFunctionWire<'a>,
}

#[derive(Serialize)]
struct CallFunctionWire<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// Text parts joined with `\n`.
fn joined_text(content: &[ContentPart]) -> String {
    let mut text = String::new();
    let mut first = true;
    for part in content {
        if let ContentPart::Text(part) = part {
            if !first {
                text.push('\n');
            }
            first = false;
            text.push_str(part);
        }
    }
    text
}

fn has_image(content: &[ContentPart]) -> bool {
    content.iter().any(|part| matches!(part, ContentPart::Image { .. }))
}

fn parts(content: &[ContentPart]) -> Vec<PartWire<'_>> {
    content
        .iter()
        .map(|part| match part {
            ContentPart::Text(text) => PartWire::Text { text },
            ContentPart::Image { url, detail } => {
                PartWire::ImageUrl { image_url: ImageUrlWire { url, detail: detail.as_deref() } }
            }
        })
        .collect()
}

fn plain<'a>(role: &'static str, content: ContentWire<'a>) -> MessageWire<'a> {
    MessageWire { role, content, tool_calls: Vec::new(), tool_call_id: None, reasoning_content: None, reasoning: None }
}

fn messages<'a>(messages: &'a [Message], options: &RequestOptions) -> Vec<MessageWire<'a>> {
    let mut out = Vec::with_capacity(messages.len());
    // Images from tool results, sent after the run of tool messages they came in.
    let mut tool_images: Vec<PartWire<'a>> = Vec::new();
    for message in messages {
        if message.role != Role::Tool && !tool_images.is_empty() {
            out.push(plain("user", ContentWire::Parts(std::mem::take(&mut tool_images))));
        }
        match message.role {
            Role::System | Role::Developer => {
                out.push(plain("system", ContentWire::Text(joined_text(&message.content))))
            }
            Role::User => {
                let content = if has_image(&message.content) {
                    ContentWire::Parts(parts(&message.content))
                } else {
                    ContentWire::Text(joined_text(&message.content))
                };
                out.push(plain("user", content));
            }
            Role::Assistant => {
                let text = joined_text(&message.content);
                let content = if text.is_empty() && !message.tool_calls.is_empty() {
                    ContentWire::Null
                } else {
                    ContentWire::Text(text)
                };
                let reasoning = message.reasoning.as_deref().filter(|_| options.reasoning_field.is_some());
                out.push(MessageWire {
                    role: "assistant",
                    content,
                    tool_calls: message
                        .tool_calls
                        .iter()
                        .map(|call| ToolCallWire {
                            id: &call.id,
                            kind: "function",
                            function: CallFunctionWire { name: &call.name, arguments: &call.arguments },
                        })
                        .collect(),
                    tool_call_id: None,
                    reasoning_content: reasoning
                        .filter(|_| options.reasoning_field == Some(ReasoningField::ReasoningContent)),
                    reasoning: reasoning.filter(|_| options.reasoning_field == Some(ReasoningField::Reasoning)),
                });
            }
            Role::Tool => {
                let text = joined_text(&message.content);
                let text = if message.tool_error { format!("Error: {text}") } else { text };
                tool_images.extend(
                    parts(&message.content).into_iter().filter(|part| matches!(part, PartWire::ImageUrl { .. })),
                );
                let mut wire = plain("tool", ContentWire::Text(text));
                wire.tool_call_id = message.tool_call_id.as_deref();
                out.push(wire);
            }
        }
    }
    if !tool_images.is_empty() {
        out.push(plain("user", ContentWire::Parts(tool_images)));
    }
    out
}

// ---------------------------------------------------------------------------------
// Responses.

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

fn finish_reason(reason: Option<&str>, made_tool_calls: bool) -> FinishReason {
    match reason {
        Some("stop") | None if made_tool_calls => FinishReason::ToolCalls,
        Some("stop") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
    }
}

fn error_message(error: &serde_json::Value) -> String {
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

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";

/// OpenAI `chat.completion` JSON -> canonical response (all choices).
pub fn chat_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: ResponseIn = serde_json::from_slice(body.trim_ascii())
        .map_err(|error| DecodeError::new(None, format!("invalid upstream response: {error}")))?;
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

// ---------------------------------------------------------------------------------
// Stream chunks.

// Stream chunks borrow their strings and hold their arrays inline (`Few`): decoding a
// chunk allocates nothing.

#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    created: Option<u64>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    choices: Option<Few<ChunkChoiceIn<'a>>>,
    usage: Option<UsageIn>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChunkChoiceIn<'a> {
    index: Option<u32>,
    #[serde(borrow)]
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(borrow)]
    content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Few<ChunkToolCallIn<'a>>>,
}

#[derive(Deserialize)]
struct ChunkToolCallIn<'a> {
    index: Option<u32>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    function: Option<ChunkFunctionIn<'a>>,
}

#[derive(Deserialize)]
struct ChunkFunctionIn<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Streamed tool arguments: a JSON string's value, borrowed when it has no escapes (see
/// `arguments_of`).
fn chunk_arguments(raw: Option<&RawValue>) -> Cow<'_, str> {
    match raw {
        Some(raw) if raw.get().trim() != "null" => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
            Ok(text) => text,
            Err(_) => Cow::Owned(compact_json(raw.get())),
        },
        _ => Cow::Borrowed(""),
    }
}

/// `text` without leading whitespace, still borrowed if it was.
fn trim_start(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim_start()),
        Cow::Owned(text) => match text.len() - text.trim_start().len() {
            0 => Cow::Owned(text),
            cut => Cow::Owned(text[cut..].to_owned()),
        },
    }
}

/// Where a choice's content stands with respect to an inline `<think>` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Think {
    /// Nothing but whitespace (or a prefix of `<think>`) seen yet.
    #[default]
    Undecided,
    /// Inside `<think>`; nothing emitted yet (leading whitespace is dropped).
    Opening,
    /// Inside `<think>`, some reasoning emitted.
    Inside,
    /// Just after `</think>`: leading whitespace of the answer is dropped.
    Closed,
    /// Plain content.
    Outside,
}

#[derive(Debug, Default)]
struct ChoiceState {
    index: u32,
    think: Think,
    /// Content held back while undecided, or reasoning that may end in (part of) `</think>`.
    pending: String,
    /// Tool-call indices whose first fragment was seen.
    tools: Vec<u32>,
    /// Ids of calls that came without an `index`, with the index given to them.
    tool_ids: Vec<(String, u32)>,
    next_tool: u32,
    last_tool: Option<u32>,
}

impl ChoiceState {
    fn content<'d>(&mut self, text: Cow<'d, str>, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        let choice = self.index;
        match self.think {
            Think::Outside => emit(StreamEvent::Text { choice, text }),
            Think::Closed => {
                let text = trim_start(text);
                if !text.is_empty() {
                    self.think = Think::Outside;
                    emit(StreamEvent::Text { choice, text });
                }
            }
            Think::Undecided => {
                self.pending.push_str(&text);
                let trimmed = self.pending.trim_start();
                if let Some(rest) = trimmed.strip_prefix(THINK_OPEN) {
                    let rest = rest.to_owned();
                    self.pending.clear();
                    self.think = Think::Opening;
                    self.reasoning(Cow::Owned(rest), emit);
                } else if trimmed.is_empty() || THINK_OPEN.starts_with(trimmed) {
                    // Wait: this may still become `<think>`.
                } else {
                    self.think = Think::Outside;
                    emit(StreamEvent::Text { choice, text: Cow::Owned(std::mem::take(&mut self.pending)) });
                }
            }
            Think::Opening | Think::Inside => self.reasoning(text, emit),
        }
    }

    /// Inline reasoning text: emitted except for what may be the start of `</think>` and
    /// trailing whitespace (dropped if the tag follows).
    fn reasoning<'d>(&mut self, text: Cow<'d, str>, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        // Nothing held back and nothing to hold back (no `<` that may begin `</think>`,
        // no trailing whitespace): the text goes out as it came.
        if self.think == Think::Inside
            && self.pending.is_empty()
            && !text.contains('<')
            && !text.ends_with(char::is_whitespace)
        {
            if !text.is_empty() {
                emit(StreamEvent::Reasoning { choice: self.index, text });
            }
            return;
        }
        if self.think == Think::Opening && self.pending.is_empty() {
            self.pending.push_str(text.trim_start());
            if self.pending.is_empty() {
                return;
            }
        } else {
            self.pending.push_str(&text);
        }
        if let Some(end) = self.pending.find(THINK_CLOSE) {
            let rest = self.pending[end + THINK_CLOSE.len()..].to_owned();
            self.pending.truncate(end);
            let thought = std::mem::take(&mut self.pending);
            self.emit_reasoning(thought.trim_end(), emit);
            self.think = Think::Closed;
            self.content(Cow::Owned(rest), emit);
            return;
        }
        // Hold back a suffix that could begin `</think>`, and trailing whitespace.
        let mut keep = self.pending.len();
        for start in (0..self.pending.len()).rev() {
            if self.pending.is_char_boundary(start) && THINK_CLOSE.starts_with(&self.pending[start..]) {
                keep = start;
            }
        }
        let safe = self.pending[..keep].trim_end().len();
        if safe > 0 {
            let rest = self.pending.split_off(safe);
            let thought = std::mem::replace(&mut self.pending, rest);
            self.emit_reasoning(&thought, emit);
        }
    }

    fn emit_reasoning<'d>(&mut self, text: &str, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        if !text.is_empty() {
            self.think = Think::Inside;
            emit(StreamEvent::Reasoning { choice: self.index, text: Cow::Owned(text.to_owned()) });
        }
    }

    /// Releases held-back text at the end of the choice.
    fn flush<'d>(&mut self, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        let pending = std::mem::take(&mut self.pending);
        match self.think {
            Think::Undecided if !pending.is_empty() => {
                emit(StreamEvent::Text { choice: self.index, text: Cow::Owned(pending) });
            }
            Think::Opening | Think::Inside => self.emit_reasoning(pending.trim_end(), emit),
            _ => {}
        }
        self.think = Think::Outside;
    }

    fn tool_call<'d>(&mut self, position: usize, call: ChunkToolCallIn<'d>, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        let index = match (call.index, &call.id) {
            (Some(index), _) => index,
            (None, Some(id)) => match self.tool_ids.iter().find(|(known, _)| known.as_str() == &**id) {
                Some(&(_, index)) => index,
                None => {
                    let index = self.next_tool.max(position as u32);
                    self.tool_ids.push((id.to_string(), index));
                    index
                }
            },
            (None, None) => self.last_tool.unwrap_or(position as u32),
        };
        self.next_tool = self.next_tool.max(index + 1);
        self.last_tool = Some(index);
        let function = call.function.unwrap_or(ChunkFunctionIn { name: None, arguments: None });
        let arguments = chunk_arguments(function.arguments);
        let first = !self.tools.contains(&index);
        if first {
            self.tools.push(index);
        } else if arguments.is_empty() {
            return;
        }
        emit(StreamEvent::ToolCall {
            choice: self.index,
            index,
            id: if first { call.id.map(Into::into) } else { None },
            name: if first { function.name.map(Into::into) } else { None },
            arguments,
        });
    }
}

/// Decodes the `data` payloads of an OpenAI `chat.completion.chunk` stream into
/// canonical events.
///
/// The first chunk yields `Start`; `reasoning_content` / `reasoning` deltas yield
/// `Reasoning`, and so does an inline `<think>...</think>` at the very start of a
/// choice's content (held back across chunk boundaries as needed); tool-call deltas yield
/// `ToolCall` with `id` and `name` on the first fragment of an index only; a
/// `finish_reason` yields `Finish`; a chunk with `usage` yields `Usage` (after the
/// chunk's other events). `[DONE]` yields nothing, except text a choice still held back
/// (an unfinished `<think>` prefix) when no `finish_reason` came. `{"error": ...}`
/// yields `Error`.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    started: bool,
    choices: Vec<ChoiceState>,
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder::default()
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
        if data == b"[DONE]" {
            for state in &mut self.choices {
                state.flush(emit);
            }
            return Ok(());
        }
        let chunk: ChunkIn<'d> = serde_json::from_slice(data)
            .map_err(|error| DecodeError::new(None, format!("invalid upstream stream chunk: {error}")))?;
        if let Some(error) = chunk.error.filter(|raw| raw.get().trim() != "null") {
            let error: serde_json::Value = serde_json::from_str(error.get()).unwrap_or_default();
            emit(StreamEvent::Error { message: Cow::Owned(error_message(&error)) });
            return Ok(());
        }
        if !self.started {
            self.started = true;
            emit(StreamEvent::Start {
                id: chunk.id.map(Into::into).unwrap_or_default(),
                model: chunk.model.map(Into::into).unwrap_or_default(),
                created: chunk.created.unwrap_or(0),
            });
        }
        for (position, choice) in chunk.choices.unwrap_or_default().into_iter().enumerate() {
            let state = self.state(choice.index.unwrap_or(position as u32));
            if let Some(delta) = choice.delta {
                if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning).filter(|r| !r.is_empty()) {
                    if state.think == Think::Undecided {
                        // An upstream with a reasoning field does not inline `<think>`.
                        state.think = Think::Outside;
                    }
                    emit(StreamEvent::Reasoning { choice: state.index, text: reasoning.into() });
                }
                if let Some(content) = delta.content.filter(|c| !c.is_empty()) {
                    state.content(content.into(), emit);
                }
                for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    state.tool_call(position, call, emit);
                }
            }
            if let Some(reason) = choice.finish_reason {
                state.flush(emit);
                let made_tool_calls = !state.tools.is_empty();
                emit(StreamEvent::Finish {
                    choice: state.index,
                    reason: finish_reason(Some(&reason), made_tool_calls),
                });
            }
        }
        if let Some(usage) = chunk.usage {
            emit(StreamEvent::Usage(Usage::from(usage)));
        }
        Ok(())
    }

    fn state(&mut self, index: u32) -> &mut ChoiceState {
        let position = match self.choices.iter().position(|state| state.index == index) {
            Some(position) => position,
            None => {
                self.choices.push(ChoiceState { index, ..ChoiceState::default() });
                self.choices.len() - 1
            }
        };
        &mut self.choices[position]
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
