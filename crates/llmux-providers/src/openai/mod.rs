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
