//! Azure OpenAI: the OpenAI dialect at deployment URLs.
//!
//! - `base_url` is `https://{resource}.openai.azure.com/openai`; requests go to
//!   `{base}/deployments/{route model}/chat/completions?api-version=...`, so a route's
//!   `model` is the deployment name.
//! - A `base_url` ending in `/openai/v1` uses Azure's v1 API instead: standard OpenAI
//!   paths, no `api-version`.
//! - The Responses API (served by default, `responses_api = false` to turn it off) is at
//!   `{base}/responses?api-version=...` (not under the deployment: the body's `model`
//!   is the deployment name), with an `api-version` of 2025-03-01-preview or later.
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
    quirks: Quirks { stream_usage: true, responses_api: true },
    env_key: None,
    cache_write_percent: 100,
};

/// The oldest `api-version` that serves the Responses API.
pub const RESPONSES_MIN_API_VERSION: &str = "2025-03-01-preview";

/// The `api-version` of Responses API calls when the entry's is older (or absent).
pub const RESPONSES_API_VERSION: &str = "2025-04-01-preview";

/// The request URL for `endpoint` at deployment `deployment`. The Responses API is not
/// under the deployment (the body's `model` names it): `{base}/responses`, with the
/// entry's `api_version` if it serves the Responses API, else [`RESPONSES_API_VERSION`].
pub fn url(spec: &ProviderSpec, endpoint: Endpoint, deployment: &str) -> String {
    let base = spec.base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}{}", endpoint.path())
    } else if endpoint == Endpoint::Responses {
        // Versions are dates (`YYYY-MM-DD[-preview]`): they compare as strings.
        let version = spec
            .api_version
            .as_deref()
            .filter(|version| *version >= RESPONSES_MIN_API_VERSION)
            .unwrap_or(RESPONSES_API_VERSION);
        format!("{base}/responses?api-version={version}")
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
