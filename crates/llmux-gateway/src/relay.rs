//! Relay: moving an answer's bytes to the client as they arrive.
//!
//! - [`openai_passthrough`]: an OpenAI-dialect upstream stream relayed to an OpenAI
//!   client. Events are forwarded byte-for-byte as slices of what arrived; only the
//!   extra usage chunk llmux asked for is dropped when the client did not ask for it.
//!   The usage chunk is the only one parsed.
//! - [`encoded`]: canonical events (from a backend that is not an OpenAI upstream,
//!   such as the mock) encoded for the client as they are produced.
//! - [`translated`]: an upstream stream in another dialect than the client's: each
//!   SSE event decoded to canonical events and encoded for the client.
//!
//! Each feeds the request's settlement as events arrive (the upstream's usage figures,
//! the bytes of output relayed: [`Meter`]) and settles it when the stream ends or
//! fails; a stream the client drops is settled by the settlement's `Drop` with what
//! its meter holds by then.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use llmux_types::chat::StreamEvent;
use llmux_wire::openai::usage::{Chunk, classify_chunk};
use llmux_wire::sse::{Framer, parse_event};

use crate::error::{ErrorCode, ErrorRow};
pub use crate::settle::Meter;
use crate::settle::Settlement;
use crate::stored::{Keep, Pending};

/// A response body produced incrementally.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

struct Passthrough {
    upstream: http_body_util::BodyDataStream<llmux_providers::client::UpstreamBody>,
    framer: Framer,
    settlement: Settlement,
    /// Drop the usage-only chunk (the client did not ask for it).
    strip_usage: bool,
    idle: Duration,
    saw_done: bool,
    error: Option<ErrorCode>,
    /// The upstream's body ended (or failed): nothing more to relay.
    ended: bool,
}

/// What one upstream read produced for the client.
enum Out {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Out {
    fn push(&mut self, event: Bytes) {
        *self = match std::mem::replace(self, Out::Empty) {
            Out::Empty => Out::One(event),
            Out::One(first) => {
                let mut joined = BytesMut::with_capacity(first.len() + event.len() + 256);
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&event);
                Out::Many(joined)
            }
            Out::Many(mut joined) => {
                joined.extend_from_slice(&event);
                Out::Many(joined)
            }
        }
    }

    fn into_bytes(self) -> Option<Bytes> {
        match self {
            Out::Empty => None,
            Out::One(bytes) => Some(bytes),
            Out::Many(joined) => Some(joined.freeze()),
        }
    }
}

impl Passthrough {
    fn take_events(&mut self, out: &mut Out) {
        while let Some(event) = self.framer.next_event() {
            self.route_event(event, out);
        }
        // `[DONE]` is the end: the request is settled as it leaves, not when the
        // upstream closes, so that a client that hangs up as soon as it has it (most
        // SDKs do, when the connection is not reused) is recorded as served. The
        // upstream's body is still read to its end, for its connection's sake.
        if self.saw_done && self.error.is_none() && !self.settlement.is_settled() {
            self.settlement.first_byte();
            self.settle();
        }
    }

    fn route_event(&mut self, event: Bytes, out: &mut Out) {
        // Nothing follows `[DONE]`: what an upstream sends after it (settled, so never
        // billed) is not relayed either.
        if self.saw_done {
            return;
        }
        // Comments and keep-alives pass through.
        let Some(data) = parse_event(&event).data else { return out.push(event) };
        match classify_chunk(&data) {
            Chunk::Done => self.saw_done = true,
            Chunk::Error => self.error = Some(ErrorCode::UpstreamError),
            Chunk::Data { usage, usage_only } => {
                let meter = self.settlement.meter();
                if !usage_only {
                    meter_openai_chunk(&data, meter);
                }
                if let Some(usage) = usage {
                    meter.observe(&StreamEvent::Usage(usage));
                }
                if usage_only && self.strip_usage {
                    return;
                }
            }
        }
        out.push(event);
    }

    /// Ends the stream with an error event (the status is already 200).
    fn fail(&mut self, code: ErrorCode, message: &str, out: &mut Out) {
        self.error = Some(code);
        let row = code.row();
        out.push(Bytes::from(llmux_wire::openai::error::stream_event(message, row.openai_type, Some(row.code))));
    }

    fn settle(&mut self) {
        self.settlement.end(200, self.error);
    }
}

/// The string members of an OpenAI chunk or body that hold output (text, reasoning,
/// refusals, tool names and arguments; `text` of the legacy completions).
const OPENAI_OUTPUT: &[&[u8]] =
    &[b"content", b"reasoning_content", b"reasoning", b"refusal", b"name", b"arguments", b"text"];

/// Meters one OpenAI chunk passed through: the bytes of output it holds, and whether a
/// choice finished (a `finish_reason` with a value).
fn meter_openai_chunk(data: &[u8], meter: &mut Meter) {
    let (bytes, finished) = json_strings(from_choices(data), OPENAI_OUTPUT, b"finish_reason");
    meter.relayed(bytes);
    meter.finished |= finished;
}

/// Bytes of output in a complete OpenAI-dialect body (chat or legacy completion;
/// none in embeddings), for an answer without usage.
pub(crate) fn openai_body_output(body: &[u8]) -> u64 {
    json_strings(from_choices(body), OPENAI_OUTPUT, b"").0 as u64
}

/// An OpenAI chunk or body from its `choices` on (the output is there; what comes
/// before, the id, model and fingerprint, need not be scanned): about half the work.
fn from_choices(json: &[u8]) -> &[u8] {
    &json[memchr::memmem::find(json, br#""choices""#).unwrap_or(0)..]
}

/// Bytes of output in a complete answer in the canonical model.
pub(crate) fn response_output(response: &llmux_types::chat::ChatResponse) -> u64 {
    let mut bytes = 0usize;
    for choice in &response.choices {
        bytes += choice.content.as_ref().map_or(0, String::len) + choice.reasoning.as_ref().map_or(0, String::len);
        for call in &choice.tool_calls {
            bytes += call.name.len() + call.arguments.len();
        }
    }
    bytes as u64
}

/// In a JSON text, the bytes of the string values of members named one of `keys` (as
/// written, escapes included), and whether a member named `flag` has a string value.
/// One pass over the bytes, no parsing into values and no allocation: cheap enough to
/// run on every chunk relayed.
pub(crate) fn json_strings(json: &[u8], keys: &[&[u8]], flag: &[u8]) -> (usize, bool) {
    let (mut bytes, mut flagged) = (0, false);
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'"', &json[at..]) {
        let start = at + found + 1;
        let Some(end) = string_end(json, start) else { break };
        let after = skip_space(json, end + 1);
        if json.get(after) != Some(&b':') {
            at = end + 1;
            continue;
        }
        // A member name: is its value a string?
        let value = skip_space(json, after + 1);
        if json.get(value) != Some(&b'"') {
            at = value;
            continue;
        }
        let Some(value_end) = string_end(json, value + 1) else { break };
        let name = &json[start..end];
        if keys.contains(&name) {
            bytes += value_end - value - 1;
        } else if name == flag {
            flagged = true;
        }
        at = value_end + 1;
    }
    (bytes, flagged)
}

/// The index of the quote closing the JSON string that starts at `from` (a plain loop:
/// the strings of a chunk are short, shorter than a `memchr` call pays off).
fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
    while let Some(&byte) = json.get(from) {
        match byte {
            b'"' => return Some(from),
            b'\\' => from += 2,
            _ => from += 1,
        }
    }
    None
}

fn skip_space(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// Relays an OpenAI-dialect SSE response.
pub fn openai_passthrough(
    response: llmux_providers::client::UpstreamResponse,
    settlement: Settlement,
    strip_usage: bool,
    idle: Duration,
) -> BodyStream {
    let framer = Framer::with_max_event(response.body().max_event());
    let state = Passthrough {
        upstream: http_body_util::BodyExt::into_data_stream(response.into_body()),
        framer,
        settlement,
        strip_usage,
        idle,
        saw_done: false,
        error: None,
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut state| async move {
        if state.ended {
            return None;
        }
        loop {
            let mut out = Out::Empty;
            match tokio::time::timeout(state.idle, state.upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    state.framer.push(&chunk);
                    state.take_events(&mut out);
                    if state.framer.overflowed() {
                        state.fail(ErrorCode::UpstreamError, EVENT_TOO_LARGE, &mut out);
                        state.settle();
                        state.ended = true;
                    }
                }
                Ok(Some(Err(_))) if state.saw_done => {
                    // The answer was whole; only the upstream's goodbye failed.
                    state.ended = true;
                }
                Ok(Some(Err(_))) => {
                    state.take_events(&mut out);
                    state.fail(ErrorCode::UpstreamError, "The upstream connection failed mid-stream.", &mut out);
                    state.settle();
                    state.ended = true;
                }
                Ok(None) => {
                    state.take_events(&mut out);
                    if let Some(tail) = state.framer.finish() {
                        state.route_event(tail, &mut out);
                    }
                    if !state.saw_done && state.error.is_none() {
                        state.fail(
                            ErrorCode::UpstreamError,
                            "The upstream closed the stream before it finished.",
                            &mut out,
                        );
                    }
                    state.settle();
                    state.ended = true;
                }
                Err(_) if state.saw_done => state.ended = true,
                Err(_) => {
                    state.fail(ErrorCode::UpstreamTimeout, "The upstream stopped sending (idle timeout).", &mut out);
                    state.settle();
                    state.ended = true;
                }
            }
            match out.into_bytes() {
                Some(bytes) => {
                    state.settlement.first_byte();
                    return Some((Ok(bytes), state));
                }
                None if state.ended => return None,
                None => continue,
            }
        }
    }))
}

/// The in-stream error when an upstream event exceeds `server.max_upstream_event_bytes`
/// (the framer has dropped it and reads no further).
const EVENT_TOO_LARGE: &str = "The upstream sent an event larger than server.max_upstream_event_bytes.";

/// Encodes canonical events for the client dialect.
pub trait EventEncoder: Send {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>);
    fn finish(&mut self, out: &mut Vec<u8>);
    /// An error of the gateway's own (a row of the error table) in the dialect's
    /// in-stream form.
    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>);
    /// Something to send while the upstream is silent, if the dialect has one.
    fn keep_alive(&mut self, _out: &mut Vec<u8>) {}
    /// After `finish`: work the stream's last bytes wait for (keeping the answer).
    fn closing(&mut self) -> Option<Pending> {
        None
    }
}

impl EventEncoder for llmux_wire::openai::encode::ChatStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        llmux_wire::openai::encode::ChatStreamEncoder::encode(self, event, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        llmux_wire::openai::encode::ChatStreamEncoder::finish(self, out);
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        llmux_wire::openai::encode::ChatStreamEncoder::error(self, row.openai_type, Some(row.code), message, out);
    }
}

impl EventEncoder for llmux_wire::anthropic::encode::MessagesStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        llmux_wire::anthropic::encode::MessagesStreamEncoder::encode(self, event, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        llmux_wire::anthropic::encode::MessagesStreamEncoder::finish(self, out);
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        llmux_wire::anthropic::encode::MessagesStreamEncoder::error(self, row.anthropic_type, message, out);
    }

    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        llmux_wire::anthropic::encode::MessagesStreamEncoder::keep_alive(self, out);
    }
}

impl EventEncoder for llmux_wire::responses::encode::ResponsesStreamEncoder {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        llmux_wire::responses::encode::ResponsesStreamEncoder::encode(self, event, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        llmux_wire::responses::encode::ResponsesStreamEncoder::finish(self, out);
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        llmux_wire::responses::encode::ResponsesStreamEncoder::error(self, row.code, message, out);
    }
}

/// A Responses API stream whose answer is kept once complete (`store: true`).
pub(crate) struct Keeping {
    encoder: llmux_wire::responses::encode::ResponsesStreamEncoder,
    keep: Keep,
    pending: Option<Pending>,
}

impl Keeping {
    pub(crate) fn new(encoder: llmux_wire::responses::encode::ResponsesStreamEncoder, keep: Keep) -> Keeping {
        Keeping { encoder, keep, pending: None }
    }
}

impl EventEncoder for Keeping {
    fn encode(&mut self, event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        self.encoder.encode(event, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.encoder.finish(out);
        if let Some(response) = self.encoder.take_final() {
            self.pending = Some(self.keep.save(&response));
        }
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        EventEncoder::error(&mut self.encoder, row, message, out);
    }

    fn closing(&mut self) -> Option<Pending> {
        self.pending.take()
    }
}

/// Turns upstream SSE data payloads into the client's bytes.
pub trait Translator: Send {
    /// One upstream event (`frame`, as framed, and its `data`): the client's bytes
    /// appended to `out`, the canonical events it held shown to `meter`.
    fn data(&mut self, frame: &[u8], data: &[u8], out: &mut Vec<u8>, meter: &mut Meter) -> Result<(), String>;
    /// An error the relay itself raises (a row of the error table), in the client's
    /// in-stream form.
    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>);
    /// Closes the client's stream.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// Something to send while the upstream is silent (Anthropic's `ping`), if any.
    fn keep_alive(&mut self, _out: &mut Vec<u8>) {}
    /// After `finish`: work the stream's last bytes wait for (keeping the answer).
    fn closing(&mut self) -> Option<Pending> {
        None
    }
}

/// How long a translated stream may stay silent before the client gets a keep-alive:
/// well inside the idle timeout, and often enough for proxies that drop quiet
/// connections after 30-60 s.
fn keep_alive_interval(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(15))
}

/// Relays an upstream SSE response through `translator`.
pub fn translated(
    response: llmux_providers::client::UpstreamResponse,
    translator: Box<dyn Translator>,
    settlement: Settlement,
    idle: Duration,
) -> BodyStream {
    struct State {
        upstream: http_body_util::BodyDataStream<llmux_providers::client::UpstreamBody>,
        framer: Framer,
        translator: Box<dyn Translator>,
        /// Its meter is what the translator reports to.
        settlement: Settlement,
        idle: Duration,
        /// When the upstream last sent something.
        heard: tokio::time::Instant,
        /// Nothing more to relay: the upstream's body ended or failed, or the stream
        /// failed. (A stream settled at its terminal event still reads the upstream's
        /// body to its end, so that the connection can be reused.)
        done: bool,
    }

    impl State {
        fn meter(&self) -> &Meter {
            self.settlement.metered()
        }

        fn take_events(&mut self, out: &mut Vec<u8>) {
            while self.meter().error.is_none()
                && let Some(event) = self.framer.next_event()
            {
                self.route_event(&event, out);
            }
            if self.framer.overflowed() && self.meter().error.is_none() {
                self.fail(ErrorCode::UpstreamError, EVENT_TOO_LARGE, out);
            }
        }

        fn route_event(&mut self, event: &[u8], out: &mut Vec<u8>) {
            let Some(data) = parse_event(event).data else { return };
            if self.translator.data(event, &data, out, self.settlement.meter()).is_err() {
                self.fail(ErrorCode::UpstreamError, "The upstream sent an event llmux could not read.", out);
            }
        }

        fn fail(&mut self, code: ErrorCode, message: &str, out: &mut Vec<u8>) {
            self.settlement.meter().error = Some(code);
            self.translator.error(&code.row(), message, out);
        }

        fn settle(&mut self, out: &mut Vec<u8>) {
            if self.settlement.is_settled() {
                return;
            }
            let error = self.meter().error;
            if error.is_none() {
                self.translator.finish(out);
            }
            if !out.is_empty() {
                // These bytes are about to leave: they may be the first.
                self.settlement.first_byte();
            }
            self.settlement.end(200, error);
        }
    }

    let framer = Framer::with_max_event(response.body().max_event());
    let state = State {
        upstream: http_body_util::BodyExt::into_data_stream(response.into_body()),
        framer,
        translator,
        settlement,
        idle,
        heard: tokio::time::Instant::now(),
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            let mut out = Vec::new();
            let silent_until = state.heard + state.idle;
            let wake = silent_until.min(tokio::time::Instant::now() + keep_alive_interval(state.idle));
            let next = tokio::time::timeout_at(wake, state.upstream.next()).await;
            if next.is_ok() {
                state.heard = tokio::time::Instant::now();
            }
            let settled = state.settlement.is_settled();
            match next {
                Err(_) if tokio::time::Instant::now() < silent_until => {
                    if settled {
                        continue;
                    }
                    // Not the first byte of the answer: time to first token stays unset.
                    state.translator.keep_alive(&mut out);
                    if out.is_empty() {
                        continue;
                    }
                    return Some((Ok(Bytes::from(out)), state));
                }
                // Settled at its terminal event: the rest of the upstream's body is only
                // read (to its end, or until it fails or goes silent).
                Ok(Some(Ok(_))) if settled => {}
                Ok(Some(Err(_)) | None) | Err(_) if settled => state.done = true,
                Ok(Some(Ok(chunk))) => {
                    state.framer.push(&chunk);
                    state.take_events(&mut out);
                    if state.meter().error.is_some() {
                        state.settle(&mut out);
                        state.done = true;
                    } else if state.meter().ended {
                        state.settle(&mut out);
                    }
                }
                Ok(Some(Err(_))) => {
                    state.take_events(&mut out);
                    if state.meter().error.is_none() {
                        state.fail(ErrorCode::UpstreamError, "The upstream connection failed mid-stream.", &mut out);
                    }
                    state.settle(&mut out);
                    state.done = true;
                }
                Ok(None) => {
                    state.take_events(&mut out);
                    if let Some(tail) = state.framer.finish()
                        && state.meter().error.is_none()
                    {
                        state.route_event(&tail, &mut out);
                    }
                    if !state.meter().finished && state.meter().error.is_none() {
                        state.fail(
                            ErrorCode::UpstreamError,
                            "The upstream closed the stream before it finished.",
                            &mut out,
                        );
                    }
                    state.settle(&mut out);
                    state.done = true;
                }
                Err(_) => {
                    state.fail(ErrorCode::UpstreamTimeout, "The upstream stopped sending (idle timeout).", &mut out);
                    state.settle(&mut out);
                    state.done = true;
                }
            }
            if state.settlement.is_settled()
                && let Some(closing) = state.translator.closing()
            {
                closing.await;
            }
            if !out.is_empty() {
                state.settlement.first_byte();
                return Some((Ok(Bytes::from(out)), state));
            }
            if state.done {
                return None;
            }
        }
    }))
}

/// Streams canonical `events`, pausing `delay` between text chunks.
pub fn encoded(
    events: Vec<StreamEvent<'static>>,
    delay: Duration,
    encoder: Box<dyn EventEncoder>,
    settlement: Settlement,
) -> BodyStream {
    struct State {
        events: std::vec::IntoIter<StreamEvent<'static>>,
        delay: Duration,
        encoder: Box<dyn EventEncoder>,
        settlement: Option<Settlement>,
        started: bool,
    }
    let state = State { events: events.into_iter(), delay, encoder, settlement: Some(settlement), started: false };
    Box::pin(futures_util::stream::unfold(state, |mut state| async move {
        let mut settlement = state.settlement.take()?;
        let mut out = Vec::new();
        for event in state.events.by_ref() {
            let pause = matches!(event, StreamEvent::Text { .. } | StreamEvent::ToolCall { .. });
            if pause && state.started && !state.delay.is_zero() {
                tokio::time::sleep(state.delay).await;
            }
            state.encoder.encode(&event, &mut out);
            settlement.meter().observe(&event);
            if !out.is_empty() {
                state.started = true;
                settlement.first_byte();
                state.settlement = Some(settlement);
                return Some((Ok(Bytes::from(out)), state));
            }
        }
        state.encoder.finish(&mut out);
        // The in-process provider's usage is the whole answer's.
        if let Some(usage) = settlement.metered().usage {
            settlement.meter().complete(usage);
        }
        settlement.finish(200, None);
        if let Some(closing) = state.encoder.closing() {
            closing.await;
        }
        Some((Ok(Bytes::from(out)), state))
    }))
}

#[cfg(test)]
mod tests {
    use llmux_types::Usage;
    use llmux_types::chat::{FinishReason, StreamEvent};

    use super::{Meter, OPENAI_OUTPUT, json_strings, meter_openai_chunk};

    #[test]
    fn json_strings_measures_the_named_string_members_only() {
        let chunk = br#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"you\""},"finish_reason":null}]}"#;
        assert_eq!(json_strings(chunk, OPENAI_OUTPUT, b"finish_reason"), (r#"Hi \"you\""#.len(), false));
        let spaced = br#"{ "choices" : [ { "delta" : { "tool_calls" : [ { "function" : { "name" : "get", "arguments" : "{\"a\":1}" } } ] }, "finish_reason" : "tool_calls" } ] }"#;
        assert_eq!(json_strings(spaced, OPENAI_OUTPUT, b"finish_reason"), (3 + r#"{\"a\":1}"#.len(), true));
        // A member whose value is not a string, and names that only look like keys.
        let other = br#"{"content":null,"text":{"format":"content"},"x":"content: no"}"#;
        assert_eq!(json_strings(other, OPENAI_OUTPUT, b""), (0, false));
        // Cut short: no panic, what was complete counts.
        assert_eq!(json_strings(br#"{"content":"abc","text":"de"#, OPENAI_OUTPUT, b""), (3, false));
        assert_eq!(json_strings(br#"{"content":"a\"#, OPENAI_OUTPUT, b""), (0, false));
    }

    #[test]
    fn an_openai_chunk_meters_its_output_and_its_finish() {
        let mut meter = Meter::default();
        meter_openai_chunk(br#"{"choices":[{"delta":{"content":"Hello"},"finish_reason":null}]}"#, &mut meter);
        assert_eq!((meter.output_bytes, meter.finished), (5, false));
        meter_openai_chunk(br#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#, &mut meter);
        assert!(meter.finished);
    }

    #[test]
    fn usage_is_final_only_after_the_finish_with_no_output_since() {
        let usage = Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() };
        let mut meter = Meter::default();
        meter.observe(&StreamEvent::Usage(usage));
        assert!(!meter.usage_final, "usage before the finish (Anthropic's message_start) is partial");
        meter.observe(&StreamEvent::Text { choice: 0, text: "abcd".into() });
        meter.observe(&StreamEvent::Finish { choice: 0, reason: FinishReason::Stop });
        meter.observe(&StreamEvent::Usage(usage));
        assert!(meter.usage_final);
        meter.observe(&StreamEvent::Text { choice: 1, text: "more".into() });
        assert!(!meter.usage_final, "another choice still streams");
        assert_eq!(meter.output_bytes, 8);
        // An all-zero usage is no usage.
        let mut empty = Meter::default();
        empty.observe(&StreamEvent::Finish { choice: 0, reason: FinishReason::Stop });
        empty.observe(&StreamEvent::Usage(Usage::default()));
        assert_eq!((empty.usage, empty.usage_final), (None, false));
    }
}
