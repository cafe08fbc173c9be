//! Budgets per key (step 2, admit): an amount in a currency per period (`daily`,
//! `weekly` from Monday, `monthly`, or `total`; UTC), in this process.
//!
//! Admission reserves the request's estimated cost (the first planned route's price
//! for the estimated input tokens and `max_tokens`, or 512 output tokens) and admits it
//! only while spent + reserved + estimate stay within the budget; settling replaces the
//! reservation by the actual cost. Concurrent requests therefore cannot overspend by
//! more than the amount their actual costs exceed their estimates. A refused request
//! gets 429 `budget_exceeded` and never reaches the upstream.
//!
//! What was spent before this process started (or before the period's first request
//! here) comes from the ledger once per key and period. Costs in another currency than
//! the budget's do not count against it (llmux keeps no exchange rates). Sharing
//! spend across a fleet (Redis) is the next step.

use std::sync::Arc;

use llmux_types::Currency;
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::FastMap;

/// Spend per key in the current period.
#[derive(Debug, Default)]
pub struct Budgets {
    accounts: Mutex<FastMap<String, Account>>,
}

#[derive(Debug, Clone, Copy)]
struct Account {
    period_start: i64,
    spent: i64,
    reserved: i64,
}

/// A refused request's standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub spent_nanos: i64,
    pub budget_nanos: i64,
    pub currency: Currency,
    pub period: String,
}

/// An admitted request's reserved cost; replaced by the actual cost at settlement.
#[derive(Debug)]
pub struct BudgetReservation {
    budgets: Arc<Budgets>,
    key_id: String,
    period_start: i64,
    reserved: i64,
    currency: Currency,
}

impl BudgetReservation {
    /// The request cost `nanos` in `currency` (other currencies do not count).
    pub fn settle(self, nanos: i64, currency: Option<Currency>) {
        let mut accounts = self.budgets.accounts.lock();
        if let Some(account) = accounts.get_mut(&self.key_id)
            && account.period_start == self.period_start
        {
            account.reserved = (account.reserved - self.reserved).max(0);
            if currency == Some(self.currency) {
                account.spent = account.spent.saturating_add(nanos);
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
    /// Whether the spend of `key_id` in the period starting at `period_start` must be
    /// read from the ledger first.
    pub fn needs_load(&self, key_id: &str, period_start: i64) -> bool {
        self.accounts.lock().get(key_id).is_none_or(|account| account.period_start != period_start)
    }

    /// Sets what the ledger says `key_id` spent in the period (unless another request
    /// loaded it meanwhile).
    pub fn load(&self, key_id: &str, period_start: i64, spent: i64) {
        let mut accounts = self.accounts.lock();
        let account = accounts.entry(key_id.to_owned()).or_insert(Account { period_start, spent, reserved: 0 });
        if account.period_start != period_start {
            *account = Account { period_start, spent, reserved: 0 };
        }
    }

    /// Reserves `estimate` (nano-units of `currency`) for a request of `key_id` against
    /// `budget`, or says the budget is exhausted.
    pub fn reserve(
        self: &Arc<Self>,
        key_id: &str,
        (budget, currency, period): (i64, Currency, &str),
        period_start: i64,
        estimate: i64,
    ) -> Result<BudgetReservation, Exhausted> {
        let mut accounts = self.accounts.lock();
        let account = accounts.entry(key_id.to_owned()).or_insert(Account { period_start, spent: 0, reserved: 0 });
        if account.period_start != period_start {
            *account = Account { period_start, spent: 0, reserved: 0 };
        }
        let committed = account.spent.saturating_add(account.reserved);
        if committed >= budget || committed.saturating_add(estimate) > budget {
            return Err(Exhausted {
                spent_nanos: account.spent,
                budget_nanos: budget,
                currency,
                period: period.to_owned(),
            });
        }
        account.reserved = account.reserved.saturating_add(estimate);
        Ok(BudgetReservation {
            budgets: self.clone(),
            key_id: key_id.to_owned(),
            period_start,
            reserved: estimate,
            currency,
        })
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

    #[test]
    fn reservations_bound_concurrent_spend_and_settle_to_the_actual_cost() {
        let budgets = Arc::new(Budgets::default());
        let usd = Currency::USD;
        let budget = (1_000, usd, "monthly");
        budgets.load("k", 0, 300);
        // 300 spent: room for 7 reservations of 100, not 8.
        let held: Vec<_> = (0..8).map(|_| budgets.reserve("k", budget, 0, 100)).collect();
        assert_eq!(held.iter().filter(|outcome| outcome.is_ok()).count(), 7);
        let exhausted = held.last().unwrap().as_ref().unwrap_err();
        assert_eq!((exhausted.spent_nanos, exhausted.budget_nanos), (300, 1_000));
        // Each cost 90 in the end: 300 + 7 × 90 = 930 spent, 70 left.
        for reservation in held.into_iter().flatten() {
            reservation.settle(90, Some(usd));
        }
        assert!(budgets.reserve("k", budget, 0, 70).is_ok());
        assert!(budgets.reserve("k", budget, 0, 1).is_err());
        // Costs in another currency do not count; a new period starts afresh.
        let other = budgets.reserve("j", budget, 0, 0).unwrap();
        other.settle(5_000, Some(Currency::CNY));
        assert!(budgets.reserve("j", budget, 0, 500).is_ok());
        assert!(budgets.needs_load("k", 86_400_000));
    }
}
