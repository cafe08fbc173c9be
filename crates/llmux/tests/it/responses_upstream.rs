//! Providers that serve OpenAI's Responses API: a Responses client's stateless request
//! forwarded byte for byte (OpenAI, Azure), a stored one through the canonical model to
//! `/responses`, and chat and Anthropic clients on a model that exists only there. The
//! fake upstream refuses Responses API bodies OpenAI would refuse.

use llmux_testkit::responses::usage;
use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::{TestGateway, sse_data, sse_events as events};

/// A provider entry of kind `openai` at `fake`.
fn openai(name: &str, fake: &FakeUpstream) -> String {
    format!(
        "[[providers]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"sk-upstream-{name}-secret\"\n\n",
        fake.base_url()
    )
}

/// Model `codex` on `fake` (upstream model `gpt-5-codex`), and model `pro` on the same
/// provider, which exists only on the Responses API (`o3-pro`).
async fn gateway_for(fake: &FakeUpstream) -> TestGateway {
    TestGateway::start(&format!(
        "{}[[models]]\nname = \"codex\"\nroutes = [{{ provider = \"oa\", model = \"gpt-5-codex\", price = {{ input = 1, output = 2 }} }}]\n\n\
         [[models]]\nname = \"pro\"\nroutes = [{{ provider = \"oa\", model = \"o3-pro\", api = \"responses\" }}]\n",
        openai("oa", fake)
    ))
    .await
}

async fn post_raw(gateway: &TestGateway, path: &str, key: &str, body: &str) -> reqwest::Response {
    let request = gateway.http.post(gateway.url(path)).bearer_auth(key).header("content-type", "application/json");
    request.body(body.to_owned()).send().await.expect("request")
}

/// A Codex-like request llmux keeps no state for: fields llmux does not model must
/// reach the provider untouched, spacing included.
const STATELESS: &str = r#"{ "model" : "codex", "instructions": "You are Codex.", "store": false,
  "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}],
  "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-1",
  "reasoning": {"effort": "high", "summary": "auto"}, "x_future_field": {"a": 1}, "stream": false }"#;

#[tokio::test]
async fn a_stateless_responses_request_is_forwarded_and_answered_byte_for_byte() {
    let fake = FakeUpstream::start().await;
    let answer = Reply::responses_text("Two files.", usage(120, 30, 64, 10));
    let stream = Reply::responses_stream(&["Two", " files."], usage(120, 30, 64, 10));
    fake.push(answer.clone());
    fake.push(stream.clone());
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;

    let response = post_raw(&gateway, "/v1/responses", &key, STATELESS).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "oa");
    assert!(!response.headers().contains_key("x-llmux-dropped-params"));
    let Reply::Json { body: upstream_answer, .. } = answer else { unreachable!() };
    assert_eq!(response.text().await.unwrap(), upstream_answer, "the provider's answer, as it is");
    let sent = fake.last();
    assert_eq!((sent.path.as_str(), sent.query.as_deref()), ("/v1/responses", None));
    assert_eq!(sent.header("authorization"), Some("Bearer sk-upstream-oa-secret"));
    assert_eq!(
        std::str::from_utf8(&sent.body).unwrap(),
        STATELESS.replace(r#""model" : "codex""#, r#""model" : "gpt-5-codex""#)
    );

    let streamed = STATELESS.replace(r#""stream": false"#, r#""stream": true"#);
    let response = post_raw(&gateway, "/v1/responses", &key, &streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let Reply::RawSse(upstream_stream) = stream else { unreachable!() };
    assert_eq!(response.text().await.unwrap(), upstream_stream, "every event, as it is");
    assert_eq!(fake.last().json()["stream"], true);

    let records = gateway.wait_usage(2).await;
    for record in &records {
        let tokens: Vec<u64> = ["input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"]
            .iter()
            .map(|name| record[name].as_u64().unwrap())
            .collect();
        assert_eq!(tokens, [120, 30, 64, 10], "metered from the answer: {record}");
        assert_eq!((record["status"].as_u64(), record["upstream_model"].as_str()), (Some(200), Some("gpt-5-codex")));
        // 56 uncached and 64 cached input tokens at 1, 30 output tokens at 2 per million.
        assert_eq!(record["cost"].to_string(), "0.00018", "{record}");
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_at_response_completed_is_billed_in_full() {
    // Codex reads until `response.completed` and closes at once, while the provider's
    // connection may still be open: the request is settled at that event.
    let fake = FakeUpstream::start().await;
    let head = r#"{"id":"resp_up","object":"response","created_at":1,"model":"gpt-5-codex""#;
    let events = vec![
        format!(r#"{{"type":"response.created","sequence_number":0,"response":{head},"status":"in_progress","output":[]}}}}"#),
        r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}"#.to_owned(),
        format!(
            r#"{{"type":"response.completed","sequence_number":2,"response":{head},"status":"completed","output":[],"usage":{{"input_tokens":12,"output_tokens":3,"total_tokens":15}}}}}}"#
        ),
        // Something the provider would still send (or a connection it keeps open).
        r#"{"type":"response.output_text.annotation.added","sequence_number":3}"#.to_owned(),
    ];
    fake.push(Reply::Sse { events, usage: None, delay: std::time::Duration::from_millis(300), cut_after: None });
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let streamed = STATELESS.replace(r#""stream": false"#, r#""stream": true"#);
    let mut response = post_raw(&gateway, "/v1/responses", &key, &streamed).await;
    let mut seen = String::new();
    while !seen.contains("response.completed") {
        let chunk = response.chunk().await.unwrap().expect("the stream reaches response.completed");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let records = gateway.wait_usage(1).await;
    let record = &records[0];
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!((record["input_tokens"].as_u64(), record["output_tokens"].as_u64()), (Some(12), Some(3)), "{record}");
}

#[tokio::test]
async fn a_forwarded_stream_cut_short_ends_with_an_error_event_that_continues_the_sequence() {
    let fake = FakeUpstream::start().await;
    let Reply::RawSse(whole) = Reply::responses_stream(&["Two", " files."], usage(1, 1, 0, 0)) else { unreachable!() };
    let cut: String = whole.split_inclusive("\n\n").take(4).collect();
    fake.push(Reply::RawSse(cut.clone()));
    fake.push(Reply::status(
        400,
        r#"{"error":{"message":"Invalid 'input[0]'.","type":"invalid_request_error","param":"input","code":null}}"#,
    ));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let streamed = STATELESS.replace(r#""stream": false"#, r#""stream": true"#);
    let text = post_raw(&gateway, "/v1/responses", &key, &streamed).await.text().await.unwrap();
    let (forwarded, ours) = text.split_at(cut.len());
    assert_eq!(forwarded, cut);
    let ours = events(ours);
    assert_eq!(ours.len(), 1, "{text}");
    assert_eq!(ours[0].0, "error");
    assert_eq!(ours[0].1["sequence_number"], 4);
    assert_eq!(ours[0].1["code"], "upstream_error");

    // The provider's own refusal is an OpenAI error, its message passed on; no failover.
    let response = post_raw(&gateway, "/v1/responses", &key, STATELESS).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"]["message"].as_str().unwrap().contains("Invalid 'input[0]'."), "{error}");
    let records = gateway.wait_usage(2).await;
    let codes: Vec<&str> = records.iter().map(|record| record["error_code"].as_str().unwrap_or("")).collect();
    assert!(codes.contains(&"upstream_error") && codes.contains(&"invalid_request_error"), "{records:#?}");
}

#[tokio::test]
async fn a_request_llmux_keeps_state_for_goes_through_the_canonical_model_to_the_responses_api() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::responses_text("Two files.", usage(50, 5, 0, 0)));
    fake.push(Reply::responses_stream(&["Two", " files."], usage(50, 5, 0, 0)));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    // `store` left out means true: llmux, not OpenAI, would keep the response.
    let stored = STATELESS.replace(r#""store": false,"#, "");

    let response = post_raw(&gateway, "/v1/responses", &key, &stored).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-dropped-params"], "extensions", "x_future_field has no canonical name");
    let answer: Value = response.json().await.unwrap();
    assert!(answer["id"].as_str().unwrap().starts_with("resp_") && answer["id"] != "resp_fake0001", "{answer}");
    assert_eq!(answer["output"][0]["content"][0]["text"], "Two files.");
    assert_eq!(answer["usage"]["input_tokens"], 50);
    let sent = fake.last().json();
    assert_eq!(fake.last().path, "/v1/responses");
    assert_eq!(sent["model"], "gpt-5-codex");
    assert_eq!(sent["store"], false, "the provider keeps nothing");
    assert_eq!(sent["instructions"], "You are Codex.");
    assert_eq!(sent["input"], json!([{"type": "message", "role": "user", "content": "List the files"}]));
    assert_eq!(sent["reasoning"], json!({"effort": "high"}));
    assert_eq!(sent["prompt_cache_key"], "session-1");
    assert!(sent.get("x_future_field").is_none(), "{sent}");
    // With an effort, OpenAI's encrypted reasoning is asked for, to send it back next turn.
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));

    let streamed = stored.replace(r#""stream": false"#, r#""stream": true"#);
    let text = post_raw(&gateway, "/v1/responses", &key, &streamed).await.text().await.unwrap();
    let events = events(&text);
    assert_eq!(events[0].0, "response.created");
    assert_ne!(events[0].1["response"]["id"], "resp_fake0001", "llmux's own response");
    let deltas: String = events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Two files.");
    assert_eq!(events.last().unwrap().0, "response.completed");
    assert_eq!(fake.last().json()["stream"], true);
    let records = gateway.wait_usage(2).await;
    assert!(records.iter().all(|record| record["input_tokens"] == 50 && record["output_tokens"] == 5));
}

const WEATHER: &str = r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#;

#[tokio::test]
async fn a_chat_client_reaches_a_responses_only_model_with_a_tool_round_trip() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::responses_call("call_W", "get_weather", r#"{"city":"Paris"}"#, usage(40, 12, 0, 8)));
    fake.push(Reply::responses_text("Sunny.", usage(60, 3, 32, 0)));
    fake.push(Reply::responses_stream(&["Sun", "ny."], usage(60, 3, 0, 0)));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": serde_json::from_str::<Value>(WEATHER).unwrap()}}]);
    let mut messages =
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]);

    let response =
        gateway.chat(&key, &json!({"model": "pro", "messages": messages, "tools": tools, "max_tokens": 500})).await;
    assert_eq!(response.status(), 200);
    let completion: Value = response.json().await.unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!((call["id"].as_str(), call["function"]["name"].as_str()), (Some("call_W"), Some("get_weather")));
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(completion["usage"]["completion_tokens_details"]["reasoning_tokens"], 8);
    let sent = fake.last();
    assert_eq!(sent.path, "/v1/responses");
    let sent = sent.json();
    assert_eq!(sent["model"], "o3-pro");
    assert_eq!(sent["instructions"], "Be brief.");
    assert_eq!(sent["max_output_tokens"], 500);
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["strict"], false);

    // The tool's result goes back as a function_call_output after its call.
    messages
        .as_array_mut()
        .unwrap()
        .extend([choice["message"].clone(), json!({"role": "tool", "tool_call_id": "call_W", "content": "18C"})]);
    let completion: Value =
        gateway.chat(&key, &json!({"model": "pro", "messages": messages, "tools": tools})).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["message"]["content"], "Sunny.");
    assert_eq!(completion["usage"]["prompt_tokens_details"]["cached_tokens"], 32);
    let input = fake.last().json()["input"].clone();
    assert_eq!(
        input,
        json!([
            {"type": "message", "role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_W", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_W", "output": "18C"}
        ])
    );

    let body = json!({"model": "pro", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "Weather?"}]});
    let text = gateway.chat(&key, &body).await.text().await.unwrap();
    let chunks: Vec<Value> = sse_data(&text)
        .iter()
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let said: String = chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(said, "Sunny.");
    assert!(chunks.iter().any(|chunk| chunk["choices"][0]["finish_reason"] == "stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 60);
    assert!(text.ends_with("data: [DONE]\n\n"));

    // The model has no Chat Completions, nor embeddings: only canonical chat reaches it.
    let embeddings = gateway.post("/v1/embeddings", &key, &json!({"model": "pro", "input": "x"})).await;
    assert_ne!(embeddings.status(), 200);
    assert_eq!(fake.received().len(), 3);
    let records = gateway.wait_usage(4).await;
    let served = records.iter().filter(|record| record["status"] == 200);
    let mut inputs: Vec<u64> = served.map(|record| record["input_tokens"].as_u64().unwrap()).collect();
    inputs.sort_unstable();
    assert_eq!(inputs, [40, 60, 60]);
}

#[tokio::test]
async fn an_anthropic_client_reaches_a_responses_only_model_with_tool_use_streamed_and_not() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::responses_call("call_W", "get_weather", r#"{"city":"Paris"}"#, usage(40, 12, 0, 0)));
    fake.push(Reply::responses_call_stream(
        "call_X",
        "get_weather",
        &[r#"{"city":"#, r#""Oslo"}"#],
        usage(41, 9, 0, 0),
    ));
    fake.push(Reply::responses_text("Sunny.", usage(70, 2, 0, 0)));
    let gateway = gateway_for(&fake).await;
    let key = gateway.key().await;
    let tools = json!([{"name": "get_weather", "input_schema": serde_json::from_str::<Value>(WEATHER).unwrap()}]);
    let ask = |stream: bool| {
        json!({"model": "pro", "max_tokens": 1024, "stream": stream, "system": "Be brief.", "tools": tools,
               "messages": [{"role": "user", "content": "Weather?"}]})
    };

    let message: Value = gateway.messages(&key, &ask(false)).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    let block = message["content"].as_array().unwrap().iter().find(|block| block["type"] == "tool_use").unwrap();
    assert_eq!((block["name"].as_str(), block["input"].clone()), (Some("get_weather"), json!({"city": "Paris"})));
    assert_eq!(fake.last().json()["tools"][0]["parameters"]["required"], json!(["city"]));

    let text = gateway.messages(&key, &ask(true)).await.text().await.unwrap();
    let events = events(&text);
    let start = events.iter().find(|(name, _)| name == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["type"], "tool_use");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let arguments: String = events.iter().filter_map(|(_, data)| data["delta"]["partial_json"].as_str()).collect();
    assert_eq!(arguments, r#"{"city":"Oslo"}"#);
    let delta = events.iter().find(|(name, _)| name == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events.last().unwrap().0, "message_stop");

    // The tool_result goes back after its call; the id Anthropic's client saw is the call id.
    let id = start.1["content_block"]["id"].clone();
    let second = json!({"model": "pro", "max_tokens": 1024, "tools": tools, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "9C"}]}
    ]});
    let message: Value = gateway.messages(&key, &second).await.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "Sunny.");
    let input = fake.last().json()["input"].clone();
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(input[1]["call_id"], "call_X");
    assert_eq!(input[2], json!({"type": "function_call_output", "call_id": "call_X", "output": "9C"}));
    let records = gateway.wait_usage(3).await;
    assert!(records.iter().all(|record| record["status"] == 200 && record["provider"] == "oa"));
}

#[tokio::test]
async fn a_429_on_the_responses_api_fails_over_to_the_next_route() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let limited = || Reply::Json {
        status: 429,
        body: r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.into(),
        headers: Vec::new(),
    };
    first.push(limited());
    first.push(limited());
    second.push(Reply::responses_text("from second", usage(3, 2, 0, 0)));
    second.push(Reply::responses_text("from second, translated", usage(3, 2, 0, 0)));
    let gateway = TestGateway::start(&format!(
        "{}{}[[models]]\nname = \"codex\"\nroutes = [{{ provider = \"first\", model = \"m1\" }}, {{ provider = \"second\", model = \"m2\" }}]\n\n\
         [[models]]\nname = \"pro\"\nroutes = [{{ provider = \"first\", model = \"p1\", api = \"responses\" }}, {{ provider = \"second\", model = \"p2\", api = \"responses\" }}]\n",
        openai("first", &first),
        openai("second", &second)
    ))
    .await;
    let key = gateway.key().await;

    let response = post_raw(&gateway, "/v1/responses", &key, STATELESS).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "second");
    assert_eq!(response.headers()["x-llmux-attempts"], "2");
    assert_eq!(response.json::<Value>().await.unwrap()["output"][0]["content"][0]["text"], "from second");
    let response = gateway.chat(&key, &json!({"model": "pro", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "second");
    assert_eq!(response.json::<Value>().await.unwrap()["choices"][0]["message"]["content"], "from second, translated");

    let paths: Vec<String> =
        first.received().iter().chain(&second.received()).map(|request| request.path.clone()).collect();
    assert_eq!(paths, ["/v1/responses"; 4]);
    assert_eq!(second.received()[0].json()["model"], "m2");
    let records = gateway.wait_usage(2).await;
    for record in &records {
        assert_eq!((record["attempts"].as_u64(), record["provider"].as_str()), (Some(2), Some("second")), "{record}");
        let log = record["attempt_log"].as_array().unwrap();
        assert_eq!((log[0]["provider"].as_str(), log[0]["outcome"].as_str()), (Some("first"), Some("rate_limited")));
    }
}

#[tokio::test]
async fn azure_serves_the_responses_api_beside_its_deployments() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::responses_stream(&["Hi"], usage(5, 1, 0, 0)));
    let gateway = TestGateway::start(&format!(
        "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"http://{}/openai\"\napi_key = \"az-secret\"\n\n\
         [[models]]\nname = \"codex\"\nroutes = [{{ provider = \"az\", model = \"my-codex-deployment\" }}]\n",
        fake.addr
    ))
    .await;
    let key = gateway.key().await;
    let streamed = STATELESS.replace(r#""stream": false"#, r#""stream": true"#);
    let response = post_raw(&gateway, "/v1/responses", &key, &streamed).await;
    assert_eq!(response.status(), 200);
    let Reply::RawSse(upstream_stream) = Reply::responses_stream(&["Hi"], usage(5, 1, 0, 0)) else { unreachable!() };
    assert_eq!(response.text().await.unwrap(), upstream_stream);
    let sent = fake.last();
    assert_eq!(
        (sent.path.as_str(), sent.query.as_deref()),
        ("/openai/responses", Some("api-version=2025-04-01-preview"))
    );
    assert_eq!(sent.header("api-key"), Some("az-secret"));
    assert_eq!(sent.json()["model"], "my-codex-deployment");
    let records = gateway.wait_usage(1).await;
    assert_eq!((records[0]["input_tokens"].as_u64(), records[0]["output_tokens"].as_u64()), (Some(5), Some(1)));
}

#[tokio::test]
async fn the_fake_refuses_what_the_responses_api_refuses() {
    let fake = FakeUpstream::start().await;
    fake.always(Reply::responses_text("ok", usage(1, 1, 0, 0)));
    let http = reqwest::Client::new();
    let post = |body: Value| http.post(format!("{}/responses", fake.base_url())).json(&body).send();
    let refused =
        post(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})).await.unwrap();
    assert_eq!(refused.status(), 400);
    let message = refused.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().to_owned();
    for expected in
        ["Missing required parameter: 'input'.", "Unknown parameter: 'messages'.", "Unknown parameter: 'max_tokens'."]
    {
        assert!(message.contains(expected), "{message}");
    }
    let orphan = json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]});
    assert_eq!(post(orphan).await.unwrap().status(), 400);
    let chat_tool = json!({"model": "m", "input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]});
    assert_eq!(post(chat_tool).await.unwrap().status(), 400);
    assert_eq!(post(json!({"input": "x"})).await.unwrap().status(), 400);
    assert_eq!(post(json!({"model": "m", "input": "x", "max_output_tokens": 16})).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_stored_conversation_cannot_outgrow_the_request_limit() {
    // The test gateway's max_body_bytes is 65536: each turn adds 20 000 bytes of input.
    let fake = FakeUpstream::start().await;
    fake.always(Reply::chat("ok", 9, 1));
    let gateway = TestGateway::start(&format!(
        "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"m\" }}]\n",
        crate::fake_provider("fake", &fake.base_url())
    ))
    .await;
    let key = gateway.key().await;
    let filler = "x".repeat(20_000);
    let mut previous: Option<String> = None;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let mut body = json!({"model": "chat", "input": filler});
        if let Some(id) = &previous {
            body["previous_response_id"] = json!(id);
        }
        let response = post_raw(&gateway, "/v1/responses", &key, &body.to_string()).await;
        statuses.push(response.status().as_u16());
        let answer: Value = response.json().await.unwrap();
        if statuses.last() != Some(&200) {
            assert_eq!(answer["error"]["param"], "previous_response_id", "{answer}");
            assert!(answer["error"]["message"].as_str().unwrap().contains("65536 bytes"), "{answer}");
            break;
        }
        previous = answer["id"].as_str().map(str::to_owned);
    }
    assert_eq!(statuses, [200, 200, 200, 400], "the fourth turn would hold more than one request may");
}
