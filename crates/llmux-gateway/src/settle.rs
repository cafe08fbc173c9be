//! Settle: the last phase. Turns what happened into exactly one usage record and the
//! request's metrics. A [`Settlement`] is created once the caller is authenticated
//! and is settled exactly once: explicitly, or by `Drop` when a client goes away
//! mid-stream (recorded with status 499, `client_disconnected`).

use std::sync::Arc;

use llmux_store::UsageRecord;
use llmux_types::{Price, Usage};
use tokio::time::Instant;

use crate::auth::Caller;
use crate::clock;
use crate::error::ErrorCode;
use crate::ledger::Ledger;
use crate::telemetry::{Metrics, RequestObservation};

/// Status recorded when the client disconnected before the response finished.
pub const CLIENT_CLOSED: u16 = 499;

#[derive(Debug)]
pub struct Settlement {
    ledger: Ledger,
    metrics: Arc<Metrics>,
    record: UsageRecord,
    started: Instant,
    first_byte: Option<Instant>,
    price: Option<Price>,
    usage: Usage,
    settled: bool,
    /// Attempts worth recording one by one (kept only once one has failed or a hedge
    /// ran, so a plain success allocates nothing for it).
    attempt_log: Vec<AttemptEntry>,
    /// Keeps the serving route counted as busy until the answer is settled.
    busy: Option<crate::health::Busy>,
    /// The rate-limit windows of the key and its team, told the request's tokens when
    /// it settles.
    reservation: Option<crate::limits::Reservation>,
    /// The window of the route last attempted, if it is limited.
    route_window: Option<crate::limits::Reservation>,
    /// The key's budget, told the request's actual cost when it settles.
    budget: Option<crate::budgets::BudgetReservation>,
}

/// One attempt in the usage record's `attempt_log`.
#[derive(Debug, serde::Serialize)]
struct AttemptEntry {
    provider: String,
    model: String,
    /// `ok`, an error class (`rate_limited`, `timeout`, ...), or `cancelled`.
    outcome: &'static str,
    latency_ms: u64,
}

impl Settlement {
    pub fn new(
        ledger: Ledger,
        metrics: Arc<Metrics>,
        request_id: &str,
        caller: &Caller,
        started: Instant,
    ) -> Settlement {
        Settlement {
            ledger,
            metrics,
            record: UsageRecord {
                request_id: request_id.to_owned(),
                key_id: Some(caller.key.id.clone()),
                team: caller.team.as_ref().map(|team| team.name.clone()),
                ..UsageRecord::default()
            },
            started,
            first_byte: None,
            price: None,
            usage: Usage::default(),
            settled: false,
            attempt_log: Vec::new(),
            busy: None,
            reservation: None,
            route_window: None,
            budget: None,
        }
    }

    pub fn set_model(&mut self, model: &str) {
        self.record.model = model.to_owned();
    }

    /// Marks the start of an attempt at a route.
    pub fn attempt(&mut self, provider: &str, upstream_model: &str, price: Option<Price>) {
        self.record.attempts += 1;
        self.record.provider = Some(provider.to_owned());
        self.record.upstream_model = Some(upstream_model.to_owned());
        self.price = price;
    }

    /// The route whose answer is relayed (with hedging, not necessarily the last one
    /// attempted): its provider, model and price go into the record.
    pub fn served_by(&mut self, provider: &str, upstream_model: &str, price: Option<Price>) {
        if self.record.provider.as_deref() != Some(provider)
            || self.record.upstream_model.as_deref() != Some(upstream_model)
        {
            self.record.provider = Some(provider.to_owned());
            self.record.upstream_model = Some(upstream_model.to_owned());
        }
        self.price = price;
    }

    /// Counts the serving route as busy for as long as this settlement lives (to the end
    /// of a stream), for the `least-busy` strategy.
    pub fn hold(&mut self, busy: crate::health::Busy) {
        self.busy = Some(busy);
    }

    /// Counts the request's tokens against its key's rate-limit window when it settles.
    pub fn reserve(&mut self, reservation: crate::limits::Reservation) {
        self.reservation = Some(reservation);
    }

    /// Counts the request's tokens against the window of the route attempted (the last
    /// one, which is the one that served if any did).
    pub fn reserve_route(&mut self, reservation: crate::limits::Reservation) {
        self.route_window = Some(reservation);
    }

    /// Replaces the request's reserved cost by its actual cost when it settles.
    pub fn reserve_budget(&mut self, reservation: crate::budgets::BudgetReservation) {
        self.budget = Some(reservation);
    }

    /// Records how one attempt ended. A success is logged only after failures (or
    /// beside a cancelled hedge): a single successful attempt needs no log.
    pub fn log_attempt(&mut self, provider: &str, model: &str, outcome: &'static str, latency: std::time::Duration) {
        if outcome == "ok" && self.attempt_log.is_empty() {
            return;
        }
        self.attempt_log.push(AttemptEntry {
            provider: provider.to_owned(),
            model: model.to_owned(),
            outcome,
            latency_ms: u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        });
    }

    pub fn attempts(&self) -> u32 {
        self.record.attempts
    }

    /// The first byte of the answer went to the client.
    pub fn first_byte(&mut self) {
        if self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = usage;
    }

    /// Records a finished request.
    pub fn finish(mut self, status: u16, error_code: Option<ErrorCode>) {
        self.settle(status, error_code.map(ErrorCode::as_str));
    }

    fn settle(&mut self, status: u16, error_code: Option<&str>) {
        if self.settled {
            return;
        }
        self.settled = true;
        let now = Instant::now();
        let cost = self.price.map(|price| price.cost(&self.usage));
        let record = &mut self.record;
        record.status = status;
        record.error_code = error_code.map(str::to_owned);
        record.input_tokens = self.usage.input_tokens;
        record.output_tokens = self.usage.output_tokens;
        record.cached_tokens = self.usage.cached_tokens;
        record.reasoning_tokens = self.usage.reasoning_tokens;
        record.cost_nanos = cost.map(|cost| cost.nanos);
        record.currency = cost.map(|cost| cost.currency.to_string());
        record.latency_ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        record.ttft_ms =
            self.first_byte.map(|at| u64::try_from(at.duration_since(self.started).as_millis()).unwrap_or(u64::MAX));
        record.created_at = clock::wall_ms();
        if let Some(reservation) = self.budget.take() {
            reservation.settle(cost.map_or(0, |cost| cost.nanos), cost.map(|cost| cost.currency));
        }
        let tokens = self.usage.input_tokens.saturating_add(self.usage.output_tokens);
        for reservation in [self.reservation.take(), self.route_window.take()].into_iter().flatten() {
            reservation.settle(tokens);
        }
        if !self.attempt_log.is_empty() {
            record.attempt_log = serde_json::to_string(&self.attempt_log).ok();
        }
        self.metrics.observe_request(&RequestObservation {
            model: &record.model,
            provider: record.provider.as_deref().unwrap_or("none"),
            status,
            seconds: now.duration_since(self.started).as_secs_f64(),
            ttft_seconds: self.first_byte.map(|at| at.duration_since(self.started).as_secs_f64()),
            usage: self.usage,
            cost,
        });
        tracing::debug!(
            target: "llmux::access",
            request_id = %record.request_id,
            model = %record.model,
            provider = record.provider.as_deref().unwrap_or("-"),
            status,
            error_code = record.error_code.as_deref().unwrap_or("-"),
            attempts = record.attempts,
            latency_ms = record.latency_ms,
            input_tokens = record.input_tokens,
            output_tokens = record.output_tokens,
            "Request finished."
        );
        self.ledger.record(std::mem::take(record));
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(CLIENT_CLOSED, Some("client_disconnected"));
        }
    }
}
