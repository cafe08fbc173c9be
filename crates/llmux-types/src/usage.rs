//! Token usage of one request, in the gateway's normalised semantics.

use serde::{Deserialize, Serialize};

/// Token counts of one request.
///
/// `input_tokens` is inclusive of cached tokens and of cache writes (OpenAI semantics:
/// every prompt token counts once); `cached_tokens` is the part of the input read from
/// the provider's prompt cache, `cache_write_tokens` the part written to it (Anthropic
/// `cache_creation_input_tokens`, OpenAI `prompt_tokens_details.cache_write_tokens`).
/// `reasoning_tokens` is the part of `output_tokens` spent on reasoning.
///
/// Dialects whose input count is exclusive of the cache (Anthropic) convert at the edge:
/// `input_tokens = input + cache_read + cache_write`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// Part of `input_tokens` written to the prompt cache. Priced as regular input by
    /// [`crate::Price::cost`] today.
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Input tokens that were not served from a cache.
    pub fn uncached_input(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cached_tokens)
    }

    /// Input tokens neither read from nor written to a cache (Anthropic's `input_tokens`).
    pub fn uncached_unwritten_input(&self) -> u64 {
        self.input_tokens.saturating_sub(self.cached_tokens).saturating_sub(self.cache_write_tokens)
    }

    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}
