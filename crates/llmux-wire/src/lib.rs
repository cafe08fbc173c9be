//! What clients and upstreams speak on the wire. Pure: bytes in, values out, values
//! in, bytes out. No I/O, no clock, no async.
//!
//! - [`sse`]: an incremental Server-Sent-Events framer (any chunking, `\n`/`\r\n`).
//! - [`openai`]: the OpenAI dialect: borrowed request peeks and byte-splicing rewrites
//!   for the same-dialect fast path, decoding to and encoding from the canonical model,
//!   usage extraction, and the error body; [`openai::upstream`] speaks it to
//!   OpenAI-compatible providers on behalf of clients of other dialects.
//! - [`anthropic`]: the Anthropic Messages dialect on the client side: requests decode to
//!   the canonical model; responses and stream events encode to Anthropic JSON and its
//!   exact SSE event sequence; error bodies.
//! - [`gemini`]: the Google Gemini API (generativelanguage `v1beta`) on the upstream side:
//!   canonical requests -> `generateContent` bodies, responses and `alt=sse` chunks ->
//!   canonical, error bodies and their retry delay.

pub mod anthropic;
mod extensions;
mod few;
pub mod gemini;
pub mod openai;
pub mod sse;
mod upstream;

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
    fn decode_with<'d>(
        &mut self,
        data: &'d [u8],
        emit: &mut dyn FnMut(llmux_types::chat::StreamEvent<'d>),
    ) -> Result<(), DecodeError>;
}

impl UpstreamDecoder for openai::upstream::ChunkDecoder {
    fn decode_with<'d>(
        &mut self,
        data: &'d [u8],
        emit: &mut dyn FnMut(llmux_types::chat::StreamEvent<'d>),
    ) -> Result<(), DecodeError> {
        openai::upstream::ChunkDecoder::decode_with(self, data, emit)
    }
}

impl UpstreamDecoder for anthropic::upstream::EventDecoder {
    fn decode_with<'d>(
        &mut self,
        data: &'d [u8],
        emit: &mut dyn FnMut(llmux_types::chat::StreamEvent<'d>),
    ) -> Result<(), DecodeError> {
        anthropic::upstream::EventDecoder::decode_with(self, data, emit)
    }
}

impl UpstreamDecoder for gemini::upstream::StreamDecoder {
    fn decode_with<'d>(
        &mut self,
        data: &'d [u8],
        emit: &mut dyn FnMut(llmux_types::chat::StreamEvent<'d>),
    ) -> Result<(), DecodeError> {
        gemini::upstream::StreamDecoder::decode_with(self, data, emit)
    }
}
