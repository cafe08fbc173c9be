//! OpenAI requests -> canonical requests. Used when the backend does not speak the
//! OpenAI dialect; the same-dialect path never decodes fully (see [`super::peek`]).

use std::collections::BTreeMap;

use llmux_types::chat::EmbeddingsRequest;
use llmux_types::chat::{ChatRequest, ContentPart, GEMINI_SIGNATURE_PREFIX, Message, Role, Tool, ToolCall, ToolChoice};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::DecodeError;

/// Decodes a Chat Completions body. Call [`super::peek::peek`] first for validation
/// with precise error messages; this decoder reports what it cannot map.
pub fn chat_request(body: &[u8]) -> Result<ChatRequest, DecodeError> {
    let fields: BTreeMap<&str, &RawValue> =
        serde_json::from_slice(body).map_err(|error| DecodeError::new(None, format!("invalid JSON body: {error}")))?;
    let mut request = ChatRequest::default();
    for (name, raw) in fields {
        let value = raw.get();
        match name {
            "model" => request.model = field(name, value)?,
            "messages" => {
                let messages: Vec<MessageWire> = field(name, value)?;
                request.messages = messages
                    .into_iter()
                    .enumerate()
                    .map(|(index, message)| message.into_canonical(index))
                    .collect::<Result<_, _>>()?;
            }
            "stream" => request.stream = field::<Option<bool>>(name, value)?.unwrap_or(false),
            "stream_options" => {
                let options: Option<StreamOptionsWire> = field(name, value)?;
                request.stream_include_usage = options.and_then(|o| o.include_usage).unwrap_or(false);
            }
            "max_tokens" | "max_completion_tokens" => {
                if let Some(max) = field::<Option<u64>>(name, value)? {
                    request.max_tokens = Some(max);
                }
            }
            "temperature" => request.temperature = field(name, value)?,
            "top_p" => request.top_p = field(name, value)?,
            "n" => request.n = field(name, value)?,
            "seed" => request.seed = field(name, value)?,
            "stop" => {
                request.stop = match field::<Option<StopWire>>(name, value)? {
                    None => Vec::new(),
                    Some(StopWire::One(stop)) => vec![stop],
                    Some(StopWire::Many(stops)) => stops,
                }
            }
            "tools" => {
                let tools: Option<Vec<ToolWire>> = field(name, value)?;
                request.tools = tools
                    .unwrap_or_default()
                    .into_iter()
                    .map(|tool| Tool {
                        name: tool.function.name,
                        description: tool.function.description,
                        parameters: tool.function.parameters,
                    })
                    .collect();
            }
            "tool_choice" => {
                request.tool_choice = match field::<Option<ToolChoiceWire>>(name, value)? {
                    None => None,
                    Some(ToolChoiceWire::Mode(mode)) => Some(match mode.as_str() {
                        "none" => ToolChoice::None,
                        "required" => ToolChoice::Required,
                        "auto" => ToolChoice::Auto,
                        other => {
                            return Err(DecodeError::new(
                                Some("tool_choice"),
                                format!("invalid tool_choice `{other}`; expected none, auto or required"),
                            ));
                        }
                    }),
                    Some(ToolChoiceWire::Named { function }) => Some(ToolChoice::Function(function.name)),
                }
            }
            "response_format" => request.response_format = Some(raw.to_owned()),
            _ => {
                request.extensions.insert(name.to_owned(), raw.to_owned());
            }
        }
    }
    if request.model.is_empty() {
        return Err(DecodeError::new(Some("model"), "you must provide a model parameter"));
    }
    Ok(request)
}

/// Decodes an Embeddings body.
pub fn embeddings_request(body: &[u8]) -> Result<EmbeddingsRequest, DecodeError> {
    let wire: EmbeddingsWire = serde_json::from_slice(body)
        .map_err(|error| DecodeError::new(None, format!("invalid request body: {error}")))?;
    let inputs = match wire.input {
        InputWire::One(text) => vec![text],
        InputWire::Many(texts) => texts,
        InputWire::Tokens(tokens) => vec![tokens.iter().map(|t| format!("{t} ")).collect()],
        InputWire::TokenBatches(batches) => {
            batches.iter().map(|tokens| tokens.iter().map(|t| format!("{t} ")).collect()).collect()
        }
    };
    Ok(EmbeddingsRequest { model: wire.model, inputs, dimensions: wire.dimensions })
}

/// The prompts of a legacy Completions body (a string or a list of strings).
pub fn completion_prompts(body: &[u8]) -> Result<(String, Vec<String>, bool, Option<u64>), DecodeError> {
    let wire: CompletionWire = serde_json::from_slice(body)
        .map_err(|error| DecodeError::new(None, format!("invalid request body: {error}")))?;
    let prompts = match wire.prompt {
        InputWire::One(text) => vec![text],
        InputWire::Many(texts) => texts,
        InputWire::Tokens(_) | InputWire::TokenBatches(_) => {
            return Err(DecodeError::new(Some("prompt"), "token-id prompts are not supported by this backend"));
        }
    };
    Ok((wire.model, prompts, wire.stream.unwrap_or(false), wire.max_tokens))
}

fn field<'de, T: Deserialize<'de>>(name: &str, value: &'de str) -> Result<T, DecodeError> {
    serde_json::from_str(value).map_err(|error| DecodeError::new(Some(name), format!("invalid `{name}`: {error}")))
}

#[derive(Deserialize)]
struct StreamOptionsWire {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopWire {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ToolWire {
    function: FunctionWire,
}

#[derive(Deserialize)]
struct FunctionWire {
    name: String,
    description: Option<String>,
    parameters: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ToolChoiceWire {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Deserialize)]
struct NamedFunction {
    name: String,
}

#[derive(Deserialize)]
struct MessageWire {
    role: String,
    #[serde(default)]
    content: Option<ContentWire>,
    #[serde(default)]
    tool_calls: Vec<ToolCallWire>,
    tool_call_id: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ContentWire {
    Text(String),
    Parts(Vec<PartWire>),
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum PartWire {
    #[serde(rename = "text")]
    Text { text: String },
    #[serde(rename = "image_url")]
    Image { image_url: ImageUrlWire },
    #[serde(other)]
    Unsupported,
}

#[derive(Deserialize)]
struct ImageUrlWire {
    url: String,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct ToolCallWire {
    id: String,
    function: CallFunctionWire,
    /// Google's OpenAI-compatible extension: `{"google": {"thought_signature": ...}}`.
    extra_content: Option<ExtraContentWire>,
}

#[derive(Deserialize)]
struct ExtraContentWire {
    google: Option<GoogleExtraWire>,
}

#[derive(Deserialize)]
struct GoogleExtraWire {
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct CallFunctionWire {
    name: String,
    arguments: String,
}

impl MessageWire {
    fn into_canonical(self, index: usize) -> Result<Message, DecodeError> {
        let role = match self.role.as_str() {
            "system" => Role::System,
            "developer" => Role::Developer,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            other => {
                return Err(DecodeError::new(
                    Some(&format!("messages[{index}].role")),
                    format!("invalid role `{other}`"),
                ));
            }
        };
        let mut content = Vec::new();
        match self.content {
            None => {}
            Some(ContentWire::Text(text)) => content.push(ContentPart::Text(text)),
            Some(ContentWire::Parts(parts)) => {
                for (part_index, part) in parts.into_iter().enumerate() {
                    match part {
                        PartWire::Text { text } => content.push(ContentPart::Text(text)),
                        PartWire::Image { image_url } => {
                            content.push(ContentPart::Image { url: image_url.url, detail: image_url.detail })
                        }
                        PartWire::Unsupported => {
                            return Err(DecodeError::new(
                                Some(&format!("messages[{index}].content[{part_index}].type")),
                                "this content part type is not supported by the selected backend",
                            ));
                        }
                    }
                }
            }
        }
        // Gemini's signature, as Google's OpenAI-compatible endpoint carries it: on the
        // (first) tool call it belongs to.
        let reasoning_signature = self.tool_calls.iter().find_map(|call| {
            let raw = call.extra_content.as_ref()?.google.as_ref()?.thought_signature.as_deref()?;
            (!raw.is_empty()).then(|| format!("{GEMINI_SIGNATURE_PREFIX}{raw}"))
        });
        Ok(Message {
            role,
            content,
            tool_calls: self
                .tool_calls
                .into_iter()
                .map(|call| ToolCall { id: call.id, name: call.function.name, arguments: call.function.arguments })
                .collect(),
            tool_call_id: self.tool_call_id,
            reasoning: self.reasoning_content.or(self.reasoning),
            reasoning_signature,
            redacted_reasoning: Vec::new(),
            tool_error: false,
        })
    }
}

#[derive(Deserialize)]
struct EmbeddingsWire {
    model: String,
    input: InputWire,
    dimensions: Option<u32>,
}

#[derive(Deserialize)]
struct CompletionWire {
    model: String,
    prompt: InputWire,
    stream: Option<bool>,
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InputWire {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u64>),
    TokenBatches(Vec<Vec<u64>>),
}
