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

use bytes::Bytes;
use llmux_wire::openai::peek::Endpoint;

use crate::{AuthStyle, ProviderSpec};

/// Builds the upstream HTTP request for `endpoint` with an already rewritten body.
pub fn build_request(spec: &ProviderSpec, endpoint: Endpoint, body: Vec<u8>) -> http::Request<Bytes> {
    let base = spec.base_url.trim_end_matches('/');
    let mut url = String::with_capacity(base.len() + 24);
    url.push_str(base);
    url.push_str(endpoint.path());
    request(spec, &url, body)
}

/// A POST of a JSON body to `url` with the provider's auth and static headers.
pub(crate) fn request(spec: &ProviderSpec, url: &str, body: Vec<u8>) -> http::Request<Bytes> {
    let mut builder = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = &spec.api_key {
        builder = match spec.preset.auth {
            AuthStyle::Bearer => builder.header(http::header::AUTHORIZATION, format!("Bearer {}", key.expose())),
            AuthStyle::ApiKeyHeader => builder.header("api-key", key.expose()),
        };
    }
    for (name, value) in &spec.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Bytes::from(body)).unwrap_or_else(|_| {
        // Only reachable with an invalid URL or header, which config validation rejects.
        let mut request = http::Request::new(Bytes::new());
        *request.method_mut() = http::Method::POST;
        request
    })
}
