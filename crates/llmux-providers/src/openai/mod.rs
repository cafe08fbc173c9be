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

use std::time::Duration;

use llmux_types::chat::{ChatRequest, ChatResponse};
use llmux_wire::openai::peek::Endpoint;
use llmux_wire::{DecodeError, Dialect, UpstreamDecoder};

use crate::{Adapter, ProviderSpec, UpstreamError};

/// The adapter of every OpenAI-dialect kind: `{base_url}{endpoint path}`.
#[derive(Debug)]
pub struct OpenAiAdapter;

impl Adapter for OpenAiAdapter {
    fn native(&self) -> Option<Dialect> {
        Some(Dialect::OpenAi)
    }

    fn url(&self, spec: &ProviderSpec, endpoint: Endpoint, _upstream_model: &str, _stream: bool) -> String {
        format!("{}{}", spec.base_url.trim_end_matches('/'), endpoint.path())
    }

    fn chat_request(&self, request: &ChatRequest, upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        (llmux_wire::openai::upstream::chat_request(request, upstream_model), Vec::new())
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        llmux_wire::openai::upstream::chat_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn UpstreamDecoder> {
        Box::new(llmux_wire::openai::upstream::ChunkDecoder::new())
    }

    fn classify(&self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
        UpstreamError::from_openai_response(status, retry_after, body)
    }

    fn probe_path(&self) -> Option<&'static str> {
        Some("/models")
    }
}
