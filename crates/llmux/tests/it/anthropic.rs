//! The Anthropic surface (`/v1/messages`) translated to an OpenAI-dialect upstream.

use std::time::Duration;

use llmux_testkit::{FakeUpstream, Reply, chunk, usage_chunk};
use serde_json::{Value, json};

use crate::{TestGateway, fake_provider};

async fn gateway_for(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&format!(
        "{}[[models]]\nname = \"claude-ish\"\nroutes = [{{ provider = \"fake\", model = \"fake-chat\", price = {{ input = 1, output = 2 }} }}]\n",
        fake_provider("fake", &fake.base_url())
    ))
    .await
}

async fn messages(gateway: &TestGateway, key: &str, body: &Value) -> reqwest::Response {
    gateway
        .http
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `(event, data)` pairs of an Anthropic SSE body.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let name = event.lines().find_map(|line| line.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = event.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_message_is_translated_to_chat_completions_and_back() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat("Bonjour", 9, 4));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let response = messages(
        &gateway,
        &key,
        &json!({
            "model": "claude-ish", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "fake");
    assert_eq!(response.headers()["request-id"], response.headers()["x-request-id"]);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], json!([{"type": "text", "text": "Bonjour"}]));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["input_tokens"], 9);
    assert_eq!(message["usage"]["output_tokens"], 4);

    let sent: Value = fake.last().json();
    assert_eq!(sent["model"], "fake-chat");
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}])
    );

    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["model"], "claude-ish");
    assert_eq!(records[0]["input_tokens"], 9);
    assert_eq!(records[0]["output_tokens"], 4);
    assert_eq!(records[0]["status"], 200);
}

#[tokio::test]
async fn a_streamed_message_is_the_exact_anthropic_event_sequence() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat_stream(&["Bon", "jour"], 9, 4));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let response = messages(
        &gateway,
        &key,
        &json!({"model": "claude-ish", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for (name, data) in &events {
        assert_eq!(data["type"], name.as_str(), "the data repeats the event type");
    }
    assert_eq!(events[1].1["content_block"], json!({"type": "text", "text": ""}));
    assert_eq!(events[2].1["delta"], json!({"type": "text_delta", "text": "Bon"}));
    assert_eq!(events[3].1["delta"], json!({"type": "text_delta", "text": "jour"}));
    assert_eq!(events[5].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[5].1["usage"]["output_tokens"], 4);

    let sent: Value = fake.last().json();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
    let records = gateway.wait_usage(1).await;
    assert_eq!((records[0]["input_tokens"].clone(), records[0]["output_tokens"].clone()), (json!(9), json!(4)));
}

#[tokio::test]
async fn streamed_tool_calls_become_tool_use_blocks() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Sse {
        events: vec![
            chunk(
                json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null),
            chunk(json!({}), json!("tool_calls")),
        ],
        usage: Some(usage_chunk(20, 8)),
        delay: Duration::ZERO,
        cut_after: None,
    });
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let body = json!({
        "model": "claude-ish", "max_tokens": 64, "stream": true,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    });
    let events = events(&messages(&gateway, &key, &body).await.text().await.unwrap());
    let start = events.iter().find(|(name, _)| name == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["id"], "call_1");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let json: String = events
        .iter()
        .filter(|(_, data)| data["delta"]["type"] == "input_json_delta")
        .map(|(_, data)| data["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris"}));
    let delta = events.iter().find(|(name, _)| name == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta.1["usage"]["output_tokens"], 8);

    let sent: Value = fake.last().json();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn an_upstream_drop_mid_stream_is_an_anthropic_error_event() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Sse {
        events: vec![
            chunk(json!({"role": "assistant", "content": "partial"}), Value::Null),
            chunk(json!({"content": " answer"}), Value::Null),
        ],
        usage: None,
        delay: Duration::from_millis(10),
        cut_after: Some(2),
    });
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let body = json!({"model": "claude-ish", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = messages(&gateway, &key, &body).await;
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "error");
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(events.iter().all(|(name, _)| name != "message_stop"), "no clean end after an error: {events:?}");
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["error_code"], "upstream_error");
}

#[tokio::test]
async fn every_failure_is_anthropic_shaped() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::status(500, r#"{"error":{"message":"boom","type":"server_error"}}"#));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let ok_body = json!({"model": "claude-ish", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let cases = [
        ("sk-llmux-wrong", ok_body.clone(), 401, "authentication_error"),
        (
            key.as_str(),
            json!({"model": "claude-ish", "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "invalid_request_error",
        ),
        (
            key.as_str(),
            json!({"model": "nope", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "not_found_error",
        ),
        (key.as_str(), ok_body.clone(), 502, "api_error"),
    ];
    for (presented, body, status, kind) in cases {
        let response = messages(&gateway, presented, &body).await;
        assert_eq!(response.status(), status, "{body}");
        assert!(response.headers().contains_key("request-id"));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["error"]["type"], kind, "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
    }
    let broken = gateway
        .http
        .post(gateway.url("/v1/messages"))
        .header("x-api-key", &key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(broken.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn count_tokens_needs_a_key_and_grows_with_the_input() {
    let fake = FakeUpstream::start().await;
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let count = |text: String| {
        let gateway = &gateway;
        let key = key.clone();
        async move {
            let response = gateway
                .http
                .post(gateway.url("/v1/messages/count_tokens"))
                .header("x-api-key", key)
                .json(&json!({"model": "claude-ish", "messages": [{"role": "user", "content": text}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap()
        }
    };
    let small = count("hi".to_owned()).await;
    let large = count("hello ".repeat(100)).await;
    assert!(0 < small && small < large, "{small} {large}");
    let unauthorized = gateway
        .http
        .post(gateway.url("/v1/messages/count_tokens"))
        .json(&json!({"model": "claude-ish", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert!(fake.received().is_empty(), "count_tokens never calls the upstream");
}
