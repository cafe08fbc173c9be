use std::time::Duration;

use llmux_store::UsageFilter;
use llmux_testkit::{FakeUpstream, Reply, chunk};
use serde_json::{Value, json};

use crate::{TestGateway, fake_provider, sse_data, user};

#[tokio::test]
async fn graceful_shutdown_finishes_streams_and_loses_no_usage_record() {
    let fake = FakeUpstream::start().await;
    let events: Vec<String> = (0..10).map(|i| chunk(json!({"content": format!("t{i} ")}), Value::Null)).collect();
    fake.always(Reply::Sse {
        events,
        usage: Some(llmux_testkit::usage_chunk(4, 10)),
        delay: Duration::from_millis(30),
        cut_after: None,
    });
    let mut gateway = TestGateway::start(&format!(
        "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"up\" }}]\n",
        fake_provider("fake", &fake.base_url())
    ))
    .await;
    let key = gateway.key().await;
    let count = 20;
    let mut streams = Vec::new();
    for _ in 0..count {
        let http = gateway.http.clone();
        let url = gateway.url("/v1/chat/completions");
        let key = key.clone();
        streams.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"model": "chat", "stream": true, "messages": user("hi")}))
                .send()
                .await?;
            response.text().await
        }));
    }
    // Shut down while all streams are in flight (each takes ~300 ms).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let db = gateway.db_path();
    let stopping = gateway.begin_stop();
    for stream in streams {
        let body = stream.await.unwrap().expect("in-flight stream completes");
        assert_eq!(sse_data(&body).last().map(String::as_str), Some("[DONE]"));
    }
    stopping.await.unwrap().unwrap();
    // After shutdown returned, every request is in the store.
    let store = llmux_store::open(&format!("sqlite://{}", db.display())).await.unwrap();
    let records = store.usage(&UsageFilter { limit: 1000, ..UsageFilter::default() }).await.unwrap();
    assert_eq!(records.len(), count);
    assert!(
        records.iter().all(|r| r.record.status == 200 && r.record.output_tokens == 10 && r.record.error_code.is_none())
    );
}

#[tokio::test]
async fn summary_groups_usage() {
    let gateway = TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"m1\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n\n\
         [[models]]\nname = \"m2\"\nroutes = [{ provider = \"mock\", model = \"mock\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    for model in ["m1", "m1", "m2"] {
        assert_eq!(
            gateway.chat(&key, &json!({"model": model, "messages": user("one two three four")})).await.status(),
            200
        );
    }
    gateway.wait_usage(3).await;
    let summary: Value = gateway.admin_get("/admin/usage/summary?group_by=model").await;
    let rows = summary["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0]["group"].as_str(), rows[0]["requests"].as_u64()), (Some("m1"), Some(2)));
    assert_eq!(rows[0]["output_tokens"], 8);
    let filtered = gateway.usage("?model=m2").await;
    assert_eq!(filtered.len(), 1);
    let bad =
        gateway.http.get(gateway.url("/admin/usage?since=yesterday")).bearer_auth(crate::MASTER).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn metrics_count_requests_and_tokens() {
    let gateway = TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"m1\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    gateway.chat(&key, &json!({"model": "m1", "messages": user("a b c")})).await;
    let text = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"llmux_requests_total{model="m1",provider="mock",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"llmux_tokens_total{model="m1",provider="mock",kind="output"} 3"#), "{text}");
    assert!(text.contains("llmux_request_duration_seconds_bucket{model=\"m1\",le=\"+Inf\"} 1"), "{text}");
    assert!(text.contains(r#"llmux_upstream_attempts_total{provider="mock",outcome="ok"} 1"#), "{text}");
    assert!(text.contains(r#"llmux_route_healthy{model="m1",provider="mock"} 1"#), "{text}");
}
