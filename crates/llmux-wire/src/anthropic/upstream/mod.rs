//! The Anthropic Messages dialect on the upstream side, used when a client of another
//! dialect (OpenAI), or an Anthropic client whose request went through the canonical
//! model, reaches an Anthropic upstream. In three parts:
//!
//! - `request`: canonical request -> Messages body, with the names of the parameters
//!   Anthropic cannot hold ([`messages_request`]).
//! - `response`: Messages response -> canonical ([`messages_response`]), and what the
//!   stream decoder shares with it (usage, stop reasons, content blocks, errors).
//! - `stream`: Messages SSE event payloads -> canonical stream events ([`EventDecoder`]).
//!
//! Usage: Anthropic's `input_tokens` excludes cache reads and writes; canonical
//! `input_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.

mod request;
mod response;
mod stream;

pub use request::messages_request;
pub use response::messages_response;
pub use stream::EventDecoder;

#[cfg(test)]
mod tests;
