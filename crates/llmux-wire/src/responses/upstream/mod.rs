//! The Responses API on the upstream side: how a client of any dialect reaches a model
//! through OpenAI's `POST /v1/responses` (OpenAI, Azure, and OpenAI-compatible servers
//! that serve it), in three parts:
//!
//! - `request`: canonical request -> Responses API body ([`request_body`]; [`dropped`]
//!   names what it cannot hold).
//! - `response`: response object -> canonical ([`decode_response`]; [`usage`] reads only
//!   the usage, for a body forwarded as it is).
//! - `stream`: Responses API events -> canonical stream events ([`EventDecoder`]).
//!
//! (A Responses client reaching such a provider with a request llmux keeps no state for
//! comes here only for metering: its body is forwarded, see [`super::passthrough`].)

mod request;
mod response;
mod stream;

pub use request::{MIN_OUTPUT_TOKENS, dropped, request_body};
pub use response::{decode_response, usage};
pub use stream::EventDecoder;

#[cfg(test)]
mod tests;
