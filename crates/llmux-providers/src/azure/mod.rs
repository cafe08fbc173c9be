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

/// Azure: the OpenAI dialect at deployment URLs (no probe: the model list lives at the
/// resource level, not under the deployment URL).
#[derive(Debug)]
pub struct AzureAdapter;

impl Adapter for AzureAdapter {
    fn url(&self, spec: &ProviderSpec, endpoint: Endpoint, upstream_model: &str, _stream: bool) -> String {
        url(spec, endpoint, upstream_model)
    }

    fn fixed_urls(&self) -> bool {
        false
    }

    fn takes_api_version(&self) -> bool {
        true
    }
}
