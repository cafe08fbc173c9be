use std::time::Duration;

use llmux_testkit::{FakeUpstream, Reply, chunk, usage_chunk};
use serde_json::{Value, json};

use crate::{TestGateway, sse_data, user};

async fn gateway_for(fake: &FakeUpstream, extra_provider_lines: &str) -> TestGateway {
    crate::one_route(fake, "chat", extra_provider_lines).await
}

#[tokio::test]
async fn stream_is_relayed_and_the_usage_chunk_llmux_asked_for_is_stripped() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat_stream(&["Hel", "lo"], 7, 2));
    let gateway = gateway_for(&fake, "").await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "chat", "stream": true, "messages": user("hi")})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(!body.contains(r#""choices":[]"#), "usage chunk leaked: {body}");
    let text: String = data[..data.len() - 1]
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Hello");
    // The upstream was asked for usage, and the ledger has it.
    assert_eq!(fake.last().json()["stream_options"], json!({"include_usage": true}));
    let records = gateway.wait_usage(1).await;
    assert_eq!((records[0]["input_tokens"].as_u64(), records[0]["output_tokens"].as_u64()), (Some(7), Some(2)));
    assert_eq!(records[0]["status"], 200);
    assert!(records[0]["error_code"].is_null());
    assert!(records[0]["ttft_ms"].is_u64());
}

#[tokio::test]
async fn usage_chunk_is_kept_when_the_client_asked_for_it() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat_stream(&["a"], 3, 1));
    let gateway = gateway_for(&fake, "").await;
    let key = gateway.key().await;
    let response = gateway
        .chat(&key, &json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true}, "messages": user("hi")}))
        .await;
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data[data.len() - 2], usage_chunk(3, 1));
}

#[tokio::test]
async fn streamed_tool_call_deltas_arrive_byte_for_byte() {
    let fake = FakeUpstream::start().await;
    let events = vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null),
        chunk(json!({}), json!("tool_calls")),
    ];
    fake.push(Reply::Sse {
        events: events.clone(),
        usage: Some(usage_chunk(5, 9)),
        delay: Duration::from_millis(5),
        cut_after: None,
    });
    let gateway = gateway_for(&fake, "").await;
    let key = gateway.key().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let response = gateway
        .chat(&key, &json!({"model": "chat", "stream": true, "tools": tools, "messages": user("weather?")}))
        .await;
    let data = sse_data(&response.text().await.unwrap());
    let mut expected = events;
    expected.push("[DONE]".to_owned());
    assert_eq!(data, expected);
    assert_eq!(fake.last().json()["tools"], tools);
}

#[tokio::test]
async fn upstream_dropping_mid_stream_becomes_an_error_event() {
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
    let gateway = gateway_for(&fake, "").await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "chat", "stream": true, "messages": user("hi")})).await;
    assert_eq!(response.status(), 200);
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.len(), 3, "{data:?}");
    let error: Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["error_code"], "upstream_error");
    assert_eq!(records[0]["status"], 200);
}

#[tokio::test]
async fn stalled_stream_hits_the_idle_timeout() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Sse {
        events: vec![
            chunk(json!({"role": "assistant", "content": "slow"}), Value::Null),
            chunk(json!({"content": "er"}), Value::Null),
        ],
        usage: None,
        delay: Duration::from_secs(5),
        cut_after: None,
    });
    let gateway = gateway_for(&fake, "idle_timeout_ms = 200").await;
    let key = gateway.key().await;
    let started = std::time::Instant::now();
    let response = gateway.chat(&key, &json!({"model": "chat", "stream": true, "messages": user("hi")})).await;
    let data = sse_data(&response.text().await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(3));
    let error: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn mock_streams_openai_chunks_with_usage_on_request() {
    let gateway = TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\nmock = { chunk_chars = 3 }\n\n[[models]]\nname = \"echo\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    let response = gateway
        .chat(&key, &json!({"model": "echo", "stream": true, "stream_options": {"include_usage": true}, "messages": user("abcdefg")}))
        .await;
    let data = sse_data(&response.text().await.unwrap());
    let chunks: Vec<Value> = data.iter().filter_map(|d| serde_json::from_str(d).ok()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "abcdefg");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 1);
    assert_eq!(data.last().unwrap(), "[DONE]");
}
