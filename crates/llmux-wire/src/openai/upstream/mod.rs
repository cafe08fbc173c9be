//! The OpenAI dialect on the upstream side, for clients of another dialect (Anthropic)
//! reaching an OpenAI-compatible provider, in three parts:
//!
//! - `request`: canonical request -> Chat Completions body ([`chat_request`], or
//!   [`chat_request_with`] and its [`RequestOptions`]).
//! - `response`: Chat Completions response -> canonical ([`chat_response`];
//!   [`split_think`] takes an inline `<think>` block off the content).
//! - `stream`: `chat.completion.chunk` payloads -> canonical stream events
//!   ([`ChunkDecoder`]).
//!
//! (An OpenAI client reaching an OpenAI upstream never comes here: that path splices
//! bytes, see [`super::peek`].)

mod request;
mod response;
mod stream;

pub use request::{ReasoningField, RequestOptions, chat_request, chat_request_with, dropped, dropped_with};
pub use response::{chat_response, split_think};
pub use stream::ChunkDecoder;

#[cfg(test)]
mod tests;
