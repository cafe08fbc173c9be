//! Upstream providers: presets (static facts: base URL, auth style, regions, prices,
//! quirks), request building and error classification (pure), and the one HTTP client
//! ([`client`]) that does upstream I/O.
//!
//! Adding a provider: a folder here plus one line in [`registry`]. An OpenAI-compatible
//! vendor is only a preset row in `openai/presets.rs`.

pub mod azure;
pub mod client;
pub mod error;
pub mod mock;
pub mod openai;
pub mod registry;

use llmux_types::Currency;

pub use error::{ErrorKind, UpstreamError};
pub use registry::{kinds, preset};

/// How llmux talks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The OpenAI wire dialect at `{base_url}/chat/completions` etc.
    OpenAi,
    /// Azure OpenAI: OpenAI dialect at deployment URLs with `api-version`.
    Azure,
    /// The built-in mock: no network.
    Mock,
}

/// How the provider key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `api-key: <key>` (Azure).
    ApiKeyHeader,
}

/// Behaviour differences between OpenAI-compatible vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Accepts `stream_options.include_usage` (most do; some reject unknown fields).
    pub stream_usage: bool,
}

/// Static facts about a provider kind.
#[derive(Debug)]
pub struct Preset {
    pub kind: &'static str,
    pub backend: Backend,
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
    /// Behaviour of the `mock` kind.
    pub mock: mock::MockSettings,
}

impl ProviderSpec {
    /// Builds the upstream request for an OpenAI-dialect backend.
    pub fn build_request(
        &self,
        endpoint: llmux_wire::openai::peek::Endpoint,
        upstream_model: &str,
        body: Vec<u8>,
    ) -> http::Request<bytes::Bytes> {
        match self.preset.backend {
            Backend::Azure => azure::build_request(self, endpoint, upstream_model, body),
            Backend::OpenAi | Backend::Mock => openai::build_request(self, endpoint, body),
        }
    }
}

#[cfg(test)]
mod tests;
