//! The OpenAI dialect upstream: OpenAI itself and every OpenAI-compatible vendor.
//!
//! Quirks handled here or by preset flags:
//! - Stream usage needs `stream_options.include_usage` (flag `stream_usage`); the
//!   gateway strips the extra chunk again when the client did not ask for it.
//! - DeepSeek reports cache hits as `prompt_cache_hit_tokens`; `reasoning_content` is
//!   forwarded untouched on the same-dialect path.
//! - Doubao (Ark) accepts endpoint ids (`ep-...`) as the model.
//! - Region refusals arrive as 403 `unsupported_country_region_territory`.

pub mod presets;

use crate::Adapter;

/// The adapter of every OpenAI-dialect kind: the trait's defaults, and the model list
/// as health probe.
#[derive(Debug)]
pub struct OpenAiAdapter;

impl Adapter for OpenAiAdapter {
    fn probe_path(&self) -> Option<&'static str> {
        Some("/models")
    }
}
