//! Anthropic Messages SSE event payloads -> canonical stream events.

use std::borrow::Cow;

use llmux_types::chat::StreamEvent;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::response::{BlockIn, ErrorIn, UsageState, arguments_of, block_in, error_text, finish_reason};
use crate::few::Str;
use crate::upstream::{malformed, non_null, parse, parse_payload};
use crate::{DecodeError, UpstreamDecoder};

/// The envelope of one stream event; the payloads are parsed once the type is known, so
/// events of unknown types are skipped whatever they carry.
#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    index: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    content_block: Option<&'a RawValue>,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MessageStartIn<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BlockDeltaIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    thinking: Option<Str<'a>>,
    #[serde(borrow)]
    signature: Option<Str<'a>>,
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct MessageDeltaIn {
    stop_reason: Option<String>,
}

/// What an open (or closed) content block of the stream is.
#[derive(Debug)]
enum BlockState {
    Text,
    Thinking,
    RedactedThinking,
    /// A tool_use block: canonical tool call `ordinal`; `start_input` is the compact
    /// `input` of `content_block_start`, sent as the arguments at `content_block_stop`
    /// when no `input_json_delta` carried any (a tool without arguments).
    Tool {
        ordinal: u32,
        start_input: String,
        streamed: bool,
    },
    /// Server tool blocks and unknown block types: their deltas are skipped.
    Other,
}

/// Decodes the `data` of Anthropic Messages SSE events into canonical events (choice 0).
///
/// - `message_start` -> `Start { id, model, created: 0 }` and `Usage` (the input side and
///   the output so far).
/// - `content_block_start`: text / thinking -> their text if any (normally none);
///   `redacted_thinking` -> `RedactedReasoning`; `tool_use` -> `ToolCall { index, id,
///   name, arguments: "" }` where `index` is the ordinal among the message's tool_use
///   blocks, not the Anthropic block index.
/// - `content_block_delta`: `text_delta` -> `Text`, `thinking_delta` -> `Reasoning`,
///   `signature_delta` -> `ReasoningSignature`, `input_json_delta` -> a `ToolCall` fragment
///   of the block's call; empty deltas yield nothing; deltas of server-tool blocks and
///   unknown delta types (`citations_delta`) are skipped.
/// - `content_block_stop` of a tool_use block that got no (non-empty) `input_json_delta`
///   -> a fragment with the start's `input` (`{}`), so the call's arguments are the same
///   as in a non-streamed response.
/// - `message_delta` -> `Finish` (stop reason mapped as in [`messages_response`](super::messages_response)) and
///   `Usage`: the counters it reports replace those of `message_start` (cumulative: the
///   last value wins, nothing is added).
/// - `message_stop`, `ping` and unknown event types -> nothing; `error` ->
///   `Error { message: "<type>: <message>" }`.
///
/// A `Start` is emitted before the first content event even if `message_start` is
/// missing. Malformed JSON, a known event missing its fields, or a delta for a block that
/// never started is a [`DecodeError`].
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    usage: UsageState,
    /// Anthropic block index -> what the block is.
    blocks: Vec<(u32, BlockState)>,
    tools: u32,
}

impl EventDecoder {
    pub fn new() -> EventDecoder {
        EventDecoder::default()
    }
}

impl UpstreamDecoder for EventDecoder {
    /// Decodes one `data` payload, handing each event to `emit` as it is decoded; the
    /// events borrow from `data`.
    fn decode_with<'d>(&mut self, data: &'d [u8], emit: &mut dyn FnMut(StreamEvent<'d>)) -> Result<(), DecodeError> {
        let Some(event) = parse_payload::<EventIn<'d>>("stream event", data)? else {
            return Ok(());
        };
        match &*event.kind {
            "message_start" => {
                let message: MessageStartIn<'d> = parse("message_start", required(event.message, "message")?)?;
                if let Some(raw) = non_null(message.usage) {
                    self.usage.update(&parse("message_start usage", raw)?);
                }
                if !self.started {
                    self.started = true;
                    emit(StreamEvent::Start {
                        id: message.id.map(Into::into).unwrap_or_default(),
                        model: message.model.map(Into::into).unwrap_or_default(),
                        created: 0,
                    });
                }
                emit(StreamEvent::Usage(self.usage.canonical()));
            }
            "content_block_start" => {
                let index = block_index(event.index, "content_block_start")?;
                let block = required(event.content_block, "content_block")?;
                let state = match block_in("content_block_start", block)? {
                    BlockIn::Text(text) => {
                        self.start(emit);
                        if !text.is_empty() {
                            emit(StreamEvent::Text { choice: 0, text: Cow::Owned(text) });
                        }
                        BlockState::Text
                    }
                    BlockIn::Thinking(thinking) => {
                        self.start(emit);
                        if !thinking.thinking.is_empty() {
                            emit(StreamEvent::Reasoning { choice: 0, text: Cow::Owned(thinking.thinking) });
                        }
                        if let Some(signature) = thinking.signature.filter(|signature| !signature.is_empty()) {
                            emit(StreamEvent::ReasoningSignature { choice: 0, signature: Cow::Owned(signature) });
                        }
                        BlockState::Thinking
                    }
                    BlockIn::RedactedThinking(data) => {
                        self.start(emit);
                        emit(StreamEvent::RedactedReasoning { choice: 0, data: Cow::Owned(data) });
                        BlockState::RedactedThinking
                    }
                    BlockIn::ToolUse(call) => {
                        self.start(emit);
                        let ordinal = self.tools;
                        self.tools += 1;
                        emit(StreamEvent::ToolCall {
                            choice: 0,
                            index: ordinal,
                            id: Some(Cow::Owned(call.id)),
                            name: Some(Cow::Owned(call.name)),
                            arguments: Cow::Borrowed(""),
                        });
                        BlockState::Tool { ordinal, start_input: arguments_of(call.input), streamed: false }
                    }
                    BlockIn::Other => BlockState::Other,
                };
                match self.blocks.iter_mut().find(|(known, _)| *known == index) {
                    Some((_, known)) => *known = state,
                    None => self.blocks.push((index, state)),
                }
            }
            "content_block_delta" => {
                let index = block_index(event.index, "content_block_delta")?;
                let delta: BlockDeltaIn<'d> = parse("content_block_delta", required(event.delta, "delta")?)?;
                let Some((_, state)) = self.blocks.iter_mut().find(|(known, _)| *known == index) else {
                    return Err(malformed("content_block_delta", format!("block {index} was never started")));
                };
                if matches!(state, BlockState::Other) {
                    return Ok(());
                }
                let BlockDeltaIn { kind, text, thinking, signature, partial_json } = delta;
                let field = |value: Option<Str<'d>>, name: &str| {
                    value
                        .map(Cow::from)
                        .ok_or_else(|| malformed("content_block_delta", format!("`{kind}` without `{name}`")))
                };
                match &*kind {
                    "text_delta" => {
                        let text = field(text, "text")?;
                        if !text.is_empty() {
                            emit(StreamEvent::Text { choice: 0, text });
                        }
                    }
                    "thinking_delta" => {
                        let text = field(thinking, "thinking")?;
                        if !text.is_empty() {
                            emit(StreamEvent::Reasoning { choice: 0, text });
                        }
                    }
                    "signature_delta" => {
                        let signature = field(signature, "signature")?;
                        if !signature.is_empty() {
                            emit(StreamEvent::ReasoningSignature { choice: 0, signature });
                        }
                    }
                    "input_json_delta" => {
                        let arguments = field(partial_json, "partial_json")?;
                        let BlockState::Tool { ordinal, streamed, .. } = state else {
                            return Err(malformed(
                                "content_block_delta",
                                format!("input_json_delta for block {index}, which is not a tool_use block"),
                            ));
                        };
                        if !arguments.is_empty() {
                            *streamed = true;
                            emit(StreamEvent::ToolCall { choice: 0, index: *ordinal, id: None, name: None, arguments });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = block_index(event.index, "content_block_stop")?;
                if let Some((_, BlockState::Tool { ordinal, start_input, streamed })) =
                    self.blocks.iter_mut().find(|(known, _)| *known == index)
                    && !*streamed
                {
                    *streamed = true;
                    emit(StreamEvent::ToolCall {
                        choice: 0,
                        index: *ordinal,
                        id: None,
                        name: None,
                        arguments: Cow::Owned(std::mem::take(start_input)),
                    });
                }
            }
            "message_delta" => {
                let delta: MessageDeltaIn = parse("message_delta", required(event.delta, "delta")?)?;
                if let Some(raw) = non_null(event.usage) {
                    self.usage.update(&parse("message_delta usage", raw)?);
                }
                self.start(emit);
                emit(StreamEvent::Finish {
                    choice: 0,
                    reason: finish_reason(delta.stop_reason.as_deref(), self.tools > 0),
                });
                emit(StreamEvent::Usage(self.usage.canonical()));
            }
            "error" => {
                let error: ErrorIn = parse("error event", required(event.error, "error")?)?;
                emit(StreamEvent::Error { message: Cow::Owned(error_text(error)) });
            }
            // `message_stop`, `ping`, and event types added after this was written.
            _ => {}
        }
        Ok(())
    }
}

impl EventDecoder {
    /// Emits `Start` if no `message_start` came first.
    fn start<'d>(&mut self, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        if !self.started {
            self.started = true;
            emit(StreamEvent::Start { id: Cow::Borrowed(""), model: Cow::Borrowed(""), created: 0 });
        }
    }
}

/// The `index` of a content block event.
fn block_index(raw: Option<&RawValue>, what: &str) -> Result<u32, DecodeError> {
    parse(what, required(raw, "index")?)
}

/// A field a known event cannot do without.
fn required<'a>(raw: Option<&'a RawValue>, name: &str) -> Result<&'a RawValue, DecodeError> {
    non_null(raw).ok_or_else(|| malformed("stream event", format!("missing `{name}`")))
}
