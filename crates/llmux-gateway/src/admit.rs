//! Step 2 of the lifecycle, admission: the model exists and the caller may use it,
//! the routes to try are planned (step 3, `router`; a conversation's pinned route first,
//! see `affinity`), and the request fits the rate limits and budgets of its key and team
//! (all counted, or none).

use llmux_types::Region;

use crate::auth::Caller;
use crate::error::GatewayError;
use crate::outcome::{Failure, RequestMeta, fail};
use crate::route::{Candidate, RouteId};
use crate::router::{self, TokenEstimate};
use crate::settle::Settlement;
use crate::{Gateway, Runtime, budgets, clock, limits};

/// What a request asks admission for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    /// The public model name.
    pub model: &'a str,
    pub estimate: TokenEstimate,
    /// The route the request's conversation is pinned to, if any.
    pub pinned: Option<RouteId>,
}

/// A request admitted: the routes to try, the caller's region and rate-limit standing.
pub(crate) struct Admitted {
    pub candidates: Vec<Candidate>,
    pub region: Option<Region>,
    pub rate_limits: Option<limits::RateInfo>,
}

/// A request refused at admission.
pub(crate) struct Refused {
    error: GatewayError,
    rate_limits: Option<limits::RateInfo>,
}

impl Refused {
    /// Settles the refused request (one usage record) and says why to the caller.
    pub(crate) fn settle(self, settlement: Settlement) -> Failure {
        let mut failure = fail(settlement, self.error);
        failure.rate_limits = failure.rate_limits.or(self.rate_limits.map(Box::new));
        failure
    }
}

impl From<GatewayError> for Refused {
    fn from(error: GatewayError) -> Refused {
        Refused { error, rate_limits: None }
    }
}

impl Gateway {
    /// Admits a request for a model and plans its routes; reservations of rate limits
    /// and budgets go into `settlement`, which returns them if the request fails.
    pub(crate) async fn admit(
        &self,
        runtime: &Runtime,
        caller: &Caller,
        meta: &RequestMeta,
        ask: Ask<'_>,
        settlement: &mut Settlement,
    ) -> Result<Admitted, Refused> {
        let Ask { model, estimate, pinned } = ask;
        // What the request is billed for its input if no upstream reports it.
        settlement.estimate_input(estimate.input);
        let region = caller_region(runtime, caller, meta.region_header.as_deref());
        let planned = admit_model(runtime, caller, model)
            .and_then(|model| router::plan_for(runtime, model, region, estimate, pinned, &|name| caller.may_use(name)));
        let candidates = match planned {
            Ok(candidates) => candidates,
            Err(error) => return Err(self.refuse(caller, settlement, error).await),
        };
        let rate_limits = self.rate_limit(caller, settlement).await?;
        if let Err(error) = self.budget(runtime, caller, &candidates, estimate, settlement).await {
            return Err(Refused { error, rate_limits });
        }
        Ok(Admitted { candidates, region, rate_limits })
    }

    /// A request refused before admission (unreadable body, unknown or forbidden model,
    /// region not served) still counts against the request rate of its key and team:
    /// a key that keeps sending what is refused is rate-limited like any other
    /// (429 instead of the refusal once its window is full).
    pub(crate) async fn refuse(&self, caller: &Caller, settlement: &mut Settlement, error: GatewayError) -> Refused {
        match self.rate_limit(caller, settlement).await {
            Ok(rate_limits) => Refused { error, rate_limits },
            Err(limited) => Refused::from(limited),
        }
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

    /// Whether Redis answers and holds the budget counter `counter` (seeded from the
    /// ledger by the instance that started it).
    async fn fleet_tracks(&self, counter: &str) -> bool {
        let Some(fleet) = self.fleet_up() else { return false };
        let values = fleet.get_many(&[counter.to_owned()]).await.unwrap_or_default();
        values.first().is_some_and(|value| *value > 0)
    }

    /// The fleet, when Redis is configured and answering.
    pub(crate) fn fleet_up(&self) -> Option<&llmux_fleet::Fleet> {
        self.fleet.as_ref().filter(|fleet| fleet.is_up())
    }

    /// Admits a request against the windows of `scopes`: from this instance's counts,
    /// or with Redis from leases claimed from the fleet (a round trip only when a lease
    /// is used up). If Redis fails meanwhile, this instance counts alone.
    pub(crate) async fn admit_limits(
        &self,
        scopes: &[limits::Scope],
    ) -> Result<Option<(limits::Reservation, limits::RateInfo)>, limits::Refusal> {
        let mut fleet = self.fleet_up();
        for _ in 0..8 {
            let now = u64::try_from(clock::wall_ms()).unwrap_or(0);
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
        let now = clock::wall_ms();
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
        let price = candidates.first().and_then(|candidate| runtime.route(*candidate).price);
        let estimated =
            |currency| price.filter(|price| price.currency == currency).map_or(0, |price| price.cost(&usage).nanos);
        let mut fleet = self.fleet_up();
        for _ in 0..8 {
            let now = clock::wall_ms();
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
}

/// The caller's region: its key's, or the `x-llmux-region` header where trusted.
fn caller_region(runtime: &Runtime, caller: &Caller, header: Option<&str>) -> Option<Region> {
    if runtime.config.server.trust_region_header
        && let Some(region) = header.and_then(llmux_config::parse_region)
    {
        return Some(region);
    }
    caller.region
}

/// The model index, if it exists and the caller may use it.
pub(crate) fn admit_model(runtime: &Runtime, caller: &Caller, model: &str) -> Result<usize, GatewayError> {
    let index = runtime.model_index(model).ok_or_else(|| GatewayError::ModelNotFound(model.to_owned()))?;
    if !caller.may_use(model) {
        return Err(GatewayError::ModelNotAllowed(model.to_owned()));
    }
    Ok(index)
}
