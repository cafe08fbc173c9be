//! The canonical chat model: what every client dialect decodes into and every
//! provider adapter encodes from (hub and spoke).
//!
//! Fields the gateway does not understand travel in `extensions` as raw JSON, so a
//! dialect that can hold them carries them through.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::usage::Usage;

/// Reasoning signatures are opaque and only their provider accepts them. Gemini's carry
/// this prefix in the canonical model (and so, still opaque, in what clients see and
/// send back), so that a conversation that moves between providers never sends
/// Gemini's signature to Anthropic or Anthropic's to Gemini.
pub const GEMINI_SIGNATURE_PREFIX: &str = "gemini:";

/// OpenAI's `encrypted_content` of a reasoning item carries this prefix in the canonical
/// model, for the same reason.
pub const OPENAI_SIGNATURE_PREFIX: &str = "openai:";

/// The Gemini `thoughtSignature` inside a canonical signature, if Gemini minted it.
pub fn gemini_signature(signature: &str) -> Option<&str> {
    signature.strip_prefix(GEMINI_SIGNATURE_PREFIX).filter(|raw| !raw.is_empty())
}

/// OpenAI's `encrypted_content` inside a canonical signature, if OpenAI minted it.
pub fn openai_signature(signature: &str) -> Option<&str> {
    signature.strip_prefix(OPENAI_SIGNATURE_PREFIX).filter(|raw| !raw.is_empty())
}

/// A canonical signature Anthropic minted (any non-empty one without another
/// provider's prefix).
pub fn anthropic_signature(signature: &str) -> Option<&str> {
    let foreign = signature.starts_with(GEMINI_SIGNATURE_PREFIX) || signature.starts_with(OPENAI_SIGNATURE_PREFIX);
    (!signature.is_empty() && !foreign).then_some(signature)
}

/// A chat request after decoding from a client dialect.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The model name the client asked for (a public llmux model name).
    pub model: String,
    pub messages: Vec<Message>,
    pub stream: bool,
    /// Whether the client asked for a final usage chunk in the stream.
    pub stream_include_usage: bool,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Sample only from the `top_k` most likely tokens (Anthropic, some open-model
    /// servers); not an OpenAI parameter.
    pub top_k: Option<u32>,
    /// Number of choices to generate.
    pub n: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// Whether the client asked for a JSON object (`response_format` json modes).
    pub response_format: Option<Box<RawValue>>,
    /// Fields carried through verbatim where the target dialect can hold them.
    pub extensions: BTreeMap<String, Box<RawValue>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of the conversation.
#[derive(Debug, Clone)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
    /// Tool calls made by an assistant turn.
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the call this message answers.
    pub tool_call_id: Option<String>,
    /// Reasoning text an assistant turn produced (sent back on later turns).
    pub reasoning: Option<String>,
    /// The opaque signature a provider attached to `reasoning` (Anthropic thinking
    /// `signature`, Gemini `thoughtSignature` behind [`GEMINI_SIGNATURE_PREFIX`]); must
    /// be sent back verbatim to the provider that minted it, never invented, never
    /// sent to another.
    pub reasoning_signature: Option<String>,
    /// Encrypted reasoning blocks of an assistant turn (Anthropic `redacted_thinking`
    /// `data`), in order; opaque, sent back verbatim where the dialect can hold them.
    pub redacted_reasoning: Vec<String>,
    /// For `Role::Tool`: the tool reported a failure (Anthropic `tool_result.is_error`).
    pub tool_error: bool,
}

impl Message {
    /// A message with `content` and nothing else.
    pub fn new(role: Role, content: Vec<ContentPart>) -> Message {
        Message {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning: None,
            reasoning_signature: None,
            redacted_reasoning: Vec::new(),
            tool_error: false,
        }
    }

    /// All text parts joined, for callers that only need the text.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for part in &self.content {
            if let ContentPart::Text(part) = part {
                text.push_str(part);
            }
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    /// An image by URL (`https://...` or a `data:` URL).
    Image {
        url: String,
        detail: Option<String>,
    },
}

/// A function tool the model may call.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments, carried verbatim.
    pub parameters: Option<Box<RawValue>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

/// A complete tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON string, exactly as the model produced them.
    pub arguments: String,
}

/// A complete (non-streamed) chat response.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model that produced the answer (upstream name).
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Clone)]
pub struct Choice {
    pub index: u32,
    pub content: Option<String>,
    pub reasoning: Option<String>,
    /// Opaque signature of `reasoning` (see [`Message::reasoning_signature`]).
    pub reasoning_signature: Option<String>,
    /// Encrypted reasoning blocks (see [`Message::redacted_reasoning`]).
    pub redacted_reasoning: Vec<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: FinishReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    /// A provider-specific reason, kept verbatim.
    Other(String),
}

impl FinishReason {
    /// The OpenAI spelling.
    pub fn as_openai(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(other) => other,
        }
    }
}

/// One event of a canonical response stream. Strings borrow from the upstream chunk they
/// were decoded from where they can (`Cow::Borrowed`), so translating a stream allocates
/// nothing per event; [`StreamEvent::into_owned`] detaches one.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent<'a> {
    /// Always first.
    Start {
        id: Cow<'a, str>,
        model: Cow<'a, str>,
        created: u64,
    },
    Text {
        choice: u32,
        text: Cow<'a, str>,
    },
    Reasoning {
        choice: u32,
        text: Cow<'a, str>,
    },
    /// The (complete) opaque signature of the reasoning streamed so far for `choice`;
    /// it closes that reasoning block.
    ReasoningSignature {
        choice: u32,
        signature: Cow<'a, str>,
    },
    /// One complete encrypted reasoning block (Anthropic `redacted_thinking` `data`).
    RedactedReasoning {
        choice: u32,
        data: Cow<'a, str>,
    },
    /// A fragment of tool call `index`; the first fragment of an index carries `id`
    /// and `name`.
    ToolCall {
        choice: u32,
        index: u32,
        id: Option<Cow<'a, str>>,
        name: Option<Cow<'a, str>>,
        arguments: Cow<'a, str>,
    },
    Finish {
        choice: u32,
        reason: FinishReason,
    },
    /// Cumulative usage; the last one seen wins.
    Usage(Usage),
    /// The upstream failed after the stream started.
    Error {
        message: Cow<'a, str>,
    },
}

impl StreamEvent<'_> {
    /// The same event, owning its strings.
    pub fn into_owned(self) -> StreamEvent<'static> {
        fn own(text: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(text.into_owned())
        }
        match self {
            StreamEvent::Start { id, model, created } => StreamEvent::Start { id: own(id), model: own(model), created },
            StreamEvent::Text { choice, text } => StreamEvent::Text { choice, text: own(text) },
            StreamEvent::Reasoning { choice, text } => StreamEvent::Reasoning { choice, text: own(text) },
            StreamEvent::ReasoningSignature { choice, signature } => {
                StreamEvent::ReasoningSignature { choice, signature: own(signature) }
            }
            StreamEvent::RedactedReasoning { choice, data } => {
                StreamEvent::RedactedReasoning { choice, data: own(data) }
            }
            StreamEvent::ToolCall { choice, index, id, name, arguments } => {
                StreamEvent::ToolCall { choice, index, id: id.map(own), name: name.map(own), arguments: own(arguments) }
            }
            StreamEvent::Finish { choice, reason } => StreamEvent::Finish { choice, reason },
            StreamEvent::Usage(usage) => StreamEvent::Usage(usage),
            StreamEvent::Error { message } => StreamEvent::Error { message: own(message) },
        }
    }
}

/// An embeddings request.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingsRequest {
    pub model: String,
    pub inputs: Vec<String>,
    pub dimensions: Option<u32>,
}

/// An embeddings response.
#[derive(Debug, Clone)]
pub struct EmbeddingsResponse {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub usage: Usage,
}
