//! Configuration: one TOML file, secrets from the environment.
//!
//! Two stages. [`raw::RawConfig`] is exactly what the file says (serde, unknown fields
//! rejected). [`Config::resolve`] is pure: it interpolates `${VAR}` / `${VAR:-default}`
//! in string values, applies provider presets, parses regions and prices, checks every
//! reference, and reports *all* problems at once, each with its field path.

pub mod env_vars;
pub mod raw;
mod resolve;

use std::path::Path;
use std::time::Duration;

use llmux_providers::{Api, ProviderSpec};
use llmux_types::{Price, Region, Secret};

pub use resolve::default_config;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub providers: Vec<ProviderSpec>,
    pub models: Vec<ModelConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// Admin API is disabled when absent.
    pub master_key: Option<Secret>,
    pub max_body_bytes: usize,
    /// The most messages (Responses API: input items) and tools one request may hold.
    pub max_messages: usize,
    pub max_tools: usize,
    pub trust_region_header: bool,
    pub region_refusal_ttl: Duration,
    /// The largest non-streamed upstream answer read (larger: the attempt fails as an
    /// upstream protocol error).
    pub max_upstream_body_bytes: usize,
    /// The largest single SSE event (or line) read from an upstream stream.
    pub max_upstream_event_bytes: usize,
    /// The longest an upstream's `Retry-After` rests a route.
    pub max_retry_after: Duration,
    /// How long shutdown waits for in-flight requests and streams.
    pub shutdown_grace: Duration,
    /// How often key changes made by other processes (CLI, other instances) are
    /// picked up. Bounds how long a revoked key keeps working elsewhere.
    pub key_refresh: Duration,
    /// A request's head must arrive within this (from its first byte; HTTP/1).
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this (from when it is first read).
    pub body_read_timeout: Duration,
    /// A client connection with no request in flight is closed after this.
    pub keep_alive_timeout: Duration,
    /// A write toward a client that stays blocked this long (the client stopped
    /// reading) fails the connection; its request ends as a client disconnect.
    pub write_timeout: Duration,
    /// Open client connections; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Concurrent streams an HTTP/2 client may open on one connection.
    pub http2_max_concurrent_streams: u32,
    /// Failed authentications per client address per minute before that address gets
    /// 429 without its key being looked at (`None`: unlimited).
    pub auth_failures_per_minute: Option<u32>,
    /// Deadline of a request until its answer starts, over all its attempts (failover
    /// and hedging included); `None`: only the attempts' own timeouts bound it.
    pub request_timeout: Option<Duration>,
    /// Consecutive upstream failures that open a route's circuit.
    pub circuit_failures: u32,
    /// How long an open circuit rests a route before one probe request.
    pub circuit_cooldown: Duration,
    /// Active health checks (`None`: off).
    pub health_check_interval: Option<Duration>,
    /// Budget percentages whose crossing raises an alert, ascending.
    pub budget_alert_thresholds: Vec<u8>,
    /// Where budget alerts are POSTed; may hold a token, so it is a secret.
    pub budget_alert_webhook: Option<Secret>,
    /// How long a conversation stays pinned to the route that served its last turn,
    /// after that turn (`None`: conversation affinity is off).
    pub affinity_ttl: Option<Duration>,
    /// The most conversations an instance keeps pinned in memory.
    pub affinity_max_conversations: usize,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub url: String,
    pub redis: Option<String>,
    /// Prepended to every Redis key and channel of this fleet (default `llmux:`), so
    /// several fleets can share one Redis.
    pub redis_prefix: String,
    /// Usage records are flushed at least this often.
    pub flush_interval: Duration,
    /// Where usage records wait on local disk while the store is unreachable.
    pub spill_dir: std::path::PathBuf,
    /// The most those files may hold together.
    pub spill_max_bytes: u64,
    /// How long a Responses API response created with `store: true` is kept after its
    /// creation; zero: responses are not stored (`store` is answered `false`).
    pub responses_ttl: Duration,
}

/// How a model picks among its routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Priority,
    Weighted,
    Latency,
    Cost,
    LeastBusy,
}

impl Strategy {
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::Weighted => "weighted",
            Strategy::Latency => "latency",
            Strategy::Cost => "cost",
            Strategy::LeastBusy => "least-busy",
        }
    }
}

/// A public model name and where it goes.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub name: String,
    pub strategy: Strategy,
    pub routes: Vec<RouteConfig>,
    pub fallbacks: Vec<String>,
    pub context_window_fallbacks: Vec<String>,
    /// Hedged requests: when the first route has not answered (response head) in time,
    /// the next route is started too and the first answer wins.
    pub hedge_after: Option<Hedge>,
}

/// When a hedged request starts its next route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hedge {
    /// After a fixed time.
    After(Duration),
    /// After the first route's recent 95th percentile time to first byte (no hedging
    /// until the route has enough samples).
    P95,
}

/// One route: a provider and the upstream model name there.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Index into [`Config::providers`].
    pub provider: usize,
    pub model: String,
    /// The upstream API the model is reached through by the canonical path (`Chat`
    /// unless the route says `api = "responses"`).
    pub api: Api,
    /// The route's model takes reasoning controls (`reasoning = true`): a chat request
    /// carries `reasoning_effort`, from the client's own or from Anthropic's thinking
    /// and effort; otherwise they are dropped and named.
    pub reasoning: bool,
    pub weight: u32,
    pub priority: u32,
    /// Whole attempt; with `first_byte_timeout` and `idle_timeout`, the route's own
    /// value, else its model's, else (`None`) the provider's.
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub first_byte_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// The route's price: the config override, else the built-in table.
    pub price: Option<Price>,
    /// Requests and tokens per minute this deployment (provider and upstream model)
    /// may be sent, shared by every route to it; past them, other routes are tried.
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
}

/// A problem in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path such as `providers[1].api_key`; empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// All problems found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.0.len();
        writeln!(f, "invalid configuration ({count} problem{}):", if count == 1 { "" } else { "s" })?;
        for error in &self.0 {
            writeln!(f, "  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Parses and resolves TOML text. `env` looks up environment variables.
    pub fn from_toml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|error| {
            let message = error.message().to_owned();
            let location = error
                .span()
                .map(|span| {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_default();
            ConfigErrors(vec![ConfigError { path: location, message }])
        })?;
        Config::resolve(raw, env)
    }

    /// Reads and resolves a config file.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigErrors(vec![ConfigError {
                path: String::new(),
                message: format!("cannot read `{}`: {error}", path.display()),
            }])
        })?;
        Config::from_toml(&text, env).map_err(|mut errors| {
            for error in &mut errors.0 {
                error.path = if error.path.is_empty() {
                    path.display().to_string()
                } else {
                    format!("{}: {}", path.display(), error.path)
                };
            }
            errors
        })
    }

    pub fn resolve(raw: raw::RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigErrors> {
        resolve::resolve(raw, env)
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|model| model.name == name)
    }

    /// The resolved routing table as `llmux check` prints it.
    pub fn routing_table(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = write!(out, "listen {}  storage {}", self.server.listen, redact_url(&self.storage.url));
        match &self.storage.redis {
            Some(redis) => {
                let _ = writeln!(out, "  redis {} (prefix {})", redact_url(redis), self.storage.redis_prefix);
            }
            None => {
                let _ = writeln!(out, "  no redis (limits and budgets per instance)");
            }
        }
        let _ = writeln!(out, "providers:");
        for provider in &self.providers {
            let _ = writeln!(
                out,
                "  {:<16} kind {:<18} regions {:<24} {}{}",
                provider.name,
                provider.preset.kind,
                provider.regions.to_entries().join(","),
                provider.base_url,
                if provider.preset.adapter.responses_native(provider) { "  (+ Responses API)" } else { "" }
            );
        }
        let _ = writeln!(out, "models:");
        for model in &self.models {
            let _ = write!(out, "  {} (strategy {})", model.name, model.strategy.as_str());
            if !model.fallbacks.is_empty() {
                let _ = write!(out, ", fallbacks: {}", model.fallbacks.join(", "));
            }
            if !model.context_window_fallbacks.is_empty() {
                let _ = write!(out, ", context-window fallbacks: {}", model.context_window_fallbacks.join(", "));
            }
            match model.hedge_after {
                Some(Hedge::After(after)) => {
                    let _ = write!(out, ", hedged after {} ms", after.as_millis());
                }
                Some(Hedge::P95) => {
                    let _ = write!(out, ", hedged after the route's p95 time to first byte");
                }
                None => {}
            }
            let _ = writeln!(out);
            for (index, route) in model.routes.iter().enumerate() {
                let provider = &self.providers[route.provider];
                let price = match &route.price {
                    Some(price) => format!(
                        "in {} / out {} / cached {} / cache write {} {} per 1M",
                        llmux_types::money::format_nanos(price.input),
                        llmux_types::money::format_nanos(price.output),
                        llmux_types::money::format_nanos(price.cached_input),
                        llmux_types::money::format_nanos(price.cache_write),
                        price.currency
                    ),
                    None => "no price (cost not metered)".to_owned(),
                };
                let limits = match (route.rpm_limit, route.tpm_limit) {
                    (None, None) => String::new(),
                    (rpm, tpm) => format!(
                        "  limits {} rpm / {} tpm",
                        rpm.map_or_else(|| "-".to_owned(), |rpm| rpm.to_string()),
                        tpm.map_or_else(|| "-".to_owned(), |tpm| tpm.to_string())
                    ),
                };
                let api = match route.api {
                    Api::Chat => String::new(),
                    api => format!(" (api {})", api.as_str()),
                };
                let _ = writeln!(
                    out,
                    "    {}. {} -> {}{api}  weight {} priority {}  regions {}  {}{}",
                    index + 1,
                    provider.name,
                    route.model,
                    route.weight,
                    route.priority,
                    provider.regions.to_entries().join(","),
                    price,
                    limits
                );
            }
        }
        out
    }
}

/// Hides a password in a storage URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Reads the caller's region header value, if valid.
pub fn parse_region(value: &str) -> Option<Region> {
    Region::parse(value.trim())
}

#[cfg(test)]
mod tests;
