//! What one request may ask for is bounded, and client-chosen model names never grow
//! metrics or reach the ledger: each refusal is a 400 in the caller's dialect naming
//! the limit, and the gateway keeps serving.

use serde_json::{Value, json};

use crate::{TestGateway, user};

const MOCK: &str = "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n\
    [[models]]\nname = \"echo\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n\n\
    [[models]]\nname = \"embed\"\nroutes = [{ provider = \"mock\", model = \"embed\" }]\n";

async fn mock_gateway() -> TestGateway {
    TestGateway::start_with_server("max_messages = 4\nmax_tools = 2\n", MOCK).await
}

async fn refused(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 400);
    response.json().await.unwrap()
}

#[tokio::test]
async fn choices_and_embedding_inputs_are_bounded_and_the_gateway_keeps_serving() {
    let gateway = mock_gateway().await;
    let key = gateway.key().await;
    let body =
        refused(gateway.chat(&key, &json!({"model": "echo", "n": 4_000_000_000u64, "messages": user("hi")})).await)
            .await;
    assert_eq!(body["error"]["param"], "n");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 128"), "{body}");
    let inputs: Vec<&str> = vec!["x"; 2049];
    let body = refused(gateway.post("/v1/embeddings", &key, &json!({"model": "embed", "input": inputs})).await).await;
    assert_eq!(body["error"]["param"], "input");
    // The mock's own answers are bounded too: values per embeddings request, text per choice.
    let wide = json!({"model": "embed", "input": vec!["x"; 2048], "dimensions": 4096});
    let body = refused(gateway.post("/v1/embeddings", &key, &wide).await).await;
    assert!(body["error"]["message"].as_str().unwrap().contains("embedding values"), "{body}");
    let long = "word ".repeat(12_000);
    let response = gateway.chat(&key, &json!({"model": "echo", "n": 128, "messages": user(&long)})).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let choices = answer["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 128);
    assert!(choices.iter().all(|choice| choice["message"]["content"].as_str().unwrap().len() <= 64 * 1024));
    let small = gateway.chat(&key, &json!({"model": "echo", "messages": user("still here")})).await;
    assert_eq!(small.status(), 200);
    assert_eq!(gateway.wait_usage(5).await.len(), 5, "every refusal is a record");
    gateway.stop().await;
}

#[tokio::test]
async fn message_and_tool_counts_are_bounded_in_every_dialect() {
    let gateway = mock_gateway().await;
    let key = gateway.key().await;
    let five: Vec<Value> = (0..5).map(|i| json!({"role": "user", "content": format!("m{i}")})).collect();
    let body = refused(gateway.chat(&key, &json!({"model": "echo", "messages": five})).await).await;
    assert_eq!(body["error"]["param"], "messages");
    assert!(body["error"]["message"].as_str().unwrap().contains("server.max_messages"), "{body}");
    // Anthropic's envelope.
    let body =
        refused(gateway.messages(&key, &json!({"model": "echo", "max_tokens": 10, "messages": five})).await).await;
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 4"), "{body}");
    // The Responses API, tools.
    let tool = |name: &str| json!({"type": "function", "name": name, "parameters": {"type": "object"}});
    let request = json!({"model": "echo", "input": "hi", "tools": [tool("a"), tool("b"), tool("c")]});
    let body = refused(gateway.post("/v1/responses", &key, &request).await).await;
    assert_eq!(body["error"]["param"], "tools");
    let fine = json!({"model": "echo", "input": "hi", "tools": [tool("a"), tool("b")]});
    assert_eq!(gateway.post("/v1/responses", &key, &fine).await.status(), 200);
    gateway.stop().await;
}

#[tokio::test]
async fn client_chosen_model_names_stay_out_of_metrics_and_the_ledger() {
    let gateway = mock_gateway().await;
    let key = gateway.key().await;
    assert_eq!(gateway.chat(&key, &json!({"model": "echo", "messages": user("warm up")})).await.status(), 200);
    let metrics = || async { gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    // One refusal of an unknown name puts its series in place.
    assert_eq!(gateway.chat(&key, &json!({"model": "nope-0", "messages": user("x")})).await.status(), 404);
    let before = metrics().await;
    for index in 1..300 {
        let name = format!("nope-{index}-{}", "z".repeat(200));
        let response = gateway.chat(&key, &json!({"model": name, "messages": user("x")})).await;
        assert_eq!(response.status(), 404);
    }
    let after = metrics().await;
    assert!(!after.contains("nope-"), "a client's model name became a label");
    assert_eq!(
        after.lines().filter(|line| line.starts_with("llmux_requests_total")).count(),
        before.lines().filter(|line| line.starts_with("llmux_requests_total")).count(),
        "unknown names add no series"
    );
    let records = gateway.wait_usage(301).await;
    let unknown = records.iter().filter(|record| record["model"] == "(unknown)").count();
    assert_eq!(unknown, 300, "unknown names are recorded as (unknown)");
    // Ten thousand random 1 KiB names, sixteen at a time: refused, and /metrics is
    // byte for byte what it was (the refusals count in one existing series).
    use futures_util::StreamExt;
    let long = json!({"model": "n".repeat(1024), "messages": user("x")});
    assert_eq!(gateway.chat(&key, &long).await.status(), 400, "the first such refusal puts its series in place");
    let before = metrics().await;
    let lines = |text: &str| text.lines().filter(|line| !line.contains("_bucket") && !line.contains("_sum")).count();
    let statuses: Vec<u16> = futures_util::stream::iter(0..10_000)
        .map(|_| {
            let name: String = std::iter::repeat_with(fastrand::alphanumeric).take(1024).collect();
            let body = json!({"model": name, "messages": user("x")});
            let (gateway, key) = (&gateway, &key);
            async move { gateway.chat(key, &body).await.status().as_u16() }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|status| *status == 400));
    let after = metrics().await;
    assert_eq!(lines(&after), lines(&before), "no new series");
    // Only numbers changed (counters gained digits): nothing per name.
    assert!(after.len() <= before.len() + 512, "/metrics grew from {} to {} bytes", before.len(), after.len());
    for bad in ["m\u{0}", "a\nb", &"m".repeat(257)] {
        let body = refused(gateway.chat(&key, &json!({"model": bad, "messages": user("x")})).await).await;
        assert_eq!(body["error"]["param"], "model", "{bad:?}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn refusals_count_against_the_keys_request_rate() {
    crate::early_in_a_minute().await;
    let gateway = mock_gateway().await;
    let (key, _) = gateway.create_key(json!({"name": "noisy", "rpm_limit": 5})).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(gateway.chat(&key, &json!({"model": "unknown", "messages": user("x")})).await.status().as_u16());
    }
    assert_eq!(statuses, [404; 5]);
    let limited = gateway.chat(&key, &json!({"model": "echo", "messages": user("x")})).await;
    assert_eq!(limited.status(), 429, "five refusals used the key's five requests a minute");
    let unreadable = gateway.chat(&key, &json!({"model": "echo"})).await;
    assert_eq!(unreadable.status(), 429);
    gateway.stop().await;
}
