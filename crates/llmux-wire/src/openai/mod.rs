//! The OpenAI dialect (Chat Completions, legacy Completions, Embeddings, Models).
//!
//! Two ways in:
//! - [`peek`]: the same-dialect fast path. A borrowed, validating look at the fields
//!   the gateway needs (`model`, `stream`, `stream_options`), then [`peek::rewrite`]
//!   splices a new `model` (and `stream_options.include_usage`) into the original
//!   bytes. Everything else is forwarded untouched.
//! - [`decode`]: a full decode into the canonical model, for backends that do not
//!   speak OpenAI (the built-in mock, Anthropic and Gemini upstreams).
//!
//! Ways out: [`encode`] (canonical -> OpenAI JSON and SSE chunks), [`usage`]
//! (read token usage from upstream bodies and stream chunks), [`error`] (the error
//! body).
//!
//! Upstream side for other client dialects: [`upstream`] (canonical -> Chat Completions
//! request; Chat Completions response and stream chunks -> canonical).

pub mod decode;
pub mod encode;
pub mod error;
pub mod peek;
pub mod upstream;
pub mod usage;

#[cfg(test)]
mod tests;
