//! Azure OpenAI: the OpenAI dialect at deployment URLs.
//!
//! - `base_url` is `https://{resource}.openai.azure.com/openai`; requests go to
//!   `{base}/deployments/{route model}/chat/completions?api-version=...`, so a route's
//!   `model` is the deployment name.
//! - A `base_url` ending in `/openai/v1` uses Azure's v1 API instead: standard OpenAI
//!   paths, no `api-version`.
//! - Auth is the `api-key` header.

use llmux_types::Currency;
use llmux_wire::openai::peek::Endpoint;

use llmux_types::chat::{ChatRequest, ChatResponse};
use llmux_wire::{DecodeError, Dialect, UpstreamDecoder};

use crate::openai::OpenAiAdapter;
use crate::{Adapter, AuthStyle, Preset, ProviderSpec, Quirks};

/// The `api-version` used when a provider entry gives none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

pub static PRESET: Preset = Preset {
    kind: "azure",
    adapter: &AzureAdapter,
    base_url: None,
    auth: AuthStyle::ApiKeyHeader,
    key_required: true,
    regions: &["!CN", "!HK", "!MO", "!RU", "!BY", "!IR", "!KP", "!SY", "!CU"],
    currency: Currency::USD,
    prices: &[],
    quirks: Quirks { stream_usage: true },
    env_key: None,
    cache_write_percent: 100,
};

/// The request URL for `endpoint` at deployment `deployment`.
pub fn url(spec: &ProviderSpec, endpoint: Endpoint, deployment: &str) -> String {
    let base = spec.base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}{}", endpoint.path())
    } else {
        let version = spec.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        format!("{base}/deployments/{deployment}{}?api-version={version}", endpoint.path())
    }
}

/// Azure: the OpenAI dialect at deployment URLs.
#[derive(Debug)]
pub struct AzureAdapter;

impl Adapter for AzureAdapter {
    fn native(&self) -> Option<Dialect> {
        Some(Dialect::OpenAi)
    }

    fn url(&self, spec: &ProviderSpec, endpoint: Endpoint, upstream_model: &str, _stream: bool) -> String {
        url(spec, endpoint, upstream_model)
    }

    fn fixed_urls(&self) -> bool {
        false
    }

    fn takes_api_version(&self) -> bool {
        true
    }

    fn chat_request(&self, request: &ChatRequest, upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        OpenAiAdapter.chat_request(request, upstream_model)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        OpenAiAdapter.chat_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn UpstreamDecoder> {
        OpenAiAdapter.stream_decoder()
    }

    /// Azure's model list lives at the resource level, not under the deployment URL.
    fn probe_path(&self) -> Option<&'static str> {
        None
    }
}
