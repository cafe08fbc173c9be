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
//! Both settle the request when the stream ends, fails, or is dropped by the client.

use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use llmux_types::Usage;
use llmux_types::chat::StreamEvent;
use llmux_wire::openai::usage::{Chunk, classify_chunk};
use llmux_wire::sse::{Framer, parse_event};

use crate::error::{ErrorCode, ErrorRow};
use crate::settle::Settlement;
use crate::stored::{Keep, Pending};

/// A response body produced incrementally.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

struct Passthrough {
    upstream: http_body_util::BodyDataStream<llmux_providers::client::UpstreamBody>,
    framer: Framer,
    settlement: Option<Settlement>,
    /// Drop the usage-only chunk (the client did not ask for it).
    strip_usage: bool,
    idle: Duration,
    usage: Option<Usage>,
    saw_done: bool,
    error: Option<ErrorCode>,
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
    }

    fn route_event(&mut self, event: Bytes, out: &mut Out) {
        let chunk = match parse_event(&event).data {
            Some(data) => classify_chunk(&data),
            // Comments and keep-alives pass through.
            None => return out.push(event),
        };
        match chunk {
            Chunk::Done => self.saw_done = true,
            Chunk::Error => self.error = Some(ErrorCode::UpstreamError),
            Chunk::Data { usage, usage_only } => {
                if usage.is_some() {
                    self.usage = usage;
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
        if let Some(mut settlement) = self.settlement.take() {
            if let Some(usage) = self.usage {
                settlement.set_usage(usage);
            }
            settlement.finish(200, self.error);
        }
    }
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
        settlement: Some(settlement),
        strip_usage,
        idle,
        usage: None,
        saw_done: false,
        error: None,
    };
    Box::pin(futures_util::stream::unfold(state, |mut state| async move {
        state.settlement.as_ref()?;
        loop {
            let mut out = Out::Empty;
            match tokio::time::timeout(state.idle, state.upstream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    state.framer.push(&chunk);
                    state.take_events(&mut out);
                    if state.framer.overflowed() {
                        state.fail(ErrorCode::UpstreamError, EVENT_TOO_LARGE, &mut out);
                        state.settle();
                    }
                }
                Ok(Some(Err(_))) => {
                    state.take_events(&mut out);
                    state.fail(ErrorCode::UpstreamError, "The upstream connection failed mid-stream.", &mut out);
                    state.settle();
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
                }
                Err(_) => {
                    state.fail(ErrorCode::UpstreamTimeout, "The upstream stopped sending (idle timeout).", &mut out);
                    state.settle();
                }
            }
            match out.into_bytes() {
                Some(bytes) => {
                    if let Some(settlement) = state.settlement.as_mut() {
                        settlement.first_byte();
                    }
                    return Some((Ok(bytes), state));
                }
                None if state.settlement.is_none() => return None,
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

/// What a translated stream's events said, for settling it.
#[derive(Debug, Default)]
pub struct Meter {
    pub usage: Option<Usage>,
    pub finished: bool,
    pub error: Option<ErrorCode>,
    /// The upstream sent its last event, usage included (a Responses API terminal
    /// event): the request is settled at once, not when the upstream closes, so that a
    /// client that hangs up as soon as it has the end (Codex does) is billed.
    pub ended: bool,
}

impl Meter {
    /// Takes note of one canonical event.
    pub fn observe(&mut self, event: &StreamEvent<'_>) {
        match event {
            StreamEvent::Usage(seen) => self.usage = Some(*seen),
            StreamEvent::Finish { .. } => self.finished = true,
            StreamEvent::Error { .. } => self.error = Some(ErrorCode::UpstreamError),
            _ => {}
        }
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
        settlement: Option<Settlement>,
        idle: Duration,
        /// When the upstream last sent something.
        heard: tokio::time::Instant,
        meter: Meter,
    }

    impl State {
        fn take_events(&mut self, out: &mut Vec<u8>) {
            while self.meter.error.is_none()
                && let Some(event) = self.framer.next_event()
            {
                self.route_event(&event, out);
            }
            if self.framer.overflowed() && self.meter.error.is_none() {
                self.fail(ErrorCode::UpstreamError, EVENT_TOO_LARGE, out);
            }
        }

        fn route_event(&mut self, event: &[u8], out: &mut Vec<u8>) {
            let Some(data) = parse_event(event).data else { return };
            if self.translator.data(event, &data, out, &mut self.meter).is_err() {
                self.fail(ErrorCode::UpstreamError, "The upstream sent an event llmux could not read.", out);
            }
        }

        fn fail(&mut self, code: ErrorCode, message: &str, out: &mut Vec<u8>) {
            self.meter.error = Some(code);
            self.translator.error(&code.row(), message, out);
        }

        fn settle(&mut self, out: &mut Vec<u8>) {
            if self.meter.error.is_none() {
                self.translator.finish(out);
            }
            if let Some(mut settlement) = self.settlement.take() {
                if let Some(usage) = self.meter.usage {
                    settlement.set_usage(usage);
                }
                settlement.finish(200, self.meter.error);
            }
        }
    }

    let framer = Framer::with_max_event(response.body().max_event());
    let state = State {
        upstream: http_body_util::BodyExt::into_data_stream(response.into_body()),
        framer,
        translator,
        settlement: Some(settlement),
        idle,
        heard: tokio::time::Instant::now(),
        meter: Meter::default(),
    };
    Box::pin(futures_util::stream::unfold(state, |mut state| async move {
        state.settlement.as_ref()?;
        loop {
            let mut out = Vec::new();
            let silent_until = state.heard + state.idle;
            let wake = silent_until.min(tokio::time::Instant::now() + keep_alive_interval(state.idle));
            let next = tokio::time::timeout_at(wake, state.upstream.next()).await;
            if next.is_ok() {
                state.heard = tokio::time::Instant::now();
            }
            match next {
                Err(_) if tokio::time::Instant::now() < silent_until => {
                    // Not the first byte of the answer: time to first token stays unset.
                    state.translator.keep_alive(&mut out);
                    if out.is_empty() {
                        continue;
                    }
                    return Some((Ok(Bytes::from(out)), state));
                }
                Ok(Some(Ok(chunk))) => {
                    state.framer.push(&chunk);
                    state.take_events(&mut out);
                    if state.meter.error.is_some() || state.meter.ended {
                        state.settle(&mut out);
                    }
                }
                Ok(Some(Err(_))) => {
                    state.take_events(&mut out);
                    if state.meter.error.is_none() {
                        state.fail(ErrorCode::UpstreamError, "The upstream connection failed mid-stream.", &mut out);
                    }
                    state.settle(&mut out);
                }
                Ok(None) => {
                    state.take_events(&mut out);
                    if let Some(tail) = state.framer.finish()
                        && state.meter.error.is_none()
                    {
                        state.route_event(&tail, &mut out);
                    }
                    if !state.meter.finished && state.meter.error.is_none() {
                        state.fail(
                            ErrorCode::UpstreamError,
                            "The upstream closed the stream before it finished.",
                            &mut out,
                        );
                    }
                    state.settle(&mut out);
                }
                Err(_) => {
                    state.fail(ErrorCode::UpstreamTimeout, "The upstream stopped sending (idle timeout).", &mut out);
                    state.settle(&mut out);
                }
            }
            if state.settlement.is_none()
                && let Some(closing) = state.translator.closing()
            {
                closing.await;
            }
            if !out.is_empty() {
                if let Some(settlement) = state.settlement.as_mut() {
                    settlement.first_byte();
                }
                return Some((Ok(Bytes::from(out)), state));
            }
            state.settlement.as_ref()?;
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
            if let StreamEvent::Usage(usage) = &event {
                settlement.set_usage(*usage);
            }
            let pause = matches!(event, StreamEvent::Text { .. } | StreamEvent::ToolCall { .. });
            if pause && state.started && !state.delay.is_zero() {
                tokio::time::sleep(state.delay).await;
            }
            state.encoder.encode(&event, &mut out);
            if !out.is_empty() {
                state.started = true;
                settlement.first_byte();
                state.settlement = Some(settlement);
                return Some((Ok(Bytes::from(out)), state));
            }
        }
        state.encoder.finish(&mut out);
        settlement.finish(200, None);
        if let Some(closing) = state.encoder.closing() {
            closing.await;
        }
        Some((Ok(Bytes::from(out)), state))
    }))
}
