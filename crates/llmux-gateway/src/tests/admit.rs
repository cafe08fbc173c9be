//! Admission decisions: the model, the key's permissions and region, and the rate
//! limits and budgets, in the order the lifecycle checks them.

use llmux_store::{Budget, KeyRecord};

use super::{caller, gateway, key, meta, settlement};
use crate::Gateway;
use crate::admit::{Admitted, Ask};
use crate::error::ErrorCode;
use crate::outcome::Failure;
use crate::router::TokenEstimate;

const CONFIG: &str = r#"
[[providers]]
name = "us"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
regions = ["!CN"]

[[providers]]
name = "anywhere"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "m"
routes = [
  { provider = "us", model = "m-us", price = { input = 1000, output = 1000, currency = "USD" } },
  { provider = "anywhere", model = "m-any" },
]

[[models]]
name = "us-only"
routes = [{ provider = "us", model = "u" }]
"#;

const ESTIMATE: TokenEstimate = TokenEstimate { input: 1000, output: 500 };

/// Admits one request of `key` for `model`; a refusal is settled as the lifecycle does.
async fn admit(gateway: &Gateway, key: &KeyRecord, model: &str) -> Result<Admitted, Failure> {
    let runtime = gateway.runtime();
    let (caller, meta) = (caller(key.clone()), meta());
    let mut settlement = settlement(gateway, &caller, &meta);
    let admitted =
        gateway.admit(&runtime, &caller, &meta, Ask { model, estimate: ESTIMATE, pinned: None }, &mut settlement).await;
    // Admitted requests settle later; here they end at once (their counts stay taken).
    admitted.map_err(|refused| refused.settle(settlement))
}

fn refused(outcome: Result<Admitted, Failure>) -> Failure {
    match outcome {
        Ok(admitted) => panic!("expected a refusal, got {} routes", admitted.candidates.len()),
        Err(failure) => failure,
    }
}

#[tokio::test]
async fn the_model_must_exist_and_be_one_the_key_may_use() {
    let (gateway, _background) = gateway(CONFIG).await;
    let failure = refused(admit(&gateway, &key(), "no-such-model").await);
    assert_eq!(failure.error.code(), ErrorCode::ModelNotFound);
    let limited = KeyRecord { models: Some(vec!["us-only".into()]), ..key() };
    assert_eq!(refused(admit(&gateway, &limited, "m").await).error.code(), ErrorCode::ModelNotAllowed);
    let admitted = admit(&gateway, &limited, "us-only").await.expect("allowed");
    assert_eq!(admitted.candidates.len(), 1);
}

#[tokio::test]
async fn only_routes_serving_the_callers_region_are_planned() {
    let (gateway, _background) = gateway(CONFIG).await;
    let in_cn = KeyRecord { region: Some("CN".into()), ..key() };
    let admitted = admit(&gateway, &in_cn, "m").await.expect("one route serves CN");
    assert_eq!(admitted.candidates.len(), 1);
    assert_eq!(gateway.runtime().provider(admitted.candidates[0]).name, "anywhere");
    assert_eq!(refused(admit(&gateway, &in_cn, "us-only").await).error.code(), ErrorCode::RegionNotServed);
    let in_us = KeyRecord { region: Some("US".into()), ..key() };
    assert_eq!(admit(&gateway, &in_us, "m").await.expect("both serve US").candidates.len(), 2);
}

#[tokio::test]
async fn the_keys_rpm_limit_admits_exactly_that_many_then_refuses_with_a_delay() {
    let (gateway, _background) = gateway(CONFIG).await;
    let limited = KeyRecord { rpm_limit: Some(3), ..key() };
    for _ in 0..3 {
        let admitted = admit(&gateway, &limited, "m").await.expect("within the limit");
        let info = admitted.rate_limits.expect("a limited key reports its standing");
        assert_eq!(info.limit_requests, Some(3));
    }
    let failure = refused(admit(&gateway, &limited, "m").await);
    assert_eq!(failure.error.code(), ErrorCode::RateLimitExceeded);
    assert!(failure.error.retry_after().is_some_and(|delay| delay.as_secs() <= 60));
    assert_eq!(failure.rate_limits.and_then(|info| info.remaining_requests), Some(0));
}

#[tokio::test]
async fn a_budget_the_estimate_does_not_fit_is_refused_before_any_attempt() {
    let (gateway, _background) = gateway(CONFIG).await;
    // The first planned route costs 1000 USD per million tokens: 1.5 USD for the estimate.
    let budget = Budget { amount_nanos: 1_000_000_000, currency: "USD".into(), period: "total".into() };
    let poor = KeyRecord { budget: Some(budget.clone()), rpm_limit: Some(10), ..key() };
    let failure = refused(admit(&gateway, &poor, "m").await);
    assert_eq!(failure.error.code(), ErrorCode::BudgetExceeded);
    assert_eq!(failure.attempts, 0);
    // The refusal still reports the rate-limit standing it was counted in.
    assert_eq!(failure.rate_limits.and_then(|info| info.limit_requests), Some(10));
    // A budget that fits the estimate is admitted.
    let rich =
        KeyRecord { id: "key-2".into(), budget: Some(Budget { amount_nanos: 2_000_000_000, ..budget }), ..key() };
    admit(&gateway, &rich, "m").await.expect("the estimate fits");
}
