//! Token usage of one request, in the gateway's normalised semantics.

use serde::{Deserialize, Serialize};

/// Token counts of one request.
///
/// `input_tokens` is inclusive of cached tokens (OpenAI semantics); `cached_tokens` is
/// the part of the input read from the provider's prompt cache. `reasoning_tokens` is
/// the part of `output_tokens` spent on reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input tokens that were not served from a cache.
    pub fn uncached_input(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cached_tokens)
    }

    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}
