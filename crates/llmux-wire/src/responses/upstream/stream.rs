//! Responses API stream event payloads -> canonical stream events.
//!
//! Event payloads borrow their strings and skip what they do not need (the whole
//! response object of the terminal events is read only for its status and usage):
//! decoding an event allocates nothing, except the texts of errors.

use std::borrow::Cow;

use llmux_types::Usage;
use llmux_types::chat::StreamEvent;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::response::{IncompleteIn, UsageWire, error_text, finish_reason};
use crate::few::Str;
use crate::upstream::{malformed, non_null, parse, parse_payload};
use crate::{DecodeError, UpstreamDecoder};

/// The envelope of one event; its members are parsed once the type is known, so events
/// of unknown types are skipped whatever they carry.
#[derive(Deserialize)]
struct EventIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    output_index: Option<&'a RawValue>,
    #[serde(borrow)]
    summary_index: Option<&'a RawValue>,
    #[serde(borrow)]
    content_index: Option<&'a RawValue>,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow)]
    item: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// What `response.created` (and `in_progress`, `queued`) tell of the response.
#[derive(Deserialize)]
struct HeadIn<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    created_at: Option<f64>,
}

/// What a terminal event's response tells: how it ended and what it used.
#[derive(Deserialize)]
struct EndIn<'a> {
    #[serde(borrow)]
    status: Option<Str<'a>>,
    incomplete_details: Option<IncompleteIn>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    usage: Option<UsageWire>,
}

/// An output item, as `response.output_item.added` / `.done` show it.
#[derive(Deserialize)]
struct ItemIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Str<'a>,
    #[serde(borrow)]
    call_id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    encrypted_content: Option<Str<'a>>,
}

/// A function call item of the stream: its output index, its canonical index, and
/// whether its arguments were sent.
#[derive(Debug)]
struct Call {
    output_index: u32,
    ordinal: u32,
    sent: bool,
}

/// Which text a reasoning delta continues: (event kind, output index, part index).
type ReasoningKey = (u8, u32, u32);

/// Decodes the `data` of Responses API SSE events into canonical events (choice 0).
///
/// - `response.created` / `response.in_progress` / `response.queued` -> `Start` (the
///   response's `id`, `model`, `created_at`), once.
/// - `response.output_text.delta` and `response.refusal.delta` -> `Text`;
///   `response.reasoning_summary_text.delta` and `response.reasoning_text.delta` ->
///   `Reasoning`, with a blank line (`"\n\n"`) between two reasoning texts (summary
///   parts, items) that follow each other.
/// - `response.output_item.added` of a `function_call` -> `ToolCall { index, id: call_id,
///   name, arguments: "" }`, `index` counting the response's function calls;
///   `response.function_call_arguments.delta` -> a fragment of that call. A call whose
///   arguments came in no delta gets them from `.done` (or the item's `.done`); a call
///   seen first at its `output_item.done` is sent whole.
/// - `response.completed` / `response.incomplete` -> `Finish` (see
///   [`decode_response`](super::decode_response)) and `Usage`; `response.failed` ->
///   `Usage` and `Error`; `error` -> `Error { message: "code: message" }`.
/// - Every other event (`content_part`, `.done` of texts, annotations, hosted tool
///   progress, events added after this was written) -> nothing.
///
/// A `Start` is emitted before the first content event even if `response.created` is
/// missing. Malformed JSON, a known event missing its members, or arguments for a call
/// that never started is a [`DecodeError`].
#[derive(Debug, Default)]
pub struct EventDecoder {
    started: bool,
    calls: Vec<Call>,
    /// The reasoning text the last content event continued, if it was reasoning.
    reasoning: Option<ReasoningKey>,
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
            "response.created" | "response.in_progress" | "response.queued" if !self.started => {
                let head: HeadIn<'d> = parse(&event.kind, required(event.response, "response")?)?;
                self.started = true;
                emit(StreamEvent::Start {
                    id: head.id.map(Into::into).unwrap_or_default(),
                    model: head.model.map(Into::into).unwrap_or_default(),
                    created: head.created_at.filter(|at| at.is_finite() && *at >= 0.0).map_or(0, |at| at as u64),
                });
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                let text = text_delta(&event)?;
                if !text.is_empty() {
                    self.start(emit);
                    self.reasoning = None;
                    emit(StreamEvent::Text { choice: 0, text });
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let text = text_delta(&event)?;
                if !text.is_empty() {
                    self.start(emit);
                    let summary = event.kind.starts_with("response.reasoning_summary");
                    let part = if summary { event.summary_index } else { event.content_index };
                    let key = (u8::from(summary), index(event.output_index, &event.kind)?, optional_index(part)?);
                    if self.reasoning.is_some_and(|last| last != key) {
                        emit(StreamEvent::Reasoning { choice: 0, text: Cow::Borrowed("\n\n") });
                    }
                    self.reasoning = Some(key);
                    emit(StreamEvent::Reasoning { choice: 0, text });
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                let item: ItemIn<'d> = parse(&event.kind, required(event.item, "item")?)?;
                // A finished reasoning item's encrypted content (when `include` asked for
                // it): OpenAI's signature of that reasoning.
                if &*item.kind == "reasoning"
                    && event.kind.ends_with(".done")
                    && let Some(signature) =
                        super::response::openai_signature(item.id.as_deref(), item.encrypted_content.as_deref())
                {
                    self.start(emit);
                    emit(StreamEvent::ReasoningSignature { choice: 0, signature: signature.into() });
                }
                if &*item.kind == "function_call" {
                    let output_index = index(event.output_index, &event.kind)?;
                    let done = event.kind.ends_with(".done");
                    self.call_item(output_index, item, done, emit);
                }
            }
            "response.function_call_arguments.delta" => {
                let arguments: Str<'d> = parse(&event.kind, required(event.delta, "delta")?)?;
                let call = self.call(index(event.output_index, &event.kind)?, &event.kind)?;
                if !arguments.is_empty() {
                    call.sent = true;
                    let index = call.ordinal;
                    self.reasoning = None;
                    emit(StreamEvent::ToolCall { choice: 0, index, id: None, name: None, arguments: arguments.into() });
                }
            }
            "response.function_call_arguments.done" => {
                let arguments: Str<'d> = parse(&event.kind, required(event.arguments, "arguments")?)?;
                let call = self.call(index(event.output_index, &event.kind)?, &event.kind)?;
                if !call.sent && !arguments.is_empty() {
                    call.sent = true;
                    let index = call.ordinal;
                    emit(StreamEvent::ToolCall { choice: 0, index, id: None, name: None, arguments: arguments.into() });
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let end: EndIn<'d> = parse(&event.kind, required(event.response, "response")?)?;
                self.start(emit);
                let usage = end.usage.map(Usage::from);
                if &*event.kind == "response.failed" {
                    if let Some(usage) = usage {
                        emit(StreamEvent::Usage(usage));
                    }
                    let message = match non_null(end.error) {
                        Some(error) => error_text(error),
                        None => "the response failed".to_owned(),
                    };
                    emit(StreamEvent::Error { message: Cow::Owned(message) });
                    return Ok(());
                }
                let status = end.status.as_deref().or(Some(if &*event.kind == "response.incomplete" {
                    "incomplete"
                } else {
                    "completed"
                }));
                let reason = end.incomplete_details.and_then(|details| details.reason);
                emit(StreamEvent::Finish {
                    choice: 0,
                    reason: finish_reason(status, reason.as_deref(), !self.calls.is_empty()),
                });
                emit(StreamEvent::Usage(usage.unwrap_or_default()));
            }
            "error" => {
                // `{"type":"error","code","message",...}`: the event is the error object (some
                // servers nest it under `error`).
                let message = match (non_null(event.error), non_null(event.message)) {
                    (Some(error), _) => error_text(error),
                    (None, Some(_)) => error_text(crate::upstream::parse_body("error event", data)?),
                    (None, None) => return Err(malformed("error event", "missing `message`")),
                };
                emit(StreamEvent::Error { message: Cow::Owned(message) });
            }
            _ => {}
        }
        Ok(())
    }
}

impl EventDecoder {
    /// Emits `Start` if no `response.created` came first.
    fn start<'d>(&mut self, emit: &mut dyn FnMut(StreamEvent<'d>)) {
        if !self.started {
            self.started = true;
            emit(StreamEvent::Start { id: Cow::Borrowed(""), model: Cow::Borrowed(""), created: 0 });
        }
    }

    /// The call at `output_index`.
    fn call(&mut self, output_index: u32, what: &str) -> Result<&mut Call, DecodeError> {
        self.calls
            .iter_mut()
            .find(|call| call.output_index == output_index)
            .ok_or_else(|| malformed(what, format!("output item {output_index} is not a function call that started")))
    }

    /// A function call item added (`done` false) or done.
    fn call_item<'d>(
        &mut self,
        output_index: u32,
        item: ItemIn<'d>,
        done: bool,
        emit: &mut dyn FnMut(StreamEvent<'d>),
    ) {
        self.start(emit);
        self.reasoning = None;
        let arguments: Cow<'d, str> = item.arguments.map(Into::into).unwrap_or_default();
        if let Some(call) = self.calls.iter_mut().find(|call| call.output_index == output_index) {
            if done && !call.sent && !arguments.is_empty() {
                call.sent = true;
                let index = call.ordinal;
                emit(StreamEvent::ToolCall { choice: 0, index, id: None, name: None, arguments });
            }
            return;
        }
        let ordinal = self.calls.len() as u32;
        // Arguments on an added item are whole (normally empty: they stream as deltas).
        let sent = !arguments.is_empty();
        self.calls.push(Call { output_index, ordinal, sent });
        emit(StreamEvent::ToolCall {
            choice: 0,
            index: ordinal,
            id: Some(item.call_id.map(Into::into).unwrap_or_default()),
            name: Some(item.name.map(Into::into).unwrap_or_default()),
            arguments,
        });
    }
}

/// The `delta` text of a text or reasoning delta event.
fn text_delta<'d>(event: &EventIn<'d>) -> Result<Cow<'d, str>, DecodeError> {
    let text: Str<'d> = parse(&event.kind, required(event.delta, "delta")?)?;
    Ok(text.into())
}

/// An index member (`output_index`) a known event cannot do without.
fn index(raw: Option<&RawValue>, what: &str) -> Result<u32, DecodeError> {
    parse(what, required(raw, "output_index")?)
}

/// An index member that may be absent (0 then).
fn optional_index(raw: Option<&RawValue>) -> Result<u32, DecodeError> {
    match non_null(raw) {
        Some(raw) => parse("stream event", raw),
        None => Ok(0),
    }
}

/// A member a known event cannot do without.
fn required<'a>(raw: Option<&'a RawValue>, name: &str) -> Result<&'a RawValue, DecodeError> {
    non_null(raw).ok_or_else(|| malformed("stream event", format!("missing `{name}`")))
}
