//! Route health over real HTTP: rate-limit rests, circuit breaking, region refusals.

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::json;

use crate::{TestGateway, fake_provider};

async fn two_routes(first: &FakeUpstream, second: &FakeUpstream) -> TestGateway {
    TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"first\", model = \"m1\" }}, {{ provider = \"second\", model = \"m2\" }}]\n",
        fake_provider("first", &first.base_url()),
        fake_provider("second", &second.base_url()),
    ))
    .await
}

fn ask() -> serde_json::Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_429_rests_the_route_for_its_retry_after() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.push(Reply::Json {
        status: 429,
        body: r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.into(),
        headers: vec![("retry-after".into(), "30".into())],
    });
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes(&first, &second).await;
    let key = gateway.key().await;
    for expected_attempts in ["2", "1", "1"] {
        let response = gateway.chat(&key, &ask()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-llmux-provider"], "second");
        assert_eq!(response.headers()["x-llmux-attempts"], expected_attempts);
    }
    assert_eq!(first.received().len(), 1, "the limited route rests for 30 s");
}

#[tokio::test]
async fn consecutive_failures_open_the_circuit() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.always(Reply::status(500, r#"{"error":{"message":"boom","type":"server_error"}}"#));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes(&first, &second).await;
    let key = gateway.key().await;
    for _ in 0..8 {
        let response = gateway.chat(&key, &ask()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-llmux-provider"], "second");
    }
    assert_eq!(first.received().len(), 5, "open after five failures in a row; no probe before the cooldown");

    // The operator sees it.
    let providers: serde_json::Value = gateway
        .http
        .get(gateway.url("/admin/providers"))
        .bearer_auth(crate::MASTER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let route = |name: &str| {
        let provider = providers["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        provider["routes"][0].clone()
    };
    assert_eq!(route("first")["resting"], true);
    assert_eq!(route("first")["consecutive_failures"], 5);
    assert_eq!(route("second")["resting"], false);
    assert!(route("second")["latency_ms"].as_f64().is_some_and(|latency| latency > 0.0));
}

#[tokio::test]
async fn a_region_refusal_moves_on_and_closes_the_route_for_that_region_only() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.push(Reply::status(
        403,
        r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","type":"request_forbidden"}}"#,
    ));
    first.push(Reply::chat("from first", 3, 2));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes(&first, &second).await;
    let (hk_key, _) = gateway.create_key(json!({"name": "hk", "region": "HK"})).await;
    let (de_key, _) = gateway.create_key(json!({"name": "de", "region": "DE"})).await;

    for expected_attempts in ["2", "1"] {
        let response = gateway.chat(&hk_key, &ask()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-llmux-provider"], "second");
        assert_eq!(response.headers()["x-llmux-attempts"], expected_attempts, "never retried for HK");
    }
    let response = gateway.chat(&de_key, &ask()).await;
    assert_eq!(response.headers()["x-llmux-provider"], "first", "other regions keep the route");
    assert_eq!(first.received().len(), 2);
}

#[tokio::test]
async fn a_context_length_error_moves_to_the_context_window_fallback_and_nothing_else() {
    let (small, big) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let too_long = r#"{"error":{"code":"context_length_exceeded","message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error"}}"#;
    let gateway = TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"chat\"\ncontext_window_fallbacks = [\"chat-long\"]\n\
         routes = [{{ provider = \"small\", model = \"small-8k\" }}, {{ provider = \"small\", model = \"small-8k-b\" }}]\n\n\
         [[models]]\nname = \"chat-long\"\nroutes = [{{ provider = \"big\", model = \"big-1m\" }}]\n\n\
         [[models]]\nname = \"chat-plain\"\nroutes = [{{ provider = \"small\", model = \"small-8k\" }}, {{ provider = \"big\", model = \"big-1m\" }}]\n",
        fake_provider("small", &small.base_url()),
        fake_provider("big", &big.base_url()),
    ))
    .await;
    let key = gateway.key().await;

    small.push(Reply::status(400, too_long));
    big.push(Reply::chat("read it all", 9000, 5));
    let response = gateway.chat(&key, &ask()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "big");
    assert_eq!(response.headers()["x-llmux-attempts"], "2", "the other 8k route is not tried");
    assert_eq!(big.last().json()["model"], "big-1m");

    // Without context-window fallbacks a context-length error is the caller's: 400, no retry.
    small.push(Reply::status(400, too_long));
    let response =
        gateway.chat(&key, &json!({"model": "chat-plain", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(big.received().len(), 1);
}
