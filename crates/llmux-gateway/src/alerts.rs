//! Budget alerts: a budget's spend crossed one of `server.budget_alert_thresholds`
//! (percentages; default 80 and 100). Each crossing is logged (warn), counted in
//! `llmux_budget_alerts_total{scope,threshold}`, and, when
//! `server.budget_alert_webhook` is set, POSTed there as JSON (three tries, five
//! seconds each). A crossing is raised once per budget, period and threshold by the
//! instance whose settlement crossed it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use llmux_types::money::format_nanos;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::budgets::Crossing;
use crate::{Gateway, clock};

/// The JSON body of one alert.
pub fn payload(crossing: &Crossing) -> serde_json::Value {
    let (scope, id) = match crossing.account.strip_prefix("team:") {
        Some(team) => ("team", team),
        None => ("key", crossing.account.as_str()),
    };
    json!({
        "event": "budget_threshold_crossed",
        "scope": scope,
        "key_id": (scope == "key").then_some(id),
        "team": (scope == "team").then_some(id),
        "threshold_percent": crossing.threshold_percent,
        "spent": crate::keys::decimal(crossing.spent_nanos),
        "budget": crate::keys::decimal(crossing.budget_nanos),
        "currency": crossing.currency.to_string(),
        "period": crossing.period,
        "period_start": clock::rfc3339(crossing.period_start),
        "at": clock::rfc3339(clock::wall_ms()),
    })
}

/// Delivers crossings until the gateway is gone.
/// The receiver is shared so that a restarted task (`supervise`) picks it up again.
pub async fn deliver(gateway: Weak<Gateway>, crossings: Arc<tokio::sync::Mutex<UnboundedReceiver<Crossing>>>) {
    let mut crossings = crossings.lock().await;
    let client = llmux_providers::client::UpstreamClient::new(Duration::from_secs(5)).ok();
    while let Some(crossing) = crossings.recv().await {
        let Some(gateway) = gateway.upgrade() else { return };
        let body = payload(&crossing);
        let scope = if body["scope"] == "team" { "team" } else { "key" };
        tracing::warn!(
            scope,
            account = %crossing.account,
            threshold_percent = crossing.threshold_percent,
            spent = %format_nanos(crossing.spent_nanos),
            budget = %format_nanos(crossing.budget_nanos),
            currency = %crossing.currency,
            "Budget alert threshold crossed."
        );
        gateway.metrics.observe_budget_alert(scope, crossing.threshold_percent);
        let webhook = gateway.runtime().config.server.budget_alert_webhook.clone();
        drop(gateway);
        if let (Some(url), Some(client)) = (webhook, &client) {
            let body = Bytes::from(body.to_string());
            tokio::spawn(post(client.clone(), url.expose().to_owned(), body));
        }
    }
}

async fn post(client: llmux_providers::client::UpstreamClient, url: String, body: Bytes) {
    for attempt in 1..=3u32 {
        let request =
            http::Request::post(url.as_str()).header(http::header::CONTENT_TYPE, "application/json").body(body.clone());
        let Ok(request) = request else {
            tracing::error!("The budget alert webhook URL is not a valid URI.");
            return;
        };
        match tokio::time::timeout(Duration::from_secs(5), client.send(request)).await {
            Ok(Ok(response)) if response.status().is_success() => return,
            Ok(Ok(response)) => {
                tracing::warn!(status = %response.status(), attempt, "Budget alert webhook refused the alert.")
            }
            Ok(Err(error)) => tracing::warn!(%error, attempt, "Budget alert webhook unreachable."),
            Err(_) => tracing::warn!(attempt, "Budget alert webhook timed out."),
        }
        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
    }
}
