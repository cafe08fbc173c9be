use std::time::Duration;

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::{TestGateway, fake_provider, user};

async fn setup() -> (FakeUpstream, TestGateway, String) {
    let fake = FakeUpstream::start().await;
    let provider = fake_provider("fake", &fake.base_url()).replace("\n\n", "\nfirst_byte_timeout_ms = 300\n\n");
    let gateway = TestGateway::start(&format!(
        "{provider}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"fake-chat\" }}]\n\n\
         [[models]]\nname = \"other\"\nroutes = [{{ provider = \"fake\", model = \"fake-other\" }}]\n"
    ))
    .await;
    let (key, _) = gateway.create_key(json!({"name": "limited", "models": ["chat"]})).await;
    (fake, gateway, key)
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.expect("an error body is JSON"))
}

async fn raw(gateway: &TestGateway, key: &str, body: &str) -> (u16, Value) {
    let response = gateway
        .http
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    error_of(response).await
}

#[tokio::test]
async fn bad_bodies_get_openai_400s_with_the_param() {
    let (fake, gateway, key) = setup().await;
    let cases = [
        (r#"{"model":"chat","messages":"#, None),
        (r#"{"model":"chat"}"#, Some("messages")),
        (r#"{"model":"chat","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#, Some("temperature")),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#, Some("model")),
        (r#"{"model":"chat","messages":[{"role":"robot","content":"x"}]}"#, Some("messages[0].role")),
        (r#"[]"#, None),
        ("", None),
    ];
    for (body, param) in cases {
        let (status, error) = raw(&gateway, &key, body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(error["error"]["param"].as_str(), param, "{body}: {error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(fake.received().is_empty(), "bad requests must not reach the upstream");
    // Refused requests of an authenticated caller are recorded too.
    let records = gateway.wait_usage(cases.len()).await;
    assert!(records.iter().all(|r| r["status"] == 400 && r["error_code"] == "invalid_request_error"));
}

#[tokio::test]
async fn auth_model_and_size_errors() {
    let (_fake, gateway, key) = setup().await;
    let chat = json!({"model": "chat", "messages": user("hi")});

    let response = gateway.http.post(gateway.url("/v1/chat/completions")).json(&chat).send().await.unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("invalid_api_key")));
    assert_eq!(error["error"]["type"], "authentication_error");

    let (status, error) = error_of(gateway.chat("sk-llmux-not-a-real-key", &chat).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (401, Some("invalid_api_key")));

    let (status, error) = error_of(gateway.chat(&key, &json!({"model": "nope", "messages": user("hi")})).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("model_not_found")));

    let (status, error) = error_of(gateway.chat(&key, &json!({"model": "other", "messages": user("hi")})).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("model_not_allowed")));
    assert_eq!(error["error"]["type"], "permission_error");

    let huge = json!({"model": "chat", "messages": user(&"x".repeat(70_000))});
    let (status, error) = error_of(gateway.chat(&key, &huge).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (413, Some("request_too_large")));

    let response = gateway.http.get(gateway.url("/v1/nothing-here")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn upstream_failures_are_502_and_504_without_secrets() {
    let (fake, gateway, key) = setup().await;
    let chat = json!({"model": "chat", "messages": user("hi")});

    fake.push(Reply::status(401, r#"{"error":{"message":"Incorrect API key provided: sk-upstream-fake-secret"}}"#));
    let response = gateway.chat(&key, &chat).await;
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let (status, error) = error_of(response).await;
    assert_eq!((status, error["error"]["code"].as_str()), (502, Some("upstream_error")));
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains(&request_id), "{message}");
    assert!(message.contains("fake/fake-chat"), "{message}");
    assert!(!message.contains("sk-upstream"), "{message}");

    fake.push(Reply::Stall);
    let started = std::time::Instant::now();
    let (status, error) = error_of(gateway.chat(&key, &chat).await).await;
    assert_eq!((status, error["error"]["code"].as_str()), (504, Some("upstream_timeout")));
    assert!(started.elapsed() < Duration::from_secs(3));

    fake.push(Reply::status(
        400,
        r#"{"error":{"message":"max_tokens is too large","type":"invalid_request_error","code":null}}"#,
    ));
    let (status, error) = error_of(gateway.chat(&key, &chat).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["message"], "max_tokens is too large");

    fake.push(Reply::Json {
        status: 429,
        body: r#"{"error":{"message":"slow down"}}"#.into(),
        headers: vec![("retry-after".into(), "7".into())],
    });
    let response = gateway.chat(&key, &chat).await;
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.status(), 502);

    let records = gateway.wait_usage(4).await;
    let codes: Vec<_> =
        records.iter().map(|r| (r["status"].as_u64().unwrap(), r["error_code"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        codes,
        vec![
            (502, "upstream_error"),
            (400, "invalid_request_error"),
            (504, "upstream_timeout"),
            (502, "upstream_error")
        ]
    );
}
