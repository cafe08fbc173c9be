//! The config file exactly as written. Field names are part of the product contract
//! (PRODUCT.md "Contract details"); unknown fields are rejected.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub models: Vec<RawModel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub master_key: Option<String>,
    pub max_body_bytes: Option<u64>,
    /// The most messages (or Responses API input items) one request may hold (default 10000).
    pub max_messages: Option<u64>,
    /// The most tools one request may offer (default 1000).
    pub max_tools: Option<u64>,
    pub trust_region_header: Option<bool>,
    pub region_refusal_ttl_s: Option<u64>,
    /// The largest non-streamed upstream answer read (default 128 MiB).
    pub max_upstream_body_bytes: Option<u64>,
    /// The largest SSE event read from an upstream stream (default 16 MiB).
    pub max_upstream_event_bytes: Option<u64>,
    /// The longest an upstream's `Retry-After` rests a route (default 300).
    pub max_retry_after_s: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub key_refresh_ms: Option<u64>,
    /// The inbound server (all optional; defaults in `resolve.rs`): how long a request's
    /// head may take to arrive, its body, a client connection idle between requests, a stalled
    /// write toward a client; open connections; HTTP/2 streams per connection; failed
    /// authentications per client address and minute (0: unlimited).
    pub header_read_timeout_ms: Option<u64>,
    pub body_read_timeout_ms: Option<u64>,
    pub keep_alive_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub max_connections: Option<u64>,
    pub http2_max_concurrent_streams: Option<u32>,
    pub auth_failures_per_minute: Option<u32>,
    /// Overall deadline of a request before its first byte, across all attempts.
    pub request_timeout_ms: Option<u64>,
    /// Consecutive upstream failures that open a route's circuit (default 5).
    pub circuit_failures: Option<u32>,
    /// How long an open circuit rests a route before a probe (default 30000).
    pub circuit_cooldown_ms: Option<u64>,
    /// Active health checks: how often every provider's model list is fetched (off by
    /// default).
    pub health_check_interval_ms: Option<u64>,
    /// Percentages of a budget whose crossing raises an alert (default [80, 100]).
    pub budget_alert_thresholds: Option<Vec<u8>>,
    /// Where budget alerts are POSTed as JSON (optional).
    pub budget_alert_webhook: Option<String>,
    /// Conversation affinity: how long a conversation stays pinned to the route that
    /// served its last turn (default 3600; 0 turns affinity off).
    pub affinity_ttl_s: Option<u64>,
    /// The most conversations pinned in memory per instance (default 100000).
    pub affinity_max_conversations: Option<u64>,
    /// Defaults for every provider's timeouts (a provider's own fields win).
    pub timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub url: Option<String>,
    pub redis: Option<String>,
    pub flush_interval_ms: Option<u64>,
    pub redis_prefix: Option<String>,
    pub spill_dir: Option<String>,
    pub spill_max_mb: Option<u64>,
    pub responses_ttl_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub regions: Option<Vec<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    /// Azure only: the `api-version` query parameter.
    pub api_version: Option<String>,
    /// Whether the provider serves OpenAI's Responses API (`{base_url}/responses`);
    /// default: the preset's (`openai`, `azure`: yes; other OpenAI-compatible kinds: no).
    pub responses_api: Option<bool>,
    /// Mock only: how the mock answers.
    pub mock: Option<RawMock>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMock {
    pub reply: Option<String>,
    pub latency_ms: Option<u64>,
    pub chunk_delay_ms: Option<u64>,
    pub chunk_chars: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    pub strategy: Option<String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
    /// Hedging (opt-in): start the next route too when the first has not answered
    /// within this many milliseconds.
    pub hedge_after_ms: Option<RawHedge>,
    /// Timeouts for every route of the model (a route's own fields win).
    pub timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
}

/// `hedge_after_ms`: a number of milliseconds, or `"p95"` (the route's recent 95th
/// percentile time to first byte).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawHedge {
    Millis(u64),
    Named(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub provider: String,
    pub model: String,
    /// The upstream API the model is reached through: `chat` (default) or `responses`
    /// (a model that exists only on the Responses API).
    pub api: Option<String>,
    /// Whether the route's model takes reasoning controls (`reasoning_effort` on a chat
    /// route); OpenAI-dialect providers only.
    pub reasoning: Option<bool>,
    pub weight: Option<u32>,
    pub priority: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub price: Option<RawPrice>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
}

/// Per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
    pub cached_input: Option<f64>,
    /// Price of input tokens written to the prompt cache; defaults to `input` (times
    /// the provider's cache-write surcharge, 1.25 for Anthropic).
    pub cache_write_input: Option<f64>,
    pub currency: Option<String>,
}
