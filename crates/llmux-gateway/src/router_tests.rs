//! Route planning: order per strategy, health, region; against real configurations.

use std::time::Duration;

use llmux_providers::{ErrorKind, UpstreamError};

use super::*;

fn runtime_with(models: &str) -> Runtime {
    let text = format!(
        r#"
[[providers]]
name = "a"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"

[[providers]]
name = "b"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"

[[providers]]
name = "cn-only"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"
regions = ["CN"]

{models}"#
    );
    let config = llmux_config::Config::from_toml(&text, &|_| None).expect("valid test config");
    Runtime::build(config).unwrap()
}

fn routes(runtime: &Runtime, model: &str) -> Vec<(usize, usize)> {
    let index = runtime.model_index(model).unwrap();
    plan(runtime, index, None, TokenEstimate { input: 1000, output: 500 })
        .unwrap()
        .into_iter()
        .map(|candidate| (candidate.model, candidate.route))
        .collect()
}

fn first_routes(runtime: &Runtime, model: &str, plans: usize) -> Vec<usize> {
    let mut counts = vec![0; 8];
    for _ in 0..plans {
        counts[routes(runtime, model)[0].1] += 1;
    }
    counts
}

const FOUR_ROUTES: &str = r#"routes = [
  { provider = "a", model = "r0" },
  { provider = "b", model = "r1" },
  { provider = "a", model = "r2" },
  { provider = "b", model = "r3" },
]"#;

#[test]
fn priority_tiers_then_listed_order_then_fallbacks() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "main"
fallbacks = ["spare"]
routes = [
  { provider = "a", model = "late", priority = 2 },
  { provider = "b", model = "first" },
  { provider = "a", model = "second" },
]

[[models]]
name = "spare"
routes = [{ provider = "b", model = "spare" }]
"#,
    );
    assert_eq!(routes(&runtime, "main"), [(0, 1), (0, 2), (0, 0), (1, 0)]);
}

#[test]
fn routes_outside_the_callers_region_are_left_out() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "m"
routes = [{ provider = "cn-only", model = "x" }, { provider = "a", model = "y" }]
"#,
    );
    let estimate = TokenEstimate::default();
    let de = plan(&runtime, 0, Region::parse("DE"), estimate).unwrap();
    assert_eq!(de, [Candidate { model: 0, route: 1 }]);
    let cn = plan(&runtime, 0, Region::parse("CN"), estimate).unwrap();
    assert_eq!(cn, [Candidate { model: 0, route: 0 }, Candidate { model: 0, route: 1 }]);
}

#[test]
fn weighted_draws_the_first_route_by_weight() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "m"
strategy = "weighted"
routes = [{ provider = "a", model = "x", weight = 3 }, { provider = "b", model = "y", weight = 1 }]
"#,
    );
    let counts = first_routes(&runtime, "m", 4000);
    // Expected 3000 / 1000; five standard deviations (≈ 27 each) either way.
    assert!((2860..=3140).contains(&counts[0]), "{counts:?}");
    // Every plan still holds both routes.
    assert_eq!(routes(&runtime, "m").len(), 2);
}

#[test]
fn latency_prefers_the_faster_of_two_random_routes() {
    let runtime = runtime_with(&format!("[[models]]\nname = \"m\"\nstrategy = \"latency\"\n{FOUR_ROUTES}\n"));
    let health = runtime.health.model(0);
    for (route, millis) in [(0, 400), (1, 10), (2, 200), (3, 300)] {
        health[route].succeeded(Duration::from_millis(millis));
    }
    let counts = first_routes(&runtime, "m", 1200);
    // The slowest route never wins a pair; the fastest wins every pair it is in (half
    // of all pairs); the others share the rest, the faster more often.
    assert_eq!(counts[0], 0, "{counts:?}");
    assert!((500..=700).contains(&counts[1]), "{counts:?}");
    assert!(counts[2] > counts[3], "{counts:?}");
    // Before any measurement every route gets picked.
    let fresh = runtime_with(&format!("[[models]]\nname = \"m\"\nstrategy = \"latency\"\n{FOUR_ROUTES}\n"));
    assert!(first_routes(&fresh, "m", 400)[..4].iter().all(|count| *count > 0));
}

#[test]
fn least_busy_prefers_the_route_with_fewest_attempts_in_flight() {
    let runtime = runtime_with(&format!("[[models]]\nname = \"m\"\nstrategy = \"least-busy\"\n{FOUR_ROUTES}\n"));
    let health = runtime.health.model(0);
    let _busy = [health[0].enter(), health[0].enter(), health[1].enter(), health[3].enter()];
    assert_eq!(routes(&runtime, "m").iter().map(|(_, route)| *route).collect::<Vec<_>>(), [2, 1, 3, 0]);
}

#[test]
fn cost_puts_the_cheapest_route_for_the_request_first() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "m"
strategy = "cost"
routes = [
  { provider = "a", model = "unpriced" },
  { provider = "a", model = "cheap-in", price = { input = 1, output = 10 } },
  { provider = "b", model = "cheap-out", price = { input = 5, output = 2 } },
  { provider = "b", model = "yuan", price = { input = 0.1, output = 0.1, currency = "CNY" } },
]
"#,
    );
    let index = runtime.model_index("m").unwrap();
    let order = |input, output| -> Vec<usize> {
        plan(&runtime, index, None, TokenEstimate { input, output }).unwrap().iter().map(|c| c.route).collect()
    };
    // The CNY route is the cheapest number but another currency: after the USD ones.
    // Long prompt, short answer: input price decides.
    assert_eq!(order(10_000, 100), [1, 2, 3, 0]);
    // Short prompt, long answer: output price decides.
    assert_eq!(order(100, 10_000), [2, 1, 3, 0]);
}

#[test]
fn resting_routes_come_after_every_available_one_and_refusing_ones_not_at_all() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "main"
fallbacks = ["spare"]
routes = [{ provider = "a", model = "x" }, { provider = "b", model = "y" }]

[[models]]
name = "spare"
routes = [{ provider = "b", model = "z" }]
"#,
    );
    let health = runtime.health.model(0);
    let limited =
        UpstreamError { retry_after: Some(Duration::from_secs(60)), ..UpstreamError::new(ErrorKind::RateLimited) };
    health[0].failed(&limited, None, &runtime.health.policy, clock::monotonic_ms());
    assert_eq!(routes(&runtime, "main"), [(0, 1), (1, 0), (0, 0)]);

    let cn = Region::parse("CN");
    health[1].failed(&UpstreamError::new(ErrorKind::RegionDenied), cn, &runtime.health.policy, clock::monotonic_ms());
    let for_cn: Vec<(usize, usize)> =
        plan(&runtime, 0, cn, TokenEstimate::default()).unwrap().iter().map(|c| (c.model, c.route)).collect();
    assert_eq!(for_cn, [(1, 0), (0, 0)], "route 1 refused CN: never planned for it");
    let for_de: Vec<(usize, usize)> = plan(&runtime, 0, Region::parse("DE"), TokenEstimate::default())
        .unwrap()
        .iter()
        .map(|c| (c.model, c.route))
        .collect();
    assert_eq!(for_de, [(0, 1), (1, 0), (0, 0)]);
}

/// The first route of `model`'s plans with `pinned` (provider, upstream model), `plans` times.
fn pinned_first(runtime: &Runtime, model: &str, pinned: (&str, &str), plans: usize) -> Vec<usize> {
    let index = runtime.model_index(model).unwrap();
    let pinned = Some(RouteId::of(pinned.0, pinned.1));
    let mut counts = vec![0; 8];
    for _ in 0..plans {
        let planned = plan_pinned(runtime, index, None, TokenEstimate::default(), pinned).unwrap();
        assert_eq!(planned.len(), runtime.config.models[index].routes.len(), "every route is still planned");
        counts[planned[0].route] += 1;
    }
    counts
}

#[test]
fn a_pinned_route_goes_first_while_it_is_available() {
    let runtime = runtime_with(&format!("[[models]]\nname = \"m\"\nstrategy = \"weighted\"\n{FOUR_ROUTES}\n"));
    assert_eq!(pinned_first(&runtime, "m", ("a", "r2"), 200)[..4], [0, 0, 200, 0]);
    // A pin naming no route of the model changes nothing.
    assert!(pinned_first(&runtime, "m", ("a", "gone"), 400)[..4].iter().all(|count| *count > 50));
    // Resting (a 429): the pin gives way, and the route comes last.
    let limited =
        UpstreamError { retry_after: Some(Duration::from_secs(60)), ..UpstreamError::new(ErrorKind::RateLimited) };
    runtime.health.model(0)[2].failed(&limited, None, &runtime.health.policy, clock::monotonic_ms());
    let index = runtime.model_index("m").unwrap();
    let pinned = Some(RouteId::of("a", "r2"));
    for _ in 0..50 {
        let planned = plan_pinned(&runtime, index, None, TokenEstimate::default(), pinned).unwrap();
        assert_eq!(planned.last().map(|candidate| candidate.route), Some(2));
    }
}

#[test]
fn a_pin_never_overrides_priority_tiers_fallbacks_or_the_priority_strategy() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "main"
strategy = "weighted"
fallbacks = ["spare"]
routes = [
  { provider = "a", model = "x" },
  { provider = "b", model = "y" },
  { provider = "a", model = "backup", priority = 1 },
]

[[models]]
name = "spare"
routes = [{ provider = "b", model = "spare" }]

[[models]]
name = "listed"
routes = [{ provider = "a", model = "x" }, { provider = "b", model = "y" }]
"#,
    );
    let main = runtime.model_index("main").unwrap();
    let first = |pinned: (&str, &str)| {
        let pinned = Some(RouteId::of(pinned.0, pinned.1));
        let planned = plan_pinned(&runtime, main, None, TokenEstimate::default(), pinned).unwrap();
        (planned[0].model, planned[0].route)
    };
    for _ in 0..20 {
        assert_eq!(first(("b", "y")), (0, 1), "within the first tier the pin wins");
        assert_ne!(first(("a", "backup")), (0, 2), "a lower tier stays behind the first");
        assert_ne!(first(("b", "spare")).0, 1, "a fallback model stays behind the model");
    }
    assert_eq!(pinned_first(&runtime, "listed", ("b", "y"), 20)[..2], [20, 0], "listed order stands");
    // The first tier resting: the backup leads, and a pin to it holds.
    let down = UpstreamError::new(ErrorKind::Server);
    for route in 0..2 {
        for _ in 0..runtime.health.policy.failures_to_open {
            runtime.health.model(main)[route].failed(&down, None, &runtime.health.policy, clock::monotonic_ms());
        }
    }
    assert_eq!(first(("a", "backup")), (0, 2));
    assert_eq!(first(("b", "spare")), (0, 2), "the fallback still comes after the backup");
}

#[test]
fn fallback_models_the_caller_may_not_use_are_not_planned() {
    let runtime = runtime_with(
        r#"
[[models]]
name = "main"
routes = [{ provider = "a", model = "x" }]
fallbacks = ["spare", "other"]

[[models]]
name = "spare"
routes = [{ provider = "b", model = "spare" }]

[[models]]
name = "other"
routes = [{ provider = "b", model = "other" }]
"#,
    );
    let main = runtime.model_index("main").unwrap();
    let planned = |may_use: &dyn Fn(&str) -> bool| {
        plan_for(&runtime, main, None, TokenEstimate::default(), None, may_use)
            .unwrap()
            .iter()
            .map(|candidate| runtime.route(*candidate).model.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(planned(&|_| true), ["x", "spare", "other"]);
    assert_eq!(planned(&|name| name != "spare"), ["x", "other"], "a model the key may not use is skipped");
    assert_eq!(planned(&|name| name == "main"), ["x"]);
}
