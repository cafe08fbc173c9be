//! Canonical responses and stream events -> Anthropic Messages JSON and SSE events.
//!
//! Stop reasons: `stop` -> `end_turn` (`tool_use` when the turn made tool calls: some
//! OpenAI-compatible upstreams say `stop` there, and Anthropic clients loop on
//! `tool_use`), `length` -> `max_tokens`, `tool_calls` -> `tool_use`, `content_filter` ->
//! `refusal`; other values pass through when they are Anthropic values and otherwise
//! map to the nearest one (`end_turn` by default). `stop_sequence` is always `null`: the
//! canonical model does not know which stop string matched.

use llmux_types::Usage;
use llmux_types::chat::{ChatResponse, FinishReason, StreamEvent, gemini_signature};
use serde::Serialize;
use serde_json::value::RawValue;

use super::tool_ids;

/// The Anthropic `stop_reason` of a canonical finish reason.
pub fn stop_reason(reason: &FinishReason, made_tool_calls: bool) -> &'static str {
    match reason {
        FinishReason::Stop if made_tool_calls => "tool_use",
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Other(other) => match other.as_str() {
            "stop_sequence" => "stop_sequence",
            "pause_turn" => "pause_turn",
            "model_context_window_exceeded" => "model_context_window_exceeded",
            "max_tokens" | "model_length" => "max_tokens",
            "tool_use" | "function_call" => "tool_use",
            "refusal" | "sensitive" => "refusal",
            _ if made_tool_calls => "tool_use",
            _ => "end_turn",
        },
    }
}

/// The message id shown to the client: upstream ids are kept when they already look
/// like Anthropic ids, otherwise prefixed with `msg_`.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") { id.to_owned() } else { format!("msg_{id}") }
}

#[derive(Serialize, Clone, Copy)]
struct UsageWire {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

fn usage_wire(usage: &Usage) -> UsageWire {
    UsageWire {
        input_tokens: usage.uncached_unwritten_input(),
        cache_creation_input_tokens: usage.cache_write_tokens,
        cache_read_input_tokens: usage.cached_tokens,
        output_tokens: usage.output_tokens,
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockWire<'a> {
    Thinking { thinking: &'a str, signature: &'a str },
    RedactedThinking { data: &'a str },
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: Box<RawValue> },
}

#[derive(Serialize)]
struct MessageWire<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockWire<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: UsageWire,
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("valid JSON")
}

/// Tool arguments as an `input` object: the model's JSON when it is an object,
/// `{}` when it is empty, not JSON, or not an object.
pub(crate) fn tool_input(arguments: &str) -> Box<RawValue> {
    let trimmed = arguments.trim();
    if trimmed.starts_with('{')
        && let Ok(raw) = serde_json::from_str::<&RawValue>(trimmed)
    {
        return raw.to_owned();
    }
    empty_object()
}

/// Canonical response -> Anthropic Messages response JSON. Only choice 0 is used.
pub fn messages_response(response: &ChatResponse) -> Vec<u8> {
    let choice = response.choices.iter().find(|choice| choice.index == 0).or(response.choices.first());
    let signed_first_call: Option<String>;
    let mut content = Vec::new();
    let mut reason = "end_turn";
    if let Some(choice) = choice {
        let reasoning = choice.reasoning.as_deref().unwrap_or("");
        // Gemini's signature rides in the id of the first call (see `tool_ids`), not in
        // a thinking block.
        let gemini = choice.reasoning_signature.as_deref().and_then(gemini_signature);
        let signature = choice.reasoning_signature.as_deref().filter(|_| gemini.is_none());
        if !reasoning.is_empty() || signature.is_some() {
            content.push(BlockWire::Thinking { thinking: reasoning, signature: signature.unwrap_or("") });
        }
        signed_first_call = gemini.and_then(|raw| tool_ids::attach(&choice.tool_calls.first()?.id, raw));
        for data in &choice.redacted_reasoning {
            content.push(BlockWire::RedactedThinking { data });
        }
        if let Some(text) = choice.content.as_deref().filter(|text| !text.is_empty()) {
            content.push(BlockWire::Text { text });
        }
        for (position, call) in choice.tool_calls.iter().enumerate() {
            let id = signed_first_call.as_deref().filter(|_| position == 0).unwrap_or(&call.id);
            content.push(BlockWire::ToolUse { id, name: &call.name, input: tool_input(&call.arguments) });
        }
        reason = stop_reason(&choice.finish_reason, !choice.tool_calls.is_empty());
    }
    let wire = MessageWire {
        id: message_id(&response.id),
        kind: "message",
        role: "assistant",
        model: &response.model,
        content,
        stop_reason: Some(reason),
        stop_sequence: None,
        usage: usage_wire(&response.usage),
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// `event: ping\ndata: {"type": "ping"}\n\n`.
pub fn ping(out: &mut Vec<u8>) {
    out.extend_from_slice(b"event: ping\ndata: {\"type\": \"ping\"}\n\n");
}

fn write_event(out: &mut Vec<u8>, kind: &str, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Serializing these plain structs cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: MessageWire<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: BlockWire<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaWire<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: DeltaWire<'a>,
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopWire,
    usage: UsageWire,
}

#[derive(Serialize)]
struct StopWire {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct ErrorEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Thinking,
    Text,
    /// A tool_use block for the canonical tool call `index`.
    Tool(u32),
}

/// Canonical stream events -> the Anthropic SSE event sequence.
///
/// Only choice 0 is encoded. Blocks are opened lazily and closed before the next one
/// starts; empty text and reasoning deltas open nothing. A `Finish` closes the open
/// block and records the stop reason; `message_delta` (with the last `Usage` seen) and
/// `message_stop` are written by [`MessagesStreamEncoder::finish`], because OpenAI
/// upstreams send the usage chunk after the finish chunk. After an `Error` nothing more
/// is written.
///
/// A tool-call fragment for a call whose block was already closed (an upstream that
/// interleaves parallel calls) is written as a delta on that call's block index rather
/// than dropped; the SDK accumulators index blocks by `index`.
#[derive(Debug)]
pub struct MessagesStreamEncoder {
    model: String,
    id: String,
    started: bool,
    done: bool,
    open: Option<(u32, BlockKind)>,
    next_index: u32,
    /// Canonical tool-call index -> content block index.
    tools: Vec<(u32, u32)>,
    stop: Option<FinishReason>,
    usage: Usage,
    /// Whether the `ping` Anthropic sends after the first `content_block_start` went out.
    pinged: bool,
    /// A Gemini signature waiting for the tool call it signs.
    gemini_signature: Option<String>,
}

impl MessagesStreamEncoder {
    /// `model` is shown in `message_start` when the stream's `Start` names none.
    pub fn new(model: &str) -> MessagesStreamEncoder {
        MessagesStreamEncoder {
            model: model.to_owned(),
            id: String::new(),
            started: false,
            done: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            stop: None,
            usage: Usage::default(),
            pinged: false,
            gemini_signature: None,
        }
    }

    /// Appends the events for `event` to `out`.
    pub fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::Start { id, model, .. } => {
                if !self.started {
                    self.id.clear();
                    self.id.push_str(id);
                    if !model.is_empty() {
                        self.model.clear();
                        self.model.push_str(model);
                    }
                }
                self.start(out);
            }
            StreamEvent::Usage(usage) => self.usage = *usage,
            StreamEvent::Error { message } => self.error("api_error", message, out),
            _ if event_choice(event) != Some(0) => {}
            StreamEvent::Text { text, .. } => {
                if !text.is_empty() {
                    let index = self.block(BlockKind::Text, out);
                    write_delta(out, index, DeltaWire::Text { text });
                }
            }
            StreamEvent::Reasoning { text, .. } => {
                if !text.is_empty() {
                    let index = self.block(BlockKind::Thinking, out);
                    write_delta(out, index, DeltaWire::Thinking { thinking: text });
                }
            }
            StreamEvent::ReasoningSignature { signature, .. } if gemini_signature(signature).is_some() => {
                // Rides in the id of the call it signs (see `tool_ids`); one no call
                // follows is optional for Gemini and has no place here.
                self.gemini_signature = gemini_signature(signature).map(str::to_owned);
            }
            StreamEvent::ReasoningSignature { signature, .. } => {
                let index = self.block(BlockKind::Thinking, out);
                write_delta(out, index, DeltaWire::Signature { signature });
                self.close(out);
            }
            StreamEvent::RedactedReasoning { data, .. } => {
                self.start(out);
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                let start = BlockStart {
                    kind: "content_block_start",
                    index,
                    content_block: BlockWire::RedactedThinking { data },
                };
                write_event(out, "content_block_start", &start);
                self.first_ping(out);
                write_event(out, "content_block_stop", &BlockStop { kind: "content_block_stop", index });
            }
            StreamEvent::ToolCall { index: call, id, name, arguments, .. } => {
                self.start(out);
                let index = match self.tools.iter().find(|(known, _)| known == call) {
                    Some(&(_, index)) => index,
                    None => {
                        self.close(out);
                        let index = self.next_index;
                        self.next_index += 1;
                        self.tools.push((*call, index));
                        self.open = Some((index, BlockKind::Tool(*call)));
                        let generated;
                        let id = match id {
                            Some(id) => match self.gemini_signature.take().and_then(|raw| tool_ids::attach(id, &raw)) {
                                Some(signed) => {
                                    generated = signed;
                                    &generated
                                }
                                None => &**id,
                            },
                            None => {
                                generated = format!("toolu_{index}");
                                &generated
                            }
                        };
                        let block =
                            BlockWire::ToolUse { id, name: name.as_deref().unwrap_or(""), input: empty_object() };
                        let start = BlockStart { kind: "content_block_start", index, content_block: block };
                        write_event(out, "content_block_start", &start);
                        self.first_ping(out);
                        index
                    }
                };
                if !arguments.is_empty() {
                    write_delta(out, index, DeltaWire::InputJson { partial_json: arguments });
                }
            }
            StreamEvent::Finish { reason, .. } => {
                self.start(out);
                self.close(out);
                self.stop = Some(reason.clone());
            }
        }
    }

    /// Appends the closing events: `message_delta` with the stop reason and the final
    /// usage, then `message_stop`. Nothing after an error.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        self.close(out);
        let made_tool_calls = !self.tools.is_empty();
        let reason = match &self.stop {
            Some(reason) => stop_reason(reason, made_tool_calls),
            None if made_tool_calls => "tool_use",
            None => "end_turn",
        };
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopWire { stop_reason: reason, stop_sequence: None },
            usage: usage_wire(&self.usage),
        };
        write_event(out, "message_delta", &delta);
        write_event(out, "message_stop", &TypeOnly { kind: "message_stop" });
        self.done = true;
    }

    /// Writes `message_start` once.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let message = MessageWire {
            id: message_id(&self.id),
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: usage_wire(&self.usage),
        };
        write_event(out, "message_start", &MessageStart { kind: "message_start", message });
    }

    /// The index of an open block of `kind`, opening one (and closing another) if needed.
    fn block(&mut self, kind: BlockKind, out: &mut Vec<u8>) -> u32 {
        self.start(out);
        if let Some((index, open)) = self.open
            && open == kind
        {
            return index;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        let content_block = match kind {
            BlockKind::Thinking => BlockWire::Thinking { thinking: "", signature: "" },
            BlockKind::Text => BlockWire::Text { text: "" },
            BlockKind::Tool(_) => unreachable!("tool blocks are opened by ToolCall"),
        };
        write_event(out, "content_block_start", &BlockStart { kind: "content_block_start", index, content_block });
        self.first_ping(out);
        index
    }

    /// Ends the stream with an `error` event of Anthropic error type `kind`; nothing
    /// follows it.
    pub fn error(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        let error = ErrorEvent { kind: "error", error: ErrorInner { kind, message } };
        write_event(out, "error", &error);
        self.done = true;
    }

    /// Anthropic sends one `ping` right after the first `content_block_start`.
    fn first_ping(&mut self, out: &mut Vec<u8>) {
        if !self.pinged {
            self.pinged = true;
            ping(out);
        }
    }

    /// A keep-alive while the upstream is silent: a `ping` (after `message_start`, which
    /// it writes first if the stream has not started). Nothing after the end.
    pub fn keep_alive(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        ping(out);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            write_event(out, "content_block_stop", &BlockStop { kind: "content_block_stop", index });
        }
    }
}

fn write_delta(out: &mut Vec<u8>, index: u32, delta: DeltaWire<'_>) {
    write_event(out, "content_block_delta", &BlockDelta { kind: "content_block_delta", index, delta });
}

fn event_choice(event: &StreamEvent<'_>) -> Option<u32> {
    match event {
        StreamEvent::Text { choice, .. }
        | StreamEvent::Reasoning { choice, .. }
        | StreamEvent::ReasoningSignature { choice, .. }
        | StreamEvent::RedactedReasoning { choice, .. }
        | StreamEvent::ToolCall { choice, .. }
        | StreamEvent::Finish { choice, .. } => Some(*choice),
        StreamEvent::Start { .. } | StreamEvent::Usage(_) | StreamEvent::Error { .. } => None,
    }
}

#[derive(Serialize)]
struct ModelInfoWire<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: &'a str,
    created_at: &'static str,
}

fn model_info(id: &str) -> ModelInfoWire<'_> {
    // llmux model names have no creation date; the epoch stands in.
    ModelInfoWire { kind: "model", id, display_name: id, created_at: "1970-01-01T00:00:00Z" }
}

/// `GET /v1/models` in Anthropic's shape (one page holding every model).
pub fn model_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    #[derive(Serialize)]
    struct ListWire<'a> {
        data: Vec<ModelInfoWire<'a>>,
        has_more: bool,
        first_id: Option<&'a str>,
        last_id: Option<&'a str>,
    }
    let data: Vec<ModelInfoWire<'_>> = names.into_iter().map(model_info).collect();
    let first_id = data.first().map(|model| model.id);
    let last_id = data.last().map(|model| model.id);
    serde_json::to_vec(&ListWire { data, has_more: false, first_id, last_id }).unwrap_or_default()
}

/// `GET /v1/models/{id}` in Anthropic's shape.
pub fn model(id: &str) -> Vec<u8> {
    serde_json::to_vec(&model_info(id)).unwrap_or_default()
}
