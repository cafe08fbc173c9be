//! Failover and hedging decisions: which routes are tried, in which order, and which
//! answer counts. Attempts are scripted (a delay, then an answer or an error kind);
//! time is paused where delays matter, so the tests take no real time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use llmux_providers::{ErrorKind, UpstreamError};
use tokio::time::Instant;

use super::{caller, gateway, key, meta, settlement};
use crate::Gateway;
use crate::attempt::Success;
use crate::error::ErrorCode;
use crate::failover::{Attempts, Plan};
use crate::outcome::{Failure, Reply};
use crate::route::Candidate;
use crate::router::{self, TokenEstimate};

const PROVIDERS: &str = r#"
[[providers]]
name = "a"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"

[[providers]]
name = "b"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"

[[providers]]
name = "c"
kind = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
"#;

/// Three routes, one per provider, tried in order.
const ABC: &str = r#"routes = [
  { provider = "a", model = "m-a" },
  { provider = "b", model = "m-b" },
  { provider = "c", model = "m-c" },
]"#;

/// What a scripted attempt at one route does.
#[derive(Debug, Clone, Copy)]
struct Step {
    after_ms: u64,
    fails: Option<ErrorKind>,
}

const fn ok(after_ms: u64) -> Step {
    Step { after_ms, fails: None }
}

const fn fails(after_ms: u64, kind: ErrorKind) -> Step {
    Step { after_ms, fails: Some(kind) }
}

/// Scripted attempts, by (model index, route index); unscripted routes answer at once.
/// Records the routes tried, in order.
#[derive(Default)]
struct Script {
    steps: HashMap<(usize, usize), Step>,
    tried: Mutex<Vec<(usize, usize)>>,
}

impl Script {
    fn new(steps: &[((usize, usize), Step)]) -> Script {
        Script { steps: steps.iter().copied().collect(), ..Script::default() }
    }

    fn tried(&self) -> Vec<(usize, usize)> {
        self.tried.lock().unwrap().clone()
    }
}

impl Attempts for Script {
    fn run(&self, candidate: Candidate) -> impl Future<Output = Result<Success, UpstreamError>> + Send {
        let at = (candidate.model, candidate.route);
        self.tried.lock().unwrap().push(at);
        let step = self.steps.get(&at).copied().unwrap_or(ok(0));
        async move {
            tokio::time::sleep(Duration::from_millis(step.after_ms)).await;
            match step.fails {
                None => Ok(Success::Full { body: Bytes::from_static(b"{}"), usage: None, output: 0 }),
                Some(kind) => Err(UpstreamError::new(kind)),
            }
        }
    }
}

/// Plans `model` as the lifecycle would and fails over through `script`.
async fn run(gateway: &Gateway, model: &str, script: &Script) -> Result<Reply, Failure> {
    let runtime = gateway.runtime();
    let (caller, meta) = (caller(key()), meta());
    let index = runtime.model_index(model).expect("model exists");
    let candidates = router::plan(&runtime, index, None, TokenEstimate::default()).expect("routes");
    let settlement = settlement(gateway, &caller, &meta);
    let plan = Plan { candidates, region: None, conversation: None, caller: None };
    gateway.fail_over(&runtime, &meta, plan, settlement, script).await
}

fn served_by(outcome: &Result<Reply, Failure>) -> (Option<&str>, u32) {
    match outcome {
        Ok(reply) => (reply.provider.as_deref(), reply.attempts),
        Err(failure) => panic!("expected an answer, got {:?}", failure.error),
    }
}

fn failed(outcome: Result<Reply, Failure>) -> Failure {
    match outcome {
        Ok(reply) => panic!("expected a failure, got an answer from {:?}", reply.provider),
        Err(failure) => failure,
    }
}

/// Paused time still rounds each timer up to the next millisecond.
fn assert_between(elapsed: Duration, ms: u64) {
    let expected = Duration::from_millis(ms);
    assert!(elapsed >= expected && elapsed < expected + Duration::from_millis(5), "{elapsed:?}, expected {ms} ms");
}

#[tokio::test]
async fn a_retryable_failure_moves_on_to_the_next_route() {
    for kind in [ErrorKind::Server, ErrorKind::RateLimited, ErrorKind::Timeout, ErrorKind::Overloaded] {
        // A fresh gateway each: a failure also changes the route's health.
        let (gateway, _background) = gateway(&format!("{PROVIDERS}\n[[models]]\nname = \"m\"\n{ABC}")).await;
        let script = Script::new(&[((0, 0), fails(0, kind))]);
        let outcome = run(&gateway, "m", &script).await;
        assert_eq!(served_by(&outcome), (Some("b"), 2), "{kind:?}");
        assert_eq!(script.tried(), [(0, 0), (0, 1)], "{kind:?}");
    }
}

#[tokio::test]
async fn a_caller_fault_is_never_retried_on_another_route() {
    let (gateway, _background) = gateway(&format!("{PROVIDERS}\n[[models]]\nname = \"m\"\n{ABC}")).await;
    for (kind, code) in [
        (ErrorKind::BadRequest, ErrorCode::InvalidRequest),
        (ErrorKind::ContentFiltered, ErrorCode::ContentFilter),
        (ErrorKind::ContextLength, ErrorCode::ContextLengthExceeded),
    ] {
        let script = Script::new(&[((0, 0), fails(0, kind))]);
        let failure = failed(run(&gateway, "m", &script).await);
        assert_eq!((failure.error.code(), failure.attempts), (code, 1), "{kind:?}");
        assert_eq!(failure.provider.as_deref(), Some("a"));
        assert_eq!(script.tried(), [(0, 0)], "{kind:?}");
    }
}

#[tokio::test]
async fn when_every_route_fails_the_error_names_each_attempt() {
    let (gateway, _background) = gateway(&format!("{PROVIDERS}\n[[models]]\nname = \"m\"\n{ABC}")).await;
    let script = Script::new(&[
        ((0, 0), fails(0, ErrorKind::Server)),
        ((0, 1), fails(0, ErrorKind::Overloaded)),
        ((0, 2), fails(0, ErrorKind::Auth)),
    ]);
    let failure = failed(run(&gateway, "m", &script).await);
    assert_eq!((failure.error.code(), failure.attempts), (ErrorCode::UpstreamError, 3));
    let message = failure.error.message("req-test");
    assert!(message.contains("a/m-a") && message.contains("b/m-b") && message.contains("c/m-c"), "{message}");
}

#[tokio::test]
async fn a_context_length_error_widens_to_the_larger_models_once() {
    let config = format!(
        r#"{PROVIDERS}
[[models]]
name = "small"
context_window_fallbacks = ["large"]
routes = [{{ provider = "a", model = "small" }}, {{ provider = "b", model = "small-too" }}]

[[models]]
name = "large"
routes = [{{ provider = "c", model = "large" }}]
"#
    );
    let (gateway, _background) = gateway(&config).await;
    // The larger model replaces what was left of the small one's routes.
    let script = Script::new(&[((0, 0), fails(0, ErrorKind::ContextLength))]);
    assert_eq!(served_by(&run(&gateway, "small", &script).await), (Some("c"), 2));
    assert_eq!(script.tried(), [(0, 0), (1, 0)]);
    // Too long for the larger model as well: no second widening, the caller's fault.
    let script =
        Script::new(&[((0, 0), fails(0, ErrorKind::ContextLength)), ((1, 0), fails(0, ErrorKind::ContextLength))]);
    let failure = failed(run(&gateway, "small", &script).await);
    assert_eq!((failure.error.code(), failure.attempts), (ErrorCode::ContextLengthExceeded, 2));
}

fn hedged(after_ms: u64) -> String {
    format!("{PROVIDERS}\n[[models]]\nname = \"m\"\nhedge_after_ms = {after_ms}\n{ABC}")
}

#[tokio::test]
async fn a_hedge_races_the_next_route_and_the_first_answer_wins() {
    let (gateway, _background) = gateway(&hedged(100)).await;
    tokio::time::pause();
    let started = Instant::now();
    let script = Script::new(&[((0, 0), ok(10_000)), ((0, 1), ok(50))]);
    let outcome = run(&gateway, "m", &script).await;
    assert_eq!(served_by(&outcome), (Some("b"), 2));
    assert_eq!(script.tried(), [(0, 0), (0, 1)]);
    // The hedge started after 100 ms and answered 50 ms later; the slow one was dropped.
    assert_between(started.elapsed(), 150);
}

#[tokio::test]
async fn no_hedge_starts_when_the_first_route_answers_in_time() {
    let (gateway, _background) = gateway(&hedged(100)).await;
    tokio::time::pause();
    let script = Script::new(&[((0, 0), ok(60))]);
    assert_eq!(served_by(&run(&gateway, "m", &script).await), (Some("a"), 1));
    assert_eq!(script.tried(), [(0, 0)]);
}

#[tokio::test]
async fn a_failed_hedge_waits_for_the_first_route() {
    let (gateway, _background) = gateway(&hedged(100)).await;
    tokio::time::pause();
    let started = Instant::now();
    let script = Script::new(&[((0, 0), ok(300)), ((0, 1), fails(20, ErrorKind::Server))]);
    assert_eq!(served_by(&run(&gateway, "m", &script).await), (Some("a"), 2));
    assert_between(started.elapsed(), 300);
    assert_eq!(script.tried(), [(0, 0), (0, 1)]);
}

#[tokio::test]
async fn when_both_hedged_routes_fail_the_third_is_tried_next() {
    let (gateway, _background) = gateway(&hedged(100)).await;
    tokio::time::pause();
    let script = Script::new(&[((0, 0), fails(300, ErrorKind::Server)), ((0, 1), fails(20, ErrorKind::Overloaded))]);
    assert_eq!(served_by(&run(&gateway, "m", &script).await), (Some("c"), 3));
    assert_eq!(script.tried(), [(0, 0), (0, 1), (0, 2)]);
}

#[tokio::test]
async fn the_request_deadline_bounds_all_attempts_together() {
    let config = format!("[server]\nrequest_timeout_ms = 1000\n{PROVIDERS}\n[[models]]\nname = \"m\"\n{ABC}");
    let (gateway, _background) = gateway(&config).await;
    tokio::time::pause();
    let started = Instant::now();
    // The first route fails after 600 ms; the second is cut at the deadline; no third.
    let script = Script::new(&[((0, 0), fails(600, ErrorKind::Server)), ((0, 1), ok(5_000))]);
    let failure = failed(run(&gateway, "m", &script).await);
    assert_between(started.elapsed(), 1000);
    assert_eq!(script.tried(), [(0, 0), (0, 1)]);
    assert_eq!((failure.error.code(), failure.attempts), (ErrorCode::UpstreamError, 2));
    // Only timeouts: 504.
    let script = Script::new(&[((0, 0), ok(5_000))]);
    let failure = failed(run(&gateway, "m", &script).await);
    assert_eq!((failure.error.code(), failure.attempts), (ErrorCode::UpstreamTimeout, 1));
}

#[tokio::test]
async fn a_route_at_its_own_rate_limit_is_passed_over_without_an_attempt() {
    let config = format!(
        r#"{PROVIDERS}
[[models]]
name = "m"
routes = [{{ provider = "a", model = "m-a", rpm_limit = 1 }}, {{ provider = "b", model = "m-b", rpm_limit = 1 }}]
"#
    );
    let (gateway, _background) = gateway(&config).await;
    let script = Script::default();
    assert_eq!(served_by(&run(&gateway, "m", &script).await), (Some("a"), 1));
    assert_eq!(served_by(&run(&gateway, "m", &script).await), (Some("b"), 1));
    // Both routes used up for this minute: 429 with no attempt at all.
    let failure = failed(run(&gateway, "m", &script).await);
    assert_eq!((failure.error.code(), failure.attempts), (ErrorCode::RateLimitExceeded, 0));
    assert!(failure.error.retry_after().is_some());
    assert_eq!(script.tried(), [(0, 0), (0, 1)]);
}
