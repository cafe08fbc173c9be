//! Upstream providers: one folder per kind, each with its preset (static facts: base
//! URL, auth style, regions, prices, quirks) and its [`Adapter`] (request building,
//! answer and stream decoding, error classification, health probe; pure), the kind
//! registry, and the one HTTP client ([`client`]) that does upstream I/O.
//!
//! Adding a provider of an existing wire format: a preset (an OpenAI-compatible
//! vendor is one row in `openai/presets.rs`) plus one line in [`registry`]. Adding one
//! with a new wire format: its translation in `llmux-wire` (a folder), a folder here
//! with the preset and the adapter, and one line in [`registry`].

pub mod adapter;
pub mod anthropic;
pub mod azure;
pub mod client;
pub mod error;
pub mod gemini;
mod h1;
pub mod mock;
pub mod openai;
pub mod registry;

use llmux_types::Currency;

pub use adapter::{Adapter, Api};
pub use error::{ErrorKind, UpstreamError};
pub use registry::{kinds, preset};

/// How the provider key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `api-key: <key>` (Azure).
    ApiKeyHeader,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Gemini).
    GoogApiKey,
}

/// Behaviour differences between OpenAI-compatible vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Accepts `stream_options.include_usage` (most do; some reject unknown fields).
    pub stream_usage: bool,
    /// Serves OpenAI's Responses API (`POST {base_url}/responses`) unless an entry
    /// says otherwise (`responses_api`).
    pub responses_api: bool,
}

/// Static facts about a provider kind.
#[derive(Debug)]
pub struct Preset {
    pub kind: &'static str,
    /// What the kind does: its requests, answers, errors and probe.
    pub adapter: &'static dyn Adapter,
    /// Default base URL; `None` means the config must give one.
    pub base_url: Option<&'static str>,
    pub auth: AuthStyle,
    /// Whether a provider entry of this kind needs an `api_key`.
    pub key_required: bool,
    /// Default served regions, in config syntax.
    pub regions: &'static [&'static str],
    /// Currency of the built-in prices.
    pub currency: Currency,
    /// Built-in prices per million tokens: (model, input, output, cached input).
    pub prices: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// What a token written to the prompt cache costs, in percent of the input price
    /// (100 where writes are not reported or not charged extra).
    pub cache_write_percent: i64,
    pub quirks: Quirks,
    /// Environment variable whose presence adds this provider to the zero-config setup.
    pub env_key: Option<&'static str>,
}

impl Preset {
    /// The built-in price of `model`, if the table has it.
    pub fn price(&self, model: &str) -> Option<llmux_types::Price> {
        let (_, input, output, cached) = self.prices.iter().find(|row| row.0 == model)?;
        let parse = llmux_types::money::parse_decimal_nanos;
        Some(llmux_types::Price {
            input: parse(input)?,
            output: parse(output)?,
            cached_input: parse(cached)?,
            cache_write: parse(input)?.saturating_mul(self.cache_write_percent) / 100,
            currency: self.currency,
        })
    }
}

/// Deadlines for one attempt at a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP/TLS connect.
    pub connect: std::time::Duration,
    /// From sending the request to the response headers.
    pub first_byte: std::time::Duration,
    /// Between two chunks of a streamed body.
    pub idle: std::time::Duration,
    /// The whole attempt, body included (non-streaming); for streams, until the
    /// first byte reaches the client.
    pub total: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        use std::time::Duration;
        Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(120),
            total: Duration::from_secs(600),
        }
    }
}

/// One configured provider entry, resolved (what `[[providers]]` becomes).
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub name: String,
    pub preset: &'static Preset,
    pub base_url: String,
    pub api_key: Option<llmux_types::Secret>,
    pub regions: llmux_types::RegionSet,
    /// Extra static headers sent with every request.
    pub headers: Vec<(String, String)>,
    pub timeouts: Timeouts,
    /// Azure `api-version`.
    pub api_version: Option<String>,
    /// Whether this entry serves OpenAI's Responses API (see
    /// [`Adapter::responses_native`]).
    pub responses_api: bool,
    /// Behaviour of the `mock` kind.
    pub mock: mock::MockSettings,
}

impl ProviderSpec {
    /// Builds the upstream request for an OpenAI-dialect backend. The gateway keeps a
    /// [`PreparedProvider`] instead, so this work is not repeated per request.
    pub fn build_request(
        &self,
        endpoint: llmux_wire::openai::peek::Endpoint,
        upstream_model: &str,
        body: Vec<u8>,
    ) -> http::Request<bytes::Bytes> {
        PreparedProvider::new(self).build_request(self, endpoint, upstream_model, body)
    }
}

/// What every request to one provider shares, computed once per configuration:
/// the headers (auth included, marked sensitive) and the endpoint URLs.
#[derive(Debug, Clone)]
pub struct PreparedProvider {
    headers: http::HeaderMap,
    /// The URL per endpoint (chat, completions, embeddings, responses), where the
    /// adapter's URLs depend on the endpoint alone.
    urls: Option<[Option<http::Uri>; 4]>,
}

const ENDPOINTS: [llmux_wire::openai::peek::Endpoint; 4] = {
    use llmux_wire::openai::peek::Endpoint;
    [Endpoint::ChatCompletions, Endpoint::Completions, Endpoint::Embeddings, Endpoint::Responses]
};

fn endpoint_index(endpoint: llmux_wire::openai::peek::Endpoint) -> usize {
    ENDPOINTS.iter().position(|known| *known == endpoint).unwrap_or(0)
}

impl PreparedProvider {
    pub fn new(spec: &ProviderSpec) -> PreparedProvider {
        use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
        let adapter = spec.preset.adapter;
        let mut headers = http::HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &spec.api_key {
            let (name, value) = match spec.preset.auth {
                AuthStyle::Bearer => (AUTHORIZATION, format!("Bearer {}", key.expose())),
                AuthStyle::ApiKeyHeader => (HeaderName::from_static("api-key"), key.expose().to_owned()),
                AuthStyle::XApiKey => (HeaderName::from_static("x-api-key"), key.expose().to_owned()),
                AuthStyle::GoogApiKey => (HeaderName::from_static("x-goog-api-key"), key.expose().to_owned()),
            };
            if let Ok(mut value) = HeaderValue::from_str(&value) {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
        }
        adapter.headers(&mut headers);
        for (name, value) in &spec.headers {
            // Config validation has checked both.
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                headers.append(name, value);
            }
        }
        let urls =
            adapter.fixed_urls().then(|| ENDPOINTS.map(|endpoint| adapter.url(spec, endpoint, "", false).parse().ok()));
        PreparedProvider { headers, urls }
    }

    /// The upstream request for `endpoint` with a body in the provider's own dialect.
    pub fn build_request(
        &self,
        spec: &ProviderSpec,
        endpoint: llmux_wire::openai::peek::Endpoint,
        upstream_model: &str,
        body: Vec<u8>,
    ) -> http::Request<bytes::Bytes> {
        let uri = match &self.urls {
            Some(urls) => urls[endpoint_index(endpoint)].clone(),
            None => spec.preset.adapter.url(spec, endpoint, upstream_model, false).parse().ok(),
        };
        self.request_to(uri, body)
    }

    /// The upstream request of a chat call made through the canonical model: as
    /// [`build_request`](Self::build_request), except that the URL may also say
    /// whether the answer streams (Gemini's does).
    pub fn build_chat_request(
        &self,
        spec: &ProviderSpec,
        upstream_model: &str,
        stream: bool,
        body: Vec<u8>,
    ) -> http::Request<bytes::Bytes> {
        use llmux_wire::openai::peek::Endpoint;
        match &self.urls {
            Some(_) => self.build_request(spec, Endpoint::ChatCompletions, upstream_model, body),
            None => self.request_to(
                spec.preset.adapter.url(spec, Endpoint::ChatCompletions, upstream_model, stream).parse().ok(),
                body,
            ),
        }
    }

    /// The upstream request of a call made through the canonical model to `api`: a
    /// chat call ([`build_chat_request`](Self::build_chat_request)) or a Responses API
    /// call at `Endpoint::Responses`.
    pub fn build_api_request(
        &self,
        spec: &ProviderSpec,
        api: Api,
        upstream_model: &str,
        stream: bool,
        body: Vec<u8>,
    ) -> http::Request<bytes::Bytes> {
        match api {
            Api::Chat => self.build_chat_request(spec, upstream_model, stream, body),
            Api::Responses => {
                self.build_request(spec, llmux_wire::openai::peek::Endpoint::Responses, upstream_model, body)
            }
        }
    }

    /// A cheap request that shows whether the provider answers: its model list
    /// (`None` where the adapter has no probe).
    pub fn probe_request(&self, spec: &ProviderSpec) -> Option<http::Request<bytes::Bytes>> {
        let path = spec.preset.adapter.probe_path()?;
        let url = format!("{}{path}", spec.base_url.trim_end_matches('/'));
        let mut request = self.request_to(url.parse().ok(), Vec::new());
        *request.method_mut() = http::Method::GET;
        request.headers_mut().remove(http::header::CONTENT_TYPE);
        Some(request)
    }

    fn request_to(&self, uri: Option<http::Uri>, body: Vec<u8>) -> http::Request<bytes::Bytes> {
        let mut request = http::Request::new(bytes::Bytes::from(body));
        *request.method_mut() = http::Method::POST;
        if let Some(uri) = uri {
            *request.uri_mut() = uri;
        }
        *request.headers_mut() = self.headers.clone();
        request
    }
}

#[cfg(test)]
mod tests;
