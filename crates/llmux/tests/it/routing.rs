//! Route health over real HTTP: rate-limit rests, circuit breaking, region refusals.

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::json;

use crate::{TestGateway, fake_provider};

async fn two_routes(first: &FakeUpstream, second: &FakeUpstream) -> TestGateway {
    two_routes_with("", "", first, second).await
}

/// Model `chat` with the routes `first` then `second`; `server` adds `[server]` lines,
/// `model` lines to the model.
pub(crate) async fn two_routes_with(
    server: &str,
    model: &str,
    first: &FakeUpstream,
    second: &FakeUpstream,
) -> TestGateway {
    TestGateway::start_with_server(
        server,
        &format!(
            "{}{}[[models]]\nname = \"chat\"\n{model}routes = [{{ provider = \"first\", model = \"m1\" }}, {{ provider = \"second\", model = \"m2\" }}]\n",
            fake_provider("first", &first.base_url()),
            fake_provider("second", &second.base_url()),
        ),
    )
    .await
}

pub(crate) fn ask() -> serde_json::Value {
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
    // The failover is in the record, attempt by attempt; plain successes carry no log.
    let records = gateway.wait_usage(3).await;
    let failed_over = records.iter().find(|record| record["attempts"] == 2).unwrap();
    let log = failed_over["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0]["provider"].as_str(), log[0]["outcome"].as_str()), (Some("first"), Some("rate_limited")));
    assert_eq!((log[1]["provider"].as_str(), log[1]["outcome"].as_str()), (Some("second"), Some("ok")));
    assert_eq!(log[1]["model"], "m2");
    assert!(log[1]["latency_ms"].is_u64());
    assert!(records.iter().filter(|record| record["attempts"] == 1).all(|record| record["attempt_log"].is_null()));
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
    let providers: serde_json::Value = gateway.admin_get("/admin/providers").await;
    let route = |name: &str| {
        let provider = providers["providers"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        provider["routes"][0].clone()
    };
    assert_eq!(route("first")["resting"], true);
    assert_eq!(route("first")["consecutive_failures"], 5);
    assert_eq!(route("second")["resting"], false);
    assert!(route("second")["latency_ms"].as_f64().is_some_and(|latency| latency > 0.0));

    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"llmux_route_healthy{model="chat",provider="first"} 0"#), "{metrics}");
    assert!(metrics.contains(r#"llmux_route_healthy{model="chat",provider="second"} 1"#), "{metrics}");

    // A reload keeps what is known about routes that are still there.
    let reload = gateway.http.post(gateway.url("/admin/reload")).bearer_auth(crate::MASTER).send().await.unwrap();
    assert_eq!(reload.status(), 200);
    for _ in 0..3 {
        assert_eq!(gateway.chat(&key, &ask()).await.headers()["x-llmux-provider"], "second");
    }
    assert_eq!(first.received().len(), 5, "still open after the reload");
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

    // A key that may not use the larger model gets the context-length error instead.
    let (narrow, _) = gateway.create_key(json!({"name": "narrow", "models": ["chat"]})).await;
    small.push(Reply::status(400, too_long));
    let response = gateway.chat(&narrow, &ask()).await;
    assert_eq!(response.status(), 400);
    assert_eq!(big.received().len(), 1, "chat-long is not the narrow key's to use");
}

/// Chaos: three routes answering at random with successes, 500s, 429s, stalls (past the
/// first-byte timeout), slow answers and streams cut mid-way, under concurrent streaming
/// load (the fakes answer in SSE). Every request ends (no hang) with either a complete
/// answer or a proper error in the OpenAI dialect, and the ledger holds exactly one
/// record per request.
#[tokio::test]
async fn chaos_every_request_ends_properly_and_is_recorded_once() {
    const REQUESTS: usize = 90;
    let mut rng = fastrand::Rng::with_seed(0x11_ab);
    let upstreams = [FakeUpstream::start().await, FakeUpstream::start().await, FakeUpstream::start().await];
    for upstream in &upstreams {
        for _ in 0..REQUESTS {
            let reply = match rng.u8(0..100) {
                0..=49 => Reply::chat_stream(&["fine", " answer"], 5, 2),
                50..=64 => Reply::status(500, r#"{"error":{"message":"boom","type":"server_error"}}"#),
                65..=74 => Reply::Json {
                    status: 429,
                    body: r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.into(),
                    headers: vec![("retry-after".into(), "1".into())],
                },
                75..=82 => Reply::Stall,
                83..=90 => Reply::Sse {
                    events: vec![llmux_testkit::chunk(
                        json!({"role": "assistant", "content": "cut"}),
                        serde_json::Value::Null,
                    )],
                    usage: None,
                    delay: std::time::Duration::from_millis(5),
                    cut_after: Some(1),
                },
                _ => Reply::Sse {
                    events: vec![llmux_testkit::chunk(json!({"role": "assistant", "content": "slow"}), json!("stop"))],
                    usage: Some(llmux_testkit::usage_chunk(5, 1)),
                    delay: std::time::Duration::from_millis(150),
                    cut_after: None,
                },
            };
            upstream.push(reply);
        }
        upstream.always(Reply::chat_stream(&["fallback"], 5, 1));
    }
    let provider = |name: &str, upstream: &FakeUpstream| {
        format!(
            "{}first_byte_timeout_ms = 250\n\n",
            fake_provider(name, &upstream.base_url()).trim_end().to_owned() + "\n"
        )
    };
    let gateway = std::sync::Arc::new(
        TestGateway::start(&format!(
            "{}{}{}[[models]]\nname = \"chat\"\nstrategy = \"least-busy\"\nroutes = [{{ provider = \"u0\", model = \"m0\" }}, {{ provider = \"u1\", model = \"m1\" }}, {{ provider = \"u2\", model = \"m2\" }}]\n",
            provider("u0", &upstreams[0]),
            provider("u1", &upstreams[1]),
            provider("u2", &upstreams[2]),
        ))
        .await,
    );
    let key = gateway.key().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let (gateway, key) = (gateway.clone(), key.clone());
        tasks.spawn(async move {
            let body = json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
            let response = gateway.chat(&key, &body).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text)
        });
    }
    let outcomes = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut outcomes = Vec::new();
        while let Some(outcome) = tasks.join_next().await {
            outcomes.push(outcome.unwrap());
        }
        outcomes
    })
    .await
    .expect("no request hangs");
    let mut answered = 0;
    for (status, text) in &outcomes {
        match status {
            200 => {
                let finished = text.ends_with("data: [DONE]\n\n");
                let errored = crate::sse_data(text).iter().any(|data| data.contains("\"error\""));
                assert!(finished != errored, "a stream ends with [DONE] or with an error event: {text}");
                answered += usize::from(finished);
            }
            502 | 504 => {
                let body: serde_json::Value = serde_json::from_str(text).unwrap();
                assert!(body["error"]["message"].is_string() && body["error"]["type"].is_string(), "{text}");
            }
            other => panic!("unexpected status {other}: {text}"),
        }
    }
    assert!(answered > REQUESTS / 2, "most requests find a healthy route: {answered} of {REQUESTS}");
    let records = gateway.wait_usage(REQUESTS).await;
    assert_eq!(records.len(), REQUESTS, "exactly one usage record per request");
    let mut ids: Vec<&str> = records.iter().map(|record| record["request_id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), REQUESTS);
}

#[tokio::test]
async fn hedging_starts_the_next_route_when_the_first_is_slow_and_takes_the_first_answer() {
    let (slow, fast) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let gateway = TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"chat\"\nhedge_after_ms = 150\nroutes = [{{ provider = \"slow\", model = \"m1\" }}, {{ provider = \"fast\", model = \"m2\", price = {{ input = 1, output = 1 }} }}]\n",
        fake_provider("slow", &slow.base_url()),
        fake_provider("fast", &fast.base_url()),
    ))
    .await;
    let key = gateway.key().await;

    // The first route answers in time: the second is never asked.
    slow.push(Reply::chat("quick enough", 3, 2));
    let response = gateway.chat(&key, &ask()).await;
    assert_eq!(response.headers()["x-llmux-provider"], "slow");
    assert_eq!(response.headers()["x-llmux-attempts"], "1");
    assert!(fast.received().is_empty());

    // The first route stalls: after 150 ms the second starts and its answer is relayed.
    slow.push(Reply::Stall);
    fast.push(Reply::chat("from the hedge", 3, 2));
    let started = std::time::Instant::now();
    let response = gateway.chat(&key, &ask()).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "fast");
    assert_eq!(response.headers()["x-llmux-attempts"], "2");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from the hedge");
    assert!(elapsed < std::time::Duration::from_secs(2), "not the first route's timeout: {elapsed:?}");
    let records = gateway.wait_usage(2).await;
    let hedged = records.iter().find(|record| record["attempts"] == 2).unwrap();
    assert_eq!(hedged["provider"], "fast", "billed to the route that answered");
    assert_eq!(hedged["upstream_model"], "m2");
    assert_eq!(hedged["cost"].to_string(), "0.000005");
    let outcomes: Vec<(&str, &str)> = hedged["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["provider"].as_str().unwrap(), entry["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [("slow", "cancelled"), ("fast", "ok")]);
}

#[tokio::test]
async fn the_latency_strategy_moves_load_to_the_faster_route() {
    let (slow, fast) = (FakeUpstream::start().await, FakeUpstream::start().await);
    slow.always(Reply::Delayed {
        delay: std::time::Duration::from_millis(60),
        reply: Box::new(Reply::chat("slow", 3, 2)),
    });
    fast.always(Reply::chat("fast", 3, 2));
    let gateway = TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"chat\"\nstrategy = \"latency\"\nroutes = [{{ provider = \"slow\", model = \"m1\" }}, {{ provider = \"fast\", model = \"m2\" }}]\n",
        fake_provider("slow", &slow.base_url()),
        fake_provider("fast", &fast.base_url()),
    ))
    .await;
    let key = gateway.key().await;
    // Until both routes are measured, either may go first.
    for _ in 0..6 {
        assert_eq!(gateway.chat(&key, &ask()).await.status(), 200);
    }
    let slow_before = slow.received().len();
    assert!(slow_before > 0, "an unmeasured route gets tried");
    let mut served_fast = 0;
    for _ in 0..30 {
        let response = gateway.chat(&key, &ask()).await;
        served_fast += usize::from(response.headers()["x-llmux-provider"] == "fast");
    }
    assert_eq!(served_fast, 30, "with two routes both are always drawn: the faster wins");
    assert_eq!(slow.received().len(), slow_before);
}

#[tokio::test]
async fn a_models_first_byte_timeout_bounds_a_stalled_upstream() {
    let stalled = FakeUpstream::start().await;
    stalled.always(Reply::Stall);
    // The provider keeps its default (120 s); the model asks for 200 ms.
    let gateway = TestGateway::start(&format!(
        "{}[[models]]\nname = \"chat\"\nfirst_byte_timeout_ms = 200\nroutes = [{{ provider = \"stalled\", model = \"m\" }}]\n",
        fake_provider("stalled", &stalled.base_url()),
    ))
    .await;
    let key = gateway.key().await;
    let started = std::time::Instant::now();
    let response = gateway.chat(&key, &ask()).await;
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn the_request_deadline_bounds_every_attempt_together() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.always(Reply::Stall);
    second.always(Reply::Stall);
    // Each attempt alone could wait 5 s for its first byte; the request gets 400 ms in all.
    let gateway =
        two_routes_with("request_timeout_ms = 400\n", "first_byte_timeout_ms = 5000\n", &first, &second).await;
    let key = gateway.key().await;
    let started = std::time::Instant::now();
    let response = gateway.chat(&key, &ask()).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 504);
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(response.headers()["x-llmux-attempts"], "1", "no time left for a second attempt");
}

#[tokio::test]
async fn an_open_circuit_half_opens_after_the_cooldown_and_one_probe_closes_it() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    for _ in 0..3 {
        first.push(Reply::status(500, r#"{"error":{"message":"boom","type":"server_error"}}"#));
    }
    first.always(Reply::chat("first is back", 3, 2));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes_with("circuit_failures = 3\ncircuit_cooldown_ms = 1500\n", "", &first, &second).await;
    let key = gateway.key().await;
    let provider = |response: &reqwest::Response| response.headers()["x-llmux-provider"].to_str().unwrap().to_owned();
    // Three failures open the circuit; meanwhile the second route serves.
    for _ in 0..5 {
        assert_eq!(provider(&gateway.chat(&key, &ask()).await), "second");
    }
    assert_eq!(first.received().len(), 3, "open: not tried during the cooldown");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    // After the cooldown one probe goes to the first route; it succeeds and closes the circuit.
    assert_eq!(provider(&gateway.chat(&key, &ask()).await), "first");
    for _ in 0..3 {
        assert_eq!(provider(&gateway.chat(&key, &ask()).await), "first");
    }
    assert_eq!(first.received().len(), 7);
}

#[tokio::test]
async fn a_p95_hedge_waits_for_the_routes_usual_time_to_first_byte() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    for _ in 0..10 {
        first.push(Reply::Delayed {
            delay: std::time::Duration::from_millis(20),
            reply: Box::new(Reply::chat("usual", 3, 2)),
        });
    }
    first.push(Reply::Stall);
    second.always(Reply::chat("hedge", 3, 2));
    let gateway = two_routes_with("", "hedge_after_ms = \"p95\"\n", &first, &second).await;
    let key = gateway.key().await;
    // Ten answers in about 20 ms teach the route its p95 (until 8 samples there is no
    // hedge; after that, an answer slower than the p95 may race a hedge, as it should).
    for _ in 0..10 {
        assert_eq!(gateway.chat(&key, &ask()).await.status(), 200);
    }
    assert!(first.received().len() >= 10);
    // Then it stalls: the hedge starts after about its p95, long before any timeout.
    let started = std::time::Instant::now();
    let response = gateway.chat(&key, &ask()).await;
    assert_eq!(response.headers()["x-llmux-provider"], "second");
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn active_health_checks_close_a_circuit_once_the_provider_answers_again() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.always(Reply::status(500, r#"{"error":{"message":"down","type":"server_error"}}"#));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes_with(
        "circuit_failures = 3\ncircuit_cooldown_ms = 60000\nhealth_check_interval_ms = 100\n",
        "",
        &first,
        &second,
    )
    .await;
    let key = gateway.key().await;
    for _ in 0..4 {
        assert_eq!(gateway.chat(&key, &ask()).await.headers()["x-llmux-provider"], "second");
    }
    // The provider recovers; the 60 s cooldown is not waited for: a health check sees it.
    first.always(Reply::chat("first is back", 3, 2));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(gateway.chat(&key, &ask()).await.headers()["x-llmux-provider"], "first");
    let probes =
        first.received().iter().filter(|request| request.method == "GET" && request.path == "/v1/models").count();
    assert!(probes >= 2, "{probes} health checks");
    let probe = first.received().into_iter().find(|request| request.method == "GET").unwrap();
    assert_eq!(probe.header("authorization"), Some("Bearer sk-upstream-first-secret"));
}

#[tokio::test]
async fn weighted_and_cost_strategies_over_http() {
    let (heavy, light) = (FakeUpstream::start().await, FakeUpstream::start().await);
    heavy.always(Reply::chat("heavy", 3, 2));
    light.always(Reply::chat("light", 3, 2));
    let gateway = TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"chat\"\nstrategy = \"weighted\"\nroutes = [{{ provider = \"heavy\", model = \"m1\", weight = 3 }}, {{ provider = \"light\", model = \"m2\", weight = 1 }}]\n\n\
         [[models]]\nname = \"thrifty\"\nstrategy = \"cost\"\nroutes = [{{ provider = \"heavy\", model = \"dear\", price = {{ input = 10, output = 30 }} }}, {{ provider = \"light\", model = \"cheap\", price = {{ input = 0.5, output = 1.5 }} }}]\n",
        fake_provider("heavy", &heavy.base_url()),
        fake_provider("light", &light.base_url()),
    ))
    .await;
    let key = gateway.key().await;
    for _ in 0..200 {
        assert_eq!(gateway.chat(&key, &ask()).await.status(), 200);
    }
    // Expected 150 / 50; about five standard deviations (6.1) either way.
    let to_heavy = heavy.received().len();
    assert!((120..=180).contains(&to_heavy), "{to_heavy} of 200 went to the weight-3 route");
    assert_eq!(to_heavy + light.received().len(), 200);

    let thrifty = json!({"model": "thrifty", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..5 {
        assert_eq!(gateway.chat(&key, &thrifty).await.headers()["x-llmux-provider"], "light");
    }
    assert_eq!(light.last().json()["model"], "cheap");
}

#[tokio::test]
async fn the_route_healthy_metric_follows_circuits_opened_by_health_checks() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.always(Reply::chat("fine", 3, 2));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes_with(
        "circuit_failures = 2\ncircuit_cooldown_ms = 60000\nhealth_check_interval_ms = 100\n",
        "",
        &first,
        &second,
    )
    .await;
    let key = gateway.key().await;
    assert_eq!(gateway.chat(&key, &ask()).await.headers()["x-llmux-provider"], "first");
    let healthy = r#"llmux_route_healthy{model="chat",provider="first"} 1"#;
    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(healthy), "{metrics}");
    // The provider goes down; only health checks see it (no request fails on it).
    first.always(Reply::status(503, r#"{"error":{"message":"down","type":"server_error"}}"#));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"llmux_route_healthy{model="chat",provider="first"} 0"#), "{metrics}");
    assert_eq!(gateway.chat(&key, &ask()).await.headers()["x-llmux-provider"], "second");
}
