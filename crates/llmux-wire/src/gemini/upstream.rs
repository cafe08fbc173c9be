//! The Gemini API (generativelanguage `v1beta`) on the upstream side: canonical request ->
//! `GenerateContentRequest` body, `GenerateContentResponse` / `alt=sse` stream chunks ->
//! canonical. Used when a client of any dialect reaches a Gemini upstream.
//!
//! Request notes ([`generate_content_request`]):
//! - No `model` and no `stream` in the body: both are in the URL the caller builds.
//! - Every `Role::System` and `Role::Developer` message, wherever it stands, goes to
//!   `systemInstruction.parts`, one text part per non-empty text, in order (images in
//!   system messages are not sent: Anthropic and OpenAI system content is text).
//! - User turns have role `user`, assistant turns `model`. Empty text is never sent; a
//!   content left with no part is dropped, and consecutive contents of the same role are
//!   merged (Gemini answers 400 "Please ensure that multiturn requests alternate between
//!   user and model"). A conversation that opens with the model gets a user content of
//!   `"."` before it.
//! - Images: `data:<mime>;base64,<data>` URLs become `inlineData`, any other URL
//!   `fileData{mimeType, fileUri}` with the MIME type guessed from the path's extension
//!   (`png`, `jpg`/`jpeg`, `gif`, `webp`, `heic`, `heif`, `pdf`; `image/jpeg` otherwise).
//!   Gemini fetches only File API URIs and some public URLs (Vertex also `gs://`);
//!   downloading and inlining is I/O and is left to the caller. `detail` is dropped.
//! - Assistant turns: text parts, then one `functionCall{id, name, args}` part per tool
//!   call, `args` being the arguments when they are a JSON object (sent verbatim) and `{}`
//!   otherwise. The turn's `reasoning_signature`, when Gemini minted it (canonical
//!   signatures from Gemini carry `GEMINI_SIGNATURE_PREFIX`, which is stripped here;
//!   another provider's signature is not sent), becomes the `thoughtSignature` of its
//!   first `functionCall` part (Gemini 3 answers 400 "Function call is missing a
//!   thought_signature" when the first call of a step has none), or of its last text part
//!   when it made no call (where Gemini puts it on such answers); a turn with neither
//!   cannot carry it. Signatures are never invented. Reasoning text is not sent (Gemini
//!   takes no thought text back), `redacted_reasoning` is Anthropic-only and dropped, and
//!   images are not sent in model turns (OpenAI assistant content is text only).
//! - Tool messages become `functionResponse{id, name, response}` parts of a `user`
//!   content; in a merged user content they come first, in order, then the other parts
//!   (Gemini pairs the responses with the calls of the model turn right before). `name`
//!   (required by Gemini) is the name of the call with that `tool_call_id` in the nearest
//!   earlier assistant turn, or the id itself when no turn made it. `response` must be a
//!   JSON object: `{"error": <text>}` when `tool_error`, the text itself when it is a JSON
//!   object, `{"output": <text>}` otherwise (the text being the non-empty text parts joined
//!   with `\n`). Images of a tool message follow its response as `inlineData`/`fileData`.
//! - `id` is sent on `functionCall` and `functionResponse` whatever minted it: the Gemini
//!   Developer API has the field (it issues ids itself for newer models, and pairs a
//!   response to its call by it when present). Vertex AI has no such field and answers 400
//!   `Unknown name "id"`: a Vertex adapter must not use this body as is.
//! - Tools: `tools: [{functionDeclarations: [{name, description, parametersJsonSchema}]}]`.
//!   `parametersJsonSchema` takes full JSON Schema (`$ref`, `$defs`, `anyOf`, `oneOf`,
//!   `additionalProperties`, ...), so the client's schema is sent verbatim, minus a
//!   top-level `$schema` (a dialect marker, not a constraint). The alternative, the
//!   OpenAPI-subset `parameters`, would need a lossy scrub of every keyword it rejects. A
//!   tool without a schema takes no arguments: no schema is sent.
//! - `tool_choice` -> `toolConfig.functionCallingConfig.mode`: `auto` -> `AUTO`, `none` ->
//!   `NONE`, `required` -> `ANY`, a named function -> `ANY` with `allowedFunctionNames:
//!   [name]`. Without tools there is nothing to choose and no `toolConfig` is sent.
//! - `generationConfig`: `temperature` (Gemini's range is OpenAI's, 0..=2: sent as is),
//!   `topP`, `topK`, `maxOutputTokens`, `stopSequences`, `candidateCount` (`n`), `seed`
//!   (an int32 for Gemini: a seed outside that range is dropped), `response_format`
//!   (`json_object` -> `responseMimeType: "application/json"`; `json_schema` -> that and
//!   `responseJsonSchema` = its `schema`, minus a top-level `$schema`; `text` loses
//!   nothing), and from the extensions that both client decoders fill with the OpenAI
//!   meaning: `presence_penalty` / `frequency_penalty` (numbers, sent verbatim),
//!   `logprobs: true` -> `responseLogprobs`, `top_logprobs` -> `logprobs`, and
//!   `reasoning_effort` -> `thinkingConfig` (see `thinking_config`), and from the
//!   Anthropic decoder `thinking` -> `thinkingConfig` (see `anthropic_thinking`).
//! - Other extensions are not copied (they may come from another dialect and mean
//!   something else there); `parallel_tool_calls: true` is Gemini's behaviour anyway, but
//!   `false` cannot be held. Everything dropped is reported by name.
//!
//! Usage: `promptTokenCount` includes cached tokens (as the canonical input does) but not
//! `toolUsePromptTokenCount`, and `candidatesTokenCount` excludes `thoughtsTokenCount`
//! (billed as output all the same), so `input_tokens = promptTokenCount +
//! toolUsePromptTokenCount`, `output_tokens = candidatesTokenCount + thoughtsTokenCount`,
//! `reasoning_tokens = thoughtsTokenCount`, `cached_tokens = cachedContentTokenCount`.
//! Gemini reports no cache writes (explicit caches are billed as storage).

use std::borrow::Cow;
use std::time::Duration;

use llmux_types::Usage;
use llmux_types::chat::{
    ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, GEMINI_SIGNATURE_PREFIX, Message, Role, StreamEvent,
    ToolCall, ToolChoice, gemini_signature,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::DecodeError;
use crate::anthropic::decode::{compact_json, first_byte};
use crate::few::{Few, Str};

/// Extension keys Gemini cannot hold that are reported by their own name when dropped
/// (the mapped ones among them when their value cannot be used).
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

/// The MIME type of a URL whose extension says nothing known.
const DEFAULT_MIME_TYPE: &str = "image/jpeg";

/// Canonical request -> Gemini `GenerateContentRequest` body, and the names of the
/// parameters Gemini cannot hold and that were dropped, in the order `seed` (outside the
/// int32 range), `response_format` (a type other than `text`, `json_object`,
/// `json_schema`), then extension keys in key order (unknown keys reported once as
/// `extensions`; `null` values ignored; a mapped key whose value cannot be used is
/// reported by its name).
pub fn generate_content_request(request: &ChatRequest) -> (Vec<u8>, Vec<&'static str>) {
    let mut dropped = Vec::new();
    let mut config = GenerationConfigWire {
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        max_output_tokens: request.max_tokens,
        stop_sequences: &request.stop,
        candidate_count: request.n,
        ..GenerationConfigWire::default()
    };
    if let Some(seed) = request.seed {
        match i32::try_from(seed) {
            Ok(seed) => config.seed = Some(seed),
            Err(_) => dropped.push("seed"),
        }
    }
    if let Some(format) = request.response_format.as_deref()
        && !response_format(format, &mut config)
    {
        dropped.push("response_format");
    }
    for (name, raw) in &request.extensions {
        let value = raw.get().trim();
        let held = match name.as_str() {
            _ if value == "null" => true,
            "presence_penalty" => number(raw).map(|raw| config.presence_penalty = Some(raw)).is_some(),
            "frequency_penalty" => number(raw).map(|raw| config.frequency_penalty = Some(raw)).is_some(),
            "logprobs" => match value {
                "true" => {
                    config.response_logprobs = Some(true);
                    true
                }
                "false" => true,
                _ => false,
            },
            "top_logprobs" => serde_json::from_str::<u32>(value).map(|top| config.logprobs = Some(top)).is_ok(),
            "reasoning_effort" => {
                serde_json::from_str::<&str>(value).ok().and_then(thinking_config).map(|thinking| {
                    config.thinking_config = Some(thinking);
                }) == Some(())
            }
            // A `reasoning_effort` wins over Anthropic's `thinking` (both cannot come from
            // one client).
            "thinking" => {
                anthropic_thinking(value).map(|thinking| {
                    if config.thinking_config.is_none() {
                        config.thinking_config = thinking;
                    }
                }) == Some(())
            }
            // Gemini may always answer with parallel calls: only `true` loses nothing.
            "parallel_tool_calls" => value == "true",
            _ => false,
        };
        if !held {
            let name =
                KNOWN_EXTENSIONS.iter().copied().find(|known| *known == name.as_str()).unwrap_or(OTHER_EXTENSIONS);
            if !dropped.contains(&name) {
                dropped.push(name);
            }
        }
    }

    let system: Vec<PartWire<'_>> = request
        .messages
        .iter()
        .filter(|message| matches!(message.role, Role::System | Role::Developer))
        .flat_map(|message| texts(&message.content))
        .map(PartWire::text)
        .collect();
    let tool_config = match &request.tool_choice {
        _ if request.tools.is_empty() => None,
        None => None,
        Some(ToolChoice::Auto) => Some(("AUTO", None)),
        Some(ToolChoice::None) => Some(("NONE", None)),
        Some(ToolChoice::Required) => Some(("ANY", None)),
        Some(ToolChoice::Function(name)) => Some(("ANY", Some([name.as_str()]))),
    };
    let wire = RequestWire {
        system_instruction: (!system.is_empty()).then_some(SystemWire { parts: system }),
        contents: contents(&request.messages),
        tools: if request.tools.is_empty() {
            Vec::new()
        } else {
            vec![ToolWire {
                function_declarations: request
                    .tools
                    .iter()
                    .map(|tool| FunctionDeclarationWire {
                        name: &tool.name,
                        description: tool.description.as_deref(),
                        parameters_json_schema: tool.parameters.as_deref().map(schema),
                    })
                    .collect(),
            }]
        },
        tool_config: tool_config.map(|(mode, allowed_function_names)| ToolConfigWire {
            function_calling_config: FunctionCallingConfigWire { mode, allowed_function_names },
        }),
        generation_config: (!config.is_empty()).then_some(config),
    };
    (serde_json::to_vec(&wire).unwrap_or_default(), dropped)
}

/// `reasoning_effort` (OpenAI spelling) -> `thinkingConfig`, `None` for a value it cannot
/// express.
///
/// Gemini 3 models take a `thinkingLevel`; the OpenAI levels map one to one (`minimal` ->
/// `MINIMAL`, `low` -> `LOW`, `medium` -> `MEDIUM`, `high` -> `HIGH`), `xhigh` goes to the
/// highest level, `HIGH`, and `none` to the lowest, `MINIMAL` (Gemini 3 cannot turn
/// thinking off). `includeThoughts: true` is set (except for `none`) so that the thought
/// summaries come back as reasoning, as a client asking for an effort expects. Not every
/// model takes every level (some Gemini 3 models reject `MINIMAL` or `MEDIUM`), and Gemini
/// 2.5 models read an integer `thinkingBudget` instead; this module does not know the
/// model, so a level is always sent.
fn thinking_config(effort: &str) -> Option<ThinkingConfigWire> {
    let (thinking_level, include_thoughts) = match effort {
        "none" => ("MINIMAL", None),
        "minimal" => ("MINIMAL", Some(true)),
        "low" => ("LOW", Some(true)),
        "medium" => ("MEDIUM", Some(true)),
        "high" | "xhigh" => ("HIGH", Some(true)),
        _ => return None,
    };
    Some(ThinkingConfigWire { include_thoughts, thinking_level: Some(thinking_level), thinking_budget: None })
}

/// Anthropic's `thinking` (as an Anthropic client sends it) -> `thinkingConfig`:
/// `{"type": "enabled", "budget_tokens": n}` -> `thinkingBudget: n` with the thoughts
/// included, `{"type": "adaptive"}` -> the thoughts included at the model's own budget,
/// `{"type": "disabled"}` -> Gemini's default (`Some(None)`: held, nothing to send).
/// `None` for anything else.
fn anthropic_thinking(value: &str) -> Option<Option<ThinkingConfigWire>> {
    #[derive(Deserialize)]
    struct ThinkingIn<'a> {
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        budget_tokens: Option<u64>,
    }
    let thinking: ThinkingIn<'_> = serde_json::from_str(value).ok()?;
    let include =
        |thinking_budget| ThinkingConfigWire { include_thoughts: Some(true), thinking_level: None, thinking_budget };
    match (&*thinking.kind, thinking.budget_tokens) {
        ("enabled", Some(budget)) => Some(Some(include(Some(budget)))),
        ("adaptive", _) => Some(Some(include(None))),
        ("disabled", _) => Some(None),
        _ => None,
    }
}

/// Maps `response_format` into `config`; `false` when it cannot be held.
fn response_format<'a>(format: &'a RawValue, config: &mut GenerationConfigWire<'a>) -> bool {
    #[derive(Deserialize)]
    struct FormatIn<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        json_schema: Option<JsonSchemaIn<'a>>,
    }
    #[derive(Deserialize)]
    struct JsonSchemaIn<'a> {
        #[serde(borrow)]
        schema: Option<&'a RawValue>,
    }
    let Ok(format) = serde_json::from_str::<FormatIn<'_>>(format.get()) else {
        return false;
    };
    match format.kind.as_deref() {
        Some("text") => true,
        Some("json_object") => {
            config.response_mime_type = Some("application/json");
            true
        }
        Some("json_schema") => {
            config.response_mime_type = Some("application/json");
            config.response_json_schema = format
                .json_schema
                .and_then(|wrapper| wrapper.schema)
                .filter(|schema| schema.get().trim() != "null")
                .map(schema);
            true
        }
        _ => false,
    }
}

/// A JSON number extension, kept verbatim.
fn number(raw: &RawValue) -> Option<&RawValue> {
    serde_json::from_str::<f64>(raw.get()).is_ok().then_some(raw)
}

/// The non-empty text parts of `content`.
fn texts(content: &[ContentPart]) -> impl Iterator<Item = &str> {
    content.iter().filter_map(|part| match part {
        ContentPart::Text(text) if !text.is_empty() => Some(text.as_str()),
        _ => None,
    })
}

/// `{}`, the arguments of a call whose arguments are not a JSON object.
fn empty_object<'a>() -> &'a RawValue {
    serde_json::from_str("{}").expect("valid JSON")
}

/// `text` itself when it is a JSON object (borrowed, spelling kept).
fn json_object(text: &str) -> Option<&RawValue> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') { serde_json::from_str::<&RawValue>(trimmed).ok() } else { None }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemWire<'a>>,
    contents: Vec<ContentWire<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfigWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfigWire<'a>>,
}

#[derive(Serialize)]
struct SystemWire<'a> {
    parts: Vec<PartWire<'a>>,
}

#[derive(Serialize)]
struct ContentWire<'a> {
    role: &'static str,
    parts: Vec<PartWire<'a>>,
}

/// One part: exactly one of the data fields is set (Gemini's `data` oneof), plus the
/// signature the part carries.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct PartWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<InlineDataWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileDataWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponseWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
}

impl<'a> PartWire<'a> {
    fn text(text: &'a str) -> PartWire<'a> {
        PartWire { text: Some(text), ..PartWire::default() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InlineDataWire<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileDataWire<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCallWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: &'a RawValue,
}

#[derive(Serialize)]
struct FunctionResponseWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: ToolOutputWire<'a>,
}

/// A `functionResponse.response` (always a JSON object).
#[derive(Serialize)]
#[serde(untagged)]
enum ToolOutputWire<'a> {
    Object(&'a RawValue),
    /// A JSON object made of several text parts.
    OwnedObject(Box<RawValue>),
    Output {
        output: Cow<'a, str>,
    },
    Error {
        error: Cow<'a, str>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolWire<'a> {
    function_declarations: Vec<FunctionDeclarationWire<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclarationWire<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<SchemaWire<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfigWire<'a> {
    function_calling_config: FunctionCallingConfigWire<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfigWire<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfigWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<SchemaWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfigWire>,
}

impl GenerationConfigWire<'_> {
    fn is_empty(&self) -> bool {
        let GenerationConfigWire {
            temperature,
            top_p,
            top_k,
            candidate_count,
            max_output_tokens,
            stop_sequences,
            presence_penalty,
            frequency_penalty,
            seed,
            response_mime_type,
            response_json_schema,
            response_logprobs,
            logprobs,
            thinking_config,
        } = self;
        temperature.is_none()
            && top_p.is_none()
            && top_k.is_none()
            && candidate_count.is_none()
            && max_output_tokens.is_none()
            && stop_sequences.is_empty()
            && presence_penalty.is_none()
            && frequency_penalty.is_none()
            && seed.is_none()
            && response_mime_type.is_none()
            && response_json_schema.is_none()
            && response_logprobs.is_none()
            && logprobs.is_none()
            && thinking_config.is_none()
    }
}

/// `generationConfig.thinkingConfig` (see `thinking_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfigWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u64>,
}

/// A JSON Schema sent to Gemini: verbatim, or, when its top level has `$schema`, its
/// top-level members in order without that one (nested values stay verbatim).
enum SchemaWire<'a> {
    Verbatim(&'a RawValue),
    Members(Vec<(Cow<'a, str>, &'a RawValue)>),
}

impl Serialize for SchemaWire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SchemaWire::Verbatim(raw) => raw.serialize(serializer),
            SchemaWire::Members(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// `raw` without a top-level `$schema` member.
fn schema(raw: &RawValue) -> SchemaWire<'_> {
    if first_byte(raw) != b'{' || !raw.get().contains("\"$schema\"") {
        return SchemaWire::Verbatim(raw);
    }
    match serde_json::from_str::<ObjectMembers<'_>>(raw.get()) {
        Ok(ObjectMembers(members)) if members.iter().any(|(key, _)| key == "$schema") => {
            SchemaWire::Members(members.into_iter().filter(|(key, _)| key != "$schema").collect())
        }
        _ => SchemaWire::Verbatim(raw),
    }
}

/// The members of a JSON object, in order, keys borrowed unless escaped.
struct ObjectMembers<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A borrowed-when-possible object key.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for ObjectMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ObjectMembers<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(ObjectMembers(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The conversation without system/developer messages, as alternating contents.
fn contents(messages: &[Message]) -> Vec<ContentWire<'_>> {
    let mut contents: Vec<ContentWire<'_>> = Vec::with_capacity(messages.len());
    for (position, message) in messages.iter().enumerate() {
        let (role, parts) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", message.content.iter().filter_map(content_part).collect()),
            Role::Assistant => ("model", model_parts(message)),
            Role::Tool => ("user", tool_parts(message, &messages[..position])),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(content) if content.role == role => {
                for part in parts {
                    if part.function_response.is_some() {
                        // After the content's leading function responses, before its other parts.
                        let at = content.parts.iter().take_while(|part| part.function_response.is_some()).count();
                        content.parts.insert(at, part);
                    } else {
                        content.parts.push(part);
                    }
                }
            }
            _ => contents.push(ContentWire { role, parts }),
        }
    }
    // Gemini wants the conversation to open with the user (an OpenAI history may open
    // with the assistant): a minimal user turn goes first.
    if contents.first().is_some_and(|content| content.role == "model") {
        contents.insert(0, ContentWire { role: "user", parts: vec![PartWire::text(LEADING_USER_TEXT)] });
    }
    contents
}

/// The text of the user turn put before a conversation that opens with the model.
const LEADING_USER_TEXT: &str = ".";

/// A text or media part; `None` for empty text.
fn content_part(part: &ContentPart) -> Option<PartWire<'_>> {
    match part {
        ContentPart::Text(text) if text.is_empty() => None,
        ContentPart::Text(text) => Some(PartWire::text(text)),
        ContentPart::Image { url, .. } => Some(media_part(url)),
    }
}

fn media_part(url: &str) -> PartWire<'_> {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((header, data)) = rest.split_once(',')
        && let Some(mime_type) = header.strip_suffix(";base64")
    {
        // Parameters other than `base64` (`;charset=...`) are not part of the MIME type.
        let mime_type = mime_type.split(';').next().unwrap_or(mime_type);
        let mime_type = if mime_type.is_empty() { DEFAULT_MIME_TYPE } else { mime_type };
        return PartWire { inline_data: Some(InlineDataWire { mime_type, data }), ..PartWire::default() };
    }
    PartWire { file_data: Some(FileDataWire { mime_type: mime_type(url), file_uri: url }), ..PartWire::default() }
}

/// The MIME type of a URL from the extension of its path (query and fragment ignored).
fn mime_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((_, extension)) = name.rsplit_once('.') else {
        return DEFAULT_MIME_TYPE;
    };
    const TYPES: &[(&str, &str)] = &[
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("heic", "image/heic"),
        ("heif", "image/heif"),
        ("pdf", "application/pdf"),
    ];
    TYPES.iter().find(|(known, _)| known.eq_ignore_ascii_case(extension)).map_or(DEFAULT_MIME_TYPE, |(_, mime)| mime)
}

fn model_parts(message: &Message) -> Vec<PartWire<'_>> {
    let mut parts: Vec<PartWire<'_>> = texts(&message.content).map(PartWire::text).collect();
    let text_parts = parts.len();
    parts.extend(message.tool_calls.iter().map(|call| PartWire {
        function_call: Some(FunctionCallWire {
            id: Some(call.id.as_str()).filter(|id| !id.is_empty()),
            name: &call.name,
            args: json_object(&call.arguments).unwrap_or_else(empty_object),
        }),
        ..PartWire::default()
    }));
    // Only Gemini's own signatures (see `GEMINI_SIGNATURE_PREFIX`); another provider's
    // would be refused.
    if let Some(signature) = message.reasoning_signature.as_deref().and_then(gemini_signature) {
        // The first call's part, or the last text part when there is no call.
        let at = if message.tool_calls.is_empty() { text_parts.checked_sub(1) } else { Some(text_parts) };
        if let Some(part) = at.and_then(|at| parts.get_mut(at)) {
            part.thought_signature = Some(signature);
        }
    }
    parts
}

fn tool_parts<'a>(message: &'a Message, earlier: &'a [Message]) -> Vec<PartWire<'a>> {
    let id = message.tool_call_id.as_deref().filter(|id| !id.is_empty());
    let name = id.map_or("", |id| {
        earlier
            .iter()
            .rev()
            .filter(|message| message.role == Role::Assistant)
            .find_map(|message| message.tool_calls.iter().find(|call| call.id == id))
            .map_or(id, |call| call.name.as_str())
    });
    let mut texts = texts(&message.content);
    let text = match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(text), None) => Cow::Borrowed(text),
        (Some(first), Some(second)) => {
            let mut joined = format!("{first}\n{second}");
            for text in texts {
                joined.push('\n');
                joined.push_str(text);
            }
            Cow::Owned(joined)
        }
    };
    let response = if message.tool_error {
        ToolOutputWire::Error { error: text }
    } else {
        match text {
            Cow::Borrowed(single) => match json_object(single) {
                Some(object) => ToolOutputWire::Object(object),
                None => ToolOutputWire::Output { output: text },
            },
            Cow::Owned(joined) => match json_object(&joined) {
                Some(object) => ToolOutputWire::OwnedObject(object.to_owned()),
                None => ToolOutputWire::Output { output: Cow::Owned(joined) },
            },
        }
    };
    let mut parts =
        vec![PartWire { function_response: Some(FunctionResponseWire { id, name, response }), ..PartWire::default() }];
    parts.extend(message.content.iter().filter_map(|part| match part {
        ContentPart::Image { url, .. } => Some(media_part(url)),
        ContentPart::Text(_) => None,
    }));
    parts
}

// ---------------------------------------------------------------------------------
// Responses.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseIn<'a> {
    #[serde(borrow)]
    candidates: Option<Few<CandidateIn<'a>>>,
    #[serde(borrow)]
    prompt_feedback: Option<PromptFeedbackIn<'a>>,
    usage_metadata: Option<UsageIn>,
    #[serde(borrow)]
    model_version: Option<Str<'a>>,
    #[serde(borrow)]
    response_id: Option<Str<'a>>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CandidateIn<'a> {
    #[serde(borrow)]
    content: Option<ContentIn<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Str<'a>>,
    index: Option<u32>,
}

#[derive(Deserialize)]
struct ContentIn<'a> {
    #[serde(borrow)]
    parts: Option<Few<PartIn<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartIn<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
    thought: Option<bool>,
    #[serde(borrow)]
    thought_signature: Option<Str<'a>>,
    #[serde(borrow)]
    function_call: Option<FunctionCallIn<'a>>,
}

#[derive(Deserialize)]
struct FunctionCallIn<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedbackIn<'a> {
    #[serde(borrow)]
    block_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageIn {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

/// Gemini's usage counters as last reported; every reported field replaces the previous
/// value (stream usage is a running total, never added).
#[derive(Debug, Clone, Copy, Default)]
struct UsageState {
    prompt: u64,
    candidates: u64,
    thoughts: u64,
    tool_use_prompt: u64,
    cached: u64,
}

impl UsageState {
    fn update(&mut self, wire: &UsageIn) {
        let replace = |field: &mut u64, value: Option<u64>| {
            if let Some(value) = value {
                *field = value;
            }
        };
        replace(&mut self.prompt, wire.prompt_token_count);
        replace(&mut self.candidates, wire.candidates_token_count);
        replace(&mut self.thoughts, wire.thoughts_token_count);
        replace(&mut self.tool_use_prompt, wire.tool_use_prompt_token_count);
        replace(&mut self.cached, wire.cached_content_token_count);
    }

    fn canonical(&self) -> Usage {
        Usage {
            input_tokens: self.prompt.saturating_add(self.tool_use_prompt),
            output_tokens: self.candidates.saturating_add(self.thoughts),
            cached_tokens: self.cached,
            reasoning_tokens: self.thoughts,
            cache_write_tokens: 0,
        }
    }
}

#[derive(Deserialize)]
struct ErrorIn<'a> {
    code: Option<i64>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    details: Option<Vec<&'a RawValue>>,
}

/// `<status>: <message>` of a Gemini error object (the status lets the gateway tell
/// `RESOURCE_EXHAUSTED` from `UNAVAILABLE` without the HTTP status).
fn error_text(error: &ErrorIn<'_>) -> String {
    let status = error.status.as_deref().filter(|status| !status.is_empty());
    let message = error.message.as_deref().filter(|message| !message.is_empty());
    match (status, message) {
        (Some(status), Some(message)) => format!("{status}: {message}"),
        (Some(text), None) | (None, Some(text)) => text.to_owned(),
        (None, None) => match error.code {
            Some(code) => format!("upstream error {code}"),
            None => "unknown upstream error".to_owned(),
        },
    }
}

/// Gemini `finishReason` -> canonical. `STOP` (and an absent or unspecified reason) is
/// `ToolCalls` when the candidate made function calls: Gemini has no reason of its own
/// for them. `MAX_TOKENS` stays `Length` even then (the answer was cut). The safety and
/// policy stops, `RECITATION` included (the output was withheld), are `ContentFilter`;
/// `MALFORMED_FUNCTION_CALL`, `OTHER`, `UNEXPECTED_TOOL_CALL`, ... are kept lowercased as
/// `Other`.
fn finish_reason(reason: Option<&str>, made_tool_calls: bool) -> FinishReason {
    match reason {
        None | Some("STOP" | "FINISH_REASON_UNSPECIFIED" | "") if made_tool_calls => FinishReason::ToolCalls,
        None | Some("STOP" | "FINISH_REASON_UNSPECIFIED" | "") => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "LANGUAGE"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

/// Which signature of a candidate stands for its reasoning: the first one seen, unless a
/// later one is on a `functionCall` part while the first was not (that is the one Gemini
/// needs back on the call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SignatureSeen {
    #[default]
    None,
    OnOtherPart,
    OnFunctionCall,
}

impl SignatureSeen {
    /// Whether a signature on a part (a `functionCall` part if `on_call`) replaces the one
    /// kept so far; records it if so.
    fn take(&mut self, on_call: bool) -> bool {
        let takes = match self {
            SignatureSeen::None => true,
            SignatureSeen::OnOtherPart => on_call,
            SignatureSeen::OnFunctionCall => false,
        };
        if takes {
            *self = if on_call { SignatureSeen::OnFunctionCall } else { SignatureSeen::OnOtherPart };
        }
        takes
    }
}

/// The canonical tool call of a `functionCall`: Gemini's `id` when it sent one, else
/// `call_<ordinal>` (the call's position among the choice's calls; deterministic, the
/// caller may replace it); arguments as the compact JSON of `args` (`{}` when absent).
/// What ids minted for calls Gemini sent without one start with: `call_<responseId>_`
/// (letters and digits of it), so that the calls of different answers in one
/// conversation never share an id (Anthropic rejects a conversation that repeats one);
/// `call_` when the answer has no id.
fn call_id_prefix(response_id: Option<&str>) -> String {
    let mut prefix = String::from("call_");
    let id: String = response_id.unwrap_or("").chars().filter(char::is_ascii_alphanumeric).take(32).collect();
    if !id.is_empty() {
        prefix.push_str(&id);
        prefix.push('_');
    }
    prefix
}

fn tool_call(call: FunctionCallIn<'_>, prefix: &str, ordinal: u32) -> ToolCall {
    ToolCall {
        id: match call.id.filter(|id| !id.is_empty()) {
            Some(id) => id.into_owned(),
            None => format!("{prefix}{ordinal}"),
        },
        name: call.name.into_owned(),
        arguments: match call.args {
            Some(args) if args.get().trim() != "null" => compact_json(args.get()),
            _ => "{}".to_owned(),
        },
    }
}

/// Deserializes `raw`, reporting failures as an invalid upstream `what`.
fn parse<'a, T: Deserialize<'a>>(what: &str, raw: &'a RawValue) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|error| malformed(what, error))
}

fn malformed(what: &str, message: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(None, format!("invalid upstream {what}: {message}"))
}

/// The `error` member of a body, unless absent or null.
fn error_member(error: Option<&RawValue>) -> Option<&RawValue> {
    error.filter(|raw| raw.get().trim() != "null")
}

/// Gemini `GenerateContentResponse` JSON -> canonical response.
///
/// - `candidates[i]` -> a choice with index `candidates[i].index` (its position when
///   absent). Text parts are concatenated into `content` (`None` when there is no text but
///   function calls); parts with `thought: true` into `reasoning` (`None` when empty);
///   `functionCall` parts become tool calls (see `tool_call`). The `thoughtSignature` of
///   the first `functionCall` part that has one, else the first one seen on any part,
///   becomes `reasoning_signature`. Other parts (`inlineData` output, `executableCode`,
///   ...) are skipped: the canonical choice holds text only.
/// - `finishReason` as in `finish_reason`.
/// - A prompt blocked before generation (HTTP 200, no candidates,
///   `promptFeedback.blockReason`) is one choice with no content and `ContentFilter`, the
///   OpenAI shape of a filtered answer, rather than an error: the request was valid and
///   its prompt tokens are billed.
/// - `responseId` -> `id`, `modelVersion` -> `model`; `created` is 0 (Gemini sends none;
///   no clock here). Usage as described in the module docs.
///
/// An error body (`{"error":{...}}`) or a body with neither candidates nor a block reason
/// is a [`DecodeError`].
pub fn generate_content_response(body: &[u8]) -> Result<ChatResponse, DecodeError> {
    let wire: ResponseIn<'_> = serde_json::from_slice(body.trim_ascii()).map_err(|e| malformed("response", e))?;
    if let Some(raw) = error_member(wire.error) {
        let error: ErrorIn<'_> = parse("error body", raw)?;
        return Err(DecodeError::new(None, format!("upstream error: {}", error_text(&error))));
    }
    let mut usage = UsageState::default();
    if let Some(wire) = &wire.usage_metadata {
        usage.update(wire);
    }
    let candidates = wire.candidates.unwrap_or_default();
    let choices = if candidates.is_empty() {
        if wire.prompt_feedback.and_then(|feedback| feedback.block_reason).is_none() {
            return Err(DecodeError::new(None, "upstream response has no `candidates`"));
        }
        vec![Choice {
            index: 0,
            content: None,
            reasoning: None,
            reasoning_signature: None,
            redacted_reasoning: Vec::new(),
            tool_calls: Vec::new(),
            finish_reason: FinishReason::ContentFilter,
        }]
    } else {
        let prefix = call_id_prefix(wire.response_id.as_deref());
        candidates.into_iter().enumerate().map(|(position, candidate)| choice(position, candidate, &prefix)).collect()
    };
    Ok(ChatResponse {
        id: wire.response_id.map(Str::into_owned).unwrap_or_default(),
        created: 0,
        model: wire.model_version.map(Str::into_owned).unwrap_or_default(),
        choices,
        usage: usage.canonical(),
    })
}

fn choice(position: usize, candidate: CandidateIn<'_>, prefix: &str) -> Choice {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut signature = None;
    let mut seen = SignatureSeen::None;
    let mut tool_calls = Vec::new();
    for part in candidate.content.and_then(|content| content.parts).unwrap_or_default() {
        if let Some(part_text) = &part.text {
            if part.thought == Some(true) { reasoning.push_str(part_text) } else { text.push_str(part_text) }
        }
        let on_call = part.function_call.is_some();
        if let Some(call) = part.function_call {
            let ordinal = u32::try_from(tool_calls.len()).unwrap_or(u32::MAX);
            tool_calls.push(tool_call(call, prefix, ordinal));
        }
        if let Some(part_signature) = part.thought_signature.filter(|signature| !signature.is_empty())
            && seen.take(on_call)
        {
            signature = Some(format!("{GEMINI_SIGNATURE_PREFIX}{part_signature}"));
        }
    }
    Choice {
        index: candidate.index.unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
        content: Some(text).filter(|text| !text.is_empty() || tool_calls.is_empty()),
        reasoning: Some(reasoning).filter(|reasoning| !reasoning.is_empty()),
        reasoning_signature: signature,
        redacted_reasoning: Vec::new(),
        finish_reason: finish_reason(candidate.finish_reason.as_deref(), !tool_calls.is_empty()),
        tool_calls,
    }
}

// ---------------------------------------------------------------------------------
// Stream chunks.

/// What the stream has shown of one choice.
#[derive(Debug)]
struct ChoiceState {
    index: u32,
    tools: u32,
    signature: SignatureSeen,
    finished: bool,
}

/// Decodes the `data` of `:streamGenerateContent?alt=sse` events into canonical events.
///
/// Each chunk is a complete `GenerateContentResponse` whose parts are the delta:
/// - The first chunk -> `Start { id: responseId, model: modelVersion, created: 0 }`.
/// - Per candidate (choice = its `index`, its position when absent), per part in order:
///   text -> `Text` (`Reasoning` when `thought: true`; empty text yields nothing);
///   `functionCall` -> one complete `ToolCall` (Gemini sends each call whole) with `id`
///   (Gemini's, else `call_<responseId>_<n>`), `name` and the full arguments, `index` counting the
///   choice's calls from 0; a `thoughtSignature` -> `ReasoningSignature` (prefixed with
///   `GEMINI_SIGNATURE_PREFIX`) before a `functionCall` part's event and after a text
///   part's, for the first signature of the choice and for a later one on a
///   `functionCall` part when the first was not (so the last one emitted is the
///   `reasoning_signature` of [`generate_content_response`]). Other parts are skipped.
/// - `finishReason` -> `Finish` (once per choice; mapped as in
///   [`generate_content_response`], `ToolCalls` when the choice made calls).
/// - A chunk without candidates but with `promptFeedback.blockReason` ->
///   `Finish { choice: 0, reason: ContentFilter }`.
/// - `usageMetadata` -> `Usage` after the chunk's other events (running totals: the
///   reported counters replace the previous ones).
/// - `{"error":{...}}` -> `Error { message: "<status>: <message>" }`.
///
/// Malformed JSON, or a `functionCall` without `name`, is a [`DecodeError`].
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    usage: UsageState,
    choices: Vec<ChoiceState>,
    /// See `call_id_prefix` (from the first chunk's `responseId`).
    call_prefix: String,
}

impl StreamDecoder {
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
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
        let chunk: ResponseIn<'d> = serde_json::from_slice(data).map_err(|e| malformed("stream chunk", e))?;
        if let Some(raw) = error_member(chunk.error) {
            let error: ErrorIn<'_> = parse("stream error", raw)?;
            emit(StreamEvent::Error { message: Cow::Owned(error_text(&error)) });
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.call_prefix = call_id_prefix(chunk.response_id.as_deref());
            emit(StreamEvent::Start {
                id: chunk.response_id.map(Into::into).unwrap_or_default(),
                model: chunk.model_version.map(Into::into).unwrap_or_default(),
                created: 0,
            });
        }
        let candidates = chunk.candidates.unwrap_or_default();
        let blocked = candidates.is_empty() && chunk.prompt_feedback.is_some_and(|f| f.block_reason.is_some());
        // Taken out (not cloned) while the choices are borrowed, put back below.
        let prefix = std::mem::take(&mut self.call_prefix);
        for (position, candidate) in candidates.into_iter().enumerate() {
            let choice = candidate.index.unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let state = self.choice(choice);
            for part in candidate.content.and_then(|content| content.parts).unwrap_or_default() {
                let on_call = part.function_call.is_some();
                let signature = part
                    .thought_signature
                    .filter(|signature| !signature.is_empty() && state.signature.take(on_call))
                    .map(|signature| StreamEvent::ReasoningSignature {
                        choice,
                        signature: Cow::Owned(format!("{GEMINI_SIGNATURE_PREFIX}{signature}")),
                    });
                // A call's signature goes before the call (client encoders attach it to the
                // call they are about to write); a text part's after its text.
                let (before, after) = if on_call { (signature, None) } else { (None, signature) };
                if let Some(event) = before {
                    emit(event);
                }
                if let Some(text) = part.text.filter(|text| !text.is_empty()) {
                    emit(if part.thought == Some(true) {
                        StreamEvent::Reasoning { choice, text: text.into() }
                    } else {
                        StreamEvent::Text { choice, text: text.into() }
                    });
                }
                if let Some(call) = part.function_call {
                    let index = state.tools;
                    state.tools += 1;
                    let ToolCall { id, name, arguments } = tool_call(call, &prefix, index);
                    emit(StreamEvent::ToolCall {
                        choice,
                        index,
                        id: Some(Cow::Owned(id)),
                        name: Some(Cow::Owned(name)),
                        arguments: Cow::Owned(arguments),
                    });
                }
                if let Some(event) = after {
                    emit(event);
                }
            }
            if let Some(reason) = candidate.finish_reason
                && !state.finished
            {
                state.finished = true;
                emit(StreamEvent::Finish { choice, reason: finish_reason(Some(&reason), state.tools > 0) });
            }
        }
        self.call_prefix = prefix;
        if blocked {
            let state = self.choice(0);
            if !state.finished {
                state.finished = true;
                emit(StreamEvent::Finish { choice: 0, reason: FinishReason::ContentFilter });
            }
        }
        if let Some(usage) = &chunk.usage_metadata {
            self.usage.update(usage);
            emit(StreamEvent::Usage(self.usage.canonical()));
        }
        Ok(())
    }

    fn choice(&mut self, index: u32) -> &mut ChoiceState {
        let at = match self.choices.iter().position(|state| state.index == index) {
            Some(at) => at,
            None => {
                self.choices.push(ChoiceState { index, tools: 0, signature: SignatureSeen::None, finished: false });
                self.choices.len() - 1
            }
        };
        &mut self.choices[at]
    }
}

// ---------------------------------------------------------------------------------
// Error bodies.

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// The `error` object of an error body: `{"error":{...}}`, or such a body as the first
/// element of an array (how `streamGenerateContent` without `alt=sse` fails).
fn error_object(body: &[u8]) -> Option<ErrorIn<'_>> {
    let body = body.trim_ascii();
    let envelope: EnvelopeIn<'_> = if body.first() == Some(&b'[') {
        serde_json::from_slice::<Vec<EnvelopeIn<'_>>>(body).ok()?.into_iter().next()?
    } else {
        serde_json::from_slice(body).ok()?
    };
    let raw = error_member(envelope.error)?;
    if first_byte(raw) != b'{' {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// `(status, message)` of a Gemini error body `{"error":{"code","message","status",
/// "details"}}`, e.g. `("RESOURCE_EXHAUSTED", "Quota exceeded ...")`; a missing field is
/// empty. `None` when the body holds no error object.
pub fn error_message(body: &[u8]) -> Option<(String, String)> {
    let error = error_object(body)?;
    Some((
        error.status.map(Cow::into_owned).unwrap_or_default(),
        error.message.map(Cow::into_owned).unwrap_or_default(),
    ))
}

/// How long Gemini asks the caller to wait: the `retryDelay` (a protobuf `Duration`,
/// `"22s"`, `"1.5s"`) of the `error.details` entry whose `@type` ends in
/// `google.rpc.RetryInfo` (429 `RESOURCE_EXHAUSTED` bodies carry one). `None` when there
/// is none or it cannot be read.
pub fn retry_delay(body: &[u8]) -> Option<Duration> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DetailIn<'a> {
        #[serde(rename = "@type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        retry_delay: Option<Cow<'a, str>>,
    }
    let error = error_object(body)?;
    error.details?.into_iter().find_map(|raw| {
        let detail: DetailIn<'_> = serde_json::from_str(raw.get()).ok()?;
        if !detail.kind?.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        duration(&detail.retry_delay?)
    })
}

/// A protobuf JSON `Duration`: seconds with up to nine fractional digits and an `s`.
fn duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (seconds, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if seconds.is_empty() || !digits(seconds) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    let nanos = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse().ok()? };
    Some(Duration::new(seconds.parse().ok()?, nanos))
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
