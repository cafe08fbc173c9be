use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::{TestGateway, fake_provider, user};

async fn one_route() -> (FakeUpstream, TestGateway) {
    let fake = FakeUpstream::start().await;
    let config = format!(
        "{}[[models]]\nname = \"chat-default\"\nroutes = [{{ provider = \"fake\", model = \"fake-chat\", price = {{ input = 2, output = 10, cached_input = 0.5, currency = \"USD\" }} }}]\n\n\
         [[models]]\nname = \"embed\"\nroutes = [{{ provider = \"fake\", model = \"text-embed-up\" }}]\n",
        fake_provider("fake", &fake.base_url())
    );
    let gateway = TestGateway::start(&config).await;
    (fake, gateway)
}

#[tokio::test]
async fn non_streaming_chat_is_forwarded_with_only_the_model_rewritten() {
    let (fake, gateway) = one_route().await;
    fake.push(Reply::chat("Hi there", 12, 3));
    let key = gateway.key().await;
    let body = r#"{"messages":[{"role":"user","content":"hello"}],"model":"chat-default","temperature":0.3,"x_vendor":{"keep":[1,"two"]},"n":1}"#;
    let response = gateway
        .http
        .post(gateway.url("/v1/chat/completions"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "fake");
    assert_eq!(response.headers()["x-llmux-attempts"], "1");
    assert!(response.headers().contains_key("x-request-id"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hi there");

    let received = fake.last();
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(received.header("authorization"), Some("Bearer sk-upstream-fake-secret"));
    assert_eq!(
        std::str::from_utf8(&received.body).unwrap(),
        r#"{"messages":[{"role":"user","content":"hello"}],"model":"fake-chat","temperature":0.3,"x_vendor":{"keep":[1,"two"]},"n":1}"#
    );
}

#[tokio::test]
async fn usage_record_has_the_upstream_tokens_and_cost() {
    let (fake, gateway) = one_route().await;
    fake.push(Reply::Json {
        status: 200,
        body: json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "fake-chat",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                      "prompt_tokens_details": {"cached_tokens": 400}, "completion_tokens_details": {"reasoning_tokens": 50}}
        })
        .to_string(),
        headers: Vec::new(),
    });
    let (key, key_id) = gateway.create_key(json!({"name": "metered"})).await;
    let response = gateway.chat(&key, &json!({"model": "chat-default", "messages": user("hi")})).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let records = gateway.wait_usage(1).await;
    let record = &records[0];
    assert_eq!(record["request_id"], request_id.as_str());
    assert_eq!(record["key_id"], key_id.as_str());
    assert_eq!(record["model"], "chat-default");
    assert_eq!(record["provider"], "fake");
    assert_eq!(record["upstream_model"], "fake-chat");
    assert_eq!(record["input_tokens"], 1000);
    assert_eq!(record["output_tokens"], 200);
    assert_eq!(record["cached_tokens"], 400);
    assert_eq!(record["reasoning_tokens"], 50);
    // 600 * 2/1M + 400 * 0.5/1M + 200 * 10/1M = 0.0012 + 0.0002 + 0.002
    assert_eq!(record["cost"].to_string(), "0.0034");
    assert_eq!(record["currency"], "USD");
    assert_eq!(record["status"], 200);
    assert_eq!(record["attempts"], 1);
    assert!(record["latency_ms"].is_u64());
}

#[tokio::test]
async fn embeddings_are_forwarded() {
    let (fake, gateway) = one_route().await;
    fake.push(Reply::status(
        200,
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":"text-embed-up","usage":{"prompt_tokens":4,"total_tokens":4}}"#,
    ));
    let key = gateway.key().await;
    let response = gateway.post("/v1/embeddings", &key, &json!({"model": "embed", "input": "four token input"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["embedding"], json!([0.5, -0.25]));
    let received = fake.last();
    assert_eq!(received.path, "/v1/embeddings");
    assert_eq!(received.json(), json!({"model": "text-embed-up", "input": "four token input"}));
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["input_tokens"], 4);
}

#[tokio::test]
async fn failover_to_the_next_route_when_the_first_fails() {
    let primary = FakeUpstream::start().await;
    let secondary = FakeUpstream::start().await;
    primary.push(Reply::status(500, r#"{"error":{"message":"boom"}}"#));
    secondary.push(Reply::chat("from secondary", 1, 1));
    let config = format!(
        "{}{}[[models]]\nname = \"m\"\nroutes = [{{ provider = \"a\", model = \"up-a\" }}, {{ provider = \"b\", model = \"up-b\" }}]\n",
        fake_provider("a", &primary.base_url()),
        fake_provider("b", &secondary.base_url())
    );
    let gateway = TestGateway::start(&config).await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "m", "messages": user("hi")})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "b");
    assert_eq!(response.headers()["x-llmux-attempts"], "2");
    assert_eq!(secondary.last().json()["model"], "up-b");
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["attempts"], 2);
    assert_eq!(records[0]["provider"], "b");
}

#[tokio::test]
async fn mock_provider_answers_offline() {
    let gateway = TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"echo\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "echo", "messages": user("repeat me")})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "repeat me");
    assert_eq!(body["usage"]["completion_tokens"], 2);
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["output_tokens"], 2);
    assert_eq!(records[0]["provider"], "mock");
}
