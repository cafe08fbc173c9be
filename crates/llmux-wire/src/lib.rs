//! What clients and upstreams speak on the wire. Pure: bytes in, values out, values
//! in, bytes out. No I/O, no clock, no async.
//!
//! Dialects meet in the canonical model (`llmux_types::chat`). On the client side a
//! request decodes into it and the answer encodes from it; on the upstream side a
//! request encodes from it and the provider's answer decodes into it.
//!
//! - [`Dialect`]: the wire formats clients speak to llmux (a provider adapter names the
//!   one it takes natively).
//! - [`sse`]: an incremental Server-Sent-Events framer (any chunking, `\n`/`\r\n`).
//! - [`openai`]: the OpenAI dialect. Client side: borrowed request peeks and
//!   byte-splicing rewrites for the same-dialect fast path, decoding to and encoding from
//!   the canonical model, usage extraction, the error body. Upstream side:
//!   [`openai::upstream`], for OpenAI-compatible providers.
//! - [`anthropic`]: the Anthropic Messages dialect. Client side: requests decode to the
//!   canonical model; responses and stream events encode to Anthropic JSON and its exact
//!   SSE event sequence; error bodies; the same-dialect fast path. Upstream side:
//!   [`anthropic::upstream`].
//! - [`responses`]: the OpenAI Responses API. Client side: requests decode to the canonical
//!   model; answers and streams encode to response objects and the API's event sequence;
//!   the same-dialect path (`model` spliced in, streams metered from their terminal
//!   event). Upstream side: [`responses::upstream`], for models reached through the
//!   Responses API.
//! - [`gemini`]: the Google Gemini API (generativelanguage `v1beta`), upstream side only:
//!   [`gemini::upstream`].
//!
//! Each dialect's `upstream` is a folder of parts: `request` (canonical request ->
//! provider body), `response` (complete body -> canonical), `stream` (the stream decoder,
//! an [`UpstreamDecoder`]), and for Gemini also `contents` (the conversation) and `error`
//! (error bodies, retry delay). What the three share is crate-private: `upstream`
//! (reading bodies and stream payloads, a malformed one being an `invalid upstream
//! <what>` [`DecodeError`]; the non-empty texts and `data:` URLs of requests) and
//! `extensions` (the extension keys reported by name when an encoder drops them).

pub mod anthropic;
mod dialect;
mod extensions;
mod few;
pub mod gemini;
mod json;
pub mod openai;
pub mod responses;
pub mod sse;
mod upstream;

pub use dialect::Dialect;
use llmux_types::chat::StreamEvent;

#[cfg(test)]
mod test_support;

/// A request body the gateway could not accept. `param` names the offending field
/// (OpenAI's `error.param`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub param: Option<String>,
    pub message: String,
}

impl DecodeError {
    pub fn new(param: Option<&str>, message: impl Into<String>) -> DecodeError {
        DecodeError { param: param.map(str::to_owned), message: message.into() }
    }
}

/// Reads an upstream's streamed answer: one SSE `data` payload at a time, each
/// canonical event handed to `emit` as it is decoded (borrowing from `data`). Every
/// upstream dialect's stream decoder implements it; a provider adapter names which.
pub trait UpstreamDecoder: Send {
    fn decode_with<'d>(&mut self, data: &'d [u8], emit: &mut dyn FnMut(StreamEvent<'d>)) -> Result<(), DecodeError>;

    /// [`decode_with`](Self::decode_with), collecting owned events.
    fn decode(&mut self, data: &[u8]) -> Result<Vec<StreamEvent<'static>>, DecodeError> {
        upstream::owned_events(|emit| self.decode_with(data, emit))
    }
}
