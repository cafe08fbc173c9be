//! The Anthropic Messages dialect: requests decode to the canonical model (needed for
//! the token estimate). A provider that speaks Anthropic gets the client's body with
//! only `model` rewritten and its stream forwarded frame by frame (decoded on the side
//! for metering); any other provider goes through the canonical path.

use std::borrow::Cow;

use bytes::Bytes;
use llmux_types::chat::ChatRequest;
use llmux_wire::{DecodeError, Dialect, UpstreamDecoder};

use super::{ClientDialect, Encoding, estimate_input_tokens, json_string};
use crate::affinity::ConversationName;
use crate::attempt::{self, Success, Tried, bad_request, protocol_error};
use crate::error::ErrorRow;
use crate::outcome::RequestMeta;
use crate::relay;
use crate::router::{DEFAULT_OUTPUT_ESTIMATE, TokenEstimate};
use crate::runtime::Upstream;

/// An Anthropic Messages request (`/v1/messages`).
pub(crate) struct Anthropic;

impl ClientDialect for Anthropic {
    type Request<'b> = ChatRequest;

    fn parse(&self, body: &Bytes) -> Result<ChatRequest, DecodeError> {
        llmux_wire::anthropic::decode::messages_request(body)
    }

    fn model(request: &ChatRequest) -> &str {
        &request.model
    }

    fn shape(request: &ChatRequest) -> crate::bounds::Shape {
        crate::bounds::Shape { messages: request.messages.len(), tools: request.tools.len() }
    }

    fn estimate(request: &ChatRequest, _body: &Bytes) -> TokenEstimate {
        TokenEstimate {
            input: estimate_input_tokens(request),
            output: request.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
        }
    }

    /// Claude Code's session header, else a session header, else `metadata.user_id` (in
    /// which Claude Code sends its session too), the whole string.
    fn conversation<'r>(&self, request: &'r ChatRequest, meta: &'r RequestMeta) -> ConversationName<'r> {
        let header = meta.claude_code_session.as_deref().or(meta.session.as_deref());
        let this = match header {
            Some(header) => Some(Cow::Borrowed(header)),
            None => request.extensions.get("user").and_then(|raw| json_string(raw)),
        };
        ConversationName { this, next: None }
    }

    async fn attempt<'a, 'b: 'a>(&'a self, request: &'a ChatRequest, body: &'a Bytes, upstream: Upstream<'a>) -> Tried {
        if let Some(local) = upstream.adapter.local() {
            return attempt::local_chat(upstream, local, request, Encoding::Anthropic).await;
        }
        if upstream.adapter.native() == Some(Dialect::Anthropic) {
            return forward(upstream, request, body).await;
        }
        attempt::translated(upstream, request, Encoding::Anthropic).await
    }
}

/// Same dialect: the client's body with only `model` rewritten, the answer's bytes
/// forwarded (decoded on the side for metering).
async fn forward(upstream: Upstream<'_>, request: &ChatRequest, body: &Bytes) -> Tried {
    let Upstream { route, provider, adapter, prepared, .. } = upstream;
    let upstream_body = llmux_wire::anthropic::passthrough::rewrite_model(body, &route.model).map_err(bad_request)?;
    let http_request = prepared.build_chat_request(provider, &route.model, request.stream, upstream_body);
    let answered = attempt::send(upstream, http_request).await?;
    if request.stream {
        return Ok(Success::Translated {
            response: answered.response,
            idle: route.idle_timeout.unwrap_or(provider.timeouts.idle),
            translator: Box::new(Passthrough { decoder: adapter.stream_decoder() }),
        });
    }
    let body = answered.body().await?;
    let decoded = adapter.chat_response(&body).map_err(protocol_error)?;
    Ok(Success::Full { usage: Some(decoded.usage), output: relay::response_output(&decoded), body })
}

/// Anthropic SSE forwarded frame by frame to an Anthropic client, decoded only to meter
/// it (usage, finish, errors).
struct Passthrough {
    decoder: Box<dyn UpstreamDecoder>,
}

impl relay::Translator for Passthrough {
    fn data(
        &mut self,
        frame: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
        meter: &mut crate::settle::Meter,
    ) -> Result<(), String> {
        self.decoder.decode_with(data, &mut |event| meter.observe(&event)).map_err(|error| error.message)?;
        // `message_stop` is the end: settled as it leaves, so that a client hanging up
        // as soon as it has it is recorded as served.
        meter.ended |= frame.starts_with(b"event: message_stop");
        out.extend_from_slice(frame);
        Ok(())
    }

    fn error(&mut self, row: &ErrorRow, message: &str, out: &mut Vec<u8>) {
        llmux_wire::anthropic::passthrough::error_event(row.anthropic_type, message, out);
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}
