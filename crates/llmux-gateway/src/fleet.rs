//! The gateway's side of the fleet (Redis, `storage.redis`; see the `llmux-fleet`
//! crate): a background sync of rate-limit and budget counters, and fleet notices.
//!
//! - Every [`SYNC_INTERVAL`] the sync adds the tokens settled here to the fleet's
//!   token counters and reads the fleet-wide totals back (one round trip for all
//!   windows), adds budget costs above their leases, adds the costs settled here to the
//!   budgets' cost counters (budget alerts go by the fleet-wide totals they return),
//!   and gives back leases idle for a second.
//! - Notices: a key or team changed through this instance (admin API or CLI) is
//!   announced, and every instance re-reads it from the store at once, so a revocation
//!   holds fleet-wide within a second (without Redis: within `server.key_refresh_ms`).
//!   A route that starts resting here (open circuit, 429) is announced so the others
//!   rest it too. After a gap in the subscription, keys and teams are re-read.
//! - `llmux_redis_up` shows whether Redis answers; while it does not, each instance
//!   runs on its own counts and notices wait for the key refresh.

use std::sync::Weak;
use std::time::Duration;

use llmux_fleet::{Fleet, FleetEvent, FleetOptions};
use tokio::sync::broadcast::error::RecvError;

use crate::{Gateway, clock};

/// How often counters are synced with the fleet.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(200);

/// Connects (in the background) to the configured Redis; `None` when there is none.
pub fn connect(storage: &llmux_config::StorageConfig) -> Result<Option<Fleet>, String> {
    let Some(url) = storage.redis.as_deref() else { return Ok(None) };
    let options = FleetOptions { prefix: storage.redis_prefix.clone(), ..FleetOptions::default() };
    Fleet::new(url, options).map(Some).map_err(|error| format!("storage.redis: {error}"))
}

/// Syncs counters until the gateway is gone or `stop` fires.
pub async fn sync_loop(gateway: Weak<Gateway>, fleet: Fleet, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(SYNC_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(gateway) = gateway.upgrade() else { return };
        let up = fleet.is_up();
        if was_up != Some(up) {
            gateway.metrics.set_redis_up(Some(up));
            was_up = Some(up);
        }
        if up {
            sync_once(&gateway, &fleet).await;
        }
    }
}

/// At shutdown, once requests have settled: the last tokens and costs go to the fleet
/// and every unused lease is given back, so the fleet can use them.
pub async fn leave(gateway: &Gateway, fleet: &Fleet) {
    if !fleet.is_up() {
        return;
    }
    sync_once(gateway, fleet).await;
    let now = u64::try_from(clock::wall_ms()).unwrap_or(0);
    for (counter, unused) in gateway.limits.all_leases(now) {
        let _ = fleet.release(&counter, i64::try_from(unused).unwrap_or(i64::MAX)).await;
    }
    for (counter, unused) in gateway.budgets.all_leases() {
        let _ = fleet.release(&counter, unused).await;
    }
}

async fn sync_once(gateway: &Gateway, fleet: &Fleet) {
    let now = clock::wall_ms();
    let now_u = u64::try_from(now).unwrap_or(0);
    let items = gateway.limits.sync_items(now_u);
    let mut deltas = Vec::with_capacity(items.len() * 2);
    for item in &items {
        let ttl = 120_000;
        deltas.push((item.tokens_counter.clone(), i64::try_from(item.tokens_delta).unwrap_or(i64::MAX), 0, ttl));
        deltas.push((item.requests_counter.clone(), 0, 0, ttl));
    }
    let debts = gateway.budgets.debts();
    deltas.extend(debts.iter().map(|(counter, debt, ttl)| (counter.clone(), *debt, 0, *ttl)));
    let costs = gateway.budgets.unsynced_costs();
    deltas.extend(costs.iter().map(|cost| (cost.counter.clone(), cost.delta, cost.initial, cost.ttl_ms)));
    if !deltas.is_empty() {
        match fleet.add_many_from(&deltas).await {
            Ok(totals) => {
                for (index, item) in items.iter().enumerate() {
                    let read = |at: usize| totals.get(at).map_or(0, |total| u64::try_from(*total).unwrap_or(0));
                    gateway.limits.synced(item, read(2 * index), read(2 * index + 1));
                }
                gateway.budgets.costs_synced(&costs, totals.get(items.len() * 2 + debts.len()..).unwrap_or_default());
            }
            Err(error) => {
                tracing::debug!(%error, "Fleet counter sync failed; retrying at the next tick.");
                // Nothing added: the token deltas stay unsynced; debts and costs are owed again.
                gateway.budgets.owe(debts);
                gateway.budgets.costs_unsynced(costs);
            }
        }
    }
    for (counter, unused) in gateway.limits.idle_leases(now_u) {
        let _ = fleet.release(&counter, i64::try_from(unused).unwrap_or(i64::MAX)).await;
    }
    for (counter, unused) in gateway.budgets.idle_leases(now) {
        let _ = fleet.release(&counter, unused).await;
    }
}

/// Applies notices from other instances until the gateway is gone.
pub async fn listen(gateway: Weak<Gateway>, fleet: Fleet) {
    let mut events = fleet.subscribe();
    loop {
        let message = events.recv().await;
        let Some(gateway) = gateway.upgrade() else { return };
        let store = gateway.store.clone();
        match message {
            Ok(message) if message.from_self => {}
            Ok(message) => match message.event {
                FleetEvent::KeyChanged { key_id } => match store.key(&key_id).await {
                    Ok(Some(key)) => gateway.keys.apply(vec![key]),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "Could not re-read a key changed elsewhere."),
                },
                FleetEvent::TeamChanged { team } => match store.team(&team).await {
                    Ok(Some(record)) => gateway.keys.apply_team(record),
                    Ok(None) => gateway.keys.remove_team(&team),
                    Err(error) => tracing::warn!(%error, "Could not re-read a team changed elsewhere."),
                },
                FleetEvent::RouteResting { provider, upstream_model, until_ms } => {
                    let runtime = gateway.runtime();
                    // From wall-clock time to this instance's health clock.
                    let left = u64::try_from(until_ms.saturating_sub(clock::wall_ms())).unwrap_or(0);
                    let until = crate::clock::monotonic_ms().saturating_add(left.min(3_600_000));
                    for (index, model) in runtime.config.models.iter().enumerate() {
                        for (route_index, route) in model.routes.iter().enumerate() {
                            if route.model == upstream_model
                                && runtime.config.providers[route.provider].name == provider
                            {
                                runtime.health.model(index)[route_index].rest_hint(until);
                            }
                        }
                    }
                }
                FleetEvent::Resubscribed => resync(&gateway).await,
            },
            Err(RecvError::Lagged(_)) => resync(&gateway).await,
            Err(RecvError::Closed) => return,
        }
    }
}

/// Notices may have been missed: re-read keys and teams.
async fn resync(gateway: &Gateway) {
    if let Err(error) = gateway.keys.refresh(gateway.store.as_ref()).await {
        tracing::warn!(%error, "Key refresh after a gap in fleet notices failed.");
    }
}

/// Announces `event` to the fleet in the background (best effort: without Redis the
/// key refresh carries the change within `server.key_refresh_ms`).
pub fn announce(fleet: Option<&Fleet>, event: FleetEvent) {
    let Some(fleet) = fleet.cloned() else { return };
    tokio::spawn(async move {
        if let Err(error) = fleet.publish(&event).await {
            tracing::debug!(%error, "Could not announce a change to the fleet.");
        }
    });
}

/// Announces `event` and waits for it to be sent (the CLI, before it exits).
pub async fn announce_now(storage: &llmux_config::StorageConfig, event: FleetEvent) -> Result<(), String> {
    let Some(fleet) = connect(storage)? else { return Ok(()) };
    fleet.publish(&event).await.map_err(|error| error.to_string())
}
