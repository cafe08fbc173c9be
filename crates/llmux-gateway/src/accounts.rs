//! What keys and teams share in the admin API and the CLI: the budget clients send,
//! field validation, the error type, exact decimal numbers in JSON.

use llmux_store::{Budget, StoreError};
use llmux_types::money::{format_nanos, parse_decimal_nanos};
use llmux_types::{Currency, Region};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock;

/// Budget as clients send it: `{amount, currency?="USD", period?="monthly"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    pub amount: serde_json::Number,
    pub currency: Option<String>,
    pub period: Option<String>,
}

pub(crate) fn nullable<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no key with id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> KeyError {
    KeyError::Invalid { field, message: message.into() }
}

pub(crate) fn validated_budget(input: &BudgetInput) -> Result<Budget, KeyError> {
    let amount_nanos = parse_decimal_nanos(&input.amount.to_string())
        .filter(|nanos| *nanos >= 0)
        .ok_or_else(|| invalid("budget.amount", "must be a non-negative amount with at most 9 decimals"))?;
    let currency = match input.currency.as_deref() {
        None => Currency::USD,
        Some(code) => Currency::parse(code)
            .ok_or_else(|| invalid("budget.currency", format!("`{code}` is not a currency code")))?,
    };
    let period = input.period.clone().unwrap_or_else(|| "monthly".to_owned());
    if !["daily", "weekly", "monthly", "total"].contains(&period.as_str()) {
        return Err(invalid("budget.period", "must be daily, weekly, monthly or total"));
    }
    Ok(Budget { amount_nanos, currency: currency.to_string(), period })
}

pub(crate) fn validated_region(value: &str) -> Result<String, KeyError> {
    Region::parse(value)
        .map(|region| region.to_string())
        .ok_or_else(|| invalid("region", format!("`{value}` is not a two-letter region code")))
}

pub(crate) fn validated_models(list: Vec<String>) -> Result<Vec<String>, KeyError> {
    if list.iter().any(|model| model.trim().is_empty()) {
        return Err(invalid("models", "model names must not be empty"));
    }
    Ok(list)
}

/// An exact decimal JSON number from nano-units.
pub fn decimal(nanos: i64) -> Value {
    serde_json::from_str(&format_nanos(nanos)).unwrap_or(Value::Null)
}

/// Adds the current period's standing to a key's or team's view (`view["budget"]`):
/// `period_start`, `spent` (what the ledger holds for the period, in the budget's
/// currency) and `remaining`. Left out when the store cannot say.
pub(crate) async fn add_spend(
    view: &mut Value,
    budget: Option<&Budget>,
    spent: impl AsyncFnOnce(&str, i64) -> Result<i64, StoreError>,
) {
    let Some(budget) = budget else { return };
    let Some(start) = crate::budgets::period_start(&budget.period, clock::wall_ms()) else { return };
    let Ok(spent) = spent(&budget.currency, start).await else { return };
    if let Some(view) = view.get_mut("budget").and_then(Value::as_object_mut) {
        view.insert("period_start".into(), json!(clock::rfc3339(start)));
        view.insert("spent".into(), decimal(spent));
        view.insert("remaining".into(), decimal(budget.amount_nanos.saturating_sub(spent).max(0)));
    }
}
