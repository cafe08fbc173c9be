//! The Anthropic Messages dialect (`POST /v1/messages`), client side: requests decode
//! into the canonical model, canonical responses and stream events encode back into
//! Anthropic JSON and the exact Anthropic SSE event sequence.
//!
//! - [`decode`]: Messages (and count_tokens) bodies -> [`llmux_types::chat::ChatRequest`].
//! - [`encode`]: canonical response -> Messages response; canonical stream events ->
//!   `message_start` / `content_block_*` / `message_delta` / `message_stop` events.
//! - [`error`]: the error body and the error type of an HTTP status.
//!
//! Usage semantics differ from the canonical (OpenAI) ones: Anthropic `input_tokens`
//! exclude cache reads and writes, so the encoders report
//! `input_tokens = input - cached - cache_write`.

pub mod decode;
pub mod encode;
pub mod error;

pub use encode::{MessagesStreamEncoder, ping};

#[cfg(test)]
mod tests;
