//! Canonical request -> Responses API request body (`POST /v1/responses`).
//!
//! Notes:
//! - A leading system message becomes `instructions`; every other message is an input
//!   item at its place: system and developer messages (`role` kept), user messages
//!   (text as a string, or `input_text` / `input_image` parts when there are images),
//!   assistant messages (their text as one `output_text` part, then one `function_call`
//!   item per tool call), tool messages (`function_call_output`, text as a string; with
//!   images, `input_text` / `input_image` parts; `tool_error` prefixes the text with
//!   `Error: ` as the Chat Completions encoder does).
//! - Assistant reasoning goes back only when OpenAI signed it (a canonical signature
//!   `openai:<item id>:<encrypted content>`, see `response`): a `reasoning` item with
//!   that id, summary and `encrypted_content` before the turn's message and calls. Other
//!   reasoning is not sent (OpenAI accepts only reasoning items it minted); the model
//!   reasons again. With a `reasoning_effort` the body asks for the encrypted content
//!   (`include: ["reasoning.encrypted_content"]`), so that the next turn can send it back.
//! - Function tools are flat with `strict: false` (the Responses API defaults to strict
//!   schemas, which most clients' schemas are not) and `parameters` always present (an
//!   empty object schema when the client gave none). `tool_choice` maps its four forms.
//! - `response_format` becomes `text.format` (`json_schema` lifts `name`, `schema`,
//!   `strict` and `description` out of `json_schema`); `max_tokens` is
//!   `max_output_tokens`, raised to the API's minimum of 16.
//! - `store` is always `false`: llmux, not the provider, keeps conversation state.
//! - Extensions held (each only with the JSON type the API takes, see [`HELD`]):
//!   `reasoning_effort` as `reasoning.effort`, `verbosity` as `text.verbosity`, `user`,
//!   `safety_identifier`, `prompt_cache_key`, `metadata`, `parallel_tool_calls`,
//!   `service_tier`, `top_logprobs`; and what only the Responses client decoder keeps:
//!   hosted and other non-function `tools` (appended to the function tools) and a
//!   `tool_choice` of another form. `stop`, `seed`, `n` above 1, `top_k` and every other
//!   extension have no place in the body: [`dropped`] names them.

use llmux_types::chat::{ChatRequest, ContentPart, Message, Role, ToolChoice};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::upstream::texts;

/// The smallest `max_output_tokens` the Responses API accepts.
pub const MIN_OUTPUT_TOKENS: u64 = 16;

/// Canonical request -> Responses API request body with `model` = `upstream_model`.
pub fn request_body(request: &ChatRequest, upstream_model: &str) -> Vec<u8> {
    let (instructions, messages) = match request.messages.split_first() {
        Some((first, rest)) if first.role == Role::System => (Some(joined_text(&first.content)), rest),
        _ => (None, request.messages.as_slice()),
    };
    let mut tools: Vec<ToolWire<'_>> = request
        .tools
        .iter()
        .map(|tool| ToolWire::Function {
            kind: "function",
            name: &tool.name,
            description: tool.description.as_deref(),
            parameters: tool.parameters.as_deref().unwrap_or(empty_schema()),
            strict: false,
        })
        .collect();
    if let Some(others) =
        extension(request, "tools").and_then(|raw| serde_json::from_str::<Vec<&RawValue>>(raw.get()).ok())
    {
        tools.extend(others.into_iter().map(ToolWire::Raw));
    }
    let tool_choice = match &request.tool_choice {
        Some(ToolChoice::None) => Some(ToolChoiceWire::Mode("none")),
        Some(ToolChoice::Auto) => Some(ToolChoiceWire::Mode("auto")),
        Some(ToolChoice::Required) => Some(ToolChoiceWire::Mode("required")),
        Some(ToolChoice::Function(name)) => Some(ToolChoiceWire::Function { kind: "function", name }),
        None => extension(request, "tool_choice").map(ToolChoiceWire::Raw),
    };
    let format = request.response_format.as_deref().and_then(text_format);
    let verbosity = extension(request, "verbosity");
    let wire = RequestWire {
        model: upstream_model,
        instructions,
        input: items(messages),
        tools,
        tool_choice,
        text: (format.is_some() || verbosity.is_some()).then_some(TextWire { format, verbosity }),
        reasoning: extension(request, "reasoning_effort").map(|effort| ReasoningWire { effort }),
        include: if extension(request, "reasoning_effort").is_some() { &["reasoning.encrypted_content"] } else { &[] },
        max_output_tokens: request.max_tokens.map(|max| max.max(MIN_OUTPUT_TOKENS)),
        temperature: request.temperature,
        top_p: request.top_p,
        parallel_tool_calls: extension(request, "parallel_tool_calls"),
        user: extension(request, "user"),
        safety_identifier: extension(request, "safety_identifier"),
        prompt_cache_key: extension(request, "prompt_cache_key"),
        metadata: extension(request, "metadata"),
        service_tier: extension(request, "service_tier"),
        top_logprobs: extension(request, "top_logprobs"),
        store: false,
        stream: request.stream.then_some(true),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// The request parameters [`request_body`] leaves out, for the `x-llmux-dropped-params`
/// header: `stop`, `seed`, `n` above 1, `top_k`, and the extensions it does not hold
/// (named as the other encoders name them).
pub fn dropped(request: &ChatRequest) -> Vec<&'static str> {
    let mut dropped = Vec::new();
    if !request.stop.is_empty() {
        dropped.push("stop");
    }
    if request.seed.is_some() {
        dropped.push("seed");
    }
    if request.n.is_some_and(|n| n > 1) {
        dropped.push("n");
    }
    if request.top_k.is_some() {
        dropped.push("top_k");
    }
    for name in request.extensions.keys() {
        if extension(request, name).is_none() {
            crate::extensions::report_dropped(&mut dropped, name);
        }
    }
    dropped
}

/// Whether a JSON value, by its text (trimmed), is what the body takes.
type Accept = fn(&str) -> bool;

fn string(json: &str) -> bool {
    json.starts_with('"')
}

fn boolean(json: &str) -> bool {
    json == "true" || json == "false"
}

fn object(json: &str) -> bool {
    json.starts_with('{')
}

fn integer(json: &str) -> bool {
    !json.is_empty() && json.bytes().all(|byte| byte.is_ascii_digit())
}

/// The extensions the body carries, each with the JSON it must be. `service_tier`
/// only with OpenAI's values (Anthropic's `standard_only` would be refused); `store`
/// only `false` (the body always says `false`); `tools` (an array: the non-function
/// tools of a Responses client) and `tool_choice` (its other forms) as the Responses
/// client decoder keeps them.
const HELD: &[(&str, Accept)] = &[
    ("reasoning_effort", string),
    ("verbosity", string),
    ("user", string),
    ("safety_identifier", string),
    ("prompt_cache_key", string),
    ("metadata", object),
    ("parallel_tool_calls", boolean),
    ("service_tier", |json| {
        matches!(json, r#""auto""# | r#""default""# | r#""flex""# | r#""priority""# | r#""scale""#)
    }),
    ("top_logprobs", integer),
    ("store", |json| json == "false"),
    ("tools", |json| json.starts_with('[')),
    ("tool_choice", |json| object(json) || string(json)),
];

/// The extension `name` if the body carries it: one of [`HELD`], of its type (and a
/// `tool_choice` only where the canonical one is unset).
fn extension<'a>(request: &'a ChatRequest, name: &str) -> Option<&'a RawValue> {
    let (_, accept) = HELD.iter().find(|(held, _)| *held == name)?;
    let raw = request.extensions.get(name)?;
    if name == "tool_choice" && request.tool_choice.is_some() {
        return None;
    }
    accept(raw.get().trim()).then_some(&**raw)
}

/// `{"type":"object","properties":{}}`: the parameters of a function without any.
fn empty_schema() -> &'static RawValue {
    static SCHEMA: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| crate::json::to_raw(&serde_json::json!({"type": "object", "properties": {}})))
}

/// Chat Completions `response_format` -> `text.format` (`None` for `text`, unknown
/// types or malformed values, which the decoders never produce).
fn text_format(raw: &RawValue) -> Option<FormatWire<'_>> {
    let format: FormatIn<'_> = serde_json::from_str(raw.get()).ok()?;
    match format.kind.as_str() {
        "json_object" => Some(FormatWire::JsonObject { kind: "json_object" }),
        "json_schema" => {
            let schema = format.json_schema?;
            Some(FormatWire::JsonSchema {
                kind: "json_schema",
                name: schema.name.unwrap_or_else(|| "response".to_owned()),
                description: schema.description,
                schema: schema.schema,
                strict: schema.strict,
            })
        }
        _ => None,
    }
}

#[derive(serde::Deserialize)]
struct FormatIn<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(borrow)]
    json_schema: Option<SchemaIn<'a>>,
}

#[derive(serde::Deserialize)]
struct SchemaIn<'a> {
    name: Option<String>,
    description: Option<String>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    strict: Option<bool>,
}

/// Text parts joined with `\n`.
fn joined_text(content: &[ContentPart]) -> String {
    let mut text = String::new();
    for part in texts(content) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(part);
    }
    text
}

fn has_image(content: &[ContentPart]) -> bool {
    content.iter().any(|part| matches!(part, ContentPart::Image { .. }))
}

/// Input parts: text as `input_text`, images as `input_image`.
fn input_parts(content: &[ContentPart]) -> Vec<PartWire<'_>> {
    content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text(text) if text.is_empty() => None,
            ContentPart::Text(text) => Some(PartWire::InputText { text: text.as_str().into() }),
            ContentPart::Image { url, detail } => {
                Some(PartWire::InputImage { image_url: url, detail: detail.as_deref().unwrap_or("auto") })
            }
        })
        .collect()
}

/// Text as a string; with images, input parts.
fn input_content(content: &[ContentPart]) -> ContentWire<'_> {
    if has_image(content) { ContentWire::Parts(input_parts(content)) } else { ContentWire::Text(joined_text(content)) }
}

fn items(messages: &[Message]) -> Vec<ItemWire<'_>> {
    let mut items = Vec::with_capacity(messages.len());
    for message in messages {
        match message.role {
            Role::System | Role::Developer | Role::User => {
                items.push(ItemWire::Message { role: message.role.as_str(), content: input_content(&message.content) })
            }
            Role::Assistant => {
                if let Some((id, encrypted_content)) = message
                    .reasoning_signature
                    .as_deref()
                    .and_then(llmux_types::chat::openai_signature)
                    .and_then(|signature| signature.split_once(':'))
                    .filter(|(id, sealed)| !id.is_empty() && !sealed.is_empty())
                {
                    let summary = message.reasoning.as_deref().filter(|text| !text.is_empty());
                    items.push(ItemWire::Reasoning {
                        id,
                        summary: summary.map(|text| SummaryWire { kind: "summary_text", text }).into_iter().collect(),
                        encrypted_content,
                    });
                }
                let text = joined_text(&message.content);
                if !text.is_empty() {
                    items.push(ItemWire::Message {
                        role: "assistant",
                        content: ContentWire::Parts(vec![PartWire::OutputText { text: text.into() }]),
                    });
                }
                for call in &message.tool_calls {
                    items.push(ItemWire::FunctionCall {
                        call_id: &call.id,
                        name: &call.name,
                        arguments: &call.arguments,
                    });
                }
            }
            Role::Tool => {
                let text = joined_text(&message.content);
                let text = if message.tool_error { format!("Error: {text}") } else { text };
                let output = if has_image(&message.content) {
                    let mut parts = Vec::new();
                    if !text.is_empty() {
                        parts.push(PartWire::InputText { text: text.into() });
                    }
                    parts.extend(
                        input_parts(&message.content)
                            .into_iter()
                            .filter(|part| matches!(part, PartWire::InputImage { .. })),
                    );
                    ContentWire::Parts(parts)
                } else {
                    ContentWire::Text(text)
                };
                items.push(ItemWire::FunctionCallOutput {
                    call_id: message.tool_call_id.as_deref().unwrap_or_default(),
                    output,
                });
            }
        }
    }
    items
}

#[derive(Serialize)]
struct RequestWire<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<String>,
    input: Vec<ItemWire<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<ReasoningWire<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    include: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_identifier: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<&'a RawValue>,
    store: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ItemWire<'a> {
    Message { role: &'static str, content: ContentWire<'a> },
    FunctionCall { call_id: &'a str, name: &'a str, arguments: &'a str },
    FunctionCallOutput { call_id: &'a str, output: ContentWire<'a> },
    Reasoning { id: &'a str, summary: Vec<SummaryWire<'a>>, encrypted_content: &'a str },
}

#[derive(Serialize)]
struct SummaryWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentWire<'a> {
    Text(String),
    Parts(Vec<PartWire<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartWire<'a> {
    InputText { text: std::borrow::Cow<'a, str> },
    InputImage { image_url: &'a str, detail: &'a str },
    OutputText { text: std::borrow::Cow<'a, str> },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolWire<'a> {
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        parameters: &'a RawValue,
        strict: bool,
    },
    Raw(&'a RawValue),
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoiceWire<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'a str,
    },
    Raw(&'a RawValue),
}

#[derive(Serialize)]
struct TextWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<FormatWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verbosity: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum FormatWire<'a> {
    JsonObject {
        #[serde(rename = "type")]
        kind: &'static str,
    },
    JsonSchema {
        #[serde(rename = "type")]
        kind: &'static str,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        schema: Option<&'a RawValue>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

#[derive(Serialize)]
struct ReasoningWire<'a> {
    effort: &'a RawValue,
}
