//! Canonical responses and stream events -> OpenAI JSON and SSE chunks.

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, EmbeddingsResponse, FinishReason, StreamEvent, gemini_signature};
use serde::Serialize;

#[derive(Serialize)]
struct UsageWire {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

fn usage_wire(usage: &Usage) -> UsageWire {
    UsageWire {
        prompt_tokens: usage.input_tokens,
        completion_tokens: usage.output_tokens,
        total_tokens: usage.total(),
        prompt_tokens_details: (usage.cached_tokens > 0)
            .then_some(PromptDetails { cached_tokens: usage.cached_tokens }),
        completion_tokens_details: (usage.reasoning_tokens > 0)
            .then_some(CompletionDetails { reasoning_tokens: usage.reasoning_tokens }),
    }
}

#[derive(Serialize)]
struct ToolCallWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionWire<'a>,
    /// Gemini's thought signature, where Google's OpenAI-compatible endpoint puts it
    /// (`extra_content.google.thought_signature`), so clients send it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_content: Option<ExtraContentWire<'a>>,
}

#[derive(Serialize)]
struct ExtraContentWire<'a> {
    google: GoogleExtraWire<'a>,
}

#[derive(Serialize)]
struct GoogleExtraWire<'a> {
    thought_signature: &'a str,
}

fn extra_content(gemini_signature: Option<&str>) -> Option<ExtraContentWire<'_>> {
    gemini_signature.map(|thought_signature| ExtraContentWire { google: GoogleExtraWire { thought_signature } })
}

#[derive(Serialize)]
struct FunctionWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ResponseWire<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChoiceWire<'a>>,
    usage: UsageWire,
}

#[derive(Serialize)]
struct ChoiceWire<'a> {
    index: u32,
    message: MessageWire<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct MessageWire<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallWire<'a>>,
}

/// A Chat Completions response body.
pub fn chat_response(response: &ChatResponse) -> Vec<u8> {
    let wire = ResponseWire {
        id: &response.id,
        object: "chat.completion",
        created: response.created,
        model: &response.model,
        choices: response
            .choices
            .iter()
            .map(|choice| ChoiceWire {
                index: choice.index,
                message: MessageWire {
                    role: "assistant",
                    content: choice.content.as_deref(),
                    reasoning_content: choice.reasoning.as_deref(),
                    tool_calls: choice
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(position, call)| ToolCallWire {
                            index: None,
                            id: Some(&call.id),
                            kind: Some("function"),
                            function: FunctionWire { name: Some(&call.name), arguments: &call.arguments },
                            // Gemini signs the first call of a turn.
                            extra_content: extra_content(
                                choice
                                    .reasoning_signature
                                    .as_deref()
                                    .and_then(gemini_signature)
                                    .filter(|_| position == 0),
                            ),
                        })
                        .collect(),
                },
                logprobs: None,
                finish_reason: choice.finish_reason.as_openai(),
            })
            .collect(),
        usage: usage_wire(&response.usage),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Appends `data: <json>\n\n`, serializing straight into `out` (no intermediate buffer).
fn write_json_event(out: &mut Vec<u8>, data: &impl Serialize) {
    out.extend_from_slice(b"data: ");
    // Serializing these plain structs cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[derive(Serialize)]
struct ChunkWire<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoiceWire<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageWire>,
}

#[derive(Serialize)]
struct ChunkChoiceWire<'a> {
    index: u32,
    delta: DeltaWire<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct DeltaWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallWire<'a>; 1]>,
}

/// Encodes canonical stream events as Chat Completions chunks.
#[derive(Debug)]
pub struct ChatStreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Choices that already got their `role` delta.
    started: Vec<u32>,
    usage: Option<Usage>,
    /// A Gemini signature waiting for the tool call it signs: (choice, signature).
    signature: Option<(u32, String)>,
}

impl ChatStreamEncoder {
    /// `include_usage`: whether the client asked for the final usage chunk.
    pub fn new(include_usage: bool) -> ChatStreamEncoder {
        ChatStreamEncoder {
            id: String::new(),
            model: String::new(),
            created: 0,
            include_usage,
            started: Vec::new(),
            usage: None,
            signature: None,
        }
    }

    /// Appends the SSE frames for `event` to `out`.
    pub fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        match event {
            StreamEvent::Start { id, model, created } => {
                self.id.clear();
                self.id.push_str(id);
                self.model.clear();
                self.model.push_str(model);
                self.created = *created;
            }
            StreamEvent::Text { choice, text } => {
                let delta = DeltaWire { content: Some(text), ..DeltaWire::default() };
                self.write_delta(*choice, delta, None, out);
            }
            StreamEvent::Reasoning { choice, text } => {
                let delta = DeltaWire { reasoning_content: Some(text), ..DeltaWire::default() };
                self.write_delta(*choice, delta, None, out);
            }
            StreamEvent::ToolCall { choice, index, id, name, arguments } => {
                // A pending Gemini signature rides on the first fragment of the next call.
                let signature = match &self.signature {
                    Some((signed, _)) if signed == choice && id.is_some() => self.signature.take().map(|(_, s)| s),
                    _ => None,
                };
                let call = ToolCallWire {
                    index: Some(*index),
                    id: id.as_deref(),
                    kind: id.as_ref().map(|_| "function"),
                    function: FunctionWire { name: name.as_deref(), arguments },
                    extra_content: extra_content(signature.as_deref()),
                };
                let delta = DeltaWire { tool_calls: Some([call]), ..DeltaWire::default() };
                self.write_delta(*choice, delta, None, out);
            }
            StreamEvent::ReasoningSignature { choice, signature } => {
                // Only Gemini's have a place in OpenAI chunks (on the call they sign; a
                // signature no call follows is optional to send back and is dropped).
                if let Some(raw) = gemini_signature(signature) {
                    self.signature = Some((*choice, raw.to_owned()));
                }
            }
            StreamEvent::Finish { choice, reason } => {
                self.write_delta(*choice, DeltaWire::default(), Some(reason), out);
            }
            // OpenAI chunks have no place for encrypted reasoning.
            StreamEvent::RedactedReasoning { .. } => {}
            StreamEvent::Usage(usage) => self.usage = Some(*usage),
            StreamEvent::Error { message } => self.error("api_error", Some("upstream_error"), message, out),
        }
    }

    /// An in-stream error chunk of OpenAI error type `kind` (and `code`).
    pub fn error(&mut self, kind: &str, code: Option<&str>, message: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&super::error::stream_event(message, kind, code));
    }

    /// Appends the closing frames (usage chunk if asked for, then `[DONE]`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            let chunk = ChunkWire {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &[],
                usage: Some(usage_wire(&self.usage.unwrap_or_default())),
            };
            crate::sse::write_data_event(out, &serde_json::to_vec(&chunk).unwrap_or_default());
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn write_delta(&mut self, choice: u32, mut delta: DeltaWire<'_>, finish: Option<&FinishReason>, out: &mut Vec<u8>) {
        if !self.started.contains(&choice) {
            self.started.push(choice);
            delta.role = Some("assistant");
        }
        let choices = [ChunkChoiceWire {
            index: choice,
            delta,
            logprobs: None,
            finish_reason: finish.map(FinishReason::as_openai),
        }];
        let chunk = ChunkWire {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: &choices,
            usage: None,
        };
        write_json_event(out, &chunk);
    }
}

#[derive(Serialize)]
struct CompletionWire<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<CompletionChoiceWire<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageWire>,
}

#[derive(Serialize)]
struct CompletionChoiceWire<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

/// A legacy Completions response (or, with `usage: None`, one stream chunk's JSON).
pub fn completion(
    id: &str,
    created: u64,
    model: &str,
    texts: &[(u32, &str, Option<&FinishReason>)],
    usage: Option<&Usage>,
) -> Vec<u8> {
    let wire = CompletionWire {
        id,
        object: "text_completion",
        created,
        model,
        choices: texts
            .iter()
            .map(|(index, text, finish)| CompletionChoiceWire {
                text,
                index: *index,
                logprobs: None,
                finish_reason: finish.map(FinishReason::as_openai),
            })
            .collect(),
        usage: usage.map(usage_wire),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

#[derive(Serialize)]
struct EmbeddingsWire<'a> {
    object: &'static str,
    data: Vec<EmbeddingWire<'a>>,
    model: &'a str,
    usage: EmbeddingUsageWire,
}

#[derive(Serialize)]
struct EmbeddingWire<'a> {
    object: &'static str,
    index: usize,
    embedding: &'a [f32],
}

#[derive(Serialize)]
struct EmbeddingUsageWire {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// An Embeddings response body.
pub fn embeddings_response(response: &EmbeddingsResponse) -> Vec<u8> {
    let wire = EmbeddingsWire {
        object: "list",
        data: response
            .embeddings
            .iter()
            .enumerate()
            .map(|(index, embedding)| EmbeddingWire { object: "embedding", index, embedding })
            .collect(),
        model: &response.model,
        usage: EmbeddingUsageWire {
            prompt_tokens: response.usage.input_tokens,
            total_tokens: response.usage.input_tokens,
        },
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

#[derive(Serialize)]
struct ModelListWire<'a> {
    object: &'static str,
    data: Vec<ModelWire<'a>>,
}

#[derive(Serialize)]
struct ModelWire<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// A `GET /v1/models` body listing `names`.
pub fn model_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let wire = ModelListWire {
        object: "list",
        data: names.into_iter().map(|id| ModelWire { id, object: "model", created: 0, owned_by: "llmux" }).collect(),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}
