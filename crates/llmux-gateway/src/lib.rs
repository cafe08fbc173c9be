//! The request lifecycle. Knows no HTTP server; the edge (`llmux-server`) hands it a
//! request's key, headers of interest and body, and renders what it returns.
//!
//! `Gateway::serve` reads top to bottom as the lifecycle, the same for every client
//! dialect (`dialect`): authenticate -> admit (`admit`) -> plan (`router`, a
//! conversation's pinned route first: `affinity`) -> attempt with failover (`failover`,
//! `attempt`) -> relay (`relay`) -> settle (`settle`). The
//! provider's side of an attempt is its adapter's (`llmux_providers::Adapter`); the
//! gateway never asks which kind a provider is.
//!
//! Invariants:
//! - No request waits on the database for a known key or for its usage record.
//! - Failover happens only before the first byte reaches the client.
//! - Every authenticated request produces exactly one usage record.

mod accounts;
mod admit;
pub mod affinity;
pub mod alerts;
mod attempt;
pub mod auth;
pub mod bounds;
pub mod budgets;
pub mod clock;
pub mod dialect;
pub mod error;
mod failover;
pub mod fleet;
pub mod health;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod limits;
mod outcome;
mod probe;
pub mod relay;
pub mod route;
pub mod router;
mod runtime;
pub mod settle;
pub mod spill;
pub mod stored;
pub mod supervise;
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
use llmux_store::Store;
use llmux_wire::openai::peek::Endpoint;

use crate::admit::Ask;
use crate::auth::{Caller, KeyCache};
use crate::dialect::{ClientDialect, DialectAttempts};
use crate::error::GatewayError;
use crate::failover::Plan;
use crate::ledger::{Ledger, LedgerWriter};
use crate::outcome::with_rate_limits;
pub use crate::outcome::{Failure, Reply, ReplyBody, RequestMeta};
pub use crate::runtime::{Runtime, Upstream};
use crate::settle::Settlement;
use crate::telemetry::Metrics;

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
    /// Conversations' pinned routes.
    affinity: affinity::Affinity,
    /// Failed authentications per client address (`server.auth_failures_per_minute`).
    pub failed_auths: auth::FailedAuths,
    /// The supervised background tasks.
    pub tasks: Arc<supervise::Tasks>,
}

impl Gateway {
    /// Loads keys, starts the ledger writer and the supervised background tasks (key
    /// refresh, health probes, purge of stored responses, budget alerts, fleet sync and
    /// notices: `supervise`).
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<(Arc<Gateway>, Background), String> {
        let keys = Arc::new(KeyCache::load(store.as_ref()).await.map_err(|error| error.to_string())?);
        let spill = spill::Spill::new(&config.storage.spill_dir, config.storage.spill_max_bytes);
        let (ledger, writer) = Ledger::start(store.clone(), config.storage.flush_interval, spill);
        let (stop, _) = tokio::sync::watch::channel(false);
        let key_refresh = config.server.key_refresh;
        let shared = fleet::connect(&config.storage)?;
        let affinity = affinity::Affinity::start(&config.server, shared.as_ref());
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
            affinity,
            failed_auths: auth::FailedAuths::default(),
            tasks: Arc::default(),
        });
        let tasks = &gateway.tasks;
        let weak = Arc::downgrade(&gateway);
        // Each task's factory returns `None` once the gateway is gone (nothing to serve).
        let alive = move || weak.upgrade().is_some();
        {
            let (alive, keys, store, stop_rx) =
                (alive.clone(), gateway.keys.clone(), gateway.store.clone(), stop.subscribe());
            tasks.supervise("key_refresh", stop.subscribe(), move || {
                alive().then(|| keys.clone().refresh_loop(store.clone(), key_refresh, stop_rx.clone()))
            });
        }
        {
            let (weak, stop_rx) = (Arc::downgrade(&gateway), stop.subscribe());
            tasks.supervise("health_checks", stop.subscribe(), move || {
                (weak.strong_count() > 0).then(|| probe::health_checks(weak.clone(), stop_rx.clone()))
            });
        }
        {
            let (alive, store, stop_rx) = (alive.clone(), gateway.store.clone(), stop.subscribe());
            tasks.supervise("purge_responses", stop.subscribe(), move || {
                alive().then(|| stored::purge_loop(store.clone(), stop_rx.clone()))
            });
        }
        let (alert_sink, crossings) = tokio::sync::mpsc::unbounded_channel();
        gateway.budgets.set_alerts(gateway.runtime().config.server.budget_alert_thresholds.clone(), alert_sink);
        {
            let (weak, crossings) = (Arc::downgrade(&gateway), Arc::new(tokio::sync::Mutex::new(crossings)));
            tasks.supervise("budget_alerts", stop.subscribe(), move || {
                (weak.strong_count() > 0).then(|| alerts::deliver(weak.clone(), crossings.clone()))
            });
        }
        if let Some(shared) = shared {
            gateway.metrics.set_redis_up(Some(false));
            let (weak, fleet, stop_rx) = (Arc::downgrade(&gateway), shared.clone(), stop.subscribe());
            tasks.supervise("fleet_sync", stop.subscribe(), move || {
                (weak.strong_count() > 0).then(|| fleet::sync_loop(weak.clone(), fleet.clone(), stop_rx.clone()))
            });
            let weak = Arc::downgrade(&gateway);
            tasks.supervise("fleet_listen", stop.subscribe(), move || {
                (weak.strong_count() > 0).then(|| fleet::listen(weak.clone(), shared.clone()))
            });
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
        self.affinity.reload(&runtime.config.server);
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

    /// Authenticates a key, outside the failed-authentication limit; client requests go
    /// through [`Gateway::authenticate_from`].
    pub async fn authenticate(&self, api_key: Option<&str>) -> Result<Caller, GatewayError> {
        self.keys.authenticate(self.store.as_ref(), api_key, clock::wall_ms()).await.map_err(GatewayError::Auth)
    }

    /// Authenticates a request from its headers alone, before its body is read. A client
    /// address that failed `server.auth_failures_per_minute` times in this minute gets
    /// 429 for any key this instance does not hold in memory, without a store lookup
    /// (keys it holds still work, so one broken client behind a shared address does not
    /// lock the others out); failures are counted and logged (never the key).
    pub async fn authenticate_from(
        &self,
        api_key: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Caller, GatewayError> {
        let now = clock::wall_ms();
        let limit = self.runtime.load().config.server.auth_failures_per_minute;
        if let (Some(limit), Some(ip)) = (limit, client)
            && let Some(retry_after_ms) = self.failed_auths.over(ip, limit, now)
            && !self.keys.holds(api_key)
        {
            self.failed_auths.refused();
            return Err(GatewayError::RateLimited(Box::new(limits::Refusal {
                message: format!(
                    "Too many failed authentications from this address (server.auth_failures_per_minute = {limit}); retry later."
                ),
                retry_after_ms,
                info: limits::RateInfo {
                    limit_requests: None,
                    remaining_requests: None,
                    limit_tokens: None,
                    remaining_tokens: None,
                    reset_ms: retry_after_ms,
                },
            })));
        }
        match self.keys.authenticate(self.store.as_ref(), api_key, now).await {
            Ok(caller) => Ok(caller),
            Err(auth::AuthError::StoreUnavailable) => Err(GatewayError::Auth(auth::AuthError::StoreUnavailable)),
            Err(error) => {
                if let Some(ip) = client {
                    let count = self.failed_auths.record(ip, now);
                    tracing::warn!(client = %ip, reason = %error, failures_this_minute = count, "Authentication failed.");
                }
                Err(GatewayError::Auth(error))
            }
        }
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
    /// `/v1/embeddings`).
    pub async fn openai(
        &self,
        caller: Caller,
        meta: RequestMeta,
        endpoint: Endpoint,
        body: Bytes,
    ) -> Result<Reply, Failure> {
        self.serve(&dialect::OpenAi { endpoint }, caller, meta, body).await
    }

    /// An Anthropic Messages request (`/v1/messages`).
    pub async fn anthropic(&self, caller: Caller, meta: RequestMeta, body: Bytes) -> Result<Reply, Failure> {
        self.serve(&dialect::Anthropic, caller, meta, body).await
    }

    /// An OpenAI Responses API request (`/v1/responses`).
    pub async fn responses(&self, caller: Caller, meta: RequestMeta, body: Bytes) -> Result<Reply, Failure> {
        let (ttl, max_bytes) = {
            let runtime = self.runtime.load();
            (runtime.config.storage.responses_ttl, runtime.config.server.max_body_bytes)
        };
        self.serve(&dialect::Responses { store: &self.store, ttl, max_bytes }, caller, meta, body).await
    }

    /// The lifecycle of a request in any client dialect, top to bottom.
    async fn serve<D: ClientDialect>(
        &self,
        dialect: &D,
        caller: Caller,
        meta: RequestMeta,
        body: Bytes,
    ) -> Result<Reply, Failure> {
        let runtime = self.runtime.load_full();

        // 1. Authenticated by the edge from the headers (`authenticate_from`), before
        // the body was read; from here on every outcome is settled as one usage record.
        let mut settlement =
            Settlement::new(self.ledger.clone(), self.metrics.clone(), &meta.request_id, &caller, meta.started);
        let request = dialect.parse(&body).and_then(|request| {
            bounds::check(&runtime.config.server, D::model(&request), D::shape(&request)).map(|()| request)
        });
        let mut request = match request {
            Ok(request) => request,
            Err(error) => {
                let refused = self.refuse(&caller, &mut settlement, GatewayError::BadRequest(error)).await;
                return Err(refused.settle(settlement));
            }
        };
        if let Some(resolving) = dialect.resolve(&mut request, &caller)
            && let Err(error) = resolving.await
        {
            return Err(self.refuse(&caller, &mut settlement, error).await.settle(settlement));
        }
        let model = D::model(&request);
        settlement.set_model(if runtime.model_index(model).is_some() { model } else { bounds::UNKNOWN_MODEL });

        // 2. Admit (model, limits, budgets) and 3. plan the routes, the conversation's
        // pinned route first.
        let estimate = D::estimate(&request, &body);
        let conversation = self.conversation(&runtime, &caller, model, dialect.conversation(&request, &meta)).await;
        let ask = Ask { model, estimate, pinned: conversation.as_ref().and_then(|conversation| conversation.pinned) };
        let admitted = match self.admit(&runtime, &caller, &meta, ask, &mut settlement).await {
            Ok(admitted) => admitted,
            Err(refused) => return Err(refused.settle(settlement)),
        };

        // 4. Attempt with failover (what answers becomes the conversation's pin); 5. relay
        // and 6. settle happen in the reply.
        let attempts = DialectAttempts { dialect, request: &request, body: &body, runtime: &runtime };
        let plan =
            Plan { candidates: admitted.candidates, region: admitted.region, conversation, caller: Some(&caller) };
        let outcome = self.fail_over(&runtime, &meta, plan, settlement, &attempts).await;
        with_rate_limits(outcome, admitted.rate_limits)
    }

    /// `/v1/messages/count_tokens`: the caller must be allowed the model. llmux does
    /// not tokenize; the count is an estimate (about four characters per token).
    pub async fn anthropic_count_tokens(&self, caller: Caller, body: Bytes) -> Result<u64, Failure> {
        let runtime = self.runtime.load_full();
        let request = llmux_wire::anthropic::decode::count_tokens_request(&body).map_err(GatewayError::BadRequest)?;
        bounds::check_model(&request.model).map_err(GatewayError::BadRequest)?;
        admit::admit_model(&runtime, &caller, &request.model)?;
        Ok(dialect::estimate_input_tokens(&request))
    }

    /// Whether the configured Redis answers (`None`: no Redis configured).
    pub fn fleet_state(&self) -> Option<bool> {
        self.fleet.as_ref().map(llmux_fleet::Fleet::is_up)
    }
}

#[cfg(test)]
mod tests;
