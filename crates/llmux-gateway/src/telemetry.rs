//! Metrics, declared in one place and rendered in the Prometheus text format.
//!
//! Label sets are low-cardinality (model, provider, status, kind): never a key or a
//! request id. Counters are atomics behind a map lookup keyed by the label values.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Histogram buckets in seconds.
const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        for (bucket, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bucket {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Family<T> {
    series: Mutex<BTreeMap<Labels, Arc<T>>>,
}

impl<T: Default> Family<T> {
    fn get(&self, labels: Labels) -> Arc<T> {
        self.series.lock().entry(labels).or_default().clone()
    }
}

/// Every metric llmux exports.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Family<AtomicU64>,
    duration: Family<Histogram>,
    ttft: Family<Histogram>,
    tokens: Family<AtomicU64>,
    /// Nano-units.
    cost: Family<AtomicU64>,
    attempts: Family<AtomicU64>,
    healthy: Family<AtomicU64>,
    ledger_records: AtomicU64,
}

/// What one finished request contributes.
pub struct RequestObservation<'a> {
    pub model: &'a str,
    pub provider: &'a str,
    pub status: u16,
    pub seconds: f64,
    pub ttft_seconds: Option<f64>,
    pub usage: llmux_types::Usage,
    pub cost: Option<llmux_types::Money>,
}

impl Metrics {
    pub fn observe_request(&self, observation: &RequestObservation<'_>) {
        let model = observation.model.to_owned();
        let provider = observation.provider.to_owned();
        self.requests
            .get(vec![
                ("model", model.clone()),
                ("provider", provider.clone()),
                ("status", observation.status.to_string()),
            ])
            .fetch_add(1, Ordering::Relaxed);
        self.duration.get(vec![("model", model.clone())]).observe(observation.seconds);
        if let Some(ttft) = observation.ttft_seconds {
            self.ttft.get(vec![("model", model.clone())]).observe(ttft);
        }
        let usage = &observation.usage;
        for (kind, count) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached", usage.cached_tokens),
            ("reasoning", usage.reasoning_tokens),
        ] {
            if count > 0 {
                self.tokens
                    .get(vec![("model", model.clone()), ("provider", provider.clone()), ("kind", kind.to_owned())])
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
        if let Some(cost) = observation.cost
            && cost.nanos > 0
        {
            self.cost
                .get(vec![("model", model), ("provider", provider), ("currency", cost.currency.to_string())])
                .fetch_add(cost.nanos as u64, Ordering::Relaxed);
        }
        self.ledger_records.fetch_add(1, Ordering::Relaxed);
    }

    /// One upstream attempt's outcome (`ok` or an error kind label).
    pub fn observe_attempt(&self, model: &str, provider: &str, outcome: &str) {
        self.attempts
            .get(vec![("provider", provider.to_owned()), ("outcome", outcome.to_owned())])
            .fetch_add(1, Ordering::Relaxed);
        let healthy = u64::from(outcome == "ok" || outcome == "bad_request" || outcome == "context_length");
        self.healthy
            .get(vec![("model", model.to_owned()), ("provider", provider.to_owned())])
            .store(healthy, Ordering::Relaxed);
    }

    /// Whether the last attempt on a route succeeded (`None` if never tried).
    pub fn route_healthy(&self, model: &str, provider: &str) -> Option<bool> {
        let labels = vec![("model", model.to_owned()), ("provider", provider.to_owned())];
        self.healthy.series.lock().get(&labels).map(|value| value.load(Ordering::Relaxed) == 1)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        counter(
            &mut out,
            "llmux_requests_total",
            "Requests served, by public model, provider and HTTP status.",
            &self.requests,
            1.0,
        );
        histogram(
            &mut out,
            "llmux_request_duration_seconds",
            "Time from request to the end of the response.",
            &self.duration,
        );
        histogram(
            &mut out,
            "llmux_time_to_first_token_seconds",
            "Time from request to the first streamed token.",
            &self.ttft,
        );
        counter(
            &mut out,
            "llmux_tokens_total",
            "Tokens metered, by kind (input, output, cached, reasoning).",
            &self.tokens,
            1.0,
        );
        counter(&mut out, "llmux_cost_total", "Cost metered, in units of the currency label.", &self.cost, 1e-9);
        counter(
            &mut out,
            "llmux_upstream_attempts_total",
            "Upstream attempts by provider and outcome.",
            &self.attempts,
            1.0,
        );
        gauge(&mut out, "llmux_route_healthy", "1 if the route's last attempt succeeded.", &self.healthy);
        let _ = writeln!(out, "# HELP llmux_usage_records_total Usage records handed to the ledger writer.");
        let _ = writeln!(out, "# TYPE llmux_usage_records_total counter");
        let _ = writeln!(out, "llmux_usage_records_total {}", self.ledger_records.load(Ordering::Relaxed));
        out
    }
}

fn write_labels(out: &mut String, labels: &Labels, extra: Option<(&str, &str)>) {
    if labels.is_empty() && extra.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().map(|(n, v)| (*n, v.as_str())).chain(extra) {
        if !first {
            out.push(',');
        }
        first = false;
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{name}=\"{escaped}\"");
    }
    out.push('}');
}

fn counter(out: &mut String, name: &str, help: &str, family: &Family<AtomicU64>, scale: f64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (labels, value) in family.series.lock().iter() {
        out.push_str(name);
        write_labels(out, labels, None);
        let value = value.load(Ordering::Relaxed);
        if (scale - 1.0).abs() < f64::EPSILON {
            let _ = writeln!(out, " {value}");
        } else {
            let _ = writeln!(out, " {}", value as f64 * scale);
        }
    }
}

fn gauge(out: &mut String, name: &str, help: &str, family: &Family<AtomicU64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in family.series.lock().iter() {
        out.push_str(name);
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", value.load(Ordering::Relaxed));
    }
}

fn histogram(out: &mut String, name: &str, help: &str, family: &Family<Histogram>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (labels, histogram) in family.series.lock().iter() {
        for (bucket, count) in BUCKETS.iter().zip(&histogram.counts) {
            let _ = write!(out, "{name}_bucket");
            write_labels(out, labels, Some(("le", &bucket.to_string())));
            let _ = writeln!(out, " {}", count.load(Ordering::Relaxed));
        }
        let total = histogram.count.load(Ordering::Relaxed);
        let _ = write!(out, "{name}_bucket");
        write_labels(out, labels, Some(("le", "+Inf")));
        let _ = writeln!(out, " {total}");
        let _ = write!(out, "{name}_sum");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = write!(out, "{name}_count");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {total}");
    }
}
