//! OpenAI `chat.completion.chunk` stream payloads -> canonical stream events.
//!
//! Stream chunks borrow their strings and hold their arrays inline (`Few`): decoding a
//! chunk allocates nothing.

use std::borrow::Cow;

use llmux_types::Usage;
use llmux_types::chat::StreamEvent;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::response::{THINK_CLOSE, THINK_OPEN, error_message, finish_reason};
use crate::few::{Few, Str};
use crate::json::compact_json;
use crate::openai::usage::UsageWire as UsageIn;
use crate::upstream::{non_null, parse_payload};
use crate::{DecodeError, UpstreamDecoder};

#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    created: Option<u64>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    choices: Option<Few<ChunkChoiceIn<'a>>>,
    usage: Option<UsageIn>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChunkChoiceIn<'a> {
    index: Option<u32>,
    #[serde(borrow)]
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(borrow)]
    content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Few<ChunkToolCallIn<'a>>>,
}

#[derive(Deserialize)]
struct ChunkToolCallIn<'a> {
    index: Option<u32>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    function: Option<ChunkFunctionIn<'a>>,
}

#[derive(Deserialize)]
struct ChunkFunctionIn<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Streamed tool arguments: a JSON string's value, borrowed when it has no escapes (see
/// `arguments_of` in `response`).
fn chunk_arguments(raw: Option<&RawValue>) -> Cow<'_, str> {
    match raw {
        Some(raw) if raw.get().trim() != "null" => match serde_json::from_str::<Cow<'_, str>>(raw.get()) {
            Ok(text) => text,
            Err(_) => Cow::Owned(compact_json(raw.get())),
        },
        _ => Cow::Borrowed(""),
    }
}

/// `text` without leading whitespace, still borrowed if it was.
fn trim_start(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim_start()),
        Cow::Owned(text) => match text.len() - text.trim_start().len() {
            0 => Cow::Owned(text),
            cut => Cow::Owned(text[cut..].to_owned()),
        },
    }
}

/// Where a choice's content stands with respect to an inline `<think>` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Think {
    /// Nothing but whitespace (or a prefix of `<think>`) seen yet.
    #[default]
    Undecided,
    /// Inside `<think>`; nothing emitted yet (leading whitespace is dropped).
    Opening,
    /// Inside `<think>`, some reasoning emitted.
    Inside,
    /// Just after `</think>`: leading whitespace of the answer is dropped.
    Closed,
    /// Plain content.
    Outside,
}

#[derive(Debug, Default)]
struct ChoiceState {
    index: u32,
    think: Think,
    /// Content held back while undecided, or reasoning that may end in (part of) `</think>`.
    pending: String,
    /// Tool-call indices whose first fragment was seen.
    tools: Vec<u32>,
    /// Ids of calls that came without an `index`, with the index given to them.
    tool_ids: Vec<(String, u32)>,
    next_tool: u32,
    last_tool: Option<u32>,
}

impl ChoiceState {
    fn content<'d>(&mut self, text: Cow<'d, str>, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        let choice = self.index;
        match self.think {
            Think::Outside => emit(StreamEvent::Text { choice, text }),
            Think::Closed => {
                let text = trim_start(text);
                if !text.is_empty() {
                    self.think = Think::Outside;
                    emit(StreamEvent::Text { choice, text });
                }
            }
            Think::Undecided => {
                self.pending.push_str(&text);
                let trimmed = self.pending.trim_start();
                if let Some(rest) = trimmed.strip_prefix(THINK_OPEN) {
                    let rest = rest.to_owned();
                    self.pending.clear();
                    self.think = Think::Opening;
                    self.reasoning(Cow::Owned(rest), emit);
                } else if trimmed.is_empty() || THINK_OPEN.starts_with(trimmed) {
                    // Wait: this may still become `<think>`.
                } else {
                    self.think = Think::Outside;
                    emit(StreamEvent::Text { choice, text: Cow::Owned(std::mem::take(&mut self.pending)) });
                }
            }
            Think::Opening | Think::Inside => self.reasoning(text, emit),
        }
    }

    /// Inline reasoning text: emitted except for what may be the start of `</think>` and
    /// trailing whitespace (dropped if the tag follows).
    fn reasoning<'d>(&mut self, text: Cow<'d, str>, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        // Nothing held back and nothing to hold back (no `<` that may begin `</think>`,
        // no trailing whitespace): the text goes out as it came.
        if self.think == Think::Inside
            && self.pending.is_empty()
            && !text.contains('<')
            && !text.ends_with(char::is_whitespace)
        {
            if !text.is_empty() {
                emit(StreamEvent::Reasoning { choice: self.index, text });
            }
            return;
        }
        if self.think == Think::Opening && self.pending.is_empty() {
            self.pending.push_str(text.trim_start());
            if self.pending.is_empty() {
                return;
            }
        } else {
            self.pending.push_str(&text);
        }
        if let Some(end) = self.pending.find(THINK_CLOSE) {
            let rest = self.pending[end + THINK_CLOSE.len()..].to_owned();
            self.pending.truncate(end);
            let thought = std::mem::take(&mut self.pending);
            self.emit_reasoning(thought.trim_end(), emit);
            self.think = Think::Closed;
            self.content(Cow::Owned(rest), emit);
            return;
        }
        // Hold back a suffix that could begin `</think>`, and trailing whitespace.
        let mut keep = self.pending.len();
        for start in (0..self.pending.len()).rev() {
            if self.pending.is_char_boundary(start) && THINK_CLOSE.starts_with(&self.pending[start..]) {
                keep = start;
            }
        }
        let safe = self.pending[..keep].trim_end().len();
        if safe > 0 {
            let rest = self.pending.split_off(safe);
            let thought = std::mem::replace(&mut self.pending, rest);
            self.emit_reasoning(&thought, emit);
        }
    }

    fn emit_reasoning<'d>(&mut self, text: &str, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        if !text.is_empty() {
            self.think = Think::Inside;
            emit(StreamEvent::Reasoning { choice: self.index, text: Cow::Owned(text.to_owned()) });
        }
    }

    /// Releases held-back text at the end of the choice.
    fn flush<'d>(&mut self, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        let pending = std::mem::take(&mut self.pending);
        match self.think {
            Think::Undecided if !pending.is_empty() => {
                emit(StreamEvent::Text { choice: self.index, text: Cow::Owned(pending) });
            }
            Think::Opening | Think::Inside => self.emit_reasoning(pending.trim_end(), emit),
            _ => {}
        }
        self.think = Think::Outside;
    }

    fn tool_call<'d>(&mut self, position: usize, call: ChunkToolCallIn<'d>, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        let index = match (call.index, &call.id) {
            (Some(index), _) => index,
            (None, Some(id)) => match self.tool_ids.iter().find(|(known, _)| known.as_str() == &**id) {
                Some(&(_, index)) => index,
                None => {
                    let index = self.next_tool.max(position as u32);
                    self.tool_ids.push((id.to_string(), index));
                    index
                }
            },
            (None, None) => self.last_tool.unwrap_or(position as u32),
        };
        self.next_tool = self.next_tool.max(index + 1);
        self.last_tool = Some(index);
        let function = call.function.unwrap_or(ChunkFunctionIn { name: None, arguments: None });
        let arguments = chunk_arguments(function.arguments);
        let first = !self.tools.contains(&index);
        if first {
            self.tools.push(index);
        } else if arguments.is_empty() {
            return;
        }
        emit(StreamEvent::ToolCall {
            choice: self.index,
            index,
            id: if first { call.id.map(Into::into) } else { None },
            name: if first { function.name.map(Into::into) } else { None },
            arguments,
        });
    }
}

/// Decodes the `data` payloads of an OpenAI `chat.completion.chunk` stream into
/// canonical events.
///
/// The first chunk yields `Start`; `reasoning_content` / `reasoning` deltas yield
/// `Reasoning`, and so does an inline `<think>...</think>` at the very start of a
/// choice's content (held back across chunk boundaries as needed); tool-call deltas yield
/// `ToolCall` with `id` and `name` on the first fragment of an index only; a
/// `finish_reason` yields `Finish`; a chunk with `usage` yields `Usage` (after the
/// chunk's other events). `[DONE]` yields nothing, except text a choice still held back
/// (an unfinished `<think>` prefix) when no `finish_reason` came. `{"error": ...}`
/// yields `Error`.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    started: bool,
    choices: Vec<ChoiceState>,
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder::default()
    }
}

impl UpstreamDecoder for ChunkDecoder {
    /// Decodes one `data` payload, handing each event to `emit` as it is decoded; the
    /// events borrow from `data`.
    fn decode_with<'d>(&mut self, data: &'d [u8], emit: &mut dyn FnMut(StreamEvent<'d>)) -> Result<(), DecodeError> {
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            for state in &mut self.choices {
                state.flush(emit);
            }
            return Ok(());
        }
        let Some(chunk) = parse_payload::<ChunkIn<'d>>("stream chunk", data)? else {
            return Ok(());
        };
        if let Some(error) = non_null(chunk.error) {
            let error: serde_json::Value = serde_json::from_str(error.get()).unwrap_or_default();
            emit(StreamEvent::Error { message: Cow::Owned(error_message(&error)) });
            return Ok(());
        }
        if !self.started {
            self.started = true;
            emit(StreamEvent::Start {
                id: chunk.id.map(Into::into).unwrap_or_default(),
                model: chunk.model.map(Into::into).unwrap_or_default(),
                created: chunk.created.unwrap_or(0),
            });
        }
        for (position, choice) in chunk.choices.unwrap_or_default().into_iter().enumerate() {
            let state = self.state(choice.index.unwrap_or(position as u32));
            if let Some(delta) = choice.delta {
                if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning).filter(|r| !r.is_empty()) {
                    if state.think == Think::Undecided {
                        // An upstream with a reasoning field does not inline `<think>`.
                        state.think = Think::Outside;
                    }
                    emit(StreamEvent::Reasoning { choice: state.index, text: reasoning.into() });
                }
                if let Some(content) = delta.content.filter(|c| !c.is_empty()) {
                    state.content(content.into(), emit);
                }
                for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    state.tool_call(position, call, emit);
                }
            }
            if let Some(reason) = choice.finish_reason {
                state.flush(emit);
                let made_tool_calls = !state.tools.is_empty();
                emit(StreamEvent::Finish {
                    choice: state.index,
                    reason: finish_reason(Some(&reason), made_tool_calls),
                });
            }
        }
        if let Some(usage) = chunk.usage {
            emit(StreamEvent::Usage(Usage::from(usage)));
        }
        Ok(())
    }
}

impl ChunkDecoder {
    fn state(&mut self, index: u32) -> &mut ChoiceState {
        let position = match self.choices.iter().position(|state| state.index == index) {
            Some(position) => position,
            None => {
                self.choices.push(ChoiceState { index, ..ChoiceState::default() });
                self.choices.len() - 1
            }
        };
        &mut self.choices[position]
    }
}
