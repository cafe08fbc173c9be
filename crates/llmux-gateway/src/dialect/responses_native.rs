//! The Responses API's same-dialect path: a Responses client's request that needs no
//! state kept by llmux, to a provider that serves the Responses API itself. The body
//! goes with only `model` rewritten; the answer comes back byte for byte, metered on
//! the side (a complete body's `usage`; a stream's terminal event, the only one parsed).

use bytes::Bytes;
use llmux_wire::openai::peek::Endpoint;
use llmux_wire::responses::passthrough::{Event, classify_event, error_event, rewrite_model};

use crate::attempt::{self, Success, Tried};
use crate::error::{ErrorCode, ErrorRow};
use crate::relay;
use crate::runtime::Upstream;

/// Forwards `body` (a Responses API request, streamed or not) to the route's provider.
/// `None` when its `model` cannot be rewritten: the caller takes the canonical path.
pub(super) async fn forward(upstream: Upstream<'_>, stream: bool, body: &Bytes) -> Option<Tried> {
    let Upstream { route, provider, prepared, .. } = upstream;
    let upstream_body = rewrite_model(body, &route.model).ok()?;
    let http_request = prepared.build_request(provider, Endpoint::Responses, &route.model, upstream_body);
    Some(answer(upstream, stream, http_request).await)
}

async fn answer(upstream: Upstream<'_>, stream: bool, request: http::Request<Bytes>) -> Tried {
    let answered = attempt::send(upstream, request).await?;
    if stream {
        let Upstream { route, provider, .. } = upstream;
        return Ok(Success::Translated {
            response: answered.response,
            idle: route.idle_timeout.unwrap_or(provider.timeouts.idle),
            translator: Box::new(Passthrough::default()),
        });
    }
    let body = answered.body().await?;
    let usage = llmux_wire::responses::upstream::usage(&body);
    // Without usage, the answer is billed for the output it holds.
    let output = match usage {
        None => relay::json_strings(&body, RESPONSES_OUTPUT, b"").0 as u64,
        Some(_) => 0,
    };
    Ok(Success::Full { body, usage, output })
}

/// The string members of a Responses API object that hold output (message text,
/// function names and arguments, reasoning summaries).
const RESPONSES_OUTPUT: &[&[u8]] = &[b"text", b"name", b"arguments"];

/// The string member of a Responses API stream event that holds output (text, function
/// call arguments and reasoning deltas).
const DELTA: &[&[u8]] = &[b"delta"];

/// Responses API events forwarded frame by frame; only the terminal event
/// (`response.completed`, `.incomplete`, `.failed`) is parsed, for the usage.
#[derive(Default)]
struct Passthrough {
    /// Events forwarded: the `sequence_number` an event of llmux's own continues with.
    events: u64,
}

impl relay::Translator for Passthrough {
    fn data(
        &mut self,
        frame: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
        meter: &mut crate::settle::Meter,
    ) -> Result<(), String> {
        match classify_event(data) {
            Event::End { usage, failed } => {
                match usage {
                    Some(usage) if !failed => meter.complete(usage),
                    Some(usage) => meter.observe(&llmux_types::chat::StreamEvent::Usage(usage)),
                    None => {}
                }
                meter.finished = true;
                meter.ended = true;
                if failed {
                    meter.error = Some(ErrorCode::UpstreamError);
                }
            }
            Event::Error => meter.error = Some(ErrorCode::UpstreamError),
            Event::Other => meter.relayed(relay::json_strings(data, DELTA, b"").0),
        }
        out.extend_from_slice(frame);
        self.events += 1;
        Ok(())
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        error_event(row.code, message, self.events, out);
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}
