//! The Anthropic surface (`/v1/messages`) translated to an OpenAI-dialect upstream.

use std::time::Duration;

use llmux_testkit::{FakeUpstream, Reply, chunk, usage_chunk};
use serde_json::{Value, json};

use crate::{TestGateway, sse_events as events};

async fn gateway_for(fake: &FakeUpstream) -> TestGateway {
    crate::one_route(fake, "claude-ish", "").await
}

#[tokio::test]
async fn a_message_is_translated_to_chat_completions_and_back() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat("Bonjour", 9, 4));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let response = gateway
        .messages(
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
async fn claude_codes_mid_conversation_system_message_reaches_an_openai_upstream_at_its_place() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat("Hi", 9, 1));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    // The shape of current Claude Code's first request (trimmed): `?beta=true`, beta
    // headers, a `system` message after the first user turn, adaptive thinking, effort.
    let body = json!({
        "model": "claude-ish", "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are an agent."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment", "cache_control": {"type": "ephemeral"}}]},
        ],
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    });
    let response = gateway
        .http
        .post(gateway.url("/v1/messages?beta=true"))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219,context-management-2025-06-27,effort-2025-11-24")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let dropped = response.headers()["x-llmux-dropped-params"].to_str().unwrap().to_owned();
    for name in ["thinking", "output_config", "context_management"] {
        assert!(dropped.contains(name), "{dropped}");
    }
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"], json!([{"type": "text", "text": "Hi"}]));
    let sent: Value = fake.last().json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You are an agent."},
            {"role": "user", "content": "Say hello"},
            {"role": "system", "content": "# Environment"},
        ])
    );
}

#[tokio::test]
async fn claude_codes_thinking_and_effort_become_reasoning_effort_on_a_reasoning_route() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat("Hi", 9, 1));
    let provider = crate::fake_provider("fake", &fake.base_url());
    let gateway = TestGateway::start(&format!(
        "{provider}[[models]]\nname = \"thinker\"\nroutes = [{{ provider = \"fake\", model = \"o4-mini\", reasoning = true }}]\n"
    ))
    .await;
    let key = gateway.key().await;
    let body = json!({
        "model": "thinker", "max_tokens": 32000,
        "messages": [{"role": "user", "content": "Say hello"}],
        "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"},
        "context_management": {"edits": []},
    });
    let response = gateway.messages(&key, &body).await;
    assert_eq!(response.status(), 200);
    // The effort is held; what has no place in a chat body still is named.
    assert_eq!(response.headers()["x-llmux-dropped-params"], "context_management");
    assert_eq!(fake.last().json()["reasoning_effort"], "high");
}

#[tokio::test]
async fn a_streamed_message_is_the_exact_anthropic_event_sequence() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat_stream(&["Bon", "jour"], 9, 4));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let response = gateway.messages(
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
            "ping",
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
    assert_eq!(events[2].1, json!({"type": "ping"}));
    assert_eq!(events[3].1["delta"], json!({"type": "text_delta", "text": "Bon"}));
    assert_eq!(events[4].1["delta"], json!({"type": "text_delta", "text": "jour"}));
    assert_eq!(events[6].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(events[6].1["usage"]["output_tokens"], 4);

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
    let events = events(&gateway.messages(&key, &body).await.text().await.unwrap());
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
async fn a_slow_upstream_gets_ping_keep_alives_without_tripping_the_idle_timeout() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Sse {
        events: vec![
            chunk(json!({"role": "assistant", "content": "slow"}), Value::Null),
            chunk(json!({"content": " answer"}), Value::Null),
            chunk(json!({}), json!("stop")),
        ],
        usage: Some(usage_chunk(5, 2)),
        delay: Duration::from_millis(450),
        cut_after: None,
    });
    // Idle timeout 800 ms: keep-alives every 200 ms, and 450 ms gaps are not idle.
    let gateway = crate::one_route(&fake, "claude-ish", "idle_timeout_ms = 800").await;
    let key = gateway.key().await;
    let body = json!({"model": "claude-ish", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = gateway.messages(&key, &body).await;
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let pings = events.iter().filter(|(name, _)| name == "ping").count();
    assert!(pings >= 3, "the first ping and keep-alives in the gaps: {events:?}");
    assert!(events.iter().filter(|(name, _)| name == "ping").all(|(_, data)| *data == json!({"type": "ping"})));
    assert_eq!(events.first().map(|(name, _)| name.as_str()), Some("message_start"));
    assert_eq!(events.last().map(|(name, _)| name.as_str()), Some("message_stop"));
    let text: String = events.iter().filter_map(|(_, data)| data["delta"]["text"].as_str()).collect();
    assert_eq!(text, "slow answer");
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["status"], 200);
    assert!(records[0]["error_code"].is_null());
}

#[tokio::test]
async fn an_upstream_silent_past_the_idle_timeout_mid_stream_is_an_anthropic_timeout_error_event() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Sse {
        events: vec![
            chunk(json!({"role": "assistant", "content": "partial"}), Value::Null),
            chunk(json!({"content": " never"}), Value::Null),
        ],
        usage: None,
        delay: Duration::from_millis(1500),
        cut_after: None,
    });
    let gateway = crate::one_route(&fake, "claude-ish", "idle_timeout_ms = 300\nfirst_byte_timeout_ms = 5000").await;
    let key = gateway.key().await;
    let body = json!({"model": "claude-ish", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = gateway.messages(&key, &body).await;
    assert_eq!(response.status(), 200);
    let events = events(&response.text().await.unwrap());
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "error", "{events:?}");
    assert_eq!(last["error"]["type"], "timeout_error", "the error table's Anthropic type for upstream_timeout");
    assert!(events.iter().all(|(name, _)| name != "message_stop"));
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["error_code"], "upstream_timeout");
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
    let response = gateway.messages(&key, &body).await;
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
        let response = gateway.messages(presented, &body).await;
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

// ----------------------------------------------------------------------------------
// An Anthropic upstream (provider kind `anthropic`)
// ----------------------------------------------------------------------------------

async fn anthropic_gateway(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&format!(
        "[[providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"http://{}\"\napi_key = \"sk-ant-upstream-secret\"\n\n\
         [[models]]\nname = \"sonnet\"\nroutes = [{{ provider = \"claude\", model = \"claude-sonnet-4-6\" }}]\n",
        fake.addr
    ))
    .await
}

fn anthropic_message() -> Reply {
    Reply::status(
        200,
        &json!({
            "id": "msg_01XYZ", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": "Hello from Claude"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5, "output_tokens": 7}
        })
        .to_string(),
    )
}

/// An Anthropic stream: text, then a tool call, as Anthropic documents the events.
fn anthropic_stream() -> Reply {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_01S", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        ),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 21}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    Reply::RawSse(events.iter().map(|(name, data)| format!("event: {name}\ndata: {data}\n\n")).collect())
}

#[tokio::test]
async fn an_openai_client_reaches_an_anthropic_upstream() {
    let fake = FakeUpstream::start().await;
    fake.push(anthropic_message());
    let gateway = anthropic_gateway(&fake).await;
    let key = gateway.key().await;
    let response = gateway
        .chat(
            &key,
            &json!({"model": "sonnet", "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}], "temperature": 1.5, "seed": 7}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-dropped-params"], "seed", "what Anthropic cannot take is reported");
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"], "Hello from Claude");
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    // Anthropic's input excludes cache reads and writes; OpenAI's prompt_tokens includes them.
    assert_eq!(completion["usage"]["prompt_tokens"], 45);
    assert_eq!(completion["usage"]["completion_tokens"], 7);
    assert_eq!(completion["usage"]["prompt_tokens_details"]["cached_tokens"], 30);

    let sent = fake.last();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-upstream-secret"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let body = sent.json();
    assert_eq!(body["model"], "claude-sonnet-4-6");
    assert_eq!(body["system"], "Be kind.");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1), "the system message moved to `system`");
    assert_eq!(body["messages"][0]["role"], "user");
    let content = &body["messages"][0]["content"];
    let text = content.as_str().or_else(|| content[0]["text"].as_str());
    assert_eq!(text, Some("hi"), "{content}");
    assert!(body["max_tokens"].as_u64().is_some_and(|max| max > 0), "Anthropic needs max_tokens: {body}");
    assert_eq!(body["temperature"], 1.0, "clamped to Anthropic's range");
    assert!(body.get("seed").is_none());

    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["provider"], "claude");
    assert_eq!(records[0]["input_tokens"], 45);
    assert_eq!(records[0]["cached_tokens"], 30);
    assert_eq!(records[0]["output_tokens"], 7);
    assert_eq!(records[0]["currency"], "USD");
    // Built-in claude-sonnet-4-6 price: 10 × 3 + 30 cache reads × 0.3 + 5 cache writes
    // × 3.75 (1.25 × input) + 7 × 15 = 162.75 per million tokens.
    assert_eq!(records[0]["cost"].to_string(), "0.00016275");
}

#[tokio::test]
async fn an_anthropic_stream_reaches_an_openai_client_as_chunks() {
    let fake = FakeUpstream::start().await;
    fake.push(anthropic_stream());
    let gateway = anthropic_gateway(&fake).await;
    let key = gateway.key().await;
    let response = gateway
        .chat(
            &key,
            &json!({"model": "sonnet", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "weather?"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let data = crate::sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|chunk| serde_json::from_str(chunk).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "Let me check.");
    let calls: Vec<&Value> =
        chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"].get(0)).collect();
    assert!(calls.iter().all(|call| call["index"] == 0), "the first tool call is index 0, not Anthropic's block 1");
    assert_eq!(calls[0]["id"], "toolu_01");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: String = calls.iter().filter_map(|call| call["function"]["arguments"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}));
    assert!(chunks.iter().any(|chunk| chunk["choices"][0]["finish_reason"] == "tool_calls"));
    let usage = chunks.iter().rev().find(|chunk| chunk["usage"].is_object()).unwrap();
    assert_eq!(
        (usage["usage"]["prompt_tokens"].clone(), usage["usage"]["completion_tokens"].clone()),
        (json!(12), json!(21))
    );

    assert_eq!(fake.last().json()["stream"], true);
    let records = gateway.wait_usage(1).await;
    assert_eq!((records[0]["input_tokens"].clone(), records[0]["output_tokens"].clone()), (json!(12), json!(21)));
}

#[tokio::test]
async fn an_anthropic_client_on_an_anthropic_upstream_is_forwarded_byte_for_byte() {
    let fake = FakeUpstream::start().await;
    fake.push(anthropic_message());
    fake.push(anthropic_stream());
    let gateway = anthropic_gateway(&fake).await;
    let key = gateway.key().await;
    // Fields llmux does not model (thinking, cache_control, output_config) must arrive untouched.
    let body = r#"{"model":"sonnet","max_tokens":99,"thinking":{"type":"enabled","budget_tokens":2048},"output_config":{"effort":"high"},"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}]}"#;
    let send = |body: String| {
        gateway
            .http
            .post(gateway.url("/v1/messages"))
            .header("x-api-key", &key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = send(body.to_owned()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("x-llmux-dropped-params"));
    let answer = response.text().await.unwrap();
    let Reply::Json { body: upstream_answer, .. } = anthropic_message() else { unreachable!() };
    assert_eq!(answer, upstream_answer, "the upstream's answer is forwarded as is");
    assert_eq!(
        std::str::from_utf8(&fake.last().body).unwrap(),
        body.replace(r#""model":"sonnet""#, r#""model":"claude-sonnet-4-6""#)
    );

    let streamed = body.replace(r#""max_tokens":99"#, r#""max_tokens":99,"stream":true"#);
    let text = send(streamed).await.unwrap().text().await.unwrap();
    let Reply::RawSse(upstream_stream) = anthropic_stream() else { unreachable!() };
    assert_eq!(text, upstream_stream, "every event, pings included, is forwarded as is");

    let records = gateway.wait_usage(2).await;
    let mut tokens: Vec<(u64, u64, u64)> = records
        .iter()
        .map(|record| {
            let count = |name: &str| record[name].as_u64().unwrap();
            (count("input_tokens"), count("cached_tokens"), count("output_tokens"))
        })
        .collect();
    tokens.sort_unstable();
    assert_eq!(tokens, [(12, 0, 21), (45, 30, 7)], "both answers metered from the forwarded events");
}

#[tokio::test]
async fn anthropic_upstream_errors_are_classified() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::status(529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#));
    fake.push(Reply::status(
        400,
        r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#,
    ));
    let gateway = anthropic_gateway(&fake).await;
    let key = gateway.key().await;
    let overloaded =
        gateway.chat(&key, &json!({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(overloaded.status(), 502);
    let invalid =
        gateway.chat(&key, &json!({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(invalid.status(), 400);
    let error: Value = invalid.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("roles must alternate"), "{error}");
    let text = error.to_string();
    assert!(!text.contains("sk-ant-upstream-secret"));
}

#[tokio::test]
async fn a_stalled_upstream_is_an_anthropic_timeout_error() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Stall);
    let gateway = crate::one_route(&fake, "claude-ish", "first_byte_timeout_ms = 200").await;
    let key = gateway.key().await;
    let body = json!({"model": "claude-ish", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
    let response = gateway.messages(&key, &body).await;
    assert_eq!(response.status(), 504);
    let error: Value = response.json().await.unwrap();
    assert_eq!((error["type"].as_str(), error["error"]["type"].as_str()), (Some("error"), Some("timeout_error")));
}
