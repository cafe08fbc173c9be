//! Plan: which routes a request may take, in the order to try them.
//!
//! The model's own routes, then each fallback model's routes. Routes whose provider does
//! not serve the caller's region, or that refused it recently, are left out. Within a
//! model, routes are grouped by `priority` (lower first); within a group the model's
//! `strategy` orders them:
//! - `priority`: as listed.
//! - `weighted`: a random order drawn by `weight` (a route of weight 3 comes first three
//!   times as often as one of weight 1).
//! - `latency`: power of two choices: two routes drawn at random, the one with the
//!   lower moving-average time to the response head first (an unmeasured route counts
//!   as fastest, so it gets measured), the rest by that average; load spreads instead of
//!   piling onto the single fastest route.
//! - `least-busy`: fewest attempts in flight first.
//! - `cost`: cheapest for the request's estimated tokens first. Prices compare only
//!   within a currency (llmux keeps no exchange rates): routes priced in the currency of
//!   the first priced route as listed come first, then those in other currencies (each
//!   by amount), then routes without a price.
//!
//! Routes whose circuit is open or that are resting after a 429 (see `health`) come
//! after every available route of the model and its fallbacks: tried only when nothing
//! else is left.
//!
//! A conversation's pinned route (see `affinity`) goes first if it is available and in
//! the group the plan starts with (the first priority tier of the first model with an
//! available route): the pin overrides the strategy, never `priority` tiers, fallbacks
//! or health. Under `strategy = "priority"` the listed order stands.

use std::sync::Arc;

use llmux_config::{RouteConfig, Strategy};
use llmux_types::Region;

use crate::Runtime;
use crate::clock;
use crate::error::GatewayError;
use crate::health::{Availability, RouteHealth};
pub use crate::route::{Candidate, RouteId};

/// The request's size as far as planning cares (the `cost` strategy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenEstimate {
    pub input: u64,
    pub output: u64,
}

/// Output tokens assumed when the request sets no limit.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 512;

/// The routes for `model`, in try order.
pub fn plan(
    runtime: &Runtime,
    model: usize,
    region: Option<Region>,
    estimate: TokenEstimate,
) -> Result<Vec<Candidate>, GatewayError> {
    plan_pinned(runtime, model, region, estimate, None)
}

/// The routes for `model`, in try order, with the route `pinned` (a conversation's)
/// first where the plan allows it (see the module's notes).
pub fn plan_pinned(
    runtime: &Runtime,
    model: usize,
    region: Option<Region>,
    estimate: TokenEstimate,
    pinned: Option<RouteId>,
) -> Result<Vec<Candidate>, GatewayError> {
    plan_for(runtime, model, region, estimate, pinned, &|_| true)
}

/// [`plan_pinned`] for a caller: a `fallbacks` model the caller may not use
/// (`may_use` says no to its name) is not planned.
pub fn plan_for(
    runtime: &Runtime,
    model: usize,
    region: Option<Region>,
    estimate: TokenEstimate,
    pinned: Option<RouteId>,
    may_use: &dyn Fn(&str) -> bool,
) -> Result<Vec<Candidate>, GatewayError> {
    let config = &runtime.config;
    let now = clock::monotonic_ms();
    let mut available = Vec::with_capacity(config.models[model].routes.len());
    let mut resting = Vec::new();
    let mut models = [model; 8];
    let mut model_count = 1;
    for fallback in &config.models[model].fallbacks {
        if let Some(index) = runtime.model_index(fallback)
            && may_use(fallback)
            && !models[..model_count].contains(&index)
            && model_count < models.len()
        {
            models[model_count] = index;
            model_count += 1;
        }
    }
    let (mut up, mut down) = (Vec::with_capacity(8), Vec::new());
    for &model_index in &models[..model_count] {
        let model_config = &config.models[model_index];
        let routes = &model_config.routes;
        let health = runtime.health.model(model_index);
        up.clear();
        down.clear();
        for (index, route) in routes.iter().enumerate() {
            if !config.providers[route.provider].regions.serves(region) {
                continue;
            }
            match health[index].availability(region, now, &runtime.health.policy) {
                Availability::Available => up.push(index),
                Availability::Resting => down.push(index),
                Availability::Refused => {}
            }
        }
        order(model_config.strategy, routes, health, estimate, &mut up);
        order(model_config.strategy, routes, health, estimate, &mut down);
        available.extend(up.iter().map(|route| Candidate { model: model_index, route: *route }));
        resting.extend(down.iter().map(|route| Candidate { model: model_index, route: *route }));
    }
    if let Some(pinned) = pinned {
        pin_first(runtime, &mut available, pinned);
    }
    available.append(&mut resting);
    if available.is_empty() {
        return Err(GatewayError::RegionNotServed {
            model: config.models[model].name.clone(),
            region: region.map_or_else(|| "(unknown)".to_owned(), |region| region.to_string()),
        });
    }
    Ok(available)
}

/// Moves the route `pinned` to the front of `available` if it is in the leading group:
/// the first candidate's model and priority tier, unless that model's strategy is
/// `priority`.
fn pin_first(runtime: &Runtime, available: &mut [Candidate], pinned: RouteId) {
    let Some(&first) = available.first() else { return };
    let model = &runtime.config.models[first.model];
    if model.strategy == Strategy::Priority {
        return;
    }
    let tier = model.routes[first.route].priority;
    let leading = available
        .iter()
        .take_while(|candidate| candidate.model == first.model && model.routes[candidate.route].priority == tier);
    if let Some(at) = leading.map(|candidate| runtime.route_id(*candidate)).position(|id| id == pinned) {
        available[..=at].rotate_right(1);
    }
}

/// Orders `group` (route indices of one model): by priority, then by `strategy` within
/// each priority.
fn order(
    strategy: Strategy,
    routes: &[RouteConfig],
    health: &[Arc<RouteHealth>],
    estimate: TokenEstimate,
    group: &mut [usize],
) {
    group.sort_by_key(|route| routes[*route].priority);
    let mut start = 0;
    while start < group.len() {
        let priority = routes[group[start]].priority;
        let end = start + group[start..].iter().take_while(|route| routes[**route].priority == priority).count();
        let tier = &mut group[start..end];
        match strategy {
            Strategy::Priority => {}
            Strategy::Weighted => weighted_shuffle(routes, tier),
            Strategy::Latency => power_of_two_choices(health, tier),
            Strategy::LeastBusy => tier.sort_by_key(|route| health[*route].in_flight()),
            Strategy::Cost => by_cost(routes, estimate, tier),
        }
        start = end;
    }
}

/// Draws the order at random, each remaining route with probability proportional to
/// its weight.
fn weighted_shuffle(routes: &[RouteConfig], tier: &mut [usize]) {
    for position in 0..tier.len().saturating_sub(1) {
        let total: u64 = tier[position..].iter().map(|route| u64::from(routes[*route].weight)).sum();
        let mut pick = fastrand::u64(0..total.max(1));
        let mut chosen = position;
        for (offset, route) in tier[position..].iter().enumerate() {
            let weight = u64::from(routes[*route].weight);
            if pick < weight {
                chosen = position + offset;
                break;
            }
            pick -= weight;
        }
        tier.swap(position, chosen);
    }
}

fn power_of_two_choices(health: &[Arc<RouteHealth>], tier: &mut [usize]) {
    tier.sort_by_key(|route| health[*route].latency_us());
    if tier.len() < 2 {
        return;
    }
    let first = fastrand::usize(0..tier.len());
    let mut second = fastrand::usize(0..tier.len() - 1);
    if second >= first {
        second += 1;
    }
    let latency = |at: usize| health[tier[at]].latency_us();
    let winner = match latency(first).cmp(&latency(second)) {
        std::cmp::Ordering::Less => first,
        std::cmp::Ordering::Greater => second,
        std::cmp::Ordering::Equal => first.min(second) + usize::from(fastrand::bool()) * first.abs_diff(second),
    };
    tier[..=winner].rotate_right(1);
}

fn by_cost(routes: &[RouteConfig], estimate: TokenEstimate, tier: &mut [usize]) {
    let cost = |route: &RouteConfig| {
        route.price.map(|price| {
            let per_million = i128::from(price.input) * i128::from(estimate.input)
                + i128::from(price.output) * i128::from(estimate.output);
            (price.currency, per_million)
        })
    };
    // Amounts compare only within a currency: the first priced route's is the reference.
    let reference = tier.iter().find_map(|route| routes[*route].price).map(|price| price.currency);
    tier.sort_by_key(|route| match cost(&routes[*route]) {
        Some((currency, amount)) => (u8::from(Some(currency) != reference), amount),
        None => (2, 0),
    });
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
