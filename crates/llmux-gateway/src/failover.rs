//! Step 4 of the lifecycle: attempts at the planned routes in order until one
//! answers. Failover happens only before the first byte reaches the client; a caller
//! fault is never retried elsewhere; a context-length error swaps in the model's
//! `context_window_fallbacks` once; a hedged model races the next route after
//! `hedge_after_ms`; `server.request_timeout_ms` bounds all attempts together. Every
//! attempt updates its route's health and the usage record's attempt log; the route
//! that answers becomes the pin of the request's conversation (`affinity`).

use std::future::Future;
use std::time::Duration;

use llmux_providers::{ErrorKind, UpstreamError};
use llmux_types::Region;
use tokio::time::Instant;

use crate::affinity::Conversation;
use crate::attempt::Success;
use crate::error::{FailedAttempt, GatewayError};
use crate::outcome::{Failure, Reply, RequestMeta};
use crate::route::Candidate;
use crate::router::{self, TokenEstimate};
use crate::settle::Settlement;
use crate::{Gateway, Runtime, clock, fleet, limits};

/// What step 4 tries: the planned routes, for the caller's region, and the conversation
/// whose pin the route that answers becomes.
pub(crate) struct Plan<'c> {
    pub candidates: Vec<Candidate>,
    pub region: Option<Region>,
    pub conversation: Option<Conversation>,
    /// Whose request it is: a `context_window_fallbacks` model the caller may not use
    /// is not tried (`None`: any may be).
    pub caller: Option<&'c crate::auth::Caller>,
}

/// How a request tries one route; [`Gateway::fail_over`] calls it per candidate.
pub(crate) trait Attempts: Sync {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Result<Success, UpstreamError>> + Send;
}

impl Gateway {
    /// Step 4: tries `candidates` in order until one answers, failing over on
    /// upstream faults before any byte reaches the client; then replies (5, 6).
    pub(crate) async fn fail_over(
        &self,
        runtime: &Runtime,
        meta: &RequestMeta,
        plan: Plan<'_>,
        mut settlement: Settlement,
        attempts: &impl Attempts,
    ) -> Result<Reply, Failure> {
        let Plan { mut candidates, region, conversation, caller } = plan;
        let mut failures = Vec::new();
        let mut next = 0;
        let mut widened = false;
        // The last route passed over because its own rate limit was reached.
        let mut route_limited = None;
        // The overall deadline (`server.request_timeout_ms`), over every attempt.
        let deadline = runtime.config.server.request_timeout.map(|timeout| meta.started + timeout);
        while let Some(&candidate) = candidates.get(next) {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
            next += 1;
            let route = runtime.route(candidate);
            if let Err(refusal) = self.route_window(runtime, route, &mut settlement).await {
                route_limited = Some(refusal);
                continue;
            }
            settlement.attempt(&runtime.provider(candidate).name, &route.model, route.price);
            let (winner, outcome) = match self.hedge_delay(runtime, candidate, candidates.get(next).copied()) {
                None => self.attempt_once(runtime, region, candidate, deadline, &mut settlement, attempts).await,
                Some(after) => {
                    // Boxed: two attempts in one future make it large, and hedging is
                    // opt-in; the plain path's future stays small.
                    let hedged = (candidate, candidates[next], after);
                    let hedging = self.hedge(runtime, meta, region, hedged, &mut settlement, &mut failures, attempts);
                    let (winner, outcome, started_hedge) = match deadline {
                        None => Box::pin(hedging).await,
                        Some(deadline) => tokio::time::timeout_at(deadline, Box::pin(hedging))
                            .await
                            .unwrap_or_else(|_| (candidate, Err(past_deadline()), true)),
                    };
                    if started_hedge {
                        next += 1;
                    }
                    (winner, outcome)
                }
            };
            let error = match outcome {
                Ok(success) => {
                    if let Some(conversation) = &conversation {
                        self.served(runtime, conversation, winner);
                    }
                    let (route, provider) = (runtime.route(winner), runtime.provider(winner));
                    settlement.served_by(&provider.name, &route.model, route.price);
                    settlement.hold(runtime.health.route(winner).enter_owned());
                    return Ok(success.reply(settlement, &provider.name));
                }
                Err(error) => error,
            };
            let kind = error.kind;
            record_failure(runtime, meta, &mut failures, winner, error);
            // Too long for this model: its `context_window_fallbacks` (larger models)
            // replace what is left to try, once.
            if kind == ErrorKind::ContextLength && !widened {
                widened = true;
                let larger = context_window_candidates(runtime, winner.model, region, caller);
                if !larger.is_empty() {
                    candidates = larger;
                    next = 0;
                    continue;
                }
            }
            if !kind.may_fail_over() {
                break;
            }
        }
        Err(all_failed(meta, settlement, failures, route_limited))
    }

    /// How long to wait for `candidate` before also trying `next` (the model's
    /// `hedge_after_ms`, or its route's p95), if the model hedges and `next` has room.
    fn hedge_delay(&self, runtime: &Runtime, candidate: Candidate, next: Option<Candidate>) -> Option<Duration> {
        let next = next?;
        let after = match runtime.config.models[candidate.model].hedge_after? {
            llmux_config::Hedge::After(after) => after,
            llmux_config::Hedge::P95 => runtime.health.route(candidate).p95_latency()?,
        };
        // The hedge would go past the next route's own rate limit.
        self.route_has_room(runtime, next).then_some(after)
    }

    /// One attempt, bounded by the request's deadline if it has one, logged.
    async fn attempt_once(
        &self,
        runtime: &Runtime,
        region: Option<Region>,
        candidate: Candidate,
        deadline: Option<Instant>,
        settlement: &mut Settlement,
        attempts: &impl Attempts,
    ) -> (Candidate, Result<Success, UpstreamError>) {
        let (outcome, elapsed) = match deadline {
            None => self.attempt(runtime, region, candidate, attempts).await,
            // Boxed: only requests under a deadline carry its timer.
            Some(deadline) => {
                let started = Instant::now();
                Box::pin(tokio::time::timeout_at(deadline, self.attempt(runtime, region, candidate, attempts)))
                    .await
                    .unwrap_or_else(|_| (Err(past_deadline()), started.elapsed()))
            }
        };
        log_attempt(runtime, settlement, candidate, outcome_label(&outcome), elapsed);
        (candidate, outcome)
    }

    /// Counts an attempt against its route's own rate limits (`rpm_limit`, `tpm_limit`
    /// on the route; one window per provider and upstream model), or refuses it.
    async fn route_window(
        &self,
        runtime: &Runtime,
        route: &llmux_config::RouteConfig,
        settlement: &mut Settlement,
    ) -> Result<(), limits::Refusal> {
        let Some(scope) = route_scope(runtime, route) else { return Ok(()) };
        if let Some((reservation, _)) = self.admit_limits(std::slice::from_ref(&scope)).await? {
            settlement.reserve_route(reservation);
        }
        Ok(())
    }

    /// Whether `candidate`'s route is below its own rate limits (without counting).
    fn route_has_room(&self, runtime: &Runtime, candidate: Candidate) -> bool {
        let Some(scope) = route_scope(runtime, runtime.route(candidate)) else { return true };
        self.limits.has_room(&scope, u64::try_from(clock::wall_ms()).unwrap_or(0), self.fleet_up().is_some())
    }

    /// A hedged attempt: `first`; if it has not answered within `after`, `second` too.
    /// The first answer wins and the other is dropped (cancelled, so nothing more of it
    /// is consumed or billed); a failure waits for the other. Returns the route whose
    /// outcome counts, that outcome, and whether `second` was started.
    #[allow(clippy::too_many_arguments)]
    async fn hedge(
        &self,
        runtime: &Runtime,
        meta: &RequestMeta,
        region: Option<Region>,
        (first_route, second_route, after): (Candidate, Candidate, Duration),
        settlement: &mut Settlement,
        failures: &mut Vec<FailedAttempt>,
        attempts: &impl Attempts,
    ) -> (Candidate, Result<Success, UpstreamError>, bool) {
        let first = self.attempt(runtime, region, first_route, attempts);
        tokio::pin!(first);
        tokio::select! {
            (outcome, elapsed) = &mut first => {
                log_attempt(runtime, settlement, first_route, outcome_label(&outcome), elapsed);
                return (first_route, outcome, false);
            }
            () = tokio::time::sleep(after) => {}
        }
        let route = runtime.route(second_route);
        if self.route_window(runtime, route, settlement).await.is_err() {
            // The second route reached its own rate limit meanwhile: no hedge.
            let (outcome, elapsed) = first.await;
            log_attempt(runtime, settlement, first_route, outcome_label(&outcome), elapsed);
            return (first_route, outcome, false);
        }
        settlement.attempt(&runtime.config.providers[route.provider].name, &route.model, route.price);
        let hedge_started = Instant::now();
        let second = self.attempt(runtime, region, second_route, attempts);
        tokio::pin!(second);
        let (won, lost, outcome, elapsed) = tokio::select! {
            (outcome, elapsed) = &mut first => (first_route, second_route, outcome, elapsed),
            (outcome, elapsed) = &mut second => (second_route, first_route, outcome, elapsed),
        };
        if outcome.is_ok() {
            // The loser as cancelled, then the winner.
            log_attempt(runtime, settlement, lost, "cancelled", hedge_started.elapsed());
            log_attempt(runtime, settlement, won, "ok", elapsed);
            return (won, outcome, true);
        }
        if let Err(error) = outcome {
            log_attempt(runtime, settlement, won, error.kind.label(), elapsed);
            record_failure(runtime, meta, failures, won, error);
        }
        let (outcome, elapsed) = if won == first_route { second.await } else { first.await };
        log_attempt(runtime, settlement, lost, outcome_label(&outcome), elapsed);
        (lost, outcome, true)
    }

    /// One attempt at one route, with its route-health bookkeeping and metrics.
    async fn attempt(
        &self,
        runtime: &Runtime,
        region: Option<Region>,
        candidate: Candidate,
        attempts: &impl Attempts,
    ) -> (Result<Success, UpstreamError>, Duration) {
        let health = runtime.health.route(candidate);
        let started = Instant::now();
        let outcome = {
            let _in_flight = health.enter();
            attempts.run(candidate).await
        };
        let elapsed = started.elapsed();
        let route = runtime.route(candidate);
        match &outcome {
            Ok(_) => health.succeeded(elapsed),
            Err(error) => {
                let now = clock::monotonic_ms();
                if let Some(until) = health.failed(error, region, &runtime.health.policy, now) {
                    // The other instances rest it too (in wall-clock time: each instance
                    // keeps health on its own monotonic clock).
                    let until = clock::wall_ms().saturating_add(i64::try_from(until - now).unwrap_or(i64::MAX));
                    fleet::announce(
                        self.fleet_up(),
                        llmux_fleet::FleetEvent::RouteResting {
                            provider: runtime.config.providers[route.provider].name.clone(),
                            upstream_model: route.model.clone(),
                            until_ms: until,
                        },
                    );
                }
            }
        }
        let label = outcome.as_ref().map_or_else(|error| error.kind.label(), |_| "ok");
        self.metrics.observe_attempt(
            &runtime.config.models[candidate.model].name,
            &runtime.config.providers[route.provider].name,
            label,
        );
        (outcome, elapsed)
    }
}

/// The window of a route's own rate limits, if it has any.
fn route_scope(runtime: &Runtime, route: &llmux_config::RouteConfig) -> Option<limits::Scope> {
    if route.rpm_limit.is_none() && route.tpm_limit.is_none() {
        return None;
    }
    let provider = &runtime.config.providers[route.provider].name;
    Some(limits::Scope::route(provider, &route.model, route.rpm_limit, route.tpm_limit))
}

/// The request's deadline passed before an answer.
fn past_deadline() -> UpstreamError {
    UpstreamError { message: None, ..UpstreamError::new(ErrorKind::Timeout) }
}

/// Settles a request no route answered: 429 if every route was at its own rate limit
/// (the caller may retry after it), else the attempts' failure.
fn all_failed(
    meta: &RequestMeta,
    settlement: Settlement,
    failures: Vec<FailedAttempt>,
    route_limited: Option<limits::Refusal>,
) -> Failure {
    let attempts = settlement.attempts();
    let (error, provider) = match route_limited {
        Some(refusal) if attempts == 0 => (GatewayError::RateLimited(Box::new(refusal)), None),
        _ => {
            let provider = failures.last().map(|failure| failure.provider.clone());
            let error = GatewayError::Upstream(failures);
            tracing::warn!(request_id = %meta.request_id, error = %error, "Request failed upstream.");
            (error, provider)
        }
    };
    let code = error.code();
    settlement.finish(code.status(), Some(code));
    Failure { error, attempts, provider, rate_limits: None }
}

/// An attempt's outcome as the usage record's attempt log and the metrics name it.
fn outcome_label(outcome: &Result<Success, UpstreamError>) -> &'static str {
    outcome.as_ref().map_or_else(|error| error.kind.label(), |_| "ok")
}

/// Adds an attempt to the usage record's attempt log.
fn log_attempt(
    runtime: &Runtime,
    settlement: &mut Settlement,
    candidate: Candidate,
    outcome: &'static str,
    latency: Duration,
) {
    let route = runtime.route(candidate);
    settlement.log_attempt(&runtime.config.providers[route.provider].name, &route.model, outcome, latency);
}

/// Keeps a failed attempt for the error the client gets if nothing succeeds.
fn record_failure(
    runtime: &Runtime,
    meta: &RequestMeta,
    failures: &mut Vec<FailedAttempt>,
    candidate: Candidate,
    error: UpstreamError,
) {
    let route = runtime.route(candidate);
    let provider = &runtime.config.providers[route.provider];
    tracing::debug!(request_id = %meta.request_id, provider = %provider.name, error = %error, "Upstream attempt failed.");
    failures.push(FailedAttempt { provider: provider.name.clone(), model: route.model.clone(), error });
}

/// The routes of `model`'s `context_window_fallbacks`, in order (each planned as the
/// model itself would be; models the caller may not use, or whose routes its region
/// cannot use, are skipped).
fn context_window_candidates(
    runtime: &Runtime,
    model: usize,
    region: Option<Region>,
    caller: Option<&crate::auth::Caller>,
) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for name in &runtime.config.models[model].context_window_fallbacks {
        if let Some(index) = runtime.model_index(name)
            && caller.is_none_or(|caller| caller.may_use(name))
            && let Ok(planned) = router::plan(runtime, index, region, TokenEstimate::default())
        {
            for candidate in planned {
                if !candidates.contains(&candidate) {
                    candidates.push(candidate);
                }
            }
        }
    }
    candidates
}
