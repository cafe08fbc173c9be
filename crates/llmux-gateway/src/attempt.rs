//! One attempt at one route, the parts every client dialect shares: sending with the
//! route's deadlines and the adapter's error classification, the translated exchange
//! (canonical request -> the provider's dialect -> canonical answer -> the client's
//! dialect), and the in-process provider (the mock). A client dialect's own fast path
//! (its body forwarded to a provider that speaks it) lives in its `dialect` module.

use std::time::Duration;

use bytes::Bytes;
use llmux_providers::adapter::{Local, LocalCall};
use llmux_providers::client::UpstreamResponse;
use llmux_providers::{Api, ErrorKind, UpstreamError};
use llmux_types::chat::{ChatRequest, StreamEvent};
use llmux_wire::UpstreamDecoder;
use tokio::time::Instant;

use crate::clock;
use crate::dialect::Encoding;
use crate::error::ErrorRow;
use crate::outcome::{Reply, ReplyBody};
use crate::relay;
use crate::runtime::Upstream;
use crate::settle::Settlement;

/// How one attempt ended.
pub(crate) type Tried = Result<Success, UpstreamError>;

/// What a successful attempt produced, before relaying.
pub(crate) enum Success {
    /// A complete JSON body, the usage it reported and, for an answer without usage,
    /// the bytes of output it holds (what it is billed for).
    Full { body: Bytes, usage: Option<llmux_types::Usage>, output: u64 },
    /// An upstream OpenAI-dialect SSE response relayed to an OpenAI client byte for
    /// byte; `strip_usage` drops the usage chunk llmux asked for when the client did not.
    Upstream { response: UpstreamResponse, idle: Duration, strip_usage: bool },
    /// Canonical events to encode (the in-process provider).
    Events { events: Vec<StreamEvent<'static>>, delay: Duration, encoder: Box<dyn relay::EventEncoder> },
    /// An upstream stream to read through a translator (decode, re-encode or meter).
    Translated { response: UpstreamResponse, idle: Duration, translator: Box<dyn relay::Translator> },
    /// An answer to a request whose translation dropped parameters the provider's
    /// dialect cannot hold (reported to the client in a header).
    Lossy { answer: Box<Success>, dropped: Vec<&'static str> },
}

impl Success {
    /// The reply to the client: the body, or the relay that streams it and settles
    /// the request when it ends (steps 5 and 6).
    pub(crate) fn reply(self, mut settlement: Settlement, provider: &str) -> Reply {
        if let Success::Lossy { answer, dropped } = self {
            let mut reply = answer.reply(settlement, provider);
            reply.dropped = dropped;
            return reply;
        }
        let attempts = settlement.attempts();
        let (content_type, body) = match self {
            Success::Full { body, usage, output } => {
                settlement.answered(usage, output);
                settlement.first_byte();
                settlement.finish(200, None);
                ("application/json", ReplyBody::Full(body))
            }
            Success::Upstream { response, idle, strip_usage } => (
                "text/event-stream",
                ReplyBody::Stream(relay::openai_passthrough(response, settlement, strip_usage, idle)),
            ),
            Success::Translated { response, idle, translator } => {
                ("text/event-stream", ReplyBody::Stream(relay::translated(response, translator, settlement, idle)))
            }
            Success::Events { events, delay, encoder } => {
                ("text/event-stream", ReplyBody::Stream(relay::encoded(events, delay, encoder, settlement)))
            }
            Success::Lossy { .. } => unreachable!("unwrapped above"),
        };
        Reply {
            status: 200,
            content_type,
            rate_limits: None,
            provider: Some(provider.to_owned()),
            attempts,
            body,
            dropped: Vec::new(),
        }
    }

    /// Marks the answer with the parameters its translation dropped, if any.
    fn lossy(self, dropped: Vec<&'static str>) -> Success {
        if dropped.is_empty() { self } else { Success::Lossy { answer: Box::new(self), dropped } }
    }
}

/// A chat request through the canonical model, to the upstream API the route names
/// (`route.api`): see [`translated_via`].
pub(crate) async fn translated(
    upstream: Upstream<'_>,
    request: &ChatRequest,
    encoding: Encoding<'_>,
) -> Result<Success, UpstreamError> {
    translated_via(upstream, upstream.route.api, request, encoding).await
}

/// A chat request through the canonical model to the provider's `api` (its chat API,
/// or the Responses API): encoded by the provider's adapter, sent, the answer decoded
/// by the adapter and encoded for the client (`encoding`).
pub(crate) async fn translated_via(
    upstream: Upstream<'_>,
    api: Api,
    request: &ChatRequest,
    encoding: Encoding<'_>,
) -> Result<Success, UpstreamError> {
    let Upstream { route, provider, adapter, prepared, .. } = upstream;
    let (body, dropped) = adapter.request_for(api, route.reasoning, request, &route.model);
    if !dropped.is_empty() {
        tracing::debug!(provider = %provider.name, ?dropped, "Parameters the provider cannot take were dropped.");
    }
    let http_request = prepared.build_api_request(provider, api, &route.model, request.stream, body);
    let answered = send(upstream, http_request).await?;
    if request.stream {
        let translator = TranslatingEncoder {
            decoder: adapter.decoder_for(api),
            encoder: encoding.stream_encoder(&route.model),
            created: clock::wall_s(),
        };
        let idle = route.idle_timeout.unwrap_or(provider.timeouts.idle);
        return Ok(
            Success::Translated { response: answered.response, idle, translator: Box::new(translator) }.lossy(dropped)
        );
    }
    let mut decoded = adapter.response_for(api, &answered.body().await?).map_err(protocol_error)?;
    // Some dialects' answers carry no creation time; the client's dialect may.
    if decoded.created == 0 {
        decoded.created = clock::wall_s();
    }
    let body = Bytes::from(encoding.response(&decoded));
    let output = relay::response_output(&decoded);
    Ok(Success::Full { body, usage: Some(decoded.usage), output }.lossy(dropped))
}

/// A chat request answered by an in-process provider (the mock), in the canonical
/// model, encoded for the client.
pub(crate) async fn local_chat(
    upstream: Upstream<'_>,
    local: &dyn Local,
    request: &ChatRequest,
    encoding: Encoding<'_>,
) -> Result<Success, UpstreamError> {
    wait(local.latency(upstream.provider)).await;
    let call = local_call(upstream);
    let id = format!("{}{}", encoding.mock_id_prefix(), call.now_ms);
    let answer = local.chat(call, request, &id);
    match answer.stream {
        Some((events, delay)) => {
            Ok(Success::Events { events, delay, encoder: encoding.stream_encoder(&upstream.route.model) })
        }
        None => Ok(Success::Full {
            body: Bytes::from(encoding.response(&answer.response)),
            usage: Some(answer.response.usage),
            output: relay::response_output(&answer.response),
        }),
    }
}

/// A body in the in-process provider's own dialect, answered there.
pub(crate) async fn local_native(
    upstream: Upstream<'_>,
    local: &dyn Local,
    endpoint: llmux_wire::openai::peek::Endpoint,
    body: &[u8],
) -> Result<Success, UpstreamError> {
    wait(local.latency(upstream.provider)).await;
    let answer = local.native(local_call(upstream), endpoint, body).map_err(bad_request)?;
    if !answer.streamed {
        return Ok(Success::Full { body: answer.body, usage: Some(answer.usage), output: 0 });
    }
    Ok(Success::Events {
        events: vec![StreamEvent::Usage(answer.usage)],
        delay: Duration::ZERO,
        encoder: Box::new(Prerendered(Some(answer.body))),
    })
}

fn local_call(upstream: Upstream<'_>) -> LocalCall<'_> {
    LocalCall { spec: upstream.provider, upstream_model: &upstream.route.model, now_ms: clock::wall_ms() }
}

async fn wait(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// A request llmux could not translate for the provider: the caller's fault.
pub(crate) fn bad_request(error: llmux_wire::DecodeError) -> UpstreamError {
    UpstreamError { message: Some(error.message), ..UpstreamError::new(ErrorKind::BadRequest) }
}

/// An upstream answer llmux could not read.
pub(crate) fn protocol_error(error: llmux_wire::DecodeError) -> UpstreamError {
    UpstreamError { message: Some(error.message), ..UpstreamError::new(ErrorKind::Protocol) }
}

/// Upstream SSE data payloads -> canonical events -> the client's encoder.
struct TranslatingEncoder {
    decoder: Box<dyn UpstreamDecoder>,
    encoder: Box<dyn relay::EventEncoder>,
    /// Unix seconds the answer started, for a stream whose upstream gives none.
    created: u64,
}

impl relay::Translator for TranslatingEncoder {
    fn data(
        &mut self,
        _frame: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
        meter: &mut crate::settle::Meter,
    ) -> Result<(), String> {
        // Each event is encoded and metered as it is decoded, borrowing from `data`.
        let (encoder, created) = (&mut self.encoder, self.created);
        let mut emit = |event: StreamEvent<'_>| {
            let event = match event {
                StreamEvent::Start { id, model, created: 0 } => StreamEvent::Start { id, model, created },
                event => event,
            };
            encoder.encode(&event, out);
            meter.observe(&event);
        };
        self.decoder.decode_with(data, &mut emit).map_err(|error| error.message)
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        self.encoder.error(row, message, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.encoder.finish(out);
    }

    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        self.encoder.keep_alive(out);
    }

    fn closing(&mut self) -> Option<crate::stored::Pending> {
        self.encoder.closing()
    }
}

/// An encoder that emits a pre-rendered body once.
struct Prerendered(Option<Bytes>);

impl relay::EventEncoder for Prerendered {
    fn encode(&mut self, _event: &StreamEvent<'_>, out: &mut Vec<u8>) {
        if let Some(body) = self.0.take() {
            out.extend_from_slice(&body);
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}

    // A pre-rendered body comes from the in-process provider, which has no upstream to fail.
    fn error(&mut self, _row: &ErrorRow, _message: &str, _out: &mut Vec<u8>) {}
}

/// An upstream response that arrived (2xx) within the attempt's first-byte deadline;
/// its body must be read within the attempt's total deadline, and at most
/// `server.max_upstream_body_bytes` of it (a stream's events are bounded by the relay).
pub(crate) struct Answered {
    pub response: UpstreamResponse,
    deadline: Instant,
    max_body: usize,
}

impl Answered {
    pub(crate) async fn body(self) -> Result<Bytes, UpstreamError> {
        use llmux_providers::client::ReadError;
        match tokio::time::timeout_at(self.deadline, self.response.into_body().read_capped(self.max_body)).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(ReadError::TooLarge)) => Err(too_large(self.max_body)),
            Ok(Err(ReadError::Failed(_))) => Err(UpstreamError::new(ErrorKind::Protocol)),
            Err(_) => Err(UpstreamError::new(ErrorKind::Timeout)),
        }
    }
}

/// An answer over `server.max_upstream_body_bytes`: the upstream's fault (a protocol
/// error, so another route is tried).
fn too_large(max_body: usize) -> UpstreamError {
    let message = format!("The upstream answer is larger than server.max_upstream_body_bytes ({max_body} bytes).");
    tracing::warn!(max_body, "An upstream answer exceeded server.max_upstream_body_bytes; the attempt failed.");
    UpstreamError { message: Some(message), ..UpstreamError::new(ErrorKind::Protocol) }
}

/// Sends with the route's first-byte deadline; a non-2xx answer is classified by the
/// provider's adapter (its `Retry-After` capped by `server.max_retry_after_s`).
pub(crate) async fn send(upstream: Upstream<'_>, request: http::Request<Bytes>) -> Result<Answered, UpstreamError> {
    let Upstream { route, provider, adapter, client, server, .. } = upstream;
    let total = route.timeout.unwrap_or(provider.timeouts.total);
    let first_byte = route.first_byte_timeout.unwrap_or(provider.timeouts.first_byte);
    let started = Instant::now();
    let deadline = started + total;
    let mut response = match tokio::time::timeout_at(
        started + first_byte.min(total),
        client.send_with(request, route.connect_timeout),
    )
    .await
    {
        Ok(response) => response?,
        Err(_) => return Err(UpstreamError::new(ErrorKind::Timeout)),
    };
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let retry_after = llmux_providers::error::retry_after(response.headers(), clock::wall_ms());
        let body = read_error_body(response, deadline).await;
        let mut error = adapter.classify(status, retry_after, &body);
        error.retry_after = error.retry_after.map(|delay| delay.min(server.max_retry_after));
        return Err(error);
    }
    response.body_mut().set_max_event(server.max_upstream_event_bytes);
    Ok(Answered { response, deadline, max_body: server.max_upstream_body_bytes })
}

/// Reads the start of an error body (at most 64 KiB) before `deadline`.
async fn read_error_body(response: UpstreamResponse, deadline: Instant) -> Bytes {
    use http_body_util::BodyExt;
    const LIMIT: usize = 64 * 1024;
    let mut body = response.into_body();
    let mut collected = bytes::BytesMut::new();
    while collected.len() < LIMIT {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    collected.extend_from_slice(&data[..data.len().min(LIMIT - collected.len())]);
                }
            }
            _ => break,
        }
    }
    collected.freeze()
}
