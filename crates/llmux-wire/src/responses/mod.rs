//! The OpenAI Responses API dialect (`POST /v1/responses`). Client side: requests
//! decode to the canonical model ([`decode`]); canonical answers and stream events
//! encode to response objects and the API's exact event sequence ([`encode`]); the
//! same-dialect path forwards bodies and meters the answers ([`passthrough`]). Upstream
//! side: [`upstream`], for models reached through the Responses API.

pub mod decode;
pub mod encode;
pub mod passthrough;
pub mod upstream;

#[cfg(test)]
mod tests;
