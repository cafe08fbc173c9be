//! Rate limits per key (requests and tokens per minute), in both dialects.

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::{TestGateway, fake_provider};

async fn gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&format!(
        "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\" }}]\n",
        fake_provider("fake", &fake.base_url())
    ))
    .await
}

fn ask() -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_burst_gets_exactly_the_rpm_limit_through_and_the_rest_429() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let gateway = std::sync::Arc::new(gateway(&fake).await);
    let (key, _) = gateway.create_key(json!({"name": "limited", "rpm_limit": 5})).await;
    crate::early_in_a_minute().await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (gateway, key) = (gateway.clone(), key.clone());
        burst.spawn(async move {
            let response = gateway.chat(&key, &ask()).await;
            let headers = response.headers().clone();
            (response.status().as_u16(), headers, response.json::<Value>().await.unwrap())
        });
    }
    let mut outcomes = Vec::new();
    while let Some(outcome) = burst.join_next().await {
        outcomes.push(outcome.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|(status, _, _)| *status == 200).count(), 5);
    assert_eq!(fake.received().len(), 5, "refused requests never reach the upstream");
    for (status, headers, body) in &outcomes {
        assert_eq!(headers["x-ratelimit-limit-requests"], "5");
        if *status == 429 {
            assert_eq!(body["error"]["code"], "rate_limit_exceeded");
            assert_eq!(body["error"]["type"], "rate_limit_error");
            assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
            let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
            let retry_ms: u64 = headers["retry-after-ms"].to_str().unwrap().parse().unwrap();
            assert_eq!(retry_ms.div_ceil(1000), retry, "both name the end of the window");
            assert!(headers.get("x-should-retry").is_none(), "the SDKs may retry once the window ends");
        } else {
            assert_eq!(*status, 200);
        }
    }
    // Every request has its record, the refused ones with their status.
    let records = gateway.wait_usage(8).await;
    assert_eq!(records.iter().filter(|record| record["status"] == 429).count(), 3);
    assert!(
        records
            .iter()
            .filter(|record| record["status"] == 429)
            .all(|record| record["error_code"] == "rate_limit_exceeded")
    );

    // Keys without limits are not limited, nor given the headers.
    let free = gateway.key().await;
    let response = gateway.chat(&free, &ask()).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-ratelimit-limit-requests").is_none());
}

#[tokio::test]
async fn tokens_per_minute_count_what_requests_used_and_anthropic_clients_get_their_error() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    let gateway = gateway(&fake).await;
    let (key, _) = gateway.create_key(json!({"name": "tokens", "tpm_limit": 30})).await;
    crate::early_in_a_minute().await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = gateway.chat(&key, &ask()).await;
        assert_eq!(response.status(), 200);
        remaining.push(response.headers()["x-ratelimit-remaining-tokens"].to_str().unwrap().to_owned());
        // The usage settles when the ledger record is made; wait for it.
        gateway.wait_usage(remaining.len()).await;
    }
    assert_eq!(remaining, ["30", "17", "4"], "13 tokens a request");
    let response = gateway
        .messages(&key, &json!({"model": "chat", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-remaining-tokens"], "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn a_burst_against_a_budget_for_ten_never_overspends_and_the_upstream_sees_only_admitted_requests() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 4));
    // 1000 USD per million tokens both ways: a request (13 tokens) costs 0.013.
    let gateway = std::sync::Arc::new(
        TestGateway::start(&format!(
            "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\", price = {{ input = 1000, output = 1000 }} }}]\n",
            fake_provider("fake", &fake.base_url())
        ))
        .await,
    );
    let (key, key_id) = gateway
        .create_key(json!({"name": "budgeted", "budget": {"amount": 0.13, "currency": "USD", "period": "monthly"}}))
        .await;
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (gateway, key) = (gateway.clone(), key.clone());
        burst.spawn(async move {
            let body = json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
            let response = gateway.chat(&key, &body).await;
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        });
    }
    let mut admitted = 0;
    while let Some(outcome) = burst.join_next().await {
        let (status, body) = outcome.unwrap();
        match status {
            200 => admitted += 1,
            429 => {
                assert_eq!(body["error"]["code"], "budget_exceeded");
                assert!(body["error"]["message"].as_str().unwrap().contains("0.13 USD monthly budget"), "{body}");
            }
            other => panic!("status {other}: {body}"),
        }
    }
    assert!((5..=10).contains(&admitted), "{admitted} admitted");
    assert_eq!(fake.received().len(), admitted, "refused requests never reach the upstream");
    let records = gateway.wait_usage(64).await;
    let spent: f64 = records.iter().filter_map(|record| record["cost"].as_f64()).sum();
    assert!(spent <= 0.13 + 1e-9, "spent {spent}: estimates cover actual costs, so nothing over budget");
    assert_eq!(records.iter().filter(|record| record["error_code"] == "budget_exceeded").count(), 64 - admitted);
    // The key's standing is the ledger's total: the sum of its records.
    let shown: Value = gateway.admin_get(&format!("/admin/keys/{key_id}")).await;
    let budget = &shown["budget"];
    assert!((budget["spent"].as_f64().unwrap() - spent).abs() < 1e-9, "{budget} against records summing to {spent}");
    assert!((budget["remaining"].as_f64().unwrap() - (0.13 - spent)).abs() < 1e-9, "{budget}");
    assert!(budget["period_start"].as_str().unwrap().ends_with("-01T00:00:00Z"), "monthly: {budget}");

    // Sequentially, requests go through until the next estimate no longer fits.
    let mut more = 0;
    loop {
        let body = json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
        let response = gateway.chat(&key, &body).await;
        match response.status().as_u16() {
            200 => more += 1,
            429 => {
                // Nothing in flight: the spend itself leaves no room, so the SDKs are
                // told not to retry (they retry every 429 by default).
                assert_eq!(response.headers()["x-should-retry"], "false");
                assert!(response.headers().get("retry-after").is_none());
                break;
            }
            other => panic!("status {other}"),
        }
        assert!(more <= 10, "the budget stops it");
    }
    let records = gateway.wait_usage(64 + more + 1).await;
    let spent: f64 = records.iter().filter_map(|record| record["cost"].as_f64()).sum();
    assert!(spent <= 0.13 + 1e-9, "spent {spent}");
    assert!(spent > 0.13 - 0.024 - 1e-9, "stopped only when the next estimate (0.024) did not fit: {spent}");
}

#[tokio::test]
async fn a_budget_refusal_tells_clients_whether_a_retry_can_help() {
    let fake = FakeUpstream::start().await;
    // 1000 USD per million tokens: a request reserves about 0.024 and costs 0.013. The
    // first answer is slow, so the second request surely arrives while it is in flight.
    fake.always(Reply::Delayed {
        delay: std::time::Duration::from_millis(1500),
        reply: Box::new(Reply::chat("ok", 9, 4)),
    });
    let gateway = std::sync::Arc::new(
        TestGateway::start(&format!(
            "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\", price = {{ input = 1000, output = 1000 }} }}]\n",
            fake_provider("fake", &fake.base_url())
        ))
        .await,
    );
    let (key, _) = gateway.create_key(json!({"name": "small", "budget": {"amount": 0.03, "period": "daily"}})).await;
    let body = json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let first = {
        let (gateway, key, body) = (gateway.clone(), key.clone(), body.clone());
        tokio::spawn(async move { gateway.chat(&key, &body).await.status() })
    };
    while fake.received().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Only the first request's reservation stands in the way: it may settle below its
    // estimate, so the SDKs may retry (after a second).
    let response = gateway.chat(&key, &body).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["retry-after-ms"], "1000");
    assert!(response.headers().get("x-should-retry").is_none());
    assert_eq!(first.await.unwrap(), 200);
    gateway.wait_usage(2).await;

    // 0.013 spent, and the next estimate does not fit: no retry can help, in either dialect.
    let response = gateway.chat(&key, &body).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["type"].as_str()),
        (Some("budget_exceeded"), Some("insufficient_quota"))
    );
    let response = gateway
        .messages(&key, &json!({"model": "chat", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-should-retry"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn a_route_at_its_own_rate_limit_steers_traffic_to_the_next_route_and_429s_when_none_is_left() {
    let (limited, spare) = (FakeUpstream::start().await, FakeUpstream::start().await);
    limited.always(Reply::chat("from limited", 9, 4));
    spare.always(Reply::chat("from spare", 9, 4));
    // `chat` and `solo` share the deployment limited/m: one window of 2 requests a minute.
    let gateway = TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"limited\", model = \"m\", rpm_limit = 2 }}, {{ provider = \"spare\", model = \"m\", priority = 1 }}]\n\
         [[models]]\nname = \"solo\"\nroutes = [{{ provider = \"limited\", model = \"m\", rpm_limit = 2 }}]\n",
        fake_provider("limited", &limited.base_url()),
        fake_provider("spare", &spare.base_url())
    ))
    .await;
    let key = gateway.key().await;
    crate::early_in_a_minute().await;
    let mut served_by = Vec::new();
    for _ in 0..4 {
        let response = gateway.chat(&key, &ask()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-llmux-attempts"], "1", "a limited route is passed over, not attempted");
        served_by.push(response.headers()["x-llmux-provider"].to_str().unwrap().to_owned());
    }
    assert_eq!(served_by, ["limited", "limited", "spare", "spare"]);
    assert_eq!(limited.received().len(), 2);

    // A model whose only route is at its limit: 429 with Retry-After, nothing sent.
    let response = gateway.chat(&key, &json!({"model": "solo", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["message"], "Rate limit reached: 2 requests per minute for route limited/m.");
    assert_eq!(limited.received().len(), 2);
    let records = gateway.wait_usage(5).await;
    assert_eq!(records.iter().filter(|record| record["error_code"] == "rate_limit_exceeded").count(), 1);
}

#[tokio::test]
async fn crossing_a_budget_alert_threshold_posts_the_webhook_and_counts_in_metrics() {
    let (fake, hooks) = (FakeUpstream::start().await, FakeUpstream::start().await);
    fake.always(Reply::chat("ok", 9, 4));
    hooks.always(Reply::status(204, ""));
    let dir = crate::temp_dir("alerts");
    let path = dir.join("llmux.toml");
    let config = crate::base_config(&dir).replace(
        "[storage]",
        &format!(
            "budget_alert_thresholds = [20, 90]\nbudget_alert_webhook = \"{}/hooks/budget\"\n\n[storage]",
            hooks.base_url()
        ),
    );
    std::fs::write(
        &path,
        format!(
            "{config}{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\", price = {{ input = 1000, output = 1000 }} }}]\n",
            fake_provider("fake", &fake.base_url())
        ),
    )
    .unwrap();
    let gateway = TestGateway::start_with(dir, path).await;
    // 0.013 a request: the second brings spend to 0.026, past 20 % of 0.1.
    let (key, key_id) = gateway.create_key(json!({"name": "alerted", "budget": {"amount": 0.1}})).await;
    let body = json!({"model": "chat", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(gateway.chat(&key, &body).await.status(), 200);
    gateway.wait_usage(1).await;
    assert!(hooks.received().is_empty(), "0.013 is 13 %");
    assert_eq!(gateway.chat(&key, &body).await.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while hooks.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let posted = hooks.received();
    assert_eq!(posted.len(), 1);
    assert!(posted[0].path.ends_with("/hooks/budget"), "{}", posted[0].path);
    let alert = posted[0].json();
    assert_eq!(alert["event"], "budget_threshold_crossed");
    assert_eq!((alert["scope"].as_str(), alert["key_id"].as_str()), (Some("key"), Some(key_id.as_str())));
    assert_eq!((alert["threshold_percent"].clone(), alert["spent"].clone()), (json!(20), json!(0.026)));
    assert_eq!((alert["budget"].clone(), alert["currency"].clone()), (json!(0.1), json!("USD")));
    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("llmux_budget_alerts_total{scope=\"key\",threshold=\"20\"} 1"), "{metrics}");
    assert!(!metrics.contains("threshold=\"90\""), "{metrics}");
}
