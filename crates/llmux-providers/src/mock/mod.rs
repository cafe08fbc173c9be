//! The built-in `mock` provider: answers without any network, deterministically, so
//! the quickstart, demos and users' own CI work offline.
//!
//! - Route model `echo` repeats the last user message; any other model answers with
//!   the provider's `mock.reply` (or a fixed sentence).
//! - With tools offered (and `tool_choice` not `none`) and the last message from the
//!   user, it calls the named (or first) tool with `{}`.
//! - Streams split the answer into chunks of `mock.chunk_chars` characters, paced by
//!   `mock.chunk_delay_ms` (the pacing itself is done by the caller: this module is pure).
//! - Usage: input = ceil(characters / 4) of all message text, output = words answered.

use bytes::Bytes;
use llmux_types::chat::{
    ChatRequest, ChatResponse, Choice, EmbeddingsRequest, EmbeddingsResponse, FinishReason, Role, StreamEvent,
    ToolCall, ToolChoice,
};
use llmux_types::{Currency, Usage};

use std::time::Duration;

use llmux_wire::DecodeError;
use llmux_wire::openai::peek::Endpoint;

use crate::adapter::{Local, LocalAnswer, LocalCall, LocalChat};
use crate::{Adapter, AuthStyle, Preset, ProviderSpec, Quirks};

pub static PRESET: Preset = Preset {
    kind: "mock",
    adapter: &MockAdapter,
    base_url: Some("mock://local"),
    auth: AuthStyle::Bearer,
    key_required: false,
    regions: &["*"],
    currency: Currency::USD,
    // Priced like a small model, so cost accounting is visible in demos.
    prices: &[("mock", "0.1", "0.2", "0.05"), ("echo", "0.1", "0.2", "0.05")],
    quirks: Quirks { stream_usage: true, responses_api: false },
    env_key: None,
    cache_write_percent: 100,
};

/// The mock speaks the OpenAI dialect (the adapter's defaults), answered inside llmux
/// ([`Local`]).
#[derive(Debug)]
pub struct MockAdapter;

impl Adapter for MockAdapter {
    fn local(&self) -> Option<&dyn Local> {
        Some(self)
    }

    /// The mock answers every dialect itself, canonically.
    fn speaks_responses(&self) -> bool {
        false
    }
}

impl Local for MockAdapter {
    fn latency(&self, spec: &ProviderSpec) -> Duration {
        Duration::from_millis(spec.mock.latency_ms)
    }

    fn chat(&self, call: LocalCall<'_>, request: &ChatRequest, id: &str) -> LocalChat {
        let created = u64::try_from(call.now_ms / 1000).unwrap_or(0);
        let response = respond(request, call.upstream_model, &call.spec.mock, id, created);
        let settings = &call.spec.mock;
        let stream = request
            .stream
            .then(|| (stream_events(&response, settings), Duration::from_millis(settings.chunk_delay_ms)));
        LocalChat { response, stream }
    }

    fn native(&self, call: LocalCall<'_>, endpoint: Endpoint, body: &[u8]) -> Result<LocalAnswer, DecodeError> {
        use llmux_wire::openai::{decode, encode};
        match endpoint {
            Endpoint::ChatCompletions | Endpoint::Responses => {
                Err(DecodeError::new(None, "the mock answers chat and the Responses API canonically"))
            }
            Endpoint::Embeddings => {
                let request = decode::embeddings_request(body)?;
                let values = request.inputs.len().saturating_mul(dimensions(&request));
                if values > MAX_EMBEDDING_VALUES {
                    return Err(DecodeError::new(
                        Some("input"),
                        format!(
                            "the mock answers at most {MAX_EMBEDDING_VALUES} embedding values per request \
                             ({} inputs x {} dimensions asked)",
                            request.inputs.len(),
                            dimensions(&request)
                        ),
                    ));
                }
                let response = embed(&request, call.upstream_model);
                let body = Bytes::from(encode::embeddings_response(&response));
                Ok(LocalAnswer { body, usage: response.usage, streamed: false })
            }
            Endpoint::Completions => completions(call, body),
        }
    }
}

/// A legacy completion: one text per prompt, streamed as one pre-rendered body.
fn completions(call: LocalCall<'_>, body: &[u8]) -> Result<LocalAnswer, DecodeError> {
    use llmux_wire::openai::encode;
    let LocalCall { spec, upstream_model: model, now_ms } = call;
    let (_, prompts, stream, max_tokens) = llmux_wire::openai::decode::completion_prompts(body)?;
    let texts: Vec<String> = prompts
        .iter()
        .map(|prompt| {
            let text = complete(prompt, model, &spec.mock);
            match max_tokens {
                Some(max) => text.split_whitespace().take(max.max(1) as usize).collect::<Vec<_>>().join(" "),
                None => text,
            }
        })
        .collect();
    let usage = Usage {
        input_tokens: prompts.iter().map(|prompt| tokens_of(prompt)).sum(),
        output_tokens: texts.iter().map(|text| count_words(text)).sum(),
        ..Usage::default()
    };
    let id = format!("cmpl-mock{now_ms}");
    let created = u64::try_from(now_ms / 1000).unwrap_or(0);
    let stop = FinishReason::Stop;
    if stream {
        let mut body = Vec::new();
        for (index, text) in texts.iter().enumerate() {
            let chunk = encode::completion(&id, created, model, &[(index as u32, text, None)], None);
            llmux_wire::sse::write_data_event(&mut body, &chunk);
            let end = encode::completion(&id, created, model, &[(index as u32, "", Some(&stop))], None);
            llmux_wire::sse::write_data_event(&mut body, &end);
        }
        body.extend_from_slice(b"data: [DONE]\n\n");
        return Ok(LocalAnswer { body: Bytes::from(body), usage, streamed: true });
    }
    let choices: Vec<(u32, &str, Option<&FinishReason>)> =
        texts.iter().enumerate().map(|(index, text)| (index as u32, text.as_str(), Some(&stop))).collect();
    let body = Bytes::from(encode::completion(&id, created, model, &choices, Some(&usage)));
    Ok(LocalAnswer { body, usage, streamed: false })
}

/// How the mock answers. Set per provider entry under `mock = { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockSettings {
    pub reply: Option<String>,
    /// Delay before the first byte, in milliseconds.
    pub latency_ms: u64,
    /// Delay between stream chunks, in milliseconds.
    pub chunk_delay_ms: u64,
    /// Characters per stream chunk.
    pub chunk_chars: usize,
}

impl Default for MockSettings {
    fn default() -> MockSettings {
        MockSettings { reply: None, latency_ms: 0, chunk_delay_ms: 0, chunk_chars: 8 }
    }
}

const DEFAULT_REPLY: &str =
    "Hello from the llmux mock provider. This answer is deterministic and was produced without any network access.";

/// What the mock answers to `request` (one choice per `n`).
pub fn respond(
    request: &ChatRequest,
    upstream_model: &str,
    settings: &MockSettings,
    id: &str,
    created: u64,
) -> ChatResponse {
    let usage_in = input_tokens(request);
    let (text, finish_reason) = reply_text(request, upstream_model, settings);
    let choices: Vec<Choice> = (0..request.n.unwrap_or(1).clamp(1, MAX_CHOICES))
        .map(|index| {
            if let Some(call) = tool_call(request, index) {
                return Choice {
                    index,
                    content: None,
                    reasoning: None,
                    reasoning_signature: None,
                    redacted_reasoning: Vec::new(),
                    tool_calls: vec![call],
                    finish_reason: FinishReason::ToolCalls,
                };
            }
            Choice {
                index,
                content: Some(text.clone()),
                reasoning: None,
                reasoning_signature: None,
                redacted_reasoning: Vec::new(),
                tool_calls: Vec::new(),
                finish_reason: finish_reason.clone(),
            }
        })
        .collect();
    let output_tokens = choices.iter().map(|choice| choice.content.as_deref().map_or(1, count_words)).sum();
    ChatResponse {
        id: id.to_owned(),
        created,
        model: upstream_model.to_owned(),
        choices,
        usage: Usage { input_tokens: usage_in, output_tokens, ..Usage::default() },
    }
}

/// The stream events of `response`, chunked as `settings` says.
pub fn stream_events(response: &ChatResponse, settings: &MockSettings) -> Vec<StreamEvent<'static>> {
    let mut events = vec![StreamEvent::Start {
        id: response.id.clone().into(),
        model: response.model.clone().into(),
        created: response.created,
    }];
    for choice in &response.choices {
        if let Some(text) = &choice.content {
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(settings.chunk_chars.max(1)) {
                events.push(StreamEvent::Text { choice: choice.index, text: piece.iter().collect::<String>().into() });
            }
        }
        for (index, call) in choice.tool_calls.iter().enumerate() {
            let index = index as u32;
            events.push(StreamEvent::ToolCall {
                choice: choice.index,
                index,
                id: Some(call.id.clone().into()),
                name: Some(call.name.clone().into()),
                arguments: "".into(),
            });
            events.push(StreamEvent::ToolCall {
                choice: choice.index,
                index,
                id: None,
                name: None,
                arguments: call.arguments.clone().into(),
            });
        }
        events.push(StreamEvent::Finish { choice: choice.index, reason: choice.finish_reason.clone() });
    }
    events.push(StreamEvent::Usage(response.usage));
    events
}

/// The most embedding values (inputs x dimensions) the mock computes for one request.
pub const MAX_EMBEDDING_VALUES: usize = 1 << 20;
/// The longest text the mock answers in one choice (an echo or a tool result is cut
/// there), so that its answers stay bounded whatever the request holds.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// The most choices the mock answers (OpenAI's own limit on `n`).
const MAX_CHOICES: u32 = 128;

fn dimensions(request: &EmbeddingsRequest) -> usize {
    request.dimensions.unwrap_or(16).clamp(1, 4096) as usize
}

/// `text` cut to at most [`MAX_REPLY_BYTES`], at a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_REPLY_BYTES {
        let mut end = MAX_REPLY_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Deterministic embeddings: each vector derives from a hash of its input.
pub fn embed(request: &EmbeddingsRequest, upstream_model: &str) -> EmbeddingsResponse {
    let dimensions = dimensions(request);
    let embeddings = request
        .inputs
        .iter()
        .map(|input| {
            let mut state = fnv1a(input.as_bytes());
            let mut vector: Vec<f32> = (0..dimensions)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect();
            let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt().max(f32::EPSILON);
            vector.iter_mut().for_each(|v| *v /= norm);
            vector
        })
        .collect();
    let input_tokens = request.inputs.iter().map(|input| tokens_of(input)).sum();
    EmbeddingsResponse {
        model: upstream_model.to_owned(),
        embeddings,
        usage: Usage { input_tokens, ..Usage::default() },
    }
}

/// The text a legacy completion gets.
pub fn complete(prompt: &str, upstream_model: &str, settings: &MockSettings) -> String {
    if upstream_model == "echo" {
        return bounded(prompt.to_owned());
    }
    settings.reply.clone().unwrap_or_else(|| DEFAULT_REPLY.to_owned())
}

/// Tokens of a text as the mock counts them (ceil(chars / 4), at least 1).
pub fn tokens_of(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

pub fn count_words(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

fn input_tokens(request: &ChatRequest) -> u64 {
    let chars: usize = request.messages.iter().map(|message| message.text().chars().count()).sum();
    (chars as u64).div_ceil(4).max(1)
}

fn reply_text(request: &ChatRequest, upstream_model: &str, settings: &MockSettings) -> (String, FinishReason) {
    let text = if upstream_model == "echo" {
        request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .map(|message| message.text())
            .unwrap_or_default()
    } else if request.messages.last().is_some_and(|message| message.role == Role::Tool) {
        format!("The tool returned: {}", request.messages.last().map(|m| m.text()).unwrap_or_default())
    } else {
        settings.reply.clone().unwrap_or_else(|| DEFAULT_REPLY.to_owned())
    };
    let text = bounded(text);
    match request.max_tokens {
        Some(max) if (count_words(&text)) > max => {
            let truncated: Vec<&str> = text.split_whitespace().take(max.max(1) as usize).collect();
            (truncated.join(" "), FinishReason::Length)
        }
        _ => (text, FinishReason::Stop),
    }
}

fn tool_call(request: &ChatRequest, choice: u32) -> Option<ToolCall> {
    if request.tools.is_empty() || request.messages.last().is_none_or(|message| message.role != Role::User) {
        return None;
    }
    let name = match &request.tool_choice {
        Some(ToolChoice::None) => return None,
        Some(ToolChoice::Function(name)) => name.clone(),
        _ => request.tools[0].name.clone(),
    };
    Some(ToolCall { id: format!("call_mock_{choice}"), name, arguments: "{}".to_owned() })
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash | 1
}

#[cfg(test)]
mod tests {
    use llmux_types::chat::{ContentPart, Message, Tool};

    use super::*;

    fn user(text: &str) -> Message {
        Message::new(Role::User, vec![ContentPart::Text(text.to_owned())])
    }

    #[test]
    fn echo_repeats_the_last_user_message() {
        let request = ChatRequest { messages: vec![user("first"), user("say this back")], ..ChatRequest::default() };
        let response = respond(&request, "echo", &MockSettings::default(), "id", 1);
        assert_eq!(response.choices[0].content.as_deref(), Some("say this back"));
        assert_eq!(response.usage.output_tokens, 3);
        assert_eq!(response.usage.input_tokens, 5); // 18 chars -> 5 tokens
    }

    #[test]
    fn calls_a_tool_when_offered() {
        let request = ChatRequest {
            messages: vec![user("weather?")],
            tools: vec![Tool { name: "get_weather".into(), description: None, parameters: None }],
            ..ChatRequest::default()
        };
        let response = respond(&request, "mock", &MockSettings::default(), "id", 1);
        assert_eq!(response.choices[0].tool_calls[0].name, "get_weather");
        assert_eq!(response.choices[0].finish_reason, FinishReason::ToolCalls);
    }

    #[test]
    fn streams_in_chunks_and_ends_with_usage() {
        let request = ChatRequest { messages: vec![user("abcdefghij")], ..ChatRequest::default() };
        let settings = MockSettings { chunk_chars: 4, ..MockSettings::default() };
        let response = respond(&request, "echo", &settings, "id", 1);
        let events = stream_events(&response, &settings);
        let texts: Vec<_> = events
            .iter()
            .filter_map(|event| match event {
                StreamEvent::Text { text, .. } => Some(&**text),
                _ => None,
            })
            .collect();
        assert_eq!(texts, vec!["abcd", "efgh", "ij"]);
        assert!(matches!(events.last(), Some(StreamEvent::Usage(_))));
    }

    #[test]
    fn embeddings_are_deterministic_and_normalised() {
        let request =
            EmbeddingsRequest { model: "m".into(), inputs: vec!["a".into(), "b".into()], dimensions: Some(8) };
        let first = embed(&request, "mock");
        let second = embed(&request, "mock");
        assert_eq!(first.embeddings, second.embeddings);
        assert_ne!(first.embeddings[0], first.embeddings[1]);
        let norm: f32 = first.embeddings[0].iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}
