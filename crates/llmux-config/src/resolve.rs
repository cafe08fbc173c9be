//! RawConfig -> Config: interpolation, presets, validation. Pure: the environment is
//! a function argument.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use llmux_providers::mock::MockSettings;
use llmux_providers::{Api, ProviderSpec, Timeouts};
use llmux_types::{Currency, Price, RegionSet, Secret};

use crate::raw::{RawConfig, RawHedge, RawModel, RawProvider, RawRoute};
use crate::{
    Config, ConfigError, ConfigErrors, Hedge, ModelConfig, RouteConfig, ServerConfig, StorageConfig, Strategy,
};

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { path: path.into(), message: message.into() });
    }
}

pub(crate) fn resolve(raw: RawConfig, env: Env<'_>) -> Result<Config, ConfigErrors> {
    let mut errors = Errors(Vec::new());

    let server = resolve_server(&raw, env, &mut errors);
    let storage = StorageConfig {
        url: raw
            .storage
            .url
            .as_deref()
            .map(|url| interpolate(url, env, "storage.url", &mut errors))
            .unwrap_or_else(|| "sqlite://llmux.db".to_owned()),
        redis: raw.storage.redis.as_deref().map(|url| interpolate(url, env, "storage.redis", &mut errors)),
        flush_interval: Duration::from_millis(raw.storage.flush_interval_ms.unwrap_or(200).clamp(10, 1_000)),
        redis_prefix: raw.storage.redis_prefix.clone().unwrap_or_else(|| "llmux:".to_owned()),
        spill_dir: raw.storage.spill_dir.as_deref().unwrap_or("llmux-spill").into(),
        spill_max_bytes: raw.storage.spill_max_mb.unwrap_or(1024).saturating_mul(1024 * 1024),
        // 30 days, as OpenAI keeps them; at most ten years.
        responses_ttl: Duration::from_secs(raw.storage.responses_ttl_s.unwrap_or(30 * 86_400).min(10 * 365 * 86_400)),
    };
    if !(storage.url.starts_with("sqlite:")
        || storage.url.starts_with("postgres://")
        || storage.url.starts_with("postgresql://"))
    {
        errors.push(
            "storage.url",
            format!(
                "unsupported storage URL `{}`; expected `sqlite://FILE` or `postgres://...`",
                crate::redact_url(&storage.url)
            ),
        );
    }

    // `[server]` timeouts are every provider's defaults.
    let builtin = Timeouts::default();
    let global = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
    let defaults = Timeouts {
        connect: global(raw.server.connect_timeout_ms, builtin.connect),
        first_byte: global(raw.server.first_byte_timeout_ms, builtin.first_byte),
        idle: global(raw.server.idle_timeout_ms, builtin.idle),
        total: global(raw.server.timeout_ms, builtin.total),
    };
    let mut providers = Vec::new();
    let mut names = HashSet::new();
    for (index, provider) in raw.providers.iter().enumerate() {
        let path = format!("providers[{index}]");
        if !names.insert(provider.name.clone()) {
            errors.push(format!("{path}.name"), format!("duplicate provider name `{}`", provider.name));
        }
        if let Some(spec) = resolve_provider(provider, &path, env, defaults, &mut errors) {
            providers.push(spec);
        }
    }

    let models = resolve_models(&raw.models, &providers, &mut errors);

    if errors.0.is_empty() { Ok(Config { server, storage, providers, models }) } else { Err(ConfigErrors(errors.0)) }
}

fn resolve_server(raw: &RawConfig, env: Env<'_>, errors: &mut Errors) -> ServerConfig {
    let server = &raw.server;
    let listen = server
        .listen
        .as_deref()
        .map(|listen| interpolate(listen, env, "server.listen", errors))
        .unwrap_or_else(|| "127.0.0.1:4000".to_owned());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        errors.push("server.listen", format!("`{listen}` is not an address such as `127.0.0.1:4000`"));
    }
    let master_key = match server.master_key.as_deref() {
        Some(key) => Some(interpolate(key, env, "server.master_key", errors)),
        None => env(crate::env_vars::LLMUX_MASTER_KEY),
    }
    .filter(|key| !key.is_empty());
    if let Some(key) = &master_key
        && key.len() < 8
    {
        errors.push("server.master_key", "the master key must be at least 8 characters");
    }
    let max_body_bytes = server.max_body_bytes.unwrap_or(32 * 1024 * 1024);
    if max_body_bytes < 1024 {
        errors.push("server.max_body_bytes", "must be at least 1024");
    }
    let max_upstream_body_bytes = server.max_upstream_body_bytes.unwrap_or(128 * 1024 * 1024);
    if max_upstream_body_bytes < 1024 {
        errors.push("server.max_upstream_body_bytes", "must be at least 1024");
    }
    let max_upstream_event_bytes = server.max_upstream_event_bytes.unwrap_or(16 * 1024 * 1024);
    if max_upstream_event_bytes < 1024 {
        errors.push("server.max_upstream_event_bytes", "must be at least 1024");
    }
    let mut budget_alert_thresholds = server.budget_alert_thresholds.clone().unwrap_or_else(|| vec![80, 100]);
    if budget_alert_thresholds.iter().any(|percent| !(1..=100).contains(percent)) {
        errors.push("server.budget_alert_thresholds", "percentages must be between 1 and 100");
    }
    budget_alert_thresholds.sort_unstable();
    budget_alert_thresholds.dedup();
    let budget_alert_webhook =
        server.budget_alert_webhook.as_deref().map(|url| interpolate(url, env, "server.budget_alert_webhook", errors));
    if let Some(url) = &budget_alert_webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errors.push("server.budget_alert_webhook", "must be an http:// or https:// URL");
    }
    let affinity_max_conversations = server.affinity_max_conversations.unwrap_or(100_000);
    if affinity_max_conversations == 0 {
        errors.push("server.affinity_max_conversations", "must be at least 1 (affinity_ttl_s = 0 turns affinity off)");
    }
    ServerConfig {
        listen,
        master_key: master_key.map(Secret::new),
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        max_messages: count_limit(server.max_messages, 10_000, "server.max_messages", errors),
        max_tools: count_limit(server.max_tools, 1_000, "server.max_tools", errors),
        trust_region_header: server.trust_region_header.unwrap_or(false),
        region_refusal_ttl: Duration::from_secs(server.region_refusal_ttl_s.unwrap_or(3600)),
        max_upstream_body_bytes: usize::try_from(max_upstream_body_bytes).unwrap_or(usize::MAX),
        max_upstream_event_bytes: usize::try_from(max_upstream_event_bytes).unwrap_or(usize::MAX),
        max_retry_after: Duration::from_secs(server.max_retry_after_s.unwrap_or(300).max(1)),
        shutdown_grace: Duration::from_millis(server.shutdown_grace_ms.unwrap_or(30_000)),
        key_refresh: Duration::from_millis(server.key_refresh_ms.unwrap_or(1_000).clamp(100, 60_000)),
        header_read_timeout: Duration::from_millis(server.header_read_timeout_ms.unwrap_or(30_000).max(1)),
        body_read_timeout: Duration::from_millis(server.body_read_timeout_ms.unwrap_or(60_000).max(1)),
        keep_alive_timeout: Duration::from_millis(server.keep_alive_timeout_ms.unwrap_or(60_000).max(1)),
        write_timeout: Duration::from_millis(server.write_timeout_ms.unwrap_or(30_000).max(1)),
        max_connections: usize::try_from(server.max_connections.unwrap_or(10_000).max(1)).unwrap_or(usize::MAX),
        http2_max_concurrent_streams: server.http2_max_concurrent_streams.unwrap_or(128).max(1),
        auth_failures_per_minute: Some(server.auth_failures_per_minute.unwrap_or(60)).filter(|n| *n > 0),
        request_timeout: server.request_timeout_ms.filter(|ms| *ms > 0).map(Duration::from_millis),
        circuit_failures: server.circuit_failures.unwrap_or(5).max(1),
        circuit_cooldown: Duration::from_millis(server.circuit_cooldown_ms.unwrap_or(30_000)),
        health_check_interval: server
            .health_check_interval_ms
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms.max(100))),
        budget_alert_thresholds,
        budget_alert_webhook: budget_alert_webhook.map(Secret::new),
        affinity_ttl: Some(server.affinity_ttl_s.unwrap_or(3600)).filter(|s| *s > 0).map(Duration::from_secs),
        affinity_max_conversations: usize::try_from(affinity_max_conversations).unwrap_or(usize::MAX),
    }
}

/// A count limit: at least 1.
fn count_limit(value: Option<u64>, default: u64, path: &str, errors: &mut Errors) -> usize {
    let value = value.unwrap_or(default);
    if value == 0 {
        errors.push(path, "must be at least 1");
    }
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn resolve_provider(
    raw: &RawProvider,
    path: &str,
    env: Env<'_>,
    defaults: Timeouts,
    errors: &mut Errors,
) -> Option<ProviderSpec> {
    if raw.name.is_empty() || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        errors.push(
            format!("{path}.name"),
            format!("`{}` is not a valid name (letters, digits, `-`, `_`, `.`)", raw.name),
        );
    }
    let Some(preset) = llmux_providers::preset(&raw.kind) else {
        let known: Vec<_> = llmux_providers::kinds().collect();
        errors.push(
            format!("{path}.kind"),
            format!("unknown provider kind `{}`; known kinds: {}", raw.kind, known.join(", ")),
        );
        return None;
    };
    let base_url = match raw.base_url.as_deref() {
        Some(url) => interpolate(url, env, &format!("{path}.base_url"), errors),
        None => match preset.base_url {
            Some(url) => url.to_owned(),
            None => {
                errors.push(format!("{path}.base_url"), format!("kind `{}` needs a `base_url`", raw.kind));
                String::new()
            }
        },
    };
    let known_scheme = ["http://", "https://", "mock://"].iter().any(|scheme| base_url.starts_with(scheme));
    if !base_url.is_empty() && !known_scheme {
        errors.push(format!("{path}.base_url"), format!("`{base_url}` must start with http:// or https://"));
    }
    let api_key = raw
        .api_key
        .as_deref()
        .map(|key| interpolate(key, env, &format!("{path}.api_key"), errors))
        .filter(|key| !key.is_empty());
    if preset.key_required && api_key.is_none() && raw.api_key.is_none() {
        errors.push(
            format!("{path}.api_key"),
            format!(
                "kind `{}` needs an `api_key` (for example \"${{{}}}\")",
                raw.kind,
                preset.env_key.unwrap_or("PROVIDER_API_KEY")
            ),
        );
    }
    let regions = match &raw.regions {
        Some(entries) => RegionSet::parse(entries).unwrap_or_else(|entry| {
            errors.push(
                format!("{path}.regions"),
                format!("`{entry}` is not `*`, a two-letter region code, or `!` and a code"),
            );
            RegionSet::everywhere()
        }),
        None => RegionSet::parse(preset.regions).unwrap_or_else(|_| RegionSet::everywhere()),
    };
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let value = interpolate(value, env, &format!("{path}.headers.{name}"), errors);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || http::HeaderValue::from_str(&value).is_err() {
            errors.push(format!("{path}.headers.{name}"), "not a valid HTTP header");
        }
        headers.push((name.clone(), value));
    }
    let millis = |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
    let timeouts = Timeouts {
        connect: millis(raw.connect_timeout_ms, defaults.connect),
        first_byte: millis(raw.first_byte_timeout_ms, defaults.first_byte),
        idle: millis(raw.idle_timeout_ms, defaults.idle),
        total: millis(raw.timeout_ms, defaults.total),
    };
    if raw.api_version.is_some() && !preset.adapter.takes_api_version() {
        errors.push(format!("{path}.api_version"), "only providers of kind `azure` take an `api_version`");
    }
    if raw.responses_api == Some(true) && !preset.adapter.speaks_responses() {
        errors.push(
            format!("{path}.responses_api"),
            format!("providers of kind `{}` do not serve the OpenAI Responses API", raw.kind),
        );
    }
    let mock = match &raw.mock {
        Some(_) if preset.adapter.local().is_none() => {
            errors.push(format!("{path}.mock"), "only providers of kind `mock` take `mock` settings");
            MockSettings::default()
        }
        Some(mock) => {
            let defaults = MockSettings::default();
            MockSettings {
                reply: mock.reply.clone(),
                latency_ms: mock.latency_ms.unwrap_or(defaults.latency_ms),
                chunk_delay_ms: mock.chunk_delay_ms.unwrap_or(defaults.chunk_delay_ms),
                chunk_chars: mock.chunk_chars.unwrap_or(defaults.chunk_chars).max(1),
            }
        }
        None => MockSettings::default(),
    };
    Some(ProviderSpec {
        name: raw.name.clone(),
        preset,
        base_url,
        api_key: api_key.map(Secret::new),
        regions,
        headers,
        timeouts,
        api_version: raw.api_version.clone(),
        responses_api: raw.responses_api.unwrap_or(preset.quirks.responses_api) && preset.adapter.speaks_responses(),
        mock,
    })
}

fn resolve_models(raw: &[RawModel], providers: &[ProviderSpec], errors: &mut Errors) -> Vec<ModelConfig> {
    let mut models = Vec::new();
    let mut names = HashSet::new();
    for (index, model) in raw.iter().enumerate() {
        let path = format!("models[{index}]");
        if model.name.is_empty() {
            errors.push(format!("{path}.name"), "must not be empty");
        }
        if !names.insert(model.name.as_str()) {
            errors.push(format!("{path}.name"), format!("duplicate model name `{}`", model.name));
        }
        let strategy = match model.strategy.as_deref().unwrap_or("priority") {
            "priority" => Strategy::Priority,
            "weighted" => Strategy::Weighted,
            "latency" => Strategy::Latency,
            "cost" => Strategy::Cost,
            "least-busy" => Strategy::LeastBusy,
            other => {
                errors.push(
                    format!("{path}.strategy"),
                    format!("unknown strategy `{other}`; expected priority, weighted, latency, cost or least-busy"),
                );
                Strategy::Priority
            }
        };
        if model.routes.is_empty() {
            errors.push(format!("{path}.routes"), "a model needs at least one route");
        }
        let routes = model
            .routes
            .iter()
            .enumerate()
            .filter_map(|(route_index, route)| {
                resolve_route(route, model, &format!("{path}.routes[{route_index}]"), providers, errors)
            })
            .collect();
        models.push(ModelConfig {
            name: model.name.clone(),
            strategy,
            routes,
            fallbacks: model.fallbacks.clone(),
            context_window_fallbacks: model.context_window_fallbacks.clone(),
            hedge_after: match &model.hedge_after_ms {
                None => None,
                Some(RawHedge::Millis(0)) => {
                    errors.push(format!("{path}.hedge_after_ms"), "must be at least 1");
                    None
                }
                Some(RawHedge::Millis(ms)) => Some(Hedge::After(Duration::from_millis(*ms))),
                Some(RawHedge::Named(name)) if name == "p95" => Some(Hedge::P95),
                Some(RawHedge::Named(other)) => {
                    errors
                        .push(format!("{path}.hedge_after_ms"), format!("`{other}`: expected milliseconds or \"p95\""));
                    None
                }
            },
        });
    }
    for (index, model) in raw.iter().enumerate() {
        for (field, targets) in
            [("fallbacks", &model.fallbacks), ("context_window_fallbacks", &model.context_window_fallbacks)]
        {
            for target in targets {
                if target == &model.name {
                    errors.push(format!("models[{index}].{field}"), format!("`{target}` falls back to itself"));
                } else if !names.contains(target.as_str()) {
                    errors.push(format!("models[{index}].{field}"), format!("unknown model `{target}`"));
                }
            }
        }
    }
    if let Some(cycle) = fallback_cycle(raw) {
        errors.push("models", format!("fallbacks form a cycle: {}", cycle.join(" -> ")));
    }
    models
}

fn resolve_route(
    raw: &RawRoute,
    model: &RawModel,
    path: &str,
    providers: &[ProviderSpec],
    errors: &mut Errors,
) -> Option<RouteConfig> {
    let Some(provider) = providers.iter().position(|provider| provider.name == raw.provider) else {
        errors.push(format!("{path}.provider"), format!("unknown provider `{}`", raw.provider));
        return None;
    };
    if raw.model.is_empty() {
        errors.push(format!("{path}.model"), "must not be empty");
    }
    if raw.weight == Some(0) {
        errors.push(format!("{path}.weight"), "must be at least 1");
    }
    let spec = &providers[provider];
    let api = match raw.api.as_deref() {
        None | Some("chat") => Api::Chat,
        Some("responses") => {
            if !spec.preset.adapter.responses_native(spec) {
                let hint = if spec.preset.adapter.speaks_responses() {
                    " (set `responses_api = true` on it if it does)"
                } else {
                    ""
                };
                errors.push(
                    format!("{path}.api"),
                    format!("provider `{}` does not serve the OpenAI Responses API{hint}", spec.name),
                );
            }
            Api::Responses
        }
        Some(other) => {
            errors.push(format!("{path}.api"), format!("unknown api `{other}`; expected `chat` or `responses`"));
            Api::Chat
        }
    };
    let reasoning = raw.reasoning.unwrap_or(false);
    if reasoning && !spec.preset.adapter.speaks_responses() {
        errors.push(
            format!("{path}.reasoning"),
            format!(
                "provider `{}` does not speak the OpenAI dialect; its adapter maps reasoning controls itself",
                spec.name
            ),
        );
    }
    let price = match &raw.price {
        Some(price) => {
            let currency = match price.currency.as_deref() {
                None => Currency::USD,
                Some(code) => Currency::parse(code).unwrap_or_else(|| {
                    errors.push(
                        format!("{path}.price.currency"),
                        format!("`{code}` is not a three-letter currency code"),
                    );
                    Currency::USD
                }),
            };
            let mut amount = |field: &str, value: f64| match llmux_types::money::f64_to_nanos(value) {
                Some(nanos) if nanos >= 0 => nanos,
                _ => {
                    errors.push(format!("{path}.price.{field}"), "must be a non-negative number");
                    0
                }
            };
            let input = amount("input", price.input);
            let output = amount("output", price.output);
            let cached_input = price.cached_input.map_or(input, |value| amount("cached_input", value));
            let surcharge = providers[provider].preset.cache_write_percent;
            let cache_write = price
                .cache_write_input
                .map_or(input.saturating_mul(surcharge) / 100, |value| amount("cache_write_input", value));
            Some(Price { input, output, cached_input, cache_write, currency })
        }
        None => providers[provider].preset.price(&raw.model),
    };
    Some(RouteConfig {
        provider,
        model: raw.model.clone(),
        api,
        reasoning,
        weight: raw.weight.unwrap_or(1),
        priority: raw.priority.unwrap_or(0),
        // The route's own timeouts, else its model's; `None` leaves the provider's.
        timeout: raw.timeout_ms.or(model.timeout_ms).map(Duration::from_millis),
        connect_timeout: raw.connect_timeout_ms.or(model.connect_timeout_ms).map(Duration::from_millis),
        first_byte_timeout: raw.first_byte_timeout_ms.or(model.first_byte_timeout_ms).map(Duration::from_millis),
        idle_timeout: raw.idle_timeout_ms.or(model.idle_timeout_ms).map(Duration::from_millis),
        price,
        rpm_limit: raw.rpm_limit,
        tpm_limit: raw.tpm_limit,
    })
}

/// A fallback cycle, if any (`a -> b -> a`).
fn fallback_cycle(models: &[RawModel]) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = models
        .iter()
        .map(|model| {
            let targets = model.fallbacks.iter().chain(&model.context_window_fallbacks).map(String::as_str).collect();
            (model.name.as_str(), targets)
        })
        .collect();
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(position) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[position..].iter().map(|n| (*n).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if *next != node
                && let Some(cycle) = visit(next, edges, stack, done)
            {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = HashSet::new();
    for name in edges.keys() {
        if let Some(cycle) = visit(name, &edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// Replaces `${VAR}` and `${VAR:-default}` in `value`. `$$` is a literal `$`.
fn interpolate(value: &str, env: Env<'_>, path: &str, errors: &mut Errors) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            out.push('$');
            rest = after_dollar;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            errors.push(path, "unterminated `${` in value");
            return out;
        };
        let expression = &body[..end];
        let (name, default) = match expression.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expression, None),
        };
        match (env(name), default) {
            (Some(found), None) => out.push_str(&found),
            (Some(found), Some(_)) if !found.is_empty() => out.push_str(&found),
            (_, Some(default)) => out.push_str(default),
            (None, None) => errors.push(path, format!("environment variable `{name}` is not set")),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The configuration used when no config file exists: SQLite `llmux.db`, listen on
/// 127.0.0.1:4000, the `mock` provider (models `mock` and `echo`), and one provider per
/// well-known API-key variable found in the environment, each serving the models of
/// its built-in price table.
pub fn default_config(env: Env<'_>) -> Result<Config, ConfigErrors> {
    let mut raw = RawConfig::default();
    raw.providers.push(RawProvider { name: "mock".into(), kind: "mock".into(), ..RawProvider::default() });
    let route = |provider: &str, model: &str| RawRoute {
        provider: provider.into(),
        model: model.into(),
        api: None,
        reasoning: None,
        weight: None,
        priority: None,
        timeout_ms: None,
        connect_timeout_ms: None,
        first_byte_timeout_ms: None,
        idle_timeout_ms: None,
        price: None,
        rpm_limit: None,
        tpm_limit: None,
    };
    let model = |name: &str, provider: &str, upstream: &str| RawModel {
        name: name.into(),
        strategy: None,
        routes: vec![route(provider, upstream)],
        fallbacks: Vec::new(),
        context_window_fallbacks: Vec::new(),
        hedge_after_ms: None,
        timeout_ms: None,
        connect_timeout_ms: None,
        first_byte_timeout_ms: None,
        idle_timeout_ms: None,
    };
    raw.models.push(model("mock", "mock", "mock"));
    raw.models.push(model("echo", "mock", "echo"));
    for preset in llmux_providers::registry::presets() {
        let Some(variable) = preset.env_key else { continue };
        if env(variable).is_none_or(|value| value.is_empty()) {
            continue;
        }
        raw.providers.push(RawProvider {
            name: preset.kind.into(),
            kind: preset.kind.into(),
            api_key: Some(format!("${{{variable}}}")),
            ..RawProvider::default()
        });
        for (name, ..) in preset.prices {
            if raw.models.iter().all(|existing| existing.name != *name) {
                raw.models.push(model(name, preset.kind, name));
            }
        }
    }
    resolve(raw, env)
}
