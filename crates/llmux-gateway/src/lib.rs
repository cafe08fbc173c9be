//! The request lifecycle. Knows no HTTP server; the edge (`llmux-server`) hands it a
//! request's key, headers of interest and body, and renders what it returns.
//!
//! [`Gateway::openai`] reads top to bottom as the lifecycle:
//! authenticate -> admit -> plan -> attempt (with failover) -> relay -> settle.
//!
//! Invariants:
//! - No request waits on the database for a known key or for its usage record.
//! - Failover happens only before the first byte reaches the client.
//! - Every authenticated request produces exactly one usage record.

pub mod alerts;
pub mod auth;
pub mod budgets;
pub mod clock;
pub mod error;
pub mod fleet;
pub mod health;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod relay;
pub mod router;
pub mod settle;
pub mod spill;
pub mod teams;
pub mod telemetry;

/// The gateway's in-memory maps: a fast, randomly seeded hasher (foldhash) instead of
/// SipHash; their keys are configuration names and key hashes, not attacker-chosen.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use llmux_config::Config;
use llmux_providers::client::UpstreamClient;
use llmux_providers::{Backend, ErrorKind, PreparedProvider, ProviderSpec, UpstreamError};
use llmux_store::Store;
use llmux_types::Region;
use llmux_wire::openai::peek::{Endpoint, Peek, peek, rewrite};
use tokio::time::Instant;

use crate::auth::{Caller, KeyCache};
use crate::error::{FailedAttempt, GatewayError};
use crate::ledger::{Ledger, LedgerWriter};
use crate::relay::BodyStream;
use crate::router::{Candidate, TokenEstimate};
use crate::settle::Settlement;
use crate::telemetry::Metrics;

/// The configuration in force plus what is derived from it (clients, indexes).
/// Replaced as a whole on reload.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    clients: Vec<UpstreamClient>,
    /// Per-provider headers and URLs, built once per configuration.
    prepared: Vec<PreparedProvider>,
    models: FastMap<String, usize>,
    /// What recent attempts say about each route (fresh with each configuration).
    pub health: health::Health,
}

impl Runtime {
    pub fn build(config: Config) -> Result<Runtime, String> {
        Runtime::build_after(config, None)
    }

    /// Builds the runtime for `config`, keeping the route health `previous` knows about
    /// routes that are still there (a reload).
    pub fn build_after(config: Config, previous: Option<&Runtime>) -> Result<Runtime, String> {
        let clients = config
            .providers
            .iter()
            .map(|provider| UpstreamClient::new(provider.timeouts.connect))
            .collect::<Result<_, _>>()?;
        let prepared = config.providers.iter().map(PreparedProvider::new).collect();
        let models = config.models.iter().enumerate().map(|(index, model)| (model.name.clone(), index)).collect();
        let health = health::Health::new(&config, previous.map(|runtime| (&runtime.config, &runtime.health)));
        Ok(Runtime { config, clients, prepared, models, health })
    }

    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.get(name).copied()
    }
}

/// What the edge knows about a request before the gateway sees it.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: String,
    /// The presented key (bearer token or `x-api-key`).
    pub api_key: Option<String>,
    /// The `x-llmux-region` header, if sent.
    pub region_header: Option<String>,
    pub started: Instant,
}

/// A successful answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    /// The caller's rate-limit standing, for the `x-ratelimit-*` headers.
    pub rate_limits: Option<limits::RateInfo>,
    /// The provider that served it.
    pub provider: Option<String>,
    pub attempts: u32,
    pub body: ReplyBody,
    /// Request parameters the provider's dialect could not hold, dropped in translation.
    pub dropped: Vec<&'static str>,
}

pub enum ReplyBody {
    Full(Bytes),
    Stream(BodyStream),
}

/// A failed request, with how many upstream attempts it made.
#[derive(Debug)]
pub struct Failure {
    pub error: GatewayError,
    pub attempts: u32,
    pub provider: Option<String>,
    /// The caller's rate-limit standing, for the `x-ratelimit-*` headers.
    pub rate_limits: Option<Box<limits::RateInfo>>,
}

impl From<GatewayError> for Failure {
    fn from(error: GatewayError) -> Failure {
        let rate_limits = match &error {
            GatewayError::RateLimited(refusal) => Some(Box::new(refusal.info)),
            _ => None,
        };
        Failure { error, attempts: 0, provider: None, rate_limits }
    }
}

/// Background tasks to stop at shutdown.
#[derive(Debug)]
pub struct Background {
    ledger: LedgerWriter,
    stop: tokio::sync::watch::Sender<bool>,
    gateway: std::sync::Weak<Gateway>,
}

impl Background {
    /// Stops refreshing keys, gives unused fleet leases back, and drains the usage
    /// ledger.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        if let Some(gateway) = self.gateway.upgrade()
            && let Some(shared) = gateway.fleet.clone()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), fleet::leave(&gateway, &shared)).await;
        }
        self.ledger.shutdown(grace).await;
    }
}

/// The gateway: shared state of every request.
#[derive(Debug)]
pub struct Gateway {
    runtime: ArcSwap<Runtime>,
    /// Redis, when `storage.redis` is set: fleet-wide limits, budgets and notices.
    fleet: Option<llmux_fleet::Fleet>,
    store: Arc<dyn Store>,
    keys: Arc<KeyCache>,
    ledger: Ledger,
    pub metrics: Arc<Metrics>,
    limits: Arc<limits::Limits>,
    budgets: Arc<budgets::Budgets>,
}

impl Gateway {
    /// Loads keys, starts the ledger writer and the key refresher.
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<(Arc<Gateway>, Background), String> {
        let keys = Arc::new(KeyCache::load(store.as_ref()).await.map_err(|error| error.to_string())?);
        let spill = spill::Spill::new(&config.storage.spill_dir, config.storage.spill_max_bytes);
        let (ledger, writer) = Ledger::start(store.clone(), config.storage.flush_interval, spill);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(keys.clone().refresh_loop(store.clone(), config.server.key_refresh, stop_rx));
        let shared = fleet::connect(&config.storage)?;
        let runtime = Runtime::build(config)?;
        let gateway = Arc::new(Gateway {
            runtime: ArcSwap::from_pointee(runtime),
            fleet: shared.clone(),
            store,
            keys,
            ledger,
            metrics: Arc::new(Metrics::default()),
            limits: Arc::default(),
            budgets: Arc::default(),
        });
        tokio::spawn(health_checks(Arc::downgrade(&gateway), stop.subscribe()));
        let (alert_sink, crossings) = tokio::sync::mpsc::unbounded_channel();
        gateway.budgets.set_alerts(gateway.runtime().config.server.budget_alert_thresholds.clone(), alert_sink);
        tokio::spawn(alerts::deliver(Arc::downgrade(&gateway), crossings));
        if let Some(shared) = shared {
            gateway.metrics.set_redis_up(Some(false));
            tokio::spawn(fleet::sync_loop(Arc::downgrade(&gateway), shared.clone(), stop.subscribe()));
            tokio::spawn(fleet::listen(Arc::downgrade(&gateway), shared));
        }
        let background = Background { ledger: writer, stop, gateway: Arc::downgrade(&gateway) };
        Ok((gateway, background))
    }

    /// The configuration in force.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Swaps in a new configuration (already validated). In-flight requests finish
    /// on the old one.
    pub fn reload(&self, config: Config) -> Result<(), String> {
        let runtime = Runtime::build_after(config, Some(&self.runtime.load()))?;
        self.budgets.set_alert_thresholds(runtime.config.server.budget_alert_thresholds.clone());
        self.runtime.store(Arc::new(runtime));
        Ok(())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// A key was created, changed or revoked through this instance: in force here at
    /// once, and announced to the fleet.
    pub fn key_changed(&self, key: llmux_store::KeyRecord) {
        let key_id = key.id.clone();
        self.keys.apply(vec![key]);
        fleet::announce(self.fleet.as_ref(), llmux_fleet::FleetEvent::KeyChanged { key_id });
    }

    /// A team was created or changed through this instance.
    pub fn team_changed(&self, team: llmux_store::TeamRecord) {
        let name = team.name.clone();
        self.keys.apply_team(team);
        fleet::announce(self.fleet.as_ref(), llmux_fleet::FleetEvent::TeamChanged { team: name });
    }

    /// A team was deleted through this instance.
    pub fn team_deleted(&self, name: &str) {
        self.keys.remove_team(name);
        fleet::announce(self.fleet.as_ref(), llmux_fleet::FleetEvent::TeamChanged { team: name.to_owned() });
    }

    /// Authenticates a key (for endpoints that only need the caller, like `/v1/models`).
    pub async fn authenticate(&self, api_key: Option<&str>) -> Result<Caller, GatewayError> {
        self.keys.authenticate(self.store.as_ref(), api_key, clock::now_ms()).await.map_err(GatewayError::Auth)
    }

    /// Public model names `caller` may use.
    pub fn models_for(&self, caller: &Caller) -> Vec<String> {
        let runtime = self.runtime.load();
        runtime
            .config
            .models
            .iter()
            .filter(|model| caller.may_use(&model.name))
            .map(|model| model.name.clone())
            .collect()
    }

    /// An OpenAI-dialect request (`/v1/chat/completions`, `/v1/completions`,
    /// `/v1/embeddings`): the whole lifecycle.
    pub async fn openai(&self, meta: RequestMeta, endpoint: Endpoint, body: Bytes) -> Result<Reply, Failure> {
        let runtime = self.runtime.load_full();

        // 1. Authenticate.
        let caller = self.authenticate(meta.api_key.as_deref()).await?;
        let mut settlement =
            Settlement::new(self.ledger.clone(), self.metrics.clone(), &meta.request_id, &caller, meta.started);

        let request = match peek(&body, endpoint) {
            Ok(request) => request,
            Err(error) => return Err(fail(settlement, GatewayError::BadRequest(error))),
        };
        settlement.set_model(&request.model);

        // 2. Admit and 3. plan.
        let estimate = TokenEstimate {
            input: body.len() as u64 / 4,
            output: request.max_tokens.unwrap_or(router::DEFAULT_OUTPUT_ESTIMATE),
        };
        let (candidates, region) = match self.admit_and_plan(&runtime, &caller, &request.model, &meta, estimate) {
            Ok(planned) => planned,
            Err(error) => return Err(fail(settlement, error)),
        };
        let rate_limits = match self.rate_limit(&caller, &mut settlement).await {
            Ok(rate_limits) => rate_limits,
            Err(error) => return Err(fail(settlement, error)),
        };
        if let Err(error) = self.budget(&runtime, &caller, &candidates, estimate, &mut settlement).await {
            return with_rate_limits(Err(fail(settlement, error)), rate_limits);
        }

        // 4. Attempt, failing over; 5. relay and 6. settle in the reply.
        let attempts = SameDialect { runtime: &runtime, endpoint, body: &body, request: &request };
        with_rate_limits(self.fail_over(&runtime, &meta, region, candidates, settlement, &attempts).await, rate_limits)
    }

    /// An Anthropic Messages request (`/v1/messages`): the same lifecycle, through the
    /// canonical model. Every backend is reached by translation.
    pub async fn anthropic(&self, meta: RequestMeta, body: Bytes) -> Result<Reply, Failure> {
        let runtime = self.runtime.load_full();

        // 1. Authenticate.
        let caller = self.authenticate(meta.api_key.as_deref()).await?;
        let mut settlement =
            Settlement::new(self.ledger.clone(), self.metrics.clone(), &meta.request_id, &caller, meta.started);

        let request = match llmux_wire::anthropic::decode::messages_request(&body) {
            Ok(request) => request,
            Err(error) => return Err(fail(settlement, GatewayError::BadRequest(error))),
        };
        settlement.set_model(&request.model);

        // 2. Admit and 3. plan.
        let estimate = TokenEstimate {
            input: estimate_input_tokens(&request),
            output: request.max_tokens.unwrap_or(router::DEFAULT_OUTPUT_ESTIMATE),
        };
        let (candidates, region) = match self.admit_and_plan(&runtime, &caller, &request.model, &meta, estimate) {
            Ok(planned) => planned,
            Err(error) => return Err(fail(settlement, error)),
        };
        let rate_limits = match self.rate_limit(&caller, &mut settlement).await {
            Ok(rate_limits) => rate_limits,
            Err(error) => return Err(fail(settlement, error)),
        };
        if let Err(error) = self.budget(&runtime, &caller, &candidates, estimate, &mut settlement).await {
            return with_rate_limits(Err(fail(settlement, error)), rate_limits);
        }

        // 4. Attempt, failing over; 5. relay and 6. settle in the reply.
        let attempts =
            Translated { runtime: &runtime, request: &request, dialect: Dialect::Anthropic, body: Some(&body) };
        with_rate_limits(self.fail_over(&runtime, &meta, region, candidates, settlement, &attempts).await, rate_limits)
    }

    /// `/v1/messages/count_tokens`: the caller must be allowed the model. llmux does
    /// not tokenize; the count is an estimate (about four characters per token).
    pub async fn anthropic_count_tokens(&self, meta: RequestMeta, body: Bytes) -> Result<u64, Failure> {
        let runtime = self.runtime.load_full();
        let caller = self.authenticate(meta.api_key.as_deref()).await?;
        let request = llmux_wire::anthropic::decode::count_tokens_request(&body).map_err(GatewayError::BadRequest)?;
        admit(&runtime, &caller, &request.model)?;
        Ok(estimate_input_tokens(&request))
    }

    /// Step 2, continued: the rate limits of the key and its team.
    async fn rate_limit(
        &self,
        caller: &Caller,
        settlement: &mut Settlement,
    ) -> Result<Option<limits::RateInfo>, GatewayError> {
        let key = &caller.key;
        let team = caller.team.as_deref().filter(|team| team.rpm_limit.is_some() || team.tpm_limit.is_some());
        if key.rpm_limit.is_none() && key.tpm_limit.is_none() && team.is_none() {
            return Ok(None);
        }
        let mut scopes = Vec::with_capacity(2);
        scopes.push(limits::Scope::key(&key.id, key.rpm_limit, key.tpm_limit));
        if let Some(team) = team {
            scopes.push(limits::Scope::team(&team.name, team.rpm_limit, team.tpm_limit));
        }
        match self.admit_limits(&scopes).await {
            Ok(None) => Ok(None),
            Ok(Some((reservation, info))) => {
                settlement.reserve(reservation);
                Ok(Some(info))
            }
            Err(refusal) => Err(GatewayError::RateLimited(Box::new(refusal))),
        }
    }

    /// Whether the configured Redis answers (`None`: no Redis configured).
    pub fn fleet_state(&self) -> Option<bool> {
        self.fleet.as_ref().map(llmux_fleet::Fleet::is_up)
    }

    /// Whether Redis answers and holds the budget counter `counter` (seeded from the
    /// ledger by the instance that started it).
    async fn fleet_tracks(&self, counter: &str) -> bool {
        let Some(fleet) = self.fleet_up() else { return false };
        let values = fleet.get_many(&[counter.to_owned()]).await.unwrap_or_default();
        values.first().is_some_and(|value| *value > 0)
    }

    /// The fleet, when Redis is configured and answering.
    fn fleet_up(&self) -> Option<&llmux_fleet::Fleet> {
        self.fleet.as_ref().filter(|fleet| fleet.is_up())
    }

    /// Admits a request against the windows of `scopes`: from this instance's counts,
    /// or with Redis from leases claimed from the fleet (a round trip only when a lease
    /// is used up). If Redis fails meanwhile, this instance counts alone.
    async fn admit_limits(
        &self,
        scopes: &[limits::Scope],
    ) -> Result<Option<(limits::Reservation, limits::RateInfo)>, limits::Refusal> {
        let mut fleet = self.fleet_up();
        for _ in 0..8 {
            let now = u64::try_from(clock::now_ms()).unwrap_or(0);
            let leases = match self.limits.admit(scopes, now, fleet.is_some()) {
                Ok(admitted) => return Ok(admitted),
                Err(limits::NotAdmitted::Refused(refusal)) => return Err(refusal),
                Err(limits::NotAdmitted::NeedLeases(leases)) => leases,
            };
            let Some(shared) = fleet else { break };
            for lease in &leases {
                let limit = i64::try_from(lease.limit).unwrap_or(i64::MAX);
                let want = i64::try_from(lease.want).unwrap_or(i64::MAX);
                match shared.claim(&lease.counter, limit, want, lease.ttl_ms).await {
                    Ok(granted) => self.limits.granted(lease, u64::try_from(granted).unwrap_or(0), now),
                    Err(_) => fleet = None,
                }
            }
        }
        // Leases taken by this instance's other requests round after round: refuse
        // briefly rather than count past the fleet's limit.
        Err(limits::Refusal::busy())
    }

    /// Step 2, continued: the budgets of the key and its team. Reserves the estimated
    /// cost at the first planned route's price (see `budgets`).
    async fn budget(
        &self,
        runtime: &Runtime,
        caller: &Caller,
        candidates: &[Candidate],
        estimate: TokenEstimate,
        settlement: &mut Settlement,
    ) -> Result<(), GatewayError> {
        let key_budget = caller.key.budget.as_ref().map(|budget| (budget, None));
        let team_budget = caller.team.as_deref().and_then(|team| Some((team.budget.as_ref()?, Some(&team.name))));
        if key_budget.is_none() && team_budget.is_none() {
            return Ok(());
        }
        let now = clock::now_ms();
        let mut limits = Vec::with_capacity(2);
        for (budget, team) in key_budget.into_iter().chain(team_budget) {
            let Some(period_start) = budgets::period_start(&budget.period, now) else { continue };
            let (account, label) = match team {
                None => (caller.key.id.clone(), "this key".to_owned()),
                Some(team) => (format!("team:{team}"), format!("team {team}")),
            };
            let currency = llmux_types::Currency::parse(&budget.currency).unwrap_or(llmux_types::Currency::USD);
            if self.budgets.needs_load(&account, period_start) {
                let spent = match team {
                    None => self.store.key_spend(&caller.key.id, &budget.currency, period_start).await,
                    Some(team) => self.store.team_spend(team, &budget.currency, period_start).await,
                };
                let spent = match spent {
                    Ok(spent) => spent,
                    Err(_) => {
                        // The ledger cannot say. If the fleet's counter for the period
                        // exists, it holds the spend (and leases) and governs through
                        // leases; this instance's own view starts at nothing. Otherwise
                        // nobody knows the spend: fail closed.
                        if !self.fleet_tracks(&budgets::counter(&account, currency, period_start)).await {
                            return Err(GatewayError::StoreUnavailable);
                        }
                        0
                    }
                };
                self.budgets.load(&account, period_start, spent);
            }
            limits.push(budgets::Limit {
                account,
                label,
                budget_nanos: budget.amount_nanos,
                currency,
                period: budget.period.clone(),
                period_start,
            });
        }
        let usage =
            llmux_types::Usage { input_tokens: estimate.input, output_tokens: estimate.output, ..Default::default() };
        let price = candidates
            .first()
            .and_then(|candidate| runtime.config.models[candidate.model].routes[candidate.route].price);
        let estimated =
            |currency| price.filter(|price| price.currency == currency).map_or(0, |price| price.cost(&usage).nanos);
        let mut fleet = self.fleet_up();
        for _ in 0..8 {
            let now = clock::now_ms();
            let leases = match self.budgets.reserve(&limits, estimated, now, fleet.is_some()) {
                Ok(reservation) => {
                    settlement.reserve_budget(reservation);
                    return Ok(());
                }
                Err(budgets::NotReserved::Exhausted(exhausted)) => {
                    return Err(GatewayError::BudgetExceeded(Box::new(exhausted)));
                }
                Err(budgets::NotReserved::NeedLeases(leases)) => leases,
            };
            let Some(shared) = fleet else { break };
            for lease in &leases {
                match shared.claim_from(&lease.counter, lease.initial, lease.limit, lease.want, lease.ttl_ms).await {
                    Ok(granted) => {
                        let back = self.budgets.granted(lease, granted, now);
                        if back > 0 && shared.release(&lease.counter, back).await.is_err() {
                            fleet = None;
                        }
                    }
                    Err(_) => fleet = None,
                }
            }
        }
        Err(GatewayError::RateLimited(Box::new(limits::Refusal::busy())))
    }

    /// Steps 2 and 3: the model exists, the caller may use it, and the routes to try.
    fn admit_and_plan(
        &self,
        runtime: &Runtime,
        caller: &Caller,
        model: &str,
        meta: &RequestMeta,
        estimate: TokenEstimate,
    ) -> Result<(Vec<Candidate>, Option<Region>), GatewayError> {
        let model = admit(runtime, caller, model)?;
        let region = self.caller_region(runtime, caller, meta.region_header.as_deref());
        Ok((router::plan(runtime, model, region, estimate)?, region))
    }

    /// Step 4: tries `candidates` in order until one answers, failing over on
    /// upstream faults before any byte reaches the client; then replies (5, 6).
    async fn fail_over(
        &self,
        runtime: &Runtime,
        meta: &RequestMeta,
        region: Option<Region>,
        mut candidates: Vec<Candidate>,
        mut settlement: Settlement,
        attempts: &impl Attempts,
    ) -> Result<Reply, Failure> {
        let mut failures = Vec::new();
        let mut next = 0;
        let mut widened = false;
        // The last route passed over because its own rate limit was reached.
        let mut route_limited = None;
        // The overall deadline (`server.request_timeout_ms`), over every attempt.
        let deadline = runtime.config.server.request_timeout.map(|timeout| meta.started + timeout);
        let past_deadline = || UpstreamError { message: None, ..UpstreamError::new(ErrorKind::Timeout) };
        while let Some(&candidate) = candidates.get(next) {
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                break;
            }
            next += 1;
            let route = &runtime.config.models[candidate.model].routes[candidate.route];
            if let Err(refusal) = self.route_window(runtime, route, &mut settlement).await {
                route_limited = Some(refusal);
                continue;
            }
            settlement.attempt(&runtime.config.providers[route.provider].name, &route.model, route.price);
            let hedge = match runtime.config.models[candidate.model].hedge_after {
                _ if next >= candidates.len() => None,
                // The hedge would go past the next route's own rate limit.
                _ if !self.route_has_room(runtime, candidates[next]) => None,
                None => None,
                Some(llmux_config::Hedge::After(after)) => Some(after),
                Some(llmux_config::Hedge::P95) => runtime.health.route(candidate).p95_latency(),
            };
            let (winner, outcome) = match hedge {
                None => {
                    let (outcome, elapsed) = match deadline {
                        None => self.attempt(runtime, region, candidate, attempts).await,
                        // Boxed: only requests under a deadline carry its timer.
                        Some(deadline) => {
                            let started = Instant::now();
                            Box::pin(tokio::time::timeout_at(
                                deadline,
                                self.attempt(runtime, region, candidate, attempts),
                            ))
                            .await
                            .unwrap_or_else(|_| (Err(past_deadline()), started.elapsed()))
                        }
                    };
                    log_attempt(runtime, &mut settlement, candidate, outcome_label(&outcome), elapsed);
                    (candidate, outcome)
                }
                Some(after) => {
                    let hedged = candidates[next];
                    // Boxed: two attempts in one future make it large, and hedging is
                    // opt-in; the plain path's future stays small.
                    let hedging = Box::pin(self.hedge(
                        runtime,
                        meta,
                        region,
                        (candidate, hedged, after),
                        &mut settlement,
                        &mut failures,
                        attempts,
                    ));
                    let (winner, outcome, started_hedge) = match deadline {
                        None => hedging.await,
                        Some(deadline) => tokio::time::timeout_at(deadline, hedging)
                            .await
                            .unwrap_or_else(|_| (candidate, Err(past_deadline()), true)),
                    };
                    if started_hedge {
                        next += 1;
                    }
                    (winner, outcome)
                }
            };
            let route = &runtime.config.models[winner.model].routes[winner.route];
            let provider = &runtime.config.providers[route.provider];
            match outcome {
                Ok(success) => {
                    settlement.served_by(&provider.name, &route.model, route.price);
                    settlement.hold(runtime.health.route(winner).enter_owned());
                    return Ok(success.reply(settlement, &provider.name));
                }
                Err(error) => {
                    let kind = error.kind;
                    record_failure(runtime, meta, &mut failures, winner, error);
                    // Too long for this model: its `context_window_fallbacks` (larger
                    // models) replace what is left to try, once.
                    if kind == ErrorKind::ContextLength && !widened {
                        widened = true;
                        let larger = context_window_candidates(runtime, winner.model, region);
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
            }
        }
        let attempts = settlement.attempts();
        if attempts == 0
            && let Some(refusal) = route_limited
        {
            // Every route was at its own rate limit: the caller may retry after it.
            let error = GatewayError::RateLimited(Box::new(refusal));
            let code = error.code();
            settlement.finish(code.status(), Some(code));
            return Err(Failure { error, attempts, provider: None, rate_limits: None });
        }
        let provider = failures.last().map(|failure| failure.provider.clone());
        let error = GatewayError::Upstream(failures);
        tracing::warn!(request_id = %meta.request_id, error = %error, "Request failed upstream.");
        let code = error.code();
        settlement.finish(code.status(), Some(code));
        Err(Failure { error, attempts, provider, rate_limits: None })
    }

    /// Counts an attempt against its route's own rate limits (`rpm_limit`, `tpm_limit`
    /// on the route; one window per provider and upstream model), or refuses it.
    async fn route_window(
        &self,
        runtime: &Runtime,
        route: &llmux_config::RouteConfig,
        settlement: &mut Settlement,
    ) -> Result<(), limits::Refusal> {
        if route.rpm_limit.is_none() && route.tpm_limit.is_none() {
            return Ok(());
        }
        let scope = limits::Scope::route(
            &runtime.config.providers[route.provider].name,
            &route.model,
            route.rpm_limit,
            route.tpm_limit,
        );
        if let Some((reservation, _)) = self.admit_limits(std::slice::from_ref(&scope)).await? {
            settlement.reserve_route(reservation);
        }
        Ok(())
    }

    /// Whether `candidate`'s route is below its own rate limits (without counting).
    fn route_has_room(&self, runtime: &Runtime, candidate: Candidate) -> bool {
        let route = &runtime.config.models[candidate.model].routes[candidate.route];
        if route.rpm_limit.is_none() && route.tpm_limit.is_none() {
            return true;
        }
        let scope = limits::Scope::route(
            &runtime.config.providers[route.provider].name,
            &route.model,
            route.rpm_limit,
            route.tpm_limit,
        );
        self.limits.has_room(&scope, u64::try_from(clock::now_ms()).unwrap_or(0), self.fleet_up().is_some())
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
        let route = &runtime.config.models[second_route.model].routes[second_route.route];
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
        let route = &runtime.config.models[candidate.model].routes[candidate.route];
        match &outcome {
            Ok(_) => health.succeeded(elapsed),
            Err(error) => {
                let now = health::now_ms();
                if let Some(until) = health.failed(error, region, &runtime.health.policy, now) {
                    // The other instances rest it too (in wall-clock time: each instance
                    // keeps health on its own monotonic clock).
                    let until = clock::now_ms().saturating_add(i64::try_from(until - now).unwrap_or(i64::MAX));
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

    fn caller_region(&self, runtime: &Runtime, caller: &Caller, header: Option<&str>) -> Option<Region> {
        if runtime.config.server.trust_region_header
            && let Some(region) = header.and_then(llmux_config::parse_region)
        {
            return Some(region);
        }
        caller.region
    }
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
    let route = &runtime.config.models[candidate.model].routes[candidate.route];
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
    let route = &runtime.config.models[candidate.model].routes[candidate.route];
    let provider = &runtime.config.providers[route.provider];
    tracing::debug!(request_id = %meta.request_id, provider = %provider.name, error = %error, "Upstream attempt failed.");
    failures.push(FailedAttempt { provider: provider.name.clone(), model: route.model.clone(), error });
}

/// Active health checks (`server.health_check_interval_ms`): every interval, each
/// provider's model list is fetched. A provider that answers closes the open circuits of
/// its routes; one that cannot be reached or answers 5xx counts a failure on each of
/// its routes (enough of them open the circuits, as for requests). Runs until shutdown;
/// reads the configuration in force at each round, so a reload can turn it on or off.
async fn health_checks(gateway: std::sync::Weak<Gateway>, mut stop: tokio::sync::watch::Receiver<bool>) {
    const IDLE: Duration = Duration::from_secs(1);
    loop {
        let interval = match gateway.upgrade() {
            Some(gateway) => gateway.runtime().config.server.health_check_interval,
            None => return,
        };
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(interval.unwrap_or(IDLE)) => {}
        }
        if interval.is_none() {
            continue;
        }
        let Some(gateway) = gateway.upgrade() else { return };
        let runtime = gateway.runtime();
        drop(gateway);
        for (index, provider) in runtime.config.providers.iter().enumerate() {
            let Some(request) = runtime.prepared[index].probe_request(provider) else { continue };
            let deadline = provider.timeouts.first_byte.min(Duration::from_secs(5));
            let answered = match tokio::time::timeout(deadline, runtime.clients[index].send(request)).await {
                Ok(Ok(response)) => response.status().as_u16() < 500,
                Ok(Err(_)) | Err(_) => false,
            };
            tracing::debug!(provider = %provider.name, answered, "Health check.");
            let failure = UpstreamError::new(ErrorKind::Server);
            for (model, model_config) in runtime.config.models.iter().enumerate() {
                for (route, route_config) in model_config.routes.iter().enumerate() {
                    if route_config.provider != index {
                        continue;
                    }
                    let health = runtime.health.route(Candidate { model, route });
                    if answered {
                        health.probe_answered(&runtime.health.policy);
                    } else {
                        let _ = health.failed(&failure, None, &runtime.health.policy, health::now_ms());
                    }
                }
            }
        }
    }
}

/// The routes of `model`'s `context_window_fallbacks`, in order (each planned as the
/// model itself would be; models the caller's region cannot use are skipped).
fn context_window_candidates(runtime: &Runtime, model: usize, region: Option<Region>) -> Vec<Candidate> {
    let mut candidates = Vec::new();
    for name in &runtime.config.models[model].context_window_fallbacks {
        if let Some(index) = runtime.model_index(name)
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

/// Puts the caller's rate-limit standing on the outcome (for the `x-ratelimit-*` headers).
fn with_rate_limits(outcome: Result<Reply, Failure>, rate_limits: Option<limits::RateInfo>) -> Result<Reply, Failure> {
    match outcome {
        Ok(mut reply) => {
            reply.rate_limits = rate_limits;
            Ok(reply)
        }
        Err(mut failure) => {
            failure.rate_limits = failure.rate_limits.or(rate_limits.map(Box::new));
            Err(failure)
        }
    }
}

/// Settles a request that failed before any upstream attempt.
fn fail(settlement: Settlement, error: GatewayError) -> Failure {
    let code = error.code();
    settlement.finish(code.status(), Some(code));
    Failure::from(error)
}

/// The model index, if it exists and the caller may use it.
fn admit(runtime: &Runtime, caller: &Caller, model: &str) -> Result<usize, GatewayError> {
    let index = runtime.model_index(model).ok_or_else(|| GatewayError::ModelNotFound(model.to_owned()))?;
    if !caller.may_use(model) {
        return Err(GatewayError::ModelNotAllowed(model.to_owned()));
    }
    Ok(index)
}

/// How a request tries one route; [`Gateway::fail_over`] calls it per candidate.
trait Attempts: Sync {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Result<Success, UpstreamError>> + Send;
}

/// Requests in the provider's own dialect (the fast path).
struct SameDialect<'a> {
    runtime: &'a Runtime,
    endpoint: Endpoint,
    body: &'a Bytes,
    request: &'a Peek<'a>,
}

impl Attempts for SameDialect<'_> {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Result<Success, UpstreamError>> + Send {
        let attempt = Attempt {
            runtime: self.runtime,
            candidate,
            endpoint: self.endpoint,
            body: self.body,
            request: self.request,
        };
        async move { attempt.run().await }
    }
}

/// Requests decoded into the canonical model, translated for each provider.
struct Translated<'a> {
    runtime: &'a Runtime,
    request: &'a llmux_types::chat::ChatRequest,
    dialect: Dialect,
    /// The client's body, forwarded as is (model rewritten) to a provider of the
    /// client's own dialect.
    body: Option<&'a Bytes>,
}

impl Attempts for Translated<'_> {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Result<Success, UpstreamError>> + Send {
        let attempt = CanonicalAttempt { runtime: self.runtime, candidate, request: self.request, body: self.body };
        let dialect = self.dialect;
        async move { attempt.run(dialect).await }
    }
}

/// One try at one route.
struct Attempt<'a> {
    runtime: &'a Runtime,
    candidate: Candidate,
    endpoint: Endpoint,
    body: &'a Bytes,
    request: &'a Peek<'a>,
}

/// What a successful attempt produced, before relaying.
enum Success {
    /// A complete JSON body and the usage it reported.
    Full { body: Bytes, usage: Option<llmux_types::Usage> },
    /// An upstream OpenAI-dialect SSE response relayed to an OpenAI client byte for
    /// byte; `strip_usage` drops the usage chunk llmux asked for when the client did not.
    Upstream { response: llmux_providers::client::UpstreamResponse, idle: Duration, strip_usage: bool },
    /// Canonical events to encode (the mock).
    Events {
        events: Vec<llmux_types::chat::StreamEvent<'static>>,
        delay: Duration,
        encoder: Box<dyn relay::EventEncoder>,
    },
    /// An OpenAI-dialect upstream stream to decode and re-encode for the client.
    Translated {
        response: llmux_providers::client::UpstreamResponse,
        idle: Duration,
        translator: Box<dyn relay::Translator>,
    },
    /// An answer to a request whose translation dropped parameters the provider's
    /// dialect cannot hold (reported to the client in a header).
    Lossy { answer: Box<Success>, dropped: Vec<&'static str> },
}

/// The client dialects the canonical path encodes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Anthropic,
    /// An OpenAI client whose provider speaks another dialect; `include_usage` is
    /// whether it asked for the final usage chunk.
    OpenAi {
        include_usage: bool,
    },
}

impl Success {
    fn reply(self, mut settlement: Settlement, provider: &str) -> Reply {
        if let Success::Lossy { answer, dropped } = self {
            let mut reply = answer.reply(settlement, provider);
            reply.dropped = dropped;
            return reply;
        }
        let attempts = settlement.attempts();
        let (content_type, body) = match self {
            Success::Full { body, usage } => {
                if let Some(usage) = usage {
                    settlement.set_usage(usage);
                }
                settlement.first_byte();
                settlement.finish(200, None);
                ("application/json", ReplyBody::Full(body))
            }
            Success::Upstream { response, idle, strip_usage } => (
                "text/event-stream",
                ReplyBody::Stream(relay::openai_passthrough(response, settlement, strip_usage, idle)),
            ),
            Success::Translated { response, idle, translator } => {
                ("text/event-stream", ReplyBody::Stream(relay::translated(response, translator, settlement, idle)))
            }
            Success::Events { events, delay, encoder } => {
                ("text/event-stream", ReplyBody::Stream(relay::encoded(events, delay, encoder, settlement)))
            }
            Success::Lossy { .. } => unreachable!("unwrapped above"),
        };
        Reply {
            status: 200,
            content_type,
            rate_limits: None,
            provider: Some(provider.to_owned()),
            attempts,
            body,
            dropped: Vec::new(),
        }
    }
}

impl Attempt<'_> {
    fn route(&self) -> &llmux_config::RouteConfig {
        &self.runtime.config.models[self.candidate.model].routes[self.candidate.route]
    }

    fn provider(&self) -> &ProviderSpec {
        &self.runtime.config.providers[self.route().provider]
    }

    async fn run(&self) -> Result<Success, UpstreamError> {
        let provider = self.provider();
        match provider.preset.backend {
            // The mock answers chat canonically, like any provider of another dialect.
            Backend::Mock if self.endpoint == Endpoint::ChatCompletions => self.run_translated().await,
            Backend::Mock => self.run_mock().await,
            Backend::OpenAi | Backend::Azure => self.run_openai().await,
            Backend::Anthropic | Backend::Gemini => self.run_translated().await,
        }
    }

    /// An OpenAI request for a provider of another dialect: decoded once into the
    /// canonical model, then translated like any other client's.
    async fn run_translated(&self) -> Result<Success, UpstreamError> {
        if self.endpoint != Endpoint::ChatCompletions {
            // Another route of the model may serve it.
            return Err(UpstreamError {
                message: Some(format!("this provider does not serve {}", self.endpoint.path())),
                ..UpstreamError::new(ErrorKind::NotFound)
            });
        }
        let request = llmux_wire::openai::decode::chat_request(self.body).map_err(|error| UpstreamError {
            message: Some(error.message),
            ..UpstreamError::new(ErrorKind::BadRequest)
        })?;
        let dialect = Dialect::OpenAi { include_usage: request.stream_include_usage };
        CanonicalAttempt { runtime: self.runtime, candidate: self.candidate, request: &request, body: None }
            .run(dialect)
            .await
    }

    /// Same-dialect fast path: splice the model, forward, relay bytes.
    async fn run_openai(&self) -> Result<Success, UpstreamError> {
        let route = self.route();
        let provider = self.provider();
        let client = &self.runtime.clients[route.provider];
        let stream = self.request.stream && self.endpoint != Endpoint::Embeddings;
        let force_usage = stream && provider.preset.quirks.stream_usage;
        let body = rewrite(self.body, self.request, &route.model, force_usage);
        let upstream_request =
            self.runtime.prepared[route.provider].build_request(provider, self.endpoint, &route.model, body);
        let answered = send_with_deadline(client, upstream_request, route, provider).await?;
        if stream {
            return Ok(Success::Upstream {
                response: answered.response,
                idle: route.idle_timeout.unwrap_or(provider.timeouts.idle),
                strip_usage: !self.request.include_usage,
            });
        }
        let body = answered.body().await?;
        let usage = llmux_wire::openai::usage::from_response(&body);
        Ok(Success::Full { body, usage })
    }

    /// The built-in mock for embeddings and legacy completions: decode, answer, encode.
    async fn run_mock(&self) -> Result<Success, UpstreamError> {
        use llmux_providers::mock;
        use llmux_wire::openai::{decode, encode};
        let route = self.route();
        let settings = &self.provider().mock;
        if settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
        }
        let bad_request = |error: llmux_wire::DecodeError| UpstreamError {
            message: Some(error.message),
            ..UpstreamError::new(ErrorKind::BadRequest)
        };
        let created = clock::now_s();
        let id = format!("chatcmpl-mock{}", clock::now_ms());
        match self.endpoint {
            Endpoint::ChatCompletions => unreachable!("chat reaches the mock through run_translated"),
            Endpoint::Embeddings => {
                let request = decode::embeddings_request(self.body).map_err(bad_request)?;
                let response = mock::embed(&request, &route.model);
                Ok(Success::Full {
                    body: Bytes::from(encode::embeddings_response(&response)),
                    usage: Some(response.usage),
                })
            }
            Endpoint::Completions => {
                let (_, prompts, stream, max_tokens) = decode::completion_prompts(self.body).map_err(bad_request)?;
                let texts: Vec<String> = prompts
                    .iter()
                    .map(|prompt| {
                        let text = mock::complete(prompt, &route.model, settings);
                        match max_tokens {
                            Some(max) => {
                                text.split_whitespace().take(max.max(1) as usize).collect::<Vec<_>>().join(" ")
                            }
                            None => text,
                        }
                    })
                    .collect();
                let usage = llmux_types::Usage {
                    input_tokens: prompts.iter().map(|prompt| mock::tokens_of(prompt)).sum(),
                    output_tokens: texts.iter().map(|text| mock::count_words(text)).sum(),
                    ..llmux_types::Usage::default()
                };
                let id = id.replace("chatcmpl", "cmpl");
                let stop = llmux_types::chat::FinishReason::Stop;
                if stream {
                    let mut body = Vec::new();
                    for (index, text) in texts.iter().enumerate() {
                        let chunk = encode::completion(&id, created, &route.model, &[(index as u32, text, None)], None);
                        llmux_wire::sse::write_data_event(&mut body, &chunk);
                        let end =
                            encode::completion(&id, created, &route.model, &[(index as u32, "", Some(&stop))], None);
                        llmux_wire::sse::write_data_event(&mut body, &end);
                    }
                    body.extend_from_slice(b"data: [DONE]\n\n");
                    return Ok(Success::Events {
                        events: vec![llmux_types::chat::StreamEvent::Usage(usage)],
                        delay: Duration::ZERO,
                        encoder: Box::new(Prerendered(Some(Bytes::from(body)))),
                    });
                }
                let choices: Vec<(u32, &str, Option<&llmux_types::chat::FinishReason>)> =
                    texts.iter().enumerate().map(|(index, text)| (index as u32, text.as_str(), Some(&stop))).collect();
                Ok(Success::Full {
                    body: Bytes::from(encode::completion(&id, created, &route.model, &choices, Some(&usage))),
                    usage: Some(usage),
                })
            }
        }
    }
}

/// One try at one route for a request decoded into the canonical model (a client
/// dialect other than the provider's): encode for the provider, send, decode the
/// answer, encode it for the client.
struct CanonicalAttempt<'a> {
    runtime: &'a Runtime,
    candidate: Candidate,
    request: &'a llmux_types::chat::ChatRequest,
    /// The client's original body, when it can be forwarded to a same-dialect provider.
    body: Option<&'a Bytes>,
}

impl CanonicalAttempt<'_> {
    fn route(&self) -> &llmux_config::RouteConfig {
        &self.runtime.config.models[self.candidate.model].routes[self.candidate.route]
    }

    async fn run(&self, dialect: Dialect) -> Result<Success, UpstreamError> {
        let route = self.route();
        let provider = &self.runtime.config.providers[route.provider];
        match provider.preset.backend {
            Backend::Mock => {
                let settings = &provider.mock;
                if settings.latency_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(settings.latency_ms)).await;
                }
                let prefix = match dialect {
                    Dialect::Anthropic => "msg_mock",
                    Dialect::OpenAi { .. } => "chatcmpl-mock",
                };
                let id = format!("{prefix}{}", clock::now_ms());
                let response =
                    llmux_providers::mock::respond(self.request, &route.model, settings, &id, clock::now_s());
                if self.request.stream {
                    return Ok(Success::Events {
                        events: llmux_providers::mock::stream_events(&response, settings),
                        delay: Duration::from_millis(settings.chunk_delay_ms),
                        encoder: stream_encoder(dialect, &route.model),
                    });
                }
                Ok(Success::Full {
                    body: Bytes::from(encode_response(dialect, &response)),
                    usage: Some(response.usage),
                })
            }
            Backend::OpenAi | Backend::Azure => self.run_openai(dialect).await,
            Backend::Anthropic => match (dialect, self.body) {
                (Dialect::Anthropic, Some(body)) => self.forward_anthropic(body).await,
                _ => self.run_anthropic(dialect).await,
            },
            Backend::Gemini => self.run_gemini(dialect).await,
        }
    }

    /// Same dialect: the client's body with only `model` rewritten, the answer's bytes
    /// forwarded (decoded on the side for metering).
    async fn forward_anthropic(&self, body: &Bytes) -> Result<Success, UpstreamError> {
        let route = self.route();
        let provider = &self.runtime.config.providers[route.provider];
        let upstream_body = llmux_wire::anthropic::passthrough::rewrite_model(body, &route.model).map_err(|error| {
            UpstreamError { message: Some(error.message), ..UpstreamError::new(ErrorKind::BadRequest) }
        })?;
        let request = self.runtime.prepared[route.provider].build_request(
            provider,
            Endpoint::ChatCompletions,
            &route.model,
            upstream_body,
        );
        let response = send_with_deadline(&self.runtime.clients[route.provider], request, route, provider).await?;
        if self.request.stream {
            let decoder = llmux_wire::anthropic::upstream::EventDecoder::new();
            return Ok(Success::Translated {
                response: response.response,
                idle: route.idle_timeout.unwrap_or(provider.timeouts.idle),
                translator: Box::new(AnthropicPassthrough { decoder }),
            });
        }
        let body = response.body().await?;
        let usage = llmux_wire::anthropic::upstream::messages_response(&body).map_err(protocol_error)?.usage;
        Ok(Success::Full { body, usage: Some(usage) })
    }

    async fn run_anthropic(&self, dialect: Dialect) -> Result<Success, UpstreamError> {
        let route = self.route();
        let (body, dropped) = llmux_wire::anthropic::upstream::messages_request(
            self.request,
            &route.model,
            llmux_providers::anthropic::DEFAULT_MAX_TOKENS,
        );
        let decoder = UpstreamDecoder::Anthropic(llmux_wire::anthropic::upstream::EventDecoder::new());
        let answer = self.exchange(dialect, body, decoder, llmux_wire::anthropic::upstream::messages_response).await?;
        if dropped.is_empty() {
            return Ok(answer);
        }
        let provider = &self.runtime.config.providers[route.provider].name;
        tracing::debug!(%provider, ?dropped, "Parameters Anthropic cannot take were dropped.");
        Ok(Success::Lossy { answer: Box::new(answer), dropped })
    }

    async fn run_gemini(&self, dialect: Dialect) -> Result<Success, UpstreamError> {
        let (body, dropped) = llmux_wire::gemini::upstream::generate_content_request(self.request);
        let decoder = UpstreamDecoder::Gemini(llmux_wire::gemini::upstream::StreamDecoder::new());
        let answer =
            self.exchange(dialect, body, decoder, llmux_wire::gemini::upstream::generate_content_response).await?;
        if dropped.is_empty() {
            return Ok(answer);
        }
        let provider = &self.runtime.config.providers[self.route().provider].name;
        tracing::debug!(%provider, ?dropped, "Parameters Gemini cannot take were dropped.");
        Ok(Success::Lossy { answer: Box::new(answer), dropped })
    }

    async fn run_openai(&self, dialect: Dialect) -> Result<Success, UpstreamError> {
        let body = llmux_wire::openai::upstream::chat_request(self.request, &self.route().model);
        let decoder = UpstreamDecoder::OpenAi(llmux_wire::openai::upstream::ChunkDecoder::new());
        self.exchange(dialect, body, decoder, llmux_wire::openai::upstream::chat_response).await
    }

    /// Sends a translated `body`; the answer comes back through `decoder` (streams) or
    /// `decode` (complete bodies) and is encoded for the client's `dialect`.
    async fn exchange(
        &self,
        dialect: Dialect,
        body: Vec<u8>,
        decoder: UpstreamDecoder,
        decode: fn(&[u8]) -> Result<llmux_types::chat::ChatResponse, llmux_wire::DecodeError>,
    ) -> Result<Success, UpstreamError> {
        let route = self.route();
        let provider = &self.runtime.config.providers[route.provider];
        let request =
            self.runtime.prepared[route.provider].build_chat_request(provider, &route.model, self.request.stream, body);
        let response = send_with_deadline(&self.runtime.clients[route.provider], request, route, provider).await?;
        if self.request.stream {
            let encoder = stream_encoder(dialect, &route.model);
            return Ok(Success::Translated {
                response: response.response,
                idle: route.idle_timeout.unwrap_or(provider.timeouts.idle),
                translator: Box::new(TranslatingEncoder { decoder, encoder, created: clock::now_s() }),
            });
        }
        let mut decoded = decode(&response.body().await?).map_err(protocol_error)?;
        // Anthropic and Gemini answers carry no creation time; the client's dialect may.
        if decoded.created == 0 {
            decoded.created = clock::now_s();
        }
        Ok(Success::Full { body: Bytes::from(encode_response(dialect, &decoded)), usage: Some(decoded.usage) })
    }
}

/// Anthropic SSE forwarded frame by frame to an Anthropic client, decoded only to meter
/// it (usage, finish, errors).
struct AnthropicPassthrough {
    decoder: llmux_wire::anthropic::upstream::EventDecoder,
}

impl relay::Translator for AnthropicPassthrough {
    fn data(
        &mut self,
        frame: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
        observe: &mut dyn FnMut(&llmux_types::chat::StreamEvent<'_>),
    ) -> Result<(), String> {
        self.decoder.decode_with(data, &mut |event| observe(&event)).map_err(|error| error.message)?;
        out.extend_from_slice(frame);
        Ok(())
    }

    fn error(&mut self, row: &error::ErrorRow, message: &str, out: &mut Vec<u8>) {
        llmux_wire::anthropic::passthrough::error_event(row.anthropic_type, message, out);
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

/// An upstream answer llmux could not read.
fn protocol_error(error: llmux_wire::DecodeError) -> UpstreamError {
    UpstreamError { message: Some(error.message), ..UpstreamError::new(ErrorKind::Protocol) }
}

fn stream_encoder(dialect: Dialect, model: &str) -> Box<dyn relay::EventEncoder> {
    match dialect {
        Dialect::Anthropic => Box::new(llmux_wire::anthropic::encode::MessagesStreamEncoder::new(model)),
        Dialect::OpenAi { include_usage } => {
            Box::new(llmux_wire::openai::encode::ChatStreamEncoder::new(include_usage))
        }
    }
}

fn encode_response(dialect: Dialect, response: &llmux_types::chat::ChatResponse) -> Vec<u8> {
    match dialect {
        Dialect::Anthropic => llmux_wire::anthropic::encode::messages_response(response),
        Dialect::OpenAi { .. } => llmux_wire::openai::encode::chat_response(response),
    }
}

/// The stream decoder of the upstream's dialect.
enum UpstreamDecoder {
    OpenAi(llmux_wire::openai::upstream::ChunkDecoder),
    Anthropic(llmux_wire::anthropic::upstream::EventDecoder),
    Gemini(llmux_wire::gemini::upstream::StreamDecoder),
}

/// Upstream SSE data payloads -> canonical events -> the client's encoder.
struct TranslatingEncoder {
    decoder: UpstreamDecoder,
    encoder: Box<dyn relay::EventEncoder>,
    /// Unix seconds the answer started, for a stream whose upstream gives none.
    created: u64,
}

impl relay::Translator for TranslatingEncoder {
    fn data(
        &mut self,
        _frame: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
        observe: &mut dyn FnMut(&llmux_types::chat::StreamEvent<'_>),
    ) -> Result<(), String> {
        // Each event is encoded and metered as it is decoded, borrowing from `data`.
        let (encoder, created) = (&mut self.encoder, self.created);
        let mut emit = |event: llmux_types::chat::StreamEvent<'_>| {
            let event = match event {
                llmux_types::chat::StreamEvent::Start { id, model, created: 0 } => {
                    llmux_types::chat::StreamEvent::Start { id, model, created }
                }
                event => event,
            };
            encoder.encode(&event, out);
            observe(&event);
        };
        match &mut self.decoder {
            UpstreamDecoder::OpenAi(decoder) => decoder.decode_with(data, &mut emit),
            UpstreamDecoder::Anthropic(decoder) => decoder.decode_with(data, &mut emit),
            UpstreamDecoder::Gemini(decoder) => decoder.decode_with(data, &mut emit),
        }
        .map_err(|error| error.message)
    }

    fn error(&mut self, row: &error::ErrorRow, message: &str, out: &mut Vec<u8>) {
        self.encoder.error(row, message, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.encoder.finish(out);
    }

    fn keep_alive(&mut self, out: &mut Vec<u8>) {
        self.encoder.keep_alive(out);
    }
}

/// An upstream response that arrived (2xx) within the attempt's first-byte deadline;
/// its body must be read within the attempt's total deadline.
struct Answered {
    response: llmux_providers::client::UpstreamResponse,
    deadline: Instant,
}

impl Answered {
    async fn body(self) -> Result<Bytes, UpstreamError> {
        match tokio::time::timeout_at(self.deadline, http_body_util::BodyExt::collect(self.response.into_body())).await
        {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(_)) => Err(UpstreamError::new(ErrorKind::Protocol)),
            Err(_) => Err(UpstreamError::new(ErrorKind::Timeout)),
        }
    }
}

/// Sends with the route's first-byte deadline and classifies a non-2xx answer.
async fn send_with_deadline(
    client: &UpstreamClient,
    request: http::Request<Bytes>,
    route: &llmux_config::RouteConfig,
    provider: &ProviderSpec,
) -> Result<Answered, UpstreamError> {
    let total = route.timeout.unwrap_or(provider.timeouts.total);
    let first_byte = route.first_byte_timeout.unwrap_or(provider.timeouts.first_byte);
    let started = Instant::now();
    let deadline = started + total;
    let response = match tokio::time::timeout_at(
        started + first_byte.min(total),
        client.send_with(request, route.connect_timeout),
    )
    .await
    {
        Ok(response) => response?,
        Err(_) => return Err(UpstreamError::new(ErrorKind::Timeout)),
    };
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let retry_after = llmux_providers::error::parse_retry_after(
            response.headers().get(http::header::RETRY_AFTER).and_then(|value| value.to_str().ok()),
        );
        let body = read_error_body(response, deadline).await;
        return Err(match provider.preset.backend {
            Backend::Gemini => llmux_providers::gemini::classify(status, retry_after, &body),
            _ => UpstreamError::from_openai_response(status, retry_after, &body),
        });
    }
    Ok(Answered { response, deadline })
}

/// A rough input-token count: about four characters per token of message text and
/// tool definitions, plus a few tokens of framing per message.
fn estimate_input_tokens(request: &llmux_types::chat::ChatRequest) -> u64 {
    let mut chars = 0usize;
    for message in &request.messages {
        chars += 12;
        for part in &message.content {
            if let llmux_types::chat::ContentPart::Text(text) = part {
                chars += text.chars().count();
            }
        }
        for call in &message.tool_calls {
            chars += call.name.len() + call.arguments.len();
        }
    }
    for tool in &request.tools {
        chars += tool.name.len() + tool.description.as_deref().map_or(0, str::len);
        chars += tool.parameters.as_ref().map_or(0, |schema| schema.get().len());
    }
    (chars as u64).div_ceil(4).max(1)
}

/// An encoder that emits a pre-rendered body once.
struct Prerendered(Option<Bytes>);

impl relay::EventEncoder for Prerendered {
    fn encode(&mut self, _event: &llmux_types::chat::StreamEvent<'_>, out: &mut Vec<u8>) {
        if let Some(body) = self.0.take() {
            out.extend_from_slice(&body);
        }
    }

    fn finish(&mut self, _out: &mut Vec<u8>) {}

    // A pre-rendered body comes from the mock, which has no upstream to fail.
    fn error(&mut self, _row: &error::ErrorRow, _message: &str, _out: &mut Vec<u8>) {}
}

/// Reads the start of an error body (at most 64 KiB) before `deadline`.
async fn read_error_body(response: llmux_providers::client::UpstreamResponse, deadline: Instant) -> Bytes {
    use http_body_util::BodyExt;
    const LIMIT: usize = 64 * 1024;
    let mut body = response.into_body();
    let mut collected = bytes::BytesMut::new();
    while collected.len() < LIMIT {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    collected.extend_from_slice(&data[..data.len().min(LIMIT - collected.len())]);
                }
            }
            _ => break,
        }
    }
    collected.freeze()
}
