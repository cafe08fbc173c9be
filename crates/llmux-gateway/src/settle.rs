//! Settle: the last phase. Turns what happened into exactly one usage record and the
//! request's metrics. A [`Settlement`] is created once the caller is authenticated
//! and is settled exactly once: explicitly, or by `Drop` when a client goes away
//! mid-stream (recorded with status 499, `client_disconnected`).
//!
//! What the answer used reaches the settlement as it arrives: the relay feeds its
//! [`Meter`] per event (the upstream's usage figures, the output relayed so far), so a
//! request that ends early, however it ends, is billed for what it used. Where the
//! upstream's own figures are missing, the input is the request's admission estimate and
//! the output about four bytes per token of what was relayed; the record says so
//! (`usage_estimated`).

use std::sync::Arc;

use llmux_store::UsageRecord;
use llmux_types::chat::StreamEvent;
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
    /// What the answer used, as it arrives.
    meter: Meter,
    /// The request's input tokens as admission estimated them: what an answer without
    /// the upstream's figures is billed for its input.
    input_estimate: u64,
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
            meter: Meter::default(),
            input_estimate: 0,
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

    /// The request's input tokens as estimated for admission (billed when the upstream
    /// reports none).
    pub fn estimate_input(&mut self, tokens: u64) {
        self.input_estimate = tokens;
    }

    /// What the answer used so far: the relay feeds it as events arrive.
    pub fn meter(&mut self) -> &mut Meter {
        &mut self.meter
    }

    /// A complete answer: its usage as the upstream reported it (`None`, or all zero:
    /// it reported none) and the bytes of output it holds (text, reasoning, tool calls).
    pub fn answered(&mut self, usage: Option<Usage>, output_bytes: u64) {
        match usage.filter(|usage| usage.input_tokens > 0 || usage.output_tokens > 0) {
            Some(usage) => self.meter.complete(usage),
            None => self.meter.output_bytes = self.meter.output_bytes.saturating_add(output_bytes),
        }
    }

    /// The tokens to bill and whether any of them are estimated: the upstream's final
    /// figures when it sent them; otherwise, for a request that reached an upstream and
    /// was answered or abandoned (status 200, or 499 after an attempt), the upstream's
    /// figures so far completed by estimates (input: the admission estimate; output:
    /// about four bytes per token of the output relayed). A request that failed before
    /// any answer is billed nothing.
    fn billed(&self, status: u16) -> (Usage, bool) {
        let meter = &self.meter;
        let mut usage = meter.usage.unwrap_or_default();
        let answered = status == 200 || (status == CLIENT_CLOSED && self.record.attempts > 0);
        if meter.usage_final || !answered {
            return (usage, false);
        }
        let mut estimated = false;
        if usage.input_tokens == 0 && self.input_estimate > 0 {
            usage.input_tokens = self.input_estimate;
            estimated = true;
        }
        let output = meter.output_bytes.div_ceil(BYTES_PER_TOKEN);
        if output > usage.output_tokens {
            usage.output_tokens = output;
            estimated = true;
        }
        (usage, estimated)
    }

    /// Records a finished request.
    pub fn finish(mut self, status: u16, error_code: Option<ErrorCode>) {
        self.settle(status, error_code.map(ErrorCode::as_str));
    }

    /// Records a finished request, keeping the settlement (a relay's; its meter stays
    /// readable). Only the first settling counts.
    pub fn end(&mut self, status: u16, error_code: Option<ErrorCode>) {
        self.settle(status, error_code.map(ErrorCode::as_str));
    }

    /// Whether the request is recorded.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// The meter, to read.
    pub fn metered(&self) -> &Meter {
        &self.meter
    }

    fn settle(&mut self, status: u16, error_code: Option<&str>) {
        if self.settled {
            return;
        }
        self.settled = true;
        let now = Instant::now();
        let (usage, estimated) = self.billed(status);
        let cost = self.price.map(|price| price.cost(&usage));
        let record = &mut self.record;
        record.status = status;
        record.error_code = error_code.map(str::to_owned);
        record.input_tokens = usage.input_tokens;
        record.output_tokens = usage.output_tokens;
        record.cached_tokens = usage.cached_tokens;
        record.reasoning_tokens = usage.reasoning_tokens;
        record.usage_estimated = estimated;
        record.cost_nanos = cost.map(|cost| cost.nanos);
        record.currency = cost.map(|cost| cost.currency.to_string());
        record.latency_ms = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        record.ttft_ms =
            self.first_byte.map(|at| u64::try_from(at.duration_since(self.started).as_millis()).unwrap_or(u64::MAX));
        record.created_at = clock::wall_ms();
        if let Some(reservation) = self.budget.take() {
            reservation.settle(cost.map_or(0, |cost| cost.nanos), cost.map(|cost| cost.currency));
        }
        let tokens = usage.input_tokens.saturating_add(usage.output_tokens);
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
            usage,
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
            usage_estimated = record.usage_estimated,
            "Request finished."
        );
        self.ledger.record(std::mem::take(record));
        // The route is no longer busy with this request.
        self.busy = None;
    }
}

/// The gateway's estimate of tokens from text: about four bytes per token (as its
/// input estimates count characters).
const BYTES_PER_TOKEN: u64 = 4;

/// What an answer used so far, fed by the relay as events arrive (and how its stream
/// ended, for the relay).
#[derive(Debug, Default)]
pub struct Meter {
    /// The upstream's latest usage figures (cumulative: the last one seen wins).
    pub usage: Option<Usage>,
    /// `usage` is the upstream's figure for the whole answer: seen after the answer
    /// finished with no output since, or from a complete answer.
    pub usage_final: bool,
    /// Bytes of output relayed so far: text, reasoning, tool names and arguments.
    pub output_bytes: u64,
    pub finished: bool,
    pub error: Option<ErrorCode>,
    /// The upstream sent its last event (a Responses API terminal event, with the
    /// usage; Anthropic's `message_stop`): the request is settled at once, not when the
    /// upstream closes, so that a client that hangs up as soon as it has the end (Codex
    /// does) is billed; nothing after it is relayed.
    pub ended: bool,
}

impl Meter {
    /// Takes note of one canonical event.
    pub fn observe(&mut self, event: &StreamEvent<'_>) {
        match event {
            StreamEvent::Text { text, .. } | StreamEvent::Reasoning { text, .. } => self.relayed(text.len()),
            StreamEvent::ToolCall { name, arguments, .. } => {
                self.relayed(arguments.len() + name.as_ref().map_or(0, |name| name.len()));
            }
            // All zero: the upstream reported nothing.
            StreamEvent::Usage(seen) if seen.input_tokens > 0 || seen.output_tokens > 0 => {
                self.usage = Some(*seen);
                self.usage_final = self.finished;
            }
            StreamEvent::Finish { .. } => self.finished = true,
            StreamEvent::Error { .. } => self.error = Some(ErrorCode::UpstreamError),
            _ => {}
        }
    }

    /// `bytes` of output relayed (text, reasoning, tool calls).
    pub fn relayed(&mut self, bytes: usize) {
        if bytes > 0 {
            self.output_bytes = self.output_bytes.saturating_add(bytes as u64);
            // More output after a final-looking usage (another choice): not final.
            self.usage_final = false;
        }
    }

    /// The upstream's usage for the whole answer.
    pub fn complete(&mut self, usage: Usage) {
        self.usage = Some(usage);
        self.usage_final = true;
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(CLIENT_CLOSED, Some("client_disconnected"));
        }
    }
}
