//! Canonical request -> OpenAI Chat Completions request body.
//!
//! Notes:
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
//!   `parallel_tool_calls` (a boolean). [`dropped`] names what was left out.
//! - When the request streams, `stream_options.include_usage` is always set: the gateway
//!   meters streams.

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolChoice};
use serde::Serialize;
use serde_json::value::RawValue;

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
    /// The model takes `reasoning_effort` (a reasoning model): the client's own is sent,
    /// or one derived from Anthropic's `output_config.effort` or `thinking` (see
    /// [`effort`]). Otherwise all three are dropped and named: a model that does not
    /// reason would refuse the parameter.
    pub reasoning_effort: bool,
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
        parallel_tool_calls: extension(request, "parallel_tool_calls"),
        user: extension(request, "user"),
        reasoning_effort: if options.reasoning_effort { effort(request) } else { None },
        response_format: request.response_format.as_deref(),
        stream: request.stream.then_some(true),
        stream_options: request.stream.then_some(StreamOptionsWire { include_usage: true }),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// The request parameters [`chat_request`] leaves out: `top_k`, and every extension but
/// a string `user` and a boolean `parallel_tool_calls` (named as the other encoders name
/// them), for the `x-llmux-dropped-params` header.
pub fn dropped(request: &ChatRequest) -> Vec<&'static str> {
    dropped_with(request, &RequestOptions::default())
}

/// [`dropped`] for [`chat_request_with`]: with `reasoning_effort`, the extensions an
/// effort is read from are held.
pub fn dropped_with(request: &ChatRequest, options: &RequestOptions) -> Vec<&'static str> {
    let mut dropped = Vec::new();
    if request.top_k.is_some() {
        dropped.push("top_k");
    }
    for (name, raw) in &request.extensions {
        let held = extension(request, name).is_some()
            || (options.reasoning_effort && effort_source(name, raw.get()).is_some());
        if !held {
            crate::extensions::report_dropped(&mut dropped, name);
        }
    }
    dropped
}

/// The `reasoning_effort` of a request for a reasoning model: the client's own (OpenAI
/// spelling, a string), else Anthropic's `output_config.effort` (`max` -> `high`), else
/// Anthropic's `thinking` (a budget below 4096 tokens -> `low`, below 16384 -> `medium`,
/// more -> `high`; `adaptive` -> `medium`, the model's default; `disabled` -> none).
pub(crate) fn effort(request: &ChatRequest) -> Option<&'static str> {
    ["reasoning_effort", "output_config", "thinking"]
        .into_iter()
        .find_map(|name| request.extensions.get(name).and_then(|raw| effort_source(name, raw.get())))
        .flatten()
}

/// The effort extension `name` (with JSON `value`) gives, `Some(None)` for one that asks
/// for no reasoning, `None` when it is not such an extension.
fn effort_source(name: &str, value: &str) -> Option<Option<&'static str>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OutputConfigIn<'a> {
        #[serde(borrow)]
        effort: std::borrow::Cow<'a, str>,
    }
    #[derive(serde::Deserialize)]
    struct ThinkingIn<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
        budget_tokens: Option<u64>,
    }
    let level = |effort: &str| match effort {
        "none" | "minimal" | "low" | "medium" | "high" | "xhigh" => {
            ["none", "minimal", "low", "medium", "high", "xhigh"].into_iter().find(|known| *known == effort)
        }
        "max" => Some("high"),
        _ => None,
    };
    match name {
        "reasoning_effort" => serde_json::from_str::<&str>(value).ok().and_then(level).map(Some),
        "output_config" => {
            serde_json::from_str::<OutputConfigIn<'_>>(value).ok().and_then(|c| level(&c.effort)).map(Some)
        }
        "thinking" => match serde_json::from_str::<ThinkingIn<'_>>(value).ok()? {
            ThinkingIn { kind, budget_tokens: Some(budget) } if kind == "enabled" => Some(Some(match budget {
                0..4096 => "low",
                4096..16384 => "medium",
                _ => "high",
            })),
            ThinkingIn { kind, .. } if kind == "adaptive" => Some(Some("medium")),
            ThinkingIn { kind, .. } if kind == "disabled" => Some(None),
            _ => None,
        },
        _ => None,
    }
}

/// The extensions the body carries, each with the JSON type it must have (by the first
/// byte of its value): a string `user` and a boolean `parallel_tool_calls`.
const HELD: &[(&str, JsonType)] =
    &[("user", |first| first == b'"'), ("parallel_tool_calls", |first| first == b't' || first == b'f')];

/// Whether a JSON value, by its first byte, is of the wanted type.
type JsonType = fn(u8) -> bool;

/// The extension `name` if the body carries it: one of [`HELD`], of its type.
fn extension<'a>(request: &'a ChatRequest, name: &str) -> Option<&'a RawValue> {
    let (_, accept) = HELD.iter().find(|(held, _)| *held == name)?;
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
    reasoning_effort: Option<&'static str>,
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
