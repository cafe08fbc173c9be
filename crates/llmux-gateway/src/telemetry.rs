//! Metrics, declared in one place and rendered in the Prometheus text format.
//!
//! Label sets are low-cardinality (model, provider, status, kind, currency): never a
//! key or a request id. Series live in maps keyed by the label values; a request
//! looks its series up by `&str` under a read lock, so the steady state allocates
//! nothing.

use crate::FastMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use llmux_types::{Currency, Money, Usage};
use parking_lot::{Mutex, RwLock};

use crate::affinity::PinOutcome;

/// Histogram buckets in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Token kinds, in `llmux_tokens_total{kind}` order.
const TOKEN_KINDS: [&str; 4] = ["input", "output", "cached", "reasoning"];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Series of one (model, provider) pair.
#[derive(Debug, Default)]
struct RouteSeries {
    statuses: Mutex<Vec<(u16, u64)>>,
    tokens: [AtomicU64; 4],
    /// Nano-units per currency.
    cost: Mutex<Vec<(Currency, u64)>>,
    /// 0 = never tried, 1 = last attempt ok, 2 = last attempt failed.
    health: AtomicU8,
}

#[derive(Debug, Default)]
struct ModelSeries {
    duration: Histogram,
    ttft: Histogram,
    routes: RwLock<FastMap<String, Arc<RouteSeries>>>,
    /// Requests naming a conversation, by how they stood to its pin (`PinOutcome::ALL` order).
    affinity: [AtomicU64; 3],
}

/// Looks up `name` under a read lock; inserts under the write lock the first time.
fn series<T: Default>(map: &RwLock<FastMap<String, Arc<T>>>, name: &str) -> Arc<T> {
    if let Some(found) = map.read().get(name) {
        return found.clone();
    }
    map.write().entry(name.to_owned()).or_default().clone()
}

fn bump<K: PartialEq + Copy>(list: &Mutex<Vec<(K, u64)>>, key: K, by: u64) {
    let mut list = list.lock();
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => *count += by,
        None => list.push((key, by)),
    }
}

/// Attempt counts of one provider, by outcome label.
type Outcomes = Mutex<Vec<(&'static str, u64)>>;

/// Every metric llmux exports.
#[derive(Debug, Default)]
pub struct Metrics {
    models: RwLock<FastMap<String, Arc<ModelSeries>>>,
    /// Attempts per provider, by outcome label.
    attempts: RwLock<FastMap<String, Arc<Outcomes>>>,
    ledger_records: AtomicU64,
    /// Budget alerts raised, by scope (`key`, `team`) and threshold percentage.
    budget_alerts: Mutex<Vec<((&'static str, u8), u64)>>,
    /// Redis: 0 when not configured, 1 when reachable, 2 when not.
    redis: AtomicU8,
}

/// What one finished request contributes.
pub struct RequestObservation<'a> {
    pub model: &'a str,
    pub provider: &'a str,
    pub status: u16,
    pub seconds: f64,
    pub ttft_seconds: Option<f64>,
    pub usage: Usage,
    pub cost: Option<Money>,
}

impl Metrics {
    pub fn observe_request(&self, observation: &RequestObservation<'_>) {
        let model = series(&self.models, observation.model);
        model.duration.observe(observation.seconds);
        if let Some(ttft) = observation.ttft_seconds {
            model.ttft.observe(ttft);
        }
        let route = series(&model.routes, observation.provider);
        bump(&route.statuses, observation.status, 1);
        let usage = &observation.usage;
        for (counter, count) in route.tokens.iter().zip([
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_tokens,
            usage.reasoning_tokens,
        ]) {
            if count > 0 {
                counter.fetch_add(count, Ordering::Relaxed);
            }
        }
        if let Some(cost) = observation.cost
            && cost.nanos > 0
        {
            bump(&route.cost, cost.currency, cost.nanos as u64);
        }
        self.ledger_records.fetch_add(1, Ordering::Relaxed);
    }

    /// One upstream attempt's outcome (`ok` or an error kind label).
    pub fn observe_attempt(&self, model: &str, provider: &str, outcome: &'static str) {
        bump(&series(&self.attempts, provider), outcome, 1);
        // A caller's bad request says nothing about the route's health.
        let healthy = matches!(outcome, "ok" | "bad_request" | "context_length" | "content_filtered");
        let route = series(&series(&self.models, model).routes, provider);
        route.health.store(if healthy { 1 } else { 2 }, Ordering::Relaxed);
    }

    /// A request naming a conversation was served: how it stood to the conversation's pin.
    pub fn observe_affinity(&self, model: &str, outcome: PinOutcome) {
        let at = PinOutcome::ALL.iter().position(|known| *known == outcome).unwrap_or(0);
        series(&self.models, model).affinity[at].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the last attempt on a route succeeded (`None` if never tried).
    pub fn observe_budget_alert(&self, scope: &'static str, percent: u8) {
        bump(&self.budget_alerts, (scope, percent), 1);
    }

    /// Whether the configured Redis answers (`None`: no Redis configured).
    pub fn set_redis_up(&self, up: Option<bool>) {
        self.redis.store(up.map_or(0, |up| if up { 1 } else { 2 }), Ordering::Relaxed);
    }

    pub fn route_healthy(&self, model: &str, provider: &str) -> Option<bool> {
        let models = self.models.read();
        let routes = models.get(model)?.routes.read();
        match routes.get(provider)?.health.load(Ordering::Relaxed) {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.render_with(&|_, _| false)
    }

    /// The Prometheus text exposition; routes for which `resting(model, provider)` holds
    /// (an open circuit or a rate-limit rest) are reported unhealthy.
    pub fn render_with(&self, resting: &dyn Fn(&str, &str) -> bool) -> String {
        let mut out = String::with_capacity(4096);
        let models = sorted(&self.models.read());

        header(
            &mut out,
            "llmux_requests_total",
            "counter",
            "Requests served, by public model, provider and HTTP status.",
        );
        for_routes(&models, |model, provider, route| {
            let mut statuses = route.statuses.lock().clone();
            statuses.sort_unstable();
            for (status, count) in statuses {
                let _ = writeln!(
                    out,
                    "llmux_requests_total{{model=\"{}\",provider=\"{}\",status=\"{status}\"}} {count}",
                    escape(model),
                    escape(provider)
                );
            }
        });
        histogram(
            &mut out,
            "llmux_request_duration_seconds",
            "Time from request to the end of the response.",
            &models,
            |m| &m.duration,
        );
        histogram(
            &mut out,
            "llmux_time_to_first_token_seconds",
            "Time from request to the first byte of the answer.",
            &models,
            |m| &m.ttft,
        );
        header(
            &mut out,
            "llmux_tokens_total",
            "counter",
            "Tokens metered, by kind (input, output, cached, reasoning).",
        );
        for_routes(&models, |model, provider, route| {
            for (kind, counter) in TOKEN_KINDS.iter().zip(&route.tokens) {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "llmux_tokens_total{{model=\"{}\",provider=\"{}\",kind=\"{kind}\"}} {count}",
                        escape(model),
                        escape(provider)
                    );
                }
            }
        });
        header(&mut out, "llmux_cost_total", "counter", "Cost metered, in units of the currency label.");
        for_routes(&models, |model, provider, route| {
            for (currency, nanos) in route.cost.lock().iter() {
                let _ = writeln!(
                    out,
                    "llmux_cost_total{{model=\"{}\",provider=\"{}\",currency=\"{currency}\"}} {}",
                    escape(model),
                    escape(provider),
                    llmux_types::money::format_nanos(i64::try_from(*nanos).unwrap_or(i64::MAX))
                );
            }
        });
        header(&mut out, "llmux_upstream_attempts_total", "counter", "Upstream attempts by provider and outcome.");
        for (provider, outcomes) in sorted(&self.attempts.read()) {
            let mut outcomes = outcomes.lock().clone();
            outcomes.sort_unstable();
            for (outcome, count) in outcomes {
                let _ = writeln!(
                    out,
                    "llmux_upstream_attempts_total{{provider=\"{}\",outcome=\"{outcome}\"}} {count}",
                    escape(&provider)
                );
            }
        }
        header(
            &mut out,
            "llmux_route_healthy",
            "gauge",
            "1 if the route's last attempt succeeded and it is not resting (open circuit, rate limit), else 0.",
        );
        for_routes(&models, |model, provider, route| {
            let health = route.health.load(Ordering::Relaxed);
            if health != 0 {
                let _ = writeln!(
                    out,
                    "llmux_route_healthy{{model=\"{}\",provider=\"{}\"}} {}",
                    escape(model),
                    escape(provider),
                    u8::from(health == 1 && !resting(model, provider))
                );
            }
        });
        header(
            &mut out,
            "llmux_affinity_total",
            "counter",
            "Served requests naming a conversation, by how they stood to its pinned route: hit (the pinned route \
             served), miss (no pin known), moved (another route served; the pin moved to it).",
        );
        for (model, series) in &models {
            for (outcome, counter) in PinOutcome::ALL.iter().zip(&series.affinity) {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "llmux_affinity_total{{model=\"{}\",outcome=\"{}\"}} {count}",
                        escape(model),
                        outcome.label()
                    );
                }
            }
        }
        header(&mut out, "llmux_usage_records_total", "counter", "Usage records handed to the ledger writer.");
        let _ = writeln!(out, "llmux_usage_records_total {}", self.ledger_records.load(Ordering::Relaxed));
        header(
            &mut out,
            "llmux_budget_alerts_total",
            "counter",
            "Budgets whose spend crossed an alert threshold, by scope and percentage.",
        );
        let mut alerts = self.budget_alerts.lock().clone();
        alerts.sort_unstable();
        for ((scope, percent), count) in alerts {
            let _ = writeln!(out, "llmux_budget_alerts_total{{scope=\"{scope}\",threshold=\"{percent}\"}} {count}");
        }
        let redis = self.redis.load(Ordering::Relaxed);
        if redis != 0 {
            header(
                &mut out,
                "llmux_redis_up",
                "gauge",
                "1 if Redis (fleet-wide limits, budgets and notices) answers, 0 if this instance runs on local state.",
            );
            let _ = writeln!(out, "llmux_redis_up {}", u8::from(redis == 1));
        }
        out
    }
}

fn sorted<T>(map: &FastMap<String, Arc<T>>) -> Vec<(String, Arc<T>)> {
    let mut entries: Vec<(String, Arc<T>)> = map.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

fn for_routes(models: &[(String, Arc<ModelSeries>)], mut each: impl FnMut(&str, &str, &RouteSeries)) {
    for (model, series) in models {
        for (provider, route) in sorted(&series.routes.read()) {
            each(model, &provider, &route);
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    models: &[(String, Arc<ModelSeries>)],
    pick: impl Fn(&ModelSeries) -> &Histogram,
) {
    header(out, name, "histogram", help);
    for (model, series) in models {
        let histogram = pick(series);
        let total = histogram.count.load(Ordering::Relaxed);
        if total == 0 {
            continue;
        }
        let model = escape(model);
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&histogram.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum{{model=\"{model}\"}} {}",
            histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{model=\"{model}\"}} {total}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_health() {
        let metrics = Metrics::default();
        let usage = Usage { input_tokens: 10, output_tokens: 5, ..Usage::default() };
        for status in [200, 200, 502] {
            metrics.observe_request(&RequestObservation {
                model: "chat",
                provider: "deepseek",
                status,
                seconds: 0.02,
                ttft_seconds: Some(0.004),
                usage,
                cost: Some(Money::new(1_500, Currency::CNY)),
            });
        }
        metrics.observe_attempt("chat", "deepseek", "ok");
        metrics.observe_attempt("chat", "qwen", "server");
        metrics.observe_affinity("chat", PinOutcome::Hit);
        metrics.observe_affinity("chat", PinOutcome::Hit);
        metrics.observe_affinity("chat", PinOutcome::Moved);
        let text = metrics.render();
        for line in [
            r#"llmux_requests_total{model="chat",provider="deepseek",status="200"} 2"#,
            r#"llmux_requests_total{model="chat",provider="deepseek",status="502"} 1"#,
            r#"llmux_tokens_total{model="chat",provider="deepseek",kind="input"} 30"#,
            r#"llmux_cost_total{model="chat",provider="deepseek",currency="CNY"} 0.0000045"#,
            r#"llmux_request_duration_seconds_bucket{model="chat",le="0.01"} 0"#,
            r#"llmux_request_duration_seconds_bucket{model="chat",le="0.025"} 3"#,
            r#"llmux_time_to_first_token_seconds_bucket{model="chat",le="0.005"} 3"#,
            r#"llmux_upstream_attempts_total{provider="qwen",outcome="server"} 1"#,
            r#"llmux_route_healthy{model="chat",provider="deepseek"} 1"#,
            r#"llmux_route_healthy{model="chat",provider="qwen"} 0"#,
            "llmux_usage_records_total 3",
            r#"llmux_affinity_total{model="chat",outcome="hit"} 2"#,
            r#"llmux_affinity_total{model="chat",outcome="moved"} 1"#,
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        assert!(!text.contains(r#"outcome="miss""#), "no zero series: {text}");
        assert_eq!(metrics.route_healthy("chat", "qwen"), Some(false));
        assert_eq!(metrics.route_healthy("chat", "nope"), None);
    }
}
