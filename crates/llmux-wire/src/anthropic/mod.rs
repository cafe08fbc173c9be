//! The Anthropic Messages dialect (`POST /v1/messages`).
//!
//! Client side: requests decode into the canonical model, canonical responses and stream
//! events encode back into Anthropic JSON and the exact Anthropic SSE event sequence.
//! Upstream side: canonical requests encode into Messages bodies for Anthropic upstreams,
//! whose responses and SSE events decode back into the canonical model.
//!
//! - [`decode`]: Messages (and count_tokens) bodies -> [`llmux_types::chat::ChatRequest`].
//! - [`encode`]: canonical response -> Messages response; canonical stream events ->
//!   `message_start` / `content_block_*` / `message_delta` / `message_stop` events.
//! - [`upstream`]: canonical request -> Messages body (with the names of the parameters
//!   Anthropic cannot hold); Messages response and SSE events -> canonical.
//! - [`error`]: the error body (its `type` comes from the gateway's error table).
//! - [`passthrough`]: the same-dialect fast path (only `model` rewritten).
//!
//! Usage semantics differ from the canonical (OpenAI) ones: Anthropic `input_tokens`
//! exclude cache reads and writes, so the encoders report
//! `input_tokens = input - cached - cache_write` and [`upstream`] reads
//! `input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.

pub mod decode;
pub mod encode;
pub mod error;
pub mod passthrough;
mod tool_ids;
pub mod upstream;

pub use encode::{MessagesStreamEncoder, ping};

#[cfg(test)]
mod tests;
