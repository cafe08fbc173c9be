//! The Gemini API (generativelanguage `v1beta`) on the upstream side, used when a client
//! of any dialect reaches a Gemini upstream. In parts:
//!
//! - `request`: canonical request -> `GenerateContentRequest` body, with the names of the
//!   parameters Gemini cannot hold ([`generate_content_request`]); `contents`: the
//!   conversation as Gemini contents and parts.
//! - `response`: `GenerateContentResponse` -> canonical ([`generate_content_response`]),
//!   and what the stream decoder shares with it (usage, finish reasons, calls, signatures).
//! - `stream`: `alt=sse` chunks -> canonical stream events ([`StreamDecoder`]).
//! - `error`: the `{"error":{...}}` body: its status and message ([`error_message`]) and
//!   its `RetryInfo` delay ([`retry_delay`]) and `ErrorInfo` reason ([`error_reason`]).
//!
//! Usage: `promptTokenCount` includes cached tokens (as the canonical input does) but not
//! `toolUsePromptTokenCount`, and `candidatesTokenCount` excludes `thoughtsTokenCount`
//! (billed as output all the same), so `input_tokens = promptTokenCount +
//! toolUsePromptTokenCount`, `output_tokens = candidatesTokenCount + thoughtsTokenCount`,
//! `reasoning_tokens = thoughtsTokenCount`, `cached_tokens = cachedContentTokenCount`.
//! Gemini reports no cache writes (explicit caches are billed as storage).

mod contents;
mod error;
mod request;
mod response;
mod stream;

pub use error::{error_message, error_reason, retry_delay};
pub use request::generate_content_request;
pub use response::generate_content_response;
pub use stream::StreamDecoder;

#[cfg(test)]
mod tests;
