//! Route health: what recent attempts say about each route, read by the router (step 3)
//! and written by the failover loop (step 4). Lock-free on the hot path: counters and
//! deadlines are atomics; only a region refusal (rare) takes a lock.
//!
//! - **Circuit breaking**: `server.circuit_failures` (default 5) consecutive upstream
//!   failures (connect errors, timeouts, 5xx, overload, unreadable or oversized answers,
//!   refused credentials) open a
//!   route's circuit for `server.circuit_cooldown_ms` (default 30 s). After the cooldown
//!   one request (the first to plan with it) probes the route; success closes the
//!   circuit, failure opens it again.
//! - **Rate limits**: a 429 rests the route for its `Retry-After` (at least
//!   [`MIN_RATE_LIMIT_REST`] when the provider gave none, at most
//!   `server.max_retry_after_s`); it is not a failure.
//! - **Region refusals**: a provider's refusal closes the route for
//!   `server.region_refusal_ttl_s`: for a caller with a declared region, for that region
//!   (other regions keep it); for a caller without one, for the deployment (every
//!   caller, with a region or not: the provider judged this gateway's egress, which
//!   they all share). A refused route is not planned at all, not even last.
//! - **Latency**: an EWMA of time to the response head, for the `latency` strategy.
//! - **In flight**: attempts waiting for their response head, and answers being relayed
//!   (a stream counts until it ends), for `least-busy`.
//!
//! Resting routes are not skipped: the router puts them after every available route,
//! so a request still gets an answer when nothing else is left.
//!
//! Times are milliseconds on a monotonic clock (`tokio::time::Instant`, which tests can
//! pause). A reload keeps the health of every route that is still there (same model,
//! provider and upstream model); new routes start fresh.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use llmux_providers::{ErrorKind, UpstreamError};
use llmux_types::Region;

use crate::route::Candidate;

/// When circuits open and how long routes rest (from `[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failures that open a route's circuit.
    pub failures_to_open: u32,
    /// How long an open circuit rests the route before a probe.
    pub cooldown: Duration,
    /// How long a region refusal closes a route for that region.
    pub refusal_ttl: Duration,
    /// The longest a 429's `Retry-After` rests a route.
    pub max_rate_limit_rest: Duration,
}

impl Policy {
    pub fn of(server: &llmux_config::ServerConfig) -> Policy {
        Policy {
            failures_to_open: server.circuit_failures,
            cooldown: server.circuit_cooldown,
            refusal_ttl: server.region_refusal_ttl,
            max_rate_limit_rest: server.max_retry_after,
        }
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            failures_to_open: 5,
            cooldown: Duration::from_secs(30),
            refusal_ttl: Duration::from_secs(3600),
            max_rate_limit_rest: Duration::from_secs(300),
        }
    }
}
/// The rest after a 429 that named no `Retry-After`.
pub const MIN_RATE_LIMIT_REST: Duration = Duration::from_secs(1);
/// Weight of a new latency sample in the moving average, in 1/16ths.
const EWMA_NEW_SIXTEENTHS: u64 = 4;
/// Recent times to first byte kept per route (for the p95 hedge).
const SAMPLES: usize = 64;
/// Samples needed before a p95 means anything.
const MIN_SAMPLES_FOR_P95: usize = 8;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The health of every route of one configuration, by model and route index.
#[derive(Debug)]
pub struct Health {
    routes: Vec<Vec<Arc<RouteHealth>>>,
    pub policy: Policy,
}

impl Health {
    /// Health for `config`; routes that `previous` (the configuration being replaced)
    /// also had keep what is known about them.
    pub fn new(config: &llmux_config::Config, previous: Option<(&llmux_config::Config, &Health)>) -> Health {
        let identity = |config: &llmux_config::Config, model: usize, route: usize| {
            let model_config = &config.models[model];
            let route_config = &model_config.routes[route];
            (
                model_config.name.clone(),
                config.providers[route_config.provider].name.clone(),
                route_config.model.clone(),
            )
        };
        let mut known = std::collections::HashMap::new();
        if let Some((old_config, old)) = previous {
            for (model, routes) in old.routes.iter().enumerate() {
                for (route, health) in routes.iter().enumerate() {
                    known.entry(identity(old_config, model, route)).or_insert_with(|| health.clone());
                }
            }
        }
        Health {
            policy: Policy::of(&config.server),
            routes: (0..config.models.len())
                .map(|model| {
                    (0..config.models[model].routes.len())
                        .map(|route| known.get(&identity(config, model, route)).cloned().unwrap_or_default())
                        .collect()
                })
                .collect(),
        }
    }

    pub fn route(&self, candidate: Candidate) -> &Arc<RouteHealth> {
        &self.routes[candidate.model][candidate.route]
    }

    pub fn model(&self, model: usize) -> &[Arc<RouteHealth>] {
        &self.routes[model]
    }
}

/// What is known about one route.
#[derive(Debug)]
pub struct RouteHealth {
    in_flight: AtomicU32,
    /// Moving average of time to the response head, µs; 0 before the first sample.
    latency_us: AtomicU64,
    failures: AtomicU32,
    /// Until when (`now_ms`) the route rests; 0 when it does not.
    resting_until: AtomicU64,
    /// Refusals, with until when: for a region, or (`None`) for the deployment.
    refused: Mutex<Vec<(Option<Region>, u64)>>,
    /// The latest `until` in `refused` (0: none yet): past it, nothing is refused and
    /// the lock is not taken.
    refused_until: AtomicU64,
    /// The last [`SAMPLES`] times to the response head, ms (0: empty slot).
    samples: [AtomicU32; SAMPLES],
    next_sample: AtomicUsize,
}

impl Default for RouteHealth {
    fn default() -> RouteHealth {
        RouteHealth {
            in_flight: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            resting_until: AtomicU64::new(0),
            refused: Mutex::new(Vec::new()),
            refused_until: AtomicU64::new(0),
            samples: std::array::from_fn(|_| AtomicU32::new(0)),
            next_sample: AtomicUsize::new(0),
        }
    }
}

/// What a route looks like to the router right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Resting (open circuit, rate-limit cooldown): tried only after the others.
    Resting,
    /// Refused the caller's region (or this deployment) recently: never tried for it.
    Refused,
}

impl RouteHealth {
    /// Whether the route may be planned for `region` now. Claims the probe of a circuit
    /// whose cooldown has passed: the first caller to see it gets `Available`, the next
    /// ones `Resting` until the probe's outcome is known.
    pub fn availability(&self, region: Option<Region>, now: u64, policy: &Policy) -> Availability {
        if self.refuses(region, now) {
            return Availability::Refused;
        }
        let until = self.resting_until.load(Ordering::Relaxed);
        if until == 0 {
            return Availability::Available;
        }
        if now < until {
            return Availability::Resting;
        }
        if self.failures.load(Ordering::Relaxed) < policy.failures_to_open {
            // A rate-limit rest that ran out.
            let _ = self.resting_until.compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
            return Availability::Available;
        }
        // Half open: one probe; the others wait for its outcome (or another cooldown).
        let probe_until = now + millis(policy.cooldown);
        match self.resting_until.compare_exchange(until, probe_until, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => Availability::Available,
            Err(_) => Availability::Resting,
        }
    }

    /// Whether a refusal closes the route for a caller in `region` at `now`: one for
    /// the deployment, or one for that region.
    fn refuses(&self, region: Option<Region>, now: u64) -> bool {
        if now >= self.refused_until.load(Ordering::Relaxed) {
            return false;
        }
        let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.iter().any(|(refusing, until)| (refusing.is_none() || *refusing == region) && now < *until)
    }

    /// The refusals in force at `now`: the region (`None`: the deployment) and until
    /// when (`now_ms` time), for `GET /admin/providers`.
    pub fn refusals(&self, now: u64) -> Vec<(Option<Region>, u64)> {
        if now >= self.refused_until.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        refused.iter().filter(|(_, until)| now < *until).copied().collect()
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Average time to the response head in µs (0: never measured).
    pub fn latency_us(&self) -> u64 {
        self.latency_us.load(Ordering::Relaxed)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether the route is resting now (for `GET /admin/providers`).
    pub fn resting(&self, now: u64) -> bool {
        now < self.resting_until.load(Ordering::Relaxed)
    }

    /// Counts an attempt as in flight until the guard drops.
    pub fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Counts a request as in flight on this route until the guard drops (held by the
    /// answer, so a stream counts until it ends).
    pub fn enter_owned(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// The 95th percentile of the recent times to the response head, once there are
    /// enough of them.
    pub fn p95_latency(&self) -> Option<Duration> {
        let mut samples = [0u32; SAMPLES];
        let mut count = 0;
        for slot in &self.samples {
            let sample = slot.load(Ordering::Relaxed);
            if sample > 0 {
                samples[count] = sample;
                count += 1;
            }
        }
        if count < MIN_SAMPLES_FOR_P95 {
            return None;
        }
        let samples = &mut samples[..count];
        samples.sort_unstable();
        let rank = (count * 95).div_ceil(100) - 1;
        Some(Duration::from_millis(u64::from(samples[rank])))
    }

    /// The route answered (a response head came back) after `elapsed`.
    pub fn succeeded(&self, elapsed: Duration) {
        let slot = self.next_sample.fetch_add(1, Ordering::Relaxed) % SAMPLES;
        self.samples[slot].store(u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX).max(1), Ordering::Relaxed);
        let sample = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1);
        let _ = self.latency_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { sample } else { (old * (16 - EWMA_NEW_SIXTEENTHS) + sample * EWMA_NEW_SIXTEENTHS) / 16 })
        });
        self.failures.store(0, Ordering::Relaxed);
        self.resting_until.store(0, Ordering::Relaxed);
    }

    /// An active health check found the provider answering: an open circuit closes
    /// (a rate-limit rest stays).
    pub fn probe_answered(&self, policy: &Policy) {
        if self.failures.load(Ordering::Relaxed) >= policy.failures_to_open {
            self.failures.store(0, Ordering::Relaxed);
            self.resting_until.store(0, Ordering::Relaxed);
        }
    }

    /// The route failed with `error` for a caller in `region`. Returns until when the
    /// route now rests, if this failure started a rest (an open circuit or a 429).
    pub fn failed(&self, error: &UpstreamError, region: Option<Region>, policy: &Policy, now: u64) -> Option<u64> {
        match error.kind {
            // The caller's fault, or the operator's: says nothing about the route's health.
            ErrorKind::BadRequest
            | ErrorKind::ContextLength
            | ErrorKind::ContentFiltered
            | ErrorKind::NotFound
            | ErrorKind::QuotaExhausted => None,
            ErrorKind::RateLimited => {
                let rest = error
                    .retry_after
                    .unwrap_or(MIN_RATE_LIMIT_REST)
                    .min(policy.max_rate_limit_rest)
                    .max(MIN_RATE_LIMIT_REST);
                self.rest_until(now + millis(rest))
            }
            ErrorKind::RegionDenied => {
                let until = now + millis(policy.refusal_ttl);
                let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
                refused.retain(|(refusing, old)| *refusing != region && now < *old);
                refused.push((region, until));
                self.refused_until.fetch_max(until, Ordering::Relaxed);
                None
            }
            // Refused credentials fail every request sent there until the operator
            // fixes them: counted like an outage, so the circuit spares requests the
            // doomed first attempt.
            ErrorKind::Auth
            | ErrorKind::Connect
            | ErrorKind::Timeout
            | ErrorKind::Overloaded
            | ErrorKind::Server
            | ErrorKind::Protocol => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= policy.failures_to_open { self.rest_until(now + millis(policy.cooldown)) } else { None }
            }
        }
    }

    /// Another instance rests this route until `until` (an open circuit or a 429 there).
    pub fn rest_hint(&self, until: u64) {
        self.rest_until(until);
    }

    /// Rests the route until `until` (never shortens a longer rest); `Some(until)` if
    /// that started or lengthened a rest.
    fn rest_until(&self, until: u64) -> Option<u64> {
        let before = self.resting_until.fetch_max(until, Ordering::Relaxed);
        (before < until).then_some(until)
    }
}

/// An attempt in flight on a route.
pub struct InFlight<'a>(&'a RouteHealth);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer being relayed from a route (see [`RouteHealth::enter_owned`]).
#[derive(Debug)]
pub struct Busy(Arc<RouteHealth>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        failures_to_open: 5,
        cooldown: Duration::from_secs(30),
        refusal_ttl: Duration::from_secs(60),
        max_rate_limit_rest: Duration::from_secs(300),
    };

    fn error(kind: ErrorKind, retry_after: Option<Duration>) -> UpstreamError {
        UpstreamError { retry_after, ..UpstreamError::new(kind) }
    }

    #[test]
    fn consecutive_failures_open_the_circuit_and_one_probe_closes_it() {
        let health = RouteHealth::default();
        let now = 1_000;
        for _ in 0..POLICY.failures_to_open - 1 {
            health.failed(&error(ErrorKind::Server, None), None, &POLICY, now);
        }
        assert_eq!(health.availability(None, now, &POLICY), Availability::Available);
        health.failed(&error(ErrorKind::Timeout, None), None, &POLICY, now);
        assert_eq!(health.availability(None, now, &POLICY), Availability::Resting);
        let after = now + millis(POLICY.cooldown);
        // Half open: one probe, the others keep waiting.
        assert_eq!(health.availability(None, after, &POLICY), Availability::Available);
        assert_eq!(health.availability(None, after, &POLICY), Availability::Resting);
        health.succeeded(Duration::from_millis(20));
        assert_eq!(health.availability(None, after, &POLICY), Availability::Available);
        assert_eq!(health.consecutive_failures(), 0);
        // A failed probe opens it again at once.
        for _ in 0..POLICY.failures_to_open {
            health.failed(&error(ErrorKind::Server, None), None, &POLICY, after);
        }
        let later = after + millis(POLICY.cooldown);
        assert_eq!(health.availability(None, later, &POLICY), Availability::Available);
        health.failed(&error(ErrorKind::Connect, None), None, &POLICY, later);
        assert_eq!(health.availability(None, later + 1, &POLICY), Availability::Resting);
    }

    #[test]
    fn client_and_operator_faults_leave_health_alone() {
        let health = RouteHealth::default();
        for kind in [ErrorKind::BadRequest, ErrorKind::NotFound, ErrorKind::QuotaExhausted] {
            for _ in 0..10 {
                health.failed(&error(kind, None), None, &POLICY, 5);
            }
        }
        assert_eq!(health.availability(None, 5, &POLICY), Availability::Available);
        assert_eq!(health.consecutive_failures(), 0);
    }

    #[test]
    fn refused_credentials_count_towards_the_circuit() {
        let health = RouteHealth::default();
        for _ in 0..POLICY.failures_to_open {
            health.failed(&error(ErrorKind::Auth, None), None, &POLICY, 5);
        }
        assert_eq!(health.consecutive_failures(), POLICY.failures_to_open);
        assert_eq!(health.availability(None, 6, &POLICY), Availability::Resting);
    }

    #[test]
    fn a_retry_after_rests_at_most_the_cap() {
        let health = RouteHealth::default();
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(health.failed(&error(ErrorKind::RateLimited, day), None, &POLICY, 100), Some(100 + 300_000));
        assert_eq!(health.availability(None, 100 + 299_999, &POLICY), Availability::Resting);
        assert_eq!(health.availability(None, 100 + 300_000, &POLICY), Availability::Available);
    }

    #[test]
    fn a_rate_limit_rests_the_route_for_its_retry_after() {
        let health = RouteHealth::default();
        health.failed(&error(ErrorKind::RateLimited, Some(Duration::from_secs(7))), None, &POLICY, 100);
        assert_eq!(health.availability(None, 100 + 6_999, &POLICY), Availability::Resting);
        assert_eq!(health.availability(None, 100 + 7_000, &POLICY), Availability::Available);
        assert_eq!(health.consecutive_failures(), 0, "a rate limit is not a failure");
        health.failed(&error(ErrorKind::RateLimited, None), None, &POLICY, 10_000);
        assert_eq!(health.availability(None, 10_500, &POLICY), Availability::Resting);
        assert_eq!(health.availability(None, 11_000, &POLICY), Availability::Available);
    }

    #[test]
    fn a_region_refusal_closes_the_route_for_that_region_only() {
        let health = RouteHealth::default();
        let cn = Region::parse("CN");
        let de = Region::parse("DE");
        health.failed(&error(ErrorKind::RegionDenied, None), cn, &POLICY, 1);
        assert_eq!(health.availability(cn, 2, &POLICY), Availability::Refused);
        assert_eq!(health.availability(de, 2, &POLICY), Availability::Available);
        assert_eq!(health.availability(None, 2, &POLICY), Availability::Available);
        assert_eq!(health.availability(cn, 1 + 60_000, &POLICY), Availability::Available);
        assert_eq!(health.refusals(2), [(cn, 60_001)]);
        assert!(health.refusals(60_001).is_empty());
    }

    #[test]
    fn a_refusal_without_a_caller_region_closes_the_route_for_the_deployment() {
        let health = RouteHealth::default();
        let cn = Region::parse("CN");
        assert_eq!(health.refusals(1), []);
        health.failed(&error(ErrorKind::RegionDenied, None), None, &POLICY, 1_000);
        for region in [None, cn] {
            assert_eq!(health.availability(region, 1_001, &POLICY), Availability::Refused);
            assert_eq!(health.availability(region, 60_999, &POLICY), Availability::Refused);
            assert_eq!(health.availability(region, 61_000, &POLICY), Availability::Available);
        }
        assert_eq!(health.refusals(2_000), [(None, 61_000)]);
        // A later refusal for a region and the deployment's own are both remembered.
        health.failed(&error(ErrorKind::RegionDenied, None), cn, &POLICY, 2_000);
        assert_eq!(health.refusals(2_000), [(None, 61_000), (cn, 62_000)]);
        assert_eq!(health.availability(cn, 61_500, &POLICY), Availability::Refused);
        assert_eq!(health.availability(None, 61_500, &POLICY), Availability::Available);
        assert_eq!(health.consecutive_failures(), 0, "a refusal is not a failure");
    }

    #[test]
    fn latency_is_a_moving_average_and_in_flight_counts_attempts() {
        let health = RouteHealth::default();
        health.succeeded(Duration::from_millis(100));
        assert_eq!(health.latency_us(), 100_000);
        health.succeeded(Duration::from_millis(20));
        assert_eq!(health.latency_us(), 80_000);
        let first = health.enter();
        let second = health.enter();
        assert_eq!(health.in_flight(), 2);
        drop(first);
        drop(second);
        assert_eq!(health.in_flight(), 0);
        let shared = Arc::new(RouteHealth::default());
        let busy = shared.enter_owned();
        assert_eq!(shared.in_flight(), 1);
        drop(busy);
        assert_eq!(shared.in_flight(), 0);
    }

    #[test]
    fn p95_of_recent_times_to_first_byte() {
        let health = RouteHealth::default();
        for millis in 1..=7 {
            health.succeeded(Duration::from_millis(millis));
        }
        assert_eq!(health.p95_latency(), None, "too few samples");
        for millis in 8..=100 {
            health.succeeded(Duration::from_millis(millis));
        }
        // The last 64 samples are 37..=100: the 95th percentile of those is 97.
        assert_eq!(health.p95_latency(), Some(Duration::from_millis(97)));
    }

    #[test]
    fn a_reload_keeps_the_health_of_routes_that_are_still_there() {
        let config = |routes: &str| {
            let text = format!(
                "[[providers]]\nname = \"a\"\nkind = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key = \"k\"\n\n[[models]]\nname = \"m\"\nroutes = [{routes}]\n"
            );
            llmux_config::Config::from_toml(&text, &|_| None).unwrap()
        };
        let old_config = config(r#"{ provider = "a", model = "x" }, { provider = "a", model = "y" }"#);
        let old = Health::new(&old_config, None);
        old.model(0)[1].succeeded(Duration::from_millis(42));
        // `y` moved to the front, `x` is gone, `z` is new.
        let new_config = config(r#"{ provider = "a", model = "y" }, { provider = "a", model = "z" }"#);
        let new = Health::new(&new_config, Some((&old_config, &old)));
        assert_eq!(new.model(0)[0].latency_us(), 42_000);
        assert!(Arc::ptr_eq(&new.model(0)[0], &old.model(0)[1]), "shared: attempts in flight on the old one count");
        assert_eq!(new.model(0)[1].latency_us(), 0);
    }
}
