//! The OpenAI Responses API dialect (`POST /v1/responses`) on the client side: requests
//! decode to the canonical model ([`decode`]); canonical answers and stream events encode
//! to response objects and the API's exact event sequence ([`encode`]).

pub mod decode;
pub mod encode;

#[cfg(test)]
mod tests;
