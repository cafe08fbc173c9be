//! Borrowed request peeks and byte-splicing rewrites for the same-dialect path.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::DecodeError;

/// Which OpenAI endpoint a body was sent to; decides the required fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    /// The Responses API (`POST /responses`), which OpenAI-dialect providers may serve.
    Responses,
}

impl Endpoint {
    /// The path below the `/v1` base.
    pub fn path(&self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
        }
    }
}

/// What the gateway needs to know about a request body, borrowed from it.
#[derive(Debug)]
pub struct Peek<'a> {
    pub model: Cow<'a, str>,
    /// Byte range of the `model` value (quotes included) inside the body.
    model_span: (usize, usize),
    pub stream: bool,
    /// Whether the client itself asked for the final usage chunk.
    pub include_usage: bool,
    /// Byte range of the `stream_options` value, when present.
    stream_options_span: Option<(usize, usize)>,
    /// Offset just past the opening `{`.
    object_start: usize,
    /// `max_tokens` / `max_completion_tokens`, for cost estimates.
    pub max_tokens: Option<u64>,
    /// Number of choices asked for.
    pub n: u32,
    /// `prompt_cache_key` and `user` when they are strings: what names the client's
    /// conversation (route affinity). Other types pass through unread.
    pub prompt_cache_key: Option<Cow<'a, str>>,
    pub user: Option<Cow<'a, str>>,
    /// How many messages (chat) and tools the request holds.
    pub messages: usize,
    pub tools: usize,
}

/// OpenAI's own limit on `n` (choices per request).
pub const MAX_CHOICES: u32 = 128;
/// OpenAI's own limit on the inputs of one embeddings request; llmux applies it to a
/// legacy completion's prompts too.
pub const MAX_INPUTS: usize = 2048;

/// Fields named with a leading `_` are read only so their JSON type is checked.
#[derive(Deserialize)]
struct RawPeek<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<Vec<MessagePeek<'a>>>,
    prompt: Option<InputCount>,
    input: Option<InputCount>,
    stream: Option<bool>,
    #[serde(borrow)]
    stream_options: Option<&'a RawValue>,
    n: Option<u32>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(rename = "temperature")]
    _temperature: Option<f64>,
    #[serde(rename = "top_p")]
    _top_p: Option<f64>,
    #[serde(rename = "presence_penalty")]
    _presence_penalty: Option<f64>,
    #[serde(rename = "frequency_penalty")]
    _frequency_penalty: Option<f64>,
    #[serde(rename = "seed")]
    _seed: Option<i64>,
    #[serde(rename = "logprobs")]
    _logprobs: Option<IgnoredAny>,
    #[serde(borrow)]
    tools: Option<Vec<ToolPeek<'a>>>,
    #[serde(borrow)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(borrow)]
    user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessagePeek<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ToolPeek<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamOptionsPeek {
    include_usage: Option<bool>,
}

const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// Validates `body` as a request to `endpoint` and returns what the gateway needs.
pub fn peek(body: &[u8], endpoint: Endpoint) -> Result<Peek<'_>, DecodeError> {
    let raw: RawPeek<'_> = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(error) => return Err(diagnose(body, endpoint, &error)),
    };
    // serde also accepts a struct written as an array of its fields, and it does not
    // look inside the values it skips: the body is forwarded, so check both.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(DecodeError::new(None, "the request body must be a JSON object"));
    }
    if std::str::from_utf8(body).is_err() {
        return Err(DecodeError::new(None, "the request body is not valid UTF-8"));
    }
    let Some(model_raw) = raw.model else {
        return Err(DecodeError::new(Some("model"), "you must provide a model parameter"));
    };
    let model: Cow<'_, str> = serde_json::from_str(model_raw.get())
        .map_err(|_| DecodeError::new(Some("model"), "`model` must be a string"))?;
    if model.is_empty() {
        return Err(DecodeError::new(Some("model"), "`model` must not be empty"));
    }
    match endpoint {
        Endpoint::ChatCompletions => {
            let Some(messages) = &raw.messages else {
                return Err(DecodeError::new(Some("messages"), "missing required parameter: `messages`"));
            };
            if messages.is_empty() {
                return Err(DecodeError::new(Some("messages"), "`messages` must contain at least one message"));
            }
            for (index, message) in messages.iter().enumerate() {
                if !ROLES.contains(&message.role.as_ref()) {
                    return Err(DecodeError::new(
                        Some(&format!("messages[{index}].role")),
                        format!("invalid role `{}`; expected one of {}", message.role, ROLES.join(", ")),
                    ));
                }
            }
            if let Some(tools) = &raw.tools {
                for (index, tool) in tools.iter().enumerate() {
                    if tool.kind.as_deref().is_none() {
                        return Err(DecodeError::new(
                            Some(&format!("tools[{index}].type")),
                            "missing required parameter: `type`",
                        ));
                    }
                }
            }
        }
        Endpoint::Completions => {
            if raw.prompt.is_none() {
                return Err(DecodeError::new(Some("prompt"), "missing required parameter: `prompt`"));
            }
        }
        Endpoint::Embeddings | Endpoint::Responses => {
            if raw.input.is_none() {
                return Err(DecodeError::new(Some("input"), "missing required parameter: `input`"));
            }
        }
    }
    match raw.n {
        Some(0) => return Err(DecodeError::new(Some("n"), "`n` must be at least 1")),
        Some(n) if n > MAX_CHOICES => {
            return Err(DecodeError::new(Some("n"), format!("`n` must be at most {MAX_CHOICES}, got {n}")));
        }
        _ => {}
    }
    if matches!(endpoint, Endpoint::Embeddings | Endpoint::Completions) {
        let (field, count) = match endpoint {
            Endpoint::Embeddings => ("input", raw.input.as_ref()),
            _ => ("prompt", raw.prompt.as_ref()),
        };
        if let Some(InputCount(count)) = count
            && *count > MAX_INPUTS
        {
            return Err(DecodeError::new(
                Some(field),
                format!("`{field}` may hold at most {MAX_INPUTS} inputs per request, got {count}"),
            ));
        }
    }
    let stream = raw.stream.unwrap_or(false);
    let mut include_usage = false;
    if let Some(options) = raw.stream_options
        && options.get() != "null"
    {
        let options: StreamOptionsPeek = serde_json::from_str(options.get())
            .map_err(|_| DecodeError::new(Some("stream_options"), "`stream_options` must be an object"))?;
        include_usage = options.include_usage.unwrap_or(false);
    }
    let object_start = body.iter().position(|b| *b == b'{').map_or(0, |p| p + 1);
    Ok(Peek {
        model,
        model_span: span_of(body, model_raw),
        stream,
        include_usage,
        stream_options_span: raw
            .stream_options
            .filter(|options| options.get() != "null")
            .map(|options| span_of(body, options)),
        object_start,
        max_tokens: raw.max_completion_tokens.or(raw.max_tokens),
        n: raw.n.unwrap_or(1),
        prompt_cache_key: string_of(raw.prompt_cache_key),
        user: string_of(raw.user),
        messages: raw.messages.as_ref().map_or(0, Vec::len),
        tools: raw.tools.as_ref().map_or(0, Vec::len),
    })
}

/// How many inputs an `input` or `prompt` value holds: a string or one list of token
/// ids is one input, an array of strings or of token lists one per element. Other
/// values are counted as one (the endpoint's own decoding judges them).
struct InputCount(usize);

impl<'de> Deserialize<'de> for InputCount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<InputCount, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = InputCount;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string or an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<InputCount, A::Error> {
                let mut count = 0usize;
                let mut numbers = true;
                while let Some(element) = seq.next_element::<Element>()? {
                    count += 1;
                    numbers &= element.0;
                }
                Ok(InputCount(if numbers && count > 0 { 1 } else { count }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<InputCount, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(InputCount(1))
            }
            fn visit_str<E>(self, _: &str) -> Result<InputCount, E> {
                Ok(InputCount(1))
            }
            fn visit_bool<E>(self, _: bool) -> Result<InputCount, E> {
                Ok(InputCount(1))
            }
            fn visit_i64<E>(self, _: i64) -> Result<InputCount, E> {
                Ok(InputCount(1))
            }
            fn visit_u64<E>(self, _: u64) -> Result<InputCount, E> {
                Ok(InputCount(1))
            }
            fn visit_f64<E>(self, _: f64) -> Result<InputCount, E> {
                Ok(InputCount(1))
            }
            fn visit_unit<E>(self) -> Result<InputCount, E> {
                Ok(InputCount(0))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One element of an input array: whether it is a number (a token id).
struct Element(bool);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Element, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Element;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_i64<E>(self, _: i64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Element, E> {
                Ok(Element(true))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_unit<E>(self) -> Result<Element, E> {
                Ok(Element(false))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element(false))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Element(false))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A JSON string's text, borrowed where it has no escapes; `None` for other values.
fn string_of(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    match serde_json::from_str::<&str>(raw) {
        Ok(text) => Some(Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

/// The byte range of a borrowed `RawValue` inside `body`.
pub(crate) fn span_of(body: &[u8], raw: &RawValue) -> (usize, usize) {
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    (start, start + raw.get().len())
}

/// Produces the upstream body: `body` with `model` replaced by `upstream_model` and,
/// when `force_include_usage` is set, `stream_options.include_usage` set to true.
/// All other bytes are copied unchanged.
pub fn rewrite(body: &[u8], peek: &Peek<'_>, upstream_model: &str, force_include_usage: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + upstream_model.len() + 48);
    let mut edits: [(usize, usize, Edit); 2] =
        [(peek.model_span.0, peek.model_span.1, Edit::Model), (usize::MAX, usize::MAX, Edit::None)];
    if force_include_usage && !peek.include_usage {
        edits[1] = match peek.stream_options_span {
            Some((start, end)) => (start, end, Edit::StreamOptions),
            None => (peek.object_start, peek.object_start, Edit::InsertStreamOptions),
        };
    }
    edits.sort_by_key(|edit| edit.0);
    let mut cursor = 0;
    for (start, end, edit) in edits {
        if matches!(edit, Edit::None) {
            continue;
        }
        out.extend_from_slice(&body[cursor..start]);
        match edit {
            Edit::Model => write_json_string(&mut out, upstream_model),
            Edit::StreamOptions => out.extend_from_slice(&merged_stream_options(&body[start..end])),
            Edit::InsertStreamOptions => out.extend_from_slice(br#""stream_options":{"include_usage":true},"#),
            Edit::None => {}
        }
        cursor = end;
    }
    out.extend_from_slice(&body[cursor..]);
    out
}

#[derive(Debug, Clone, Copy)]
enum Edit {
    None,
    Model,
    StreamOptions,
    InsertStreamOptions,
}

/// `stream_options` with `include_usage: true`, other members kept.
fn merged_stream_options(raw: &[u8]) -> Vec<u8> {
    let mut options: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw).unwrap_or_default();
    options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    serde_json::to_vec(&options).unwrap_or_else(|_| br#"{"include_usage":true}"#.to_vec())
}

/// Appends `text` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Explains why `body` failed the typed peek, naming the field where possible.
/// Only runs on the error path.
fn diagnose(body: &[u8], endpoint: Endpoint, error: &serde_json::Error) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => {
            return DecodeError::new(None, format!("the request body is not valid JSON: {error}"));
        }
    };
    let Some(object) = value.as_object() else {
        return DecodeError::new(None, "the request body must be a JSON object");
    };
    use serde_json::Value;
    type Check = fn(&Value) -> bool;
    let expectations: [(&str, Check, &str); 14] = [
        ("model", Value::is_string, "a string"),
        ("messages", Value::is_array, "an array of messages"),
        ("stream", Value::is_boolean, "a boolean"),
        ("stream_options", Value::is_object, "an object"),
        ("n", Value::is_u64, "a positive integer"),
        ("max_tokens", Value::is_u64, "a non-negative integer"),
        ("max_completion_tokens", Value::is_u64, "a non-negative integer"),
        ("temperature", Value::is_number, "a number"),
        ("top_p", Value::is_number, "a number"),
        ("presence_penalty", Value::is_number, "a number"),
        ("frequency_penalty", Value::is_number, "a number"),
        ("seed", Value::is_i64, "an integer"),
        ("tools", Value::is_array, "an array of tools"),
        ("logprobs", |v| v.is_boolean() || v.is_u64(), "a boolean"),
    ];
    for (field, ok, expected) in expectations {
        if let Some(value) = object.get(field)
            && !value.is_null()
            && !ok(value)
        {
            return DecodeError::new(Some(field), format!("`{field}` must be {expected}, got {}", kind_of(value)));
        }
    }
    if endpoint == Endpoint::ChatCompletions
        && let Some(messages) = object.get("messages").and_then(Value::as_array)
    {
        for (index, message) in messages.iter().enumerate() {
            match message.get("role") {
                None => {
                    return DecodeError::new(
                        Some(&format!("messages[{index}].role")),
                        "missing required parameter: `role`",
                    );
                }
                Some(role) if !role.is_string() => {
                    return DecodeError::new(Some(&format!("messages[{index}].role")), "`role` must be a string");
                }
                _ => {}
            }
        }
    }
    DecodeError::new(None, format!("invalid request body: {error}"))
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
