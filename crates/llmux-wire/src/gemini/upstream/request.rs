//! Canonical request -> Gemini `GenerateContentRequest` body (the conversation itself is
//! built in `contents`).
//!
//! Notes ([`generate_content_request`]):
//! - No `model` and no `stream` in the body: both are in the URL the caller builds.
//! - Every `Role::System` and `Role::Developer` message, wherever it stands, goes to
//!   `systemInstruction.parts`, one text part per non-empty text, in order (images in
//!   system messages are not sent: Anthropic and OpenAI system content is text).
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
//!   Anthropic decoder `thinking` -> `thinkingConfig` (see `anthropic_thinking`) and
//!   `output_config.effort` -> its `thinkingLevel` when no budget or effort set one
//!   (see `anthropic_effort`).
//! - Other extensions are not copied (they may come from another dialect and mean
//!   something else there); `parallel_tool_calls: true` is Gemini's behaviour anyway, but
//!   `false` cannot be held. Everything dropped is reported by name.

use std::borrow::Cow;

use llmux_types::chat::{ChatRequest, Role, ToolChoice};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::contents::{ContentWire, PartWire, contents};
use crate::extensions::report_dropped;
use crate::json::first_byte;
use crate::upstream::texts;

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
    let mut effort: Option<&'static str> = None;
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
            // Anthropic's effort: how hard an adaptive thinker thinks (applied below).
            "output_config" => anthropic_effort(value).map(|level| effort = Some(level)).is_some(),
            // Gemini may always answer with parallel calls: only `true` loses nothing.
            "parallel_tool_calls" => value == "true",
            _ => false,
        };
        if !held {
            report_dropped(&mut dropped, name);
        }
    }
    // An effort sets the level of thinking left to the model (adaptive, or not asked
    // for), never one a `reasoning_effort` or a budget chose, and never turns off thinking.
    let disabled = request.extensions.get("thinking").and_then(|raw| anthropic_thinking(raw.get())) == Some(None);
    if let Some(level) = effort.filter(|_| !disabled) {
        match &mut config.thinking_config {
            Some(thinking) if thinking.thinking_level.is_none() && thinking.thinking_budget.is_none() => {
                thinking.thinking_level = Some(level);
            }
            Some(_) => {}
            None => config.thinking_config = thinking_config(&level.to_ascii_lowercase()),
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

/// Anthropic's `output_config` when all it holds is an `effort` Gemini can express: its
/// `thinkingLevel` (`low` -> `LOW`, `medium` -> `MEDIUM`, `high` and `max` -> `HIGH`).
fn anthropic_effort(value: &str) -> Option<&'static str> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OutputConfigIn<'a> {
        #[serde(borrow)]
        effort: Option<Cow<'a, str>>,
    }
    let config: OutputConfigIn<'_> = serde_json::from_str(value).ok()?;
    match config.effort.as_deref()? {
        "low" => Some("LOW"),
        "medium" => Some("MEDIUM"),
        "high" | "max" => Some("HIGH"),
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
