//! Budgets per key and per team (step 2, admit): an amount in a currency per period
//! (`daily`, `weekly` from Monday, `monthly`, or `total`; UTC), in this process. A
//! request of a key in a team must fit both budgets; the team's is shared by its keys.
//!
//! Admission reserves the request's estimated cost (the first planned route's price
//! for the estimated input tokens and `max_tokens`, or 512 output tokens) and admits it
//! only while spent + reserved + estimate stay within the budget; settling replaces the
//! reservation by the actual cost. Concurrent requests therefore cannot overspend by
//! more than the amount their actual costs exceed their estimates. A refused request
//! gets 429 `budget_exceeded` and never reaches the upstream.
//!
//! What was spent before this process started (or before the period's first request
//! here) comes from the ledger once per key (or team) and period. Costs in another currency than
//! the budget's do not count against it (llmux keeps no exchange rates).
//!
//! With Redis (`storage.redis`), a budget is shared by the fleet through leases: the
//! budget's counter in Redis (seeded once from the ledger) holds what the fleet has
//! claimed; an instance claims money (the request's estimate, or a thirty-second of the
//! budget if more) and reserves estimates from its lease locally. Settlement returns
//! what an estimate did not use to the lease, and a cost above the estimate is added to
//! the counter by the background sync. The fleet therefore never commits more than the
//! budget, beyond the amount actual costs exceed estimates; leases an idle instance
//! does not use are given back after a second. While Redis is unreachable, each
//! instance holds the budget against its own view of the spend.
//!
//! Alerts: without Redis, a settlement that carries the spend across a threshold reports
//! it. With Redis, the costs settled here go to the budget's cost counter at the next
//! sync (the lease counter also holds unspent leases, so it cannot tell the spend), and
//! the instance whose addition carries the fleet's total across a threshold reports it.

use std::sync::Arc;

use llmux_types::Currency;
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::FastMap;

/// Spend per key and team in the current period.
#[derive(Debug, Default)]
pub struct Budgets {
    accounts: Mutex<FastMap<String, Account>>,
    /// Percentages whose crossing is reported, and where to.
    alerts: parking_lot::RwLock<Option<(Vec<u8>, tokio::sync::mpsc::UnboundedSender<Crossing>)>>,
}

/// A budget's spend crossed one of the alert thresholds (`server.budget_alert_thresholds`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// The account: a key id, or `team:` and the team name.
    pub account: String,
    pub threshold_percent: u8,
    pub spent_nanos: i64,
    pub budget_nanos: i64,
    pub currency: Currency,
    pub period: String,
    pub period_start: i64,
}

#[derive(Debug, Clone, Default)]
struct Account {
    period_start: i64,
    /// What the ledger said at load, plus what settled here since.
    spent: i64,
    reserved: i64,
    /// What the ledger said at load (seeds the fleet counter).
    loaded: i64,
    /// Fleet mode: money claimed from the fleet and not yet reserved.
    lease: i64,
    /// Fleet mode: costs above what was claimed, to add to the fleet counter.
    debt: i64,
    exhausted_until: i64,
    last_active: i64,
    /// Fleet mode: the counter's name and expiry (set at the first reservation).
    counter: String,
    ttl_ms: u64,
    /// Fleet mode: costs settled here not yet added to the fleet's cost counter (which
    /// alerts go by), and the budget they were settled against.
    unsynced_cost: i64,
    terms: Option<Terms>,
    /// Fleet mode: the fleet's spend as the cost counter last read (what this
    /// instance knows the whole fleet spent).
    fleet_cost: i64,
}

impl Account {
    fn fresh(period_start: i64, spent: i64) -> Account {
        Account { period_start, spent, loaded: spent, ..Account::default() }
    }
}

/// An unused lease is given back after this long without a reservation.
const IDLE_RELEASE_MS: i64 = 1_000;
/// After the fleet had no more money to lease, ask again only after this long.
const EXHAUSTED_RETRY_MS: i64 = 250;

/// A lease of money to claim from the fleet before a request can be admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyWanted {
    pub account: String,
    pub period_start: i64,
    /// The fleet counter's name.
    pub counter: String,
    /// What the ledger says was spent this period (seeds an absent counter).
    pub initial: i64,
    pub limit: i64,
    pub want: i64,
    /// What the request's estimate lacks (`want` may be more: a lease is at least a
    /// thirty-second of the budget).
    pub need: i64,
    pub ttl_ms: u64,
}

/// Costs an account settled here, for the fleet's cost counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostDelta {
    pub account: String,
    pub counter: String,
    pub delta: i64,
    /// What the ledger said at load (seeds an absent counter).
    pub initial: i64,
    pub ttl_ms: u64,
    pub terms: Terms,
}

/// Why [`Budgets::reserve`] did not reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReserved {
    Exhausted(Exhausted),
    /// Fleet mode: these leases must be claimed first (then reserve again).
    NeedLeases(Vec<MoneyWanted>),
}

/// The fleet counter of a budget account's period.
pub fn counter(account: &str, currency: Currency, period_start: i64) -> String {
    format!("spend:{account}:{currency}:{period_start}")
}

/// The fleet counter of the costs settled in a budget account's period (seeded from the
/// ledger): what budget alerts go by in a fleet. The lease counter ([`counter`]) also
/// holds leases not yet spent, so it runs ahead of the spend.
fn cost_counter(account: &str, currency: Currency, period_start: i64) -> String {
    format!("cost:{account}:{currency}:{period_start}")
}

/// A budget's terms, for alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub budget_nanos: i64,
    pub currency: Currency,
    pub period: &'static str,
    pub period_start: i64,
}

/// The alert thresholds (percentages of the budget) that spend going from `before` to
/// `after` crosses.
fn crossed<'a>(
    thresholds: &'a [u8],
    account: &'a str,
    terms: Terms,
    before: i64,
    after: i64,
) -> impl Iterator<Item = Crossing> + 'a {
    thresholds.iter().filter_map(move |&percent| {
        let line = i128::from(terms.budget_nanos) * i128::from(percent) / 100;
        (i128::from(before) < line && i128::from(after) >= line).then(|| Crossing {
            account: account.to_owned(),
            threshold_percent: percent,
            spent_nanos: after,
            budget_nanos: terms.budget_nanos,
            currency: terms.currency,
            period: terms.period.to_owned(),
            period_start: terms.period_start,
        })
    })
}

/// A period name without an allocation per request.
fn static_period(period: &str) -> &'static str {
    match period {
        "daily" => "daily",
        "weekly" => "weekly",
        "monthly" => "monthly",
        _ => "total",
    }
}

/// How long a budget counter lives: beyond its period's longest length.
fn counter_ttl_ms(period: &str) -> u64 {
    const DAY: u64 = 86_400_000;
    match period {
        "daily" => 2 * DAY,
        "weekly" => 8 * DAY,
        "monthly" => 32 * DAY,
        _ => 0,
    }
}

/// One budget a request is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The account's name: the key id, or `team:` and the team name.
    pub account: String,
    /// How refusals name it: `this key`, or `team NAME`.
    pub label: String,
    pub budget_nanos: i64,
    pub currency: Currency,
    pub period: String,
    /// The start of the current period (see [`period_start`]).
    pub period_start: i64,
}

/// A refused request's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub label: String,
    pub spent_nanos: i64,
    pub budget_nanos: i64,
    pub currency: Currency,
    pub period: String,
    /// Refused for money held in flight, not spent: this instance's reservations (actual
    /// costs are usually below estimates) or, in a fleet, leases other instances hold
    /// (given back when idle). The request may fit soon. Otherwise the known spend
    /// leaves no room for it and retrying cannot help.
    pub in_flight: bool,
}

/// An admitted request's reserved cost; replaced by the actual cost at settlement.
#[derive(Debug)]
pub struct BudgetReservation {
    budgets: Arc<Budgets>,
    accounts: Vec<Held>,
}

#[derive(Debug)]
struct Held {
    account: String,
    period_start: i64,
    currency: Currency,
    reserved: i64,
    budget_nanos: i64,
    period: &'static str,
    /// Reserved from a fleet lease.
    leased: bool,
}

impl Held {
    fn terms(&self) -> Terms {
        Terms {
            budget_nanos: self.budget_nanos,
            currency: self.currency,
            period: self.period,
            period_start: self.period_start,
        }
    }
}

impl BudgetReservation {
    /// The request cost `nanos` in `currency` (other currencies do not count).
    pub fn settle(self, nanos: i64, currency: Option<Currency>) {
        let mut crossings = Vec::new();
        let mut accounts = self.budgets.accounts.lock();
        let alerts = self.budgets.alerts.read();
        for held in &self.accounts {
            if let Some(account) = accounts.get_mut(&held.account)
                && account.period_start == held.period_start
            {
                account.reserved = (account.reserved - held.reserved).max(0);
                let cost = if currency == Some(held.currency) { nanos } else { 0 };
                if held.leased {
                    // What the estimate did not use goes back to the lease; a cost above
                    // it is owed to the fleet counter.
                    account.lease += held.reserved - cost;
                    if account.lease < 0 {
                        account.debt -= account.lease;
                        account.lease = 0;
                    }
                } else if !account.counter.is_empty() {
                    // Admitted on local counts while Redis was away: the fleet counter
                    // learns the cost at the next sync.
                    account.debt += cost;
                }
                if currency == Some(held.currency) {
                    let before = account.spent;
                    account.spent = account.spent.saturating_add(nanos);
                    if account.counter.is_empty() {
                        let thresholds = alerts.as_ref().map_or(&[][..], |(thresholds, _)| thresholds);
                        crossings.extend(crossed(thresholds, &held.account, held.terms(), before, account.spent));
                    } else {
                        // The fleet's spend decides alerts: the sync adds this cost to
                        // the fleet's cost counter and reports the crossings it sees.
                        account.unsynced_cost = account.unsynced_cost.saturating_add(nanos);
                        account.terms = Some(held.terms());
                    }
                }
            }
        }
        drop(accounts);
        if let Some((_, sink)) = alerts.as_ref() {
            for crossing in crossings {
                let _ = sink.send(crossing);
            }
        }
    }
}

/// The start (Unix ms, UTC) of the budget period containing `now_ms`; `None` for an
/// unknown period name.
pub fn period_start(period: &str, now_ms: i64) -> Option<i64> {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000).ok()?;
    let midnight = now.replace_time(time::Time::MIDNIGHT);
    let start = match period {
        "total" => return Some(0),
        "daily" => midnight,
        "weekly" => midnight - time::Duration::days(i64::from(now.weekday().number_days_from_monday())),
        "monthly" => midnight.replace_day(1).ok()?,
        _ => return None,
    };
    Some((start.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl Budgets {
    /// Reports crossings of `thresholds` (percentages of a budget) to `sink`.
    pub fn set_alerts(&self, thresholds: Vec<u8>, sink: tokio::sync::mpsc::UnboundedSender<Crossing>) {
        *self.alerts.write() = Some((thresholds, sink));
    }

    /// New thresholds (a reloaded configuration), same sink.
    pub fn set_alert_thresholds(&self, thresholds: Vec<u8>) {
        if let Some((known, _)) = self.alerts.write().as_mut() {
            *known = thresholds;
        }
    }

    /// Whether the spend of `account` in the period starting at `period_start` must be
    /// read from the ledger first.
    pub fn needs_load(&self, account: &str, period_start: i64) -> bool {
        self.accounts.lock().get(account).is_none_or(|known| known.period_start != period_start)
    }

    /// Sets what the ledger says `account` spent in the period (unless another request
    /// loaded it meanwhile).
    pub fn load(&self, account: &str, period_start: i64, spent: i64) {
        let mut accounts = self.accounts.lock();
        let known = accounts.entry(account.to_owned()).or_insert(Account::fresh(period_start, spent));
        if known.period_start != period_start {
            *known = Account::fresh(period_start, spent);
        }
    }

    /// Reserves the request's estimated cost (`estimate` prices it in a budget's
    /// currency) against every one of `limits`, or says which budget is exhausted. All
    /// or none. With `fleet`, estimates come out of leases; [`NotReserved::NeedLeases`]
    /// says which to claim first.
    pub fn reserve(
        self: &Arc<Self>,
        limits: &[Limit],
        estimate: impl Fn(Currency) -> i64,
        now_ms: i64,
        fleet: bool,
    ) -> Result<BudgetReservation, NotReserved> {
        let mut accounts = self.accounts.lock();
        let mut wanted = Vec::new();
        for limit in limits {
            let estimate = estimate(limit.currency);
            // No key allocation for an account already known (the common case).
            if !accounts.contains_key(&limit.account) {
                accounts.insert(limit.account.clone(), Account::fresh(limit.period_start, 0));
            }
            let Some(account) = accounts.get_mut(&limit.account) else { continue };
            if account.period_start != limit.period_start {
                *account = Account::fresh(limit.period_start, 0);
            }
            account.last_active = now_ms;
            let committed = account.spent.saturating_add(account.reserved);
            let local_room = committed < limit.budget_nanos && committed.saturating_add(estimate) <= limit.budget_nanos;
            let fleet_short = fleet && account.lease < estimate;
            let fleet_exhausted = fleet_short && account.exhausted_until > now_ms;
            if !local_room || fleet_exhausted {
                return Err(NotReserved::Exhausted(Exhausted {
                    label: limit.label.clone(),
                    spent_nanos: account.spent,
                    budget_nanos: limit.budget_nanos,
                    currency: limit.currency,
                    period: limit.period.clone(),
                    in_flight: account.spent.max(account.fleet_cost).saturating_add(estimate) <= limit.budget_nanos,
                }));
            }
            if fleet && account.counter.is_empty() {
                account.counter = counter(&limit.account, limit.currency, limit.period_start);
                account.ttl_ms = counter_ttl_ms(&limit.period);
            }
            if fleet_short {
                wanted.push(MoneyWanted {
                    account: limit.account.clone(),
                    period_start: limit.period_start,
                    counter: account.counter.clone(),
                    initial: account.loaded,
                    limit: limit.budget_nanos,
                    want: (estimate - account.lease).max(limit.budget_nanos / 32).max(1),
                    need: estimate - account.lease,
                    ttl_ms: account.ttl_ms,
                });
            }
        }
        if !wanted.is_empty() {
            return Err(NotReserved::NeedLeases(wanted));
        }
        let mut held = Vec::with_capacity(limits.len());
        for limit in limits {
            let estimate = estimate(limit.currency);
            if let Some(account) = accounts.get_mut(&limit.account) {
                account.reserved = account.reserved.saturating_add(estimate);
                if fleet {
                    account.lease -= estimate;
                }
            }
            held.push(Held {
                account: limit.account.clone(),
                period_start: limit.period_start,
                currency: limit.currency,
                reserved: estimate,
                budget_nanos: limit.budget_nanos,
                period: static_period(&limit.period),
                leased: fleet,
            });
        }
        Ok(BudgetReservation { budgets: self.clone(), accounts: held })
    }

    /// The fleet granted `granted` of a wanted lease (fewer than wanted: it has no more
    /// for now). Returns what to give back to the fleet at once: when even the grant
    /// leaves the lease short of the request's estimate, this instance cannot use what
    /// it holds, and another instance (or this one, once more is given back) may
    /// complete an estimate with it. Without that, instances each holding part of the
    /// rest of a budget would refuse for as long as traffic keeps their leases busy.
    #[must_use = "money to give back to the fleet"]
    pub fn granted(&self, wanted: &MoneyWanted, granted: i64, now_ms: i64) -> i64 {
        let mut accounts = self.accounts.lock();
        let Some(account) =
            accounts.get_mut(&wanted.account).filter(|account| account.period_start == wanted.period_start)
        else {
            return granted;
        };
        account.lease += granted;
        if granted >= wanted.want {
            return 0;
        }
        account.exhausted_until = now_ms + EXHAUSTED_RETRY_MS;
        if granted >= wanted.need {
            return 0;
        }
        std::mem::take(&mut account.lease)
    }

    /// The fleet sync's work: (counter, amount, expiry) of costs above what was
    /// leased, to add to the fleet counters; taken off the accounts at once.
    pub fn debts(&self) -> Vec<(String, i64, u64)> {
        let mut accounts = self.accounts.lock();
        let mut debts = Vec::new();
        for account in accounts.values_mut().filter(|account| account.debt > 0) {
            if !account.counter.is_empty() {
                debts.push((account.counter.clone(), account.debt, account.ttl_ms));
            }
            account.debt = 0;
        }
        debts
    }

    /// Debts [`Budgets::debts`] took that could not be added after all.
    pub fn owe(&self, debts: Vec<(String, i64, u64)>) {
        let mut accounts = self.accounts.lock();
        for (counter, debt, _) in debts {
            if let Some(account) = accounts.values_mut().find(|account| account.counter == counter) {
                account.debt += debt;
            }
        }
    }

    /// The fleet sync's other work: costs settled here since the last sync, to add to
    /// the fleet's cost counters; taken off the accounts at once.
    pub fn unsynced_costs(&self) -> Vec<CostDelta> {
        let mut accounts = self.accounts.lock();
        let mut costs = Vec::new();
        for (name, account) in accounts.iter_mut().filter(|(_, account)| account.unsynced_cost > 0) {
            if let Some(terms) = account.terms {
                costs.push(CostDelta {
                    account: name.clone(),
                    counter: cost_counter(name, terms.currency, terms.period_start),
                    delta: account.unsynced_cost,
                    initial: account.loaded,
                    ttl_ms: account.ttl_ms,
                    terms,
                });
            }
            account.unsynced_cost = 0;
        }
        costs
    }

    /// The fleet's cost counters took `costs` and now read `totals`: the alert
    /// thresholds each addition crossed are reported (by this instance alone, since
    /// each addition is atomic).
    pub fn costs_synced(&self, costs: &[CostDelta], totals: &[i64]) {
        let mut accounts = self.accounts.lock();
        for (cost, &total) in costs.iter().zip(totals) {
            if let Some(account) = accounts.get_mut(&cost.account).filter(|a| a.period_start == cost.terms.period_start)
            {
                account.fleet_cost = account.fleet_cost.max(total);
            }
        }
        drop(accounts);
        let alerts = self.alerts.read();
        let Some((thresholds, sink)) = alerts.as_ref() else { return };
        for (cost, &total) in costs.iter().zip(totals) {
            for crossing in crossed(thresholds, &cost.account, cost.terms, total - cost.delta, total) {
                let _ = sink.send(crossing);
            }
        }
    }

    /// Costs [`Budgets::unsynced_costs`] took that could not be added after all.
    pub fn costs_unsynced(&self, costs: Vec<CostDelta>) {
        let mut accounts = self.accounts.lock();
        for cost in costs {
            if let Some(account) = accounts.get_mut(&cost.account).filter(|a| a.period_start == cost.terms.period_start)
            {
                account.unsynced_cost = account.unsynced_cost.saturating_add(cost.delta);
            }
        }
    }

    /// Leases idle for a second: (counter, unused amount) to give back; taken off the
    /// accounts at once.
    pub fn idle_leases(&self, now_ms: i64) -> Vec<(String, i64)> {
        self.unused_leases(now_ms, IDLE_RELEASE_MS)
    }

    /// Every unused lease (at shutdown), taken off the accounts.
    pub fn all_leases(&self) -> Vec<(String, i64)> {
        self.unused_leases(i64::MAX, 0)
    }

    fn unused_leases(&self, now_ms: i64, idle_ms: i64) -> Vec<(String, i64)> {
        let mut accounts = self.accounts.lock();
        let mut idle = Vec::new();
        for account in accounts.values_mut() {
            if account.lease > 0 && now_ms.saturating_sub(account.last_active) >= idle_ms {
                idle.push((account.counter.clone(), account.lease));
                account.lease = 0;
            }
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_utc_midnight_monday_and_the_first() {
        // 2026-11-29 (a Sunday) 15:30 UTC.
        let now = 1_795_966_200_000;
        let day = period_start("daily", now).unwrap();
        assert_eq!(day, 1_795_910_400_000);
        assert_eq!(period_start("weekly", now).unwrap(), day - 6 * 86_400_000);
        assert_eq!(period_start("monthly", now).unwrap(), day - 28 * 86_400_000);
        assert_eq!(period_start("total", now), Some(0));
        assert_eq!(period_start("hourly", now), None);
    }

    fn key(budget: i64, period_start: i64) -> Limit {
        Limit {
            account: "k".to_owned(),
            label: "this key".to_owned(),
            budget_nanos: budget,
            currency: Currency::USD,
            period: "monthly".to_owned(),
            period_start,
        }
    }

    #[test]
    fn reservations_bound_concurrent_spend_and_settle_to_the_actual_cost() {
        let budgets = Arc::new(Budgets::default());
        let usd = Currency::USD;
        let k = [key(1_000, 0)];
        budgets.load("k", 0, 300);
        // 300 spent: room for 7 reservations of 100, not 8.
        let held: Vec<_> = (0..8).map(|_| budgets.reserve(&k, |_| 100, 0, false)).collect();
        assert_eq!(held.iter().filter(|outcome| outcome.is_ok()).count(), 7);
        let NotReserved::Exhausted(exhausted) = held.last().unwrap().as_ref().unwrap_err() else { panic!() };
        assert_eq!((exhausted.spent_nanos, exhausted.budget_nanos), (300, 1_000));
        assert_eq!(exhausted.label, "this key");
        assert!(exhausted.in_flight, "only reservations in flight stand in the way");
        // Each cost 90 in the end: 300 + 7 × 90 = 930 spent, 70 left.
        for reservation in held.into_iter().flatten() {
            reservation.settle(90, Some(usd));
        }
        let last = budgets.reserve(&k, |_| 70, 0, false).unwrap();
        let Err(NotReserved::Exhausted(exhausted)) = budgets.reserve(&k, |_| 1, 0, false) else { panic!() };
        assert!(exhausted.in_flight, "the last reservation may still settle below its estimate");
        last.settle(70, Some(usd));
        let Err(NotReserved::Exhausted(exhausted)) = budgets.reserve(&k, |_| 1, 0, false) else { panic!() };
        assert!(!exhausted.in_flight, "all of it is spent: retrying cannot help");
        // Costs in another currency do not count; a new period starts afresh.
        let j = [Limit { account: "j".to_owned(), ..key(1_000, 0) }];
        let other = budgets.reserve(&j, |_| 0, 0, false).unwrap();
        other.settle(5_000, Some(Currency::CNY));
        assert!(budgets.reserve(&j, |_| 500, 0, false).is_ok());
        assert!(budgets.needs_load("k", 86_400_000));
    }

    #[test]
    fn crossing_a_threshold_is_reported_once() {
        let budgets = Arc::new(Budgets::default());
        let (sink, mut crossings) = tokio::sync::mpsc::unbounded_channel();
        budgets.set_alerts(vec![50, 100], sink);
        let k = [key(1_000, 0)];
        budgets.load("k", 0, 400);
        budgets.reserve(&k, |_| 10, 0, false).unwrap().settle(99, Some(Currency::USD));
        assert!(crossings.try_recv().is_err(), "499 of 1000: below 50 %");
        budgets.reserve(&k, |_| 10, 0, false).unwrap().settle(1, Some(Currency::USD));
        let crossing = crossings.try_recv().unwrap();
        assert_eq!((crossing.account.as_str(), crossing.threshold_percent, crossing.spent_nanos), ("k", 50, 500));
        budgets.reserve(&k, |_| 10, 0, false).unwrap().settle(100, Some(Currency::USD));
        assert!(crossings.try_recv().is_err(), "50 % is reported once");
        // One settlement past both lines reports both.
        let other = [Limit { account: "j".to_owned(), ..key(100, 0) }];
        budgets.reserve(&other, |_| 0, 0, false).unwrap().settle(150, Some(Currency::USD));
        let percents: Vec<u8> = std::iter::from_fn(|| crossings.try_recv().ok()).map(|c| c.threshold_percent).collect();
        assert_eq!(percents, [50, 100]);
    }

    #[test]
    fn a_team_budget_is_shared_by_its_keys_in_its_own_currency() {
        let budgets = Arc::new(Budgets::default());
        let team = Limit {
            account: "team:search".to_owned(),
            label: "team search".to_owned(),
            budget_nanos: 250,
            currency: Currency::CNY,
            ..key(0, 0)
        };
        let of = |account: &str| [Limit { account: account.to_owned(), ..key(1_000, 0) }, team.clone()];
        // Priced 100 USD-nanos or 100 CNY-nanos: two requests fit the team, not three,
        // though each key alone has room.
        let price = |currency: Currency| if currency == Currency::CNY { 100 } else { 10 };
        let first = budgets.reserve(&of("a"), price, 0, false).unwrap();
        let _second = budgets.reserve(&of("b"), price, 0, false).unwrap();
        let Err(NotReserved::Exhausted(exhausted)) = budgets.reserve(&of("c"), price, 0, false) else { panic!() };
        assert_eq!((exhausted.label.as_str(), exhausted.budget_nanos), ("team search", 250));
        // The refused request reserved nothing anywhere: key c has all of 10 left.
        assert!(budgets.reserve(&[Limit { account: "c".to_owned(), ..key(10, 0) }], |_| 10, 0, false).is_ok());
        // Settling in CNY counts against the team only; the USD key budget is unaffected.
        first.settle(40, Some(Currency::CNY));
        assert!(budgets.reserve(&of("c"), price, 0, false).is_ok());
        assert!(budgets.reserve(&[Limit { account: "a".to_owned(), ..key(10, 0) }], |_| 10, 0, false).is_ok());
    }

    #[test]
    fn in_fleet_mode_alerts_go_by_the_fleets_cost_counter() {
        let budgets = Arc::new(Budgets::default());
        let (sink, mut crossings) = tokio::sync::mpsc::unbounded_channel();
        budgets.set_alerts(vec![50], sink);
        let k = [key(1_000, 0)];
        budgets.load("k", 0, 100);
        let Err(NotReserved::NeedLeases(wanted)) = budgets.reserve(&k, |_| 50, 10, true) else { panic!() };
        assert_eq!(budgets.granted(&wanted[0], 200, 10), 0);
        budgets.reserve(&k, |_| 50, 10, true).unwrap().settle(450, Some(Currency::USD));
        assert!(crossings.try_recv().is_err(), "this instance's own view does not decide");
        let costs = budgets.unsynced_costs();
        assert_eq!(costs.len(), 1);
        assert_eq!((costs[0].counter.as_str(), costs[0].delta, costs[0].initial), ("cost:k:USD:0", 450, 100));
        assert!(budgets.unsynced_costs().is_empty(), "taken once");
        // Redis did not take them: they go with the next sync.
        budgets.costs_unsynced(costs);
        let costs = budgets.unsynced_costs();
        assert_eq!(costs[0].delta, 450);
        // Other instances had spent too: the fleet's total went from 480 to 930 with this
        // addition, past 50 % of 1000, and this instance reports it.
        budgets.costs_synced(&costs, &[930]);
        let crossing = crossings.try_recv().unwrap();
        assert_eq!((crossing.threshold_percent, crossing.spent_nanos, crossing.budget_nanos), (50, 930, 1_000));
        // An addition that starts past the line reports nothing (another instance did).
        budgets.costs_synced(&costs, &[1_400]);
        assert!(crossings.try_recv().is_err());
    }

    #[test]
    fn in_fleet_mode_a_refusal_is_final_only_when_the_known_spend_leaves_no_room() {
        let budgets = Arc::new(Budgets::default());
        let k = [key(1_000, 0)];
        budgets.load("k", 0, 100);
        let Err(NotReserved::NeedLeases(wanted)) = budgets.reserve(&k, |_| 50, 10, true) else { panic!() };
        // The fleet has nothing to lease (other instances hold it): as far as this
        // instance knows, 100 of 1000 is spent, so leases given back may let it fit.
        assert_eq!(budgets.granted(&wanted[0], 0, 10), 0, "nothing held, nothing to give back");
        let Err(NotReserved::Exhausted(exhausted)) = budgets.reserve(&k, |_| 50, 20, true) else { panic!() };
        assert!(exhausted.in_flight);
        // The cost counter says the fleet spent 980: 50 more cannot fit.
        let costs = [CostDelta {
            account: "k".to_owned(),
            counter: "cost:k:USD:0".to_owned(),
            delta: 10,
            initial: 100,
            ttl_ms: 0,
            terms: Terms { budget_nanos: 1_000, currency: Currency::USD, period: "monthly", period_start: 0 },
        }];
        budgets.costs_synced(&costs, &[980]);
        let Err(NotReserved::Exhausted(exhausted)) = budgets.reserve(&k, |_| 50, 30, true) else { panic!() };
        assert!(!exhausted.in_flight);
    }

    #[test]
    fn in_fleet_mode_estimates_come_out_of_leases_and_unused_money_goes_back() {
        let budgets = Arc::new(Budgets::default());
        let k = [key(3_200, 0)];
        budgets.load("k", 0, 700);
        // Nothing leased: claim the estimate or a thirty-second of the budget, seeded
        // with what the ledger says was spent.
        let Err(NotReserved::NeedLeases(wanted)) = budgets.reserve(&k, |_| 50, 10, true) else { panic!() };
        let lease = &wanted[0];
        assert_eq!(
            (lease.counter.as_str(), lease.initial, lease.limit, lease.want),
            ("spend:k:USD:0", 700, 3_200, 100)
        );
        assert_eq!((lease.need, lease.ttl_ms), (50, 32 * 86_400_000));
        assert_eq!(budgets.granted(lease, 100, 10), 0);
        let first = budgets.reserve(&k, |_| 50, 10, true).unwrap();
        let second = budgets.reserve(&k, |_| 50, 10, true).unwrap();
        assert!(matches!(budgets.reserve(&k, |_| 50, 10, true), Err(NotReserved::NeedLeases(_))));
        // The second cost 80: 30 owed to the fleet. The first cost 20: 30 back to the lease.
        second.settle(80, Some(Currency::USD));
        first.settle(20, Some(Currency::USD));
        assert_eq!(budgets.debts(), [("spend:k:USD:0".to_owned(), 30, 32 * 86_400_000)]);
        assert!(budgets.debts().is_empty(), "taken once");
        // The fleet has only 10 more: with the 30 held, still short of the estimate of
        // 50. All 40 go back to the fleet (another instance may complete an estimate
        // with them), and this instance is exhausted until it asks again.
        let Err(NotReserved::NeedLeases(more)) = budgets.reserve(&k, |_| 50, 20, true) else { panic!() };
        assert_eq!((more[0].need, more[0].want), (20, 100));
        assert_eq!(budgets.granted(&more[0], 10, 20), 40);
        assert!(matches!(budgets.reserve(&k, |_| 50, 30, true), Err(NotReserved::Exhausted(_))));
        // A short grant that covers the estimate is kept.
        assert_eq!(budgets.granted(lease, 70, 300), 0);
        // An idle lease is given back after a second.
        assert!(budgets.idle_leases(500).is_empty());
        assert_eq!(budgets.idle_leases(1_100), [("spend:k:USD:0".to_owned(), 70)]);
        assert!(budgets.idle_leases(2_100).is_empty());
        // Redis away: reserved on local counts; the cost is owed to the fleet counter.
        budgets.reserve(&k, |_| 50, 3_000, false).unwrap().settle(45, Some(Currency::USD));
        assert_eq!(budgets.debts(), [("spend:k:USD:0".to_owned(), 45, 32 * 86_400_000)]);
    }
}
