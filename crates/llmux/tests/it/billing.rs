//! Billing what was used: streams the client abandons (after the first chunk, after the
//! finish before the usage chunk), abandoned non-streamed requests and upstream answers
//! without usage are billed for their input and the output relayed so far (the
//! upstream's figures where it sent them, else estimates flagged `usage_estimated`),
//! for each client dialect, translated and same-dialect; a key with a small budget
//! cannot outspend it by disconnecting.

use std::time::Duration;

use futures_util::StreamExt;
use llmux_testkit::{FakeUpstream, Reply, chunk};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{TestGateway, user};

/// An upstream that answers every request with `frames` (an SSE body) and then keeps
/// the stream open without another byte, as an upstream still generating does.
struct Stalling {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Stalling {
    async fn start(frames: String) -> Stalling {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let frames = frames.clone();
                tokio::spawn(async move {
                    if read_request(&mut socket).await.is_none() {
                        return;
                    }
                    let head =
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                    let chunk = format!("{head}{:x}\r\n{frames}\r\n", frames.len());
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    // Until the gateway hangs up.
                    let mut sink = [0u8; 1024];
                    while matches!(socket.read(&mut sink).await, Ok(read) if read > 0) {}
                });
            }
        });
        Stalling { addr, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Stalling {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `content-length` body).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<()> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        let read = socket.read(&mut piece).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&piece[..read]);
        let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buffer.len() >= end + 4 + length {
            return Some(());
        }
    }
}

fn openai_frames(chunks: &[String]) -> String {
    chunks.iter().map(|chunk| format!("data: {chunk}\n\n")).collect()
}

fn named_frames(events: &[Value]) -> String {
    events.iter().map(|event| format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap())).collect()
}

const TEXT: &str = "The quick brown fox jumps over the lazy dog, twice over.";

/// OpenAI chunks: the text, then with `finish` a finish chunk (no usage chunk follows).
fn openai_stream(finish: bool) -> String {
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": TEXT}), Value::Null)];
    if finish {
        chunks.push(chunk(json!({}), json!("stop")));
    }
    openai_frames(&chunks)
}

/// Anthropic events: `message_start` (input 25), the text, and with `finish` the
/// `message_delta` with the final usage (output 9), but no `message_stop`.
fn anthropic_stream(finish: bool) -> String {
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}}),
    ];
    if finish {
        events.push(json!({"type": "content_block_stop", "index": 0}));
        events.push(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 9}}));
    }
    named_frames(&events)
}

/// Responses API events up to a text delta (no terminal event).
fn responses_stream() -> String {
    let response = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "gpt-x", "output": [], "usage": null});
    named_frames(&[
        json!({"type": "response.created", "sequence_number": 0, "response": response}),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        json!({"type": "response.output_text.delta", "sequence_number": 3, "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": TEXT}),
    ])
}

/// A gateway with model `m` on one provider of `kind` at `base_url` (priced 1 and 2
/// per million tokens).
async fn gateway(kind: &str, base_url: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[[providers]]\nname = \"up\"\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\napi_key = \"sk-upstream-secret\"\n\n\
         [[models]]\nname = \"m\"\nroutes = [{{ provider = \"up\", model = \"up-model\", price = {{ input = 1, output = 2 }} }}]\n"
    ))
    .await
}

/// The client dialects, as a request for model `m` and what marks the client's copy of
/// the upstream's first text chunk (where an abandoning client hangs up).
#[derive(Clone, Copy, Debug)]
enum Client {
    OpenAi,
    Anthropic,
    /// `store: false`: the same-dialect path where the provider serves the API.
    Responses,
}

impl Client {
    fn path(self) -> &'static str {
        match self {
            Client::OpenAi => "/v1/chat/completions",
            Client::Anthropic => "/v1/messages",
            Client::Responses => "/v1/responses",
        }
    }

    fn body(self, stream: bool) -> Value {
        let prompt = "Tell me about foxes and dogs, at some length please.";
        match self {
            Client::OpenAi => json!({"model": "m", "stream": stream, "messages": user(prompt)}),
            Client::Anthropic => json!({"model": "m", "stream": stream, "max_tokens": 64, "messages": user(prompt)}),
            Client::Responses => json!({"model": "m", "stream": stream, "store": false, "input": prompt}),
        }
    }
}

/// Sends a request of `client`, reads the answer until it holds `until`, then hangs up.
async fn abandon(gateway: &TestGateway, client: Client, key: &str, until: &str) {
    let response = gateway
        .http
        .post(gateway.url(client.path()))
        .bearer_auth(key)
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&client.body(true))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(until) {
        let piece = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap_or_else(|_| panic!("{until:?} never came; got {seen}"))
            .unwrap_or_else(|| panic!("the stream ended before {until:?}; got {seen}"))
            .expect("body");
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    drop(body);
}

/// The one record of a request, once written.
async fn record(gateway: &TestGateway) -> Value {
    gateway.wait_usage(1).await.remove(0)
}

fn tokens(record: &Value) -> (u64, u64) {
    (record["input_tokens"].as_u64().unwrap(), record["output_tokens"].as_u64().unwrap())
}

/// The output estimate of `TEXT`: about four bytes per token.
fn text_estimate() -> u64 {
    (TEXT.len() as u64).div_ceil(4)
}

/// A record of an abandoned stream whose tokens are all estimates.
fn assert_estimated(record: &Value) {
    assert_eq!(record["status"], 499, "{record:#}");
    assert_eq!(record["error_code"], "client_disconnected");
    let (input, output) = tokens(record);
    assert!(input > 0, "input billed: {record:#}");
    assert!(output >= text_estimate(), "output relayed is billed: {record:#}");
    assert_eq!(record["usage_estimated"], true);
    assert!(record["ttft_ms"].is_u64(), "time to first token recorded: {record:#}");
    assert!(record["cost"].as_f64().is_some_and(|cost| cost > 0.0), "a cost: {record:#}");
}

#[tokio::test]
async fn openai_stream_abandoned_after_the_first_chunk_is_billed_estimated() {
    for (client, until) in
        [(Client::OpenAi, "quick brown"), (Client::Anthropic, "quick brown"), (Client::Responses, "quick brown")]
    {
        // An OpenAI-dialect upstream: the same dialect for OpenAI clients, translated
        // for the others.
        let upstream = Stalling::start(openai_stream(false)).await;
        let gateway = gateway("openai-compatible", &upstream.base_url()).await;
        let key = gateway.key().await;
        abandon(&gateway, client, &key, until).await;
        let record = record(&gateway).await;
        assert_estimated(&record);
        assert_eq!(tokens(&record).1, text_estimate(), "{client:?}: {record:#}");
    }
}

#[tokio::test]
async fn openai_stream_abandoned_after_finish_reason_before_the_usage_chunk_is_billed_estimated() {
    for (client, until) in [
        (Client::OpenAi, "\"finish_reason\":\"stop\""),
        (Client::Anthropic, "content_block_stop"),
        // The Responses encoder holds its `.done` events until the upstream ends.
        (Client::Responses, "quick brown"),
    ] {
        let upstream = Stalling::start(openai_stream(true)).await;
        let gateway = gateway("openai-compatible", &upstream.base_url()).await;
        let key = gateway.key().await;
        abandon(&gateway, client, &key, until).await;
        let record = record(&gateway).await;
        assert_estimated(&record);
        assert_eq!(tokens(&record).1, text_estimate(), "{client:?}: {record:#}");
    }
}

#[tokio::test]
async fn anthropic_stream_abandoned_bills_the_upstream_input_and_estimates_the_output() {
    for client in [Client::Anthropic, Client::OpenAi, Client::Responses] {
        let upstream = Stalling::start(anthropic_stream(false)).await;
        let gateway = gateway("anthropic", &upstream.base_url()).await;
        let key = gateway.key().await;
        abandon(&gateway, client, &key, "quick brown").await;
        let record = record(&gateway).await;
        assert_estimated(&record);
        // `message_start` said 25 input tokens: the upstream's figure, not an estimate.
        assert_eq!(tokens(&record), (25, text_estimate()), "{client:?}: {record:#}");
    }
}

#[tokio::test]
async fn anthropic_stream_abandoned_after_its_final_usage_bills_the_upstream_figures() {
    for (client, until) in [
        (Client::Anthropic, "message_delta"),
        (Client::OpenAi, "\"finish_reason\""),
        (Client::Responses, "quick brown"),
    ] {
        let upstream = Stalling::start(anthropic_stream(true)).await;
        let gateway = gateway("anthropic", &upstream.base_url()).await;
        let key = gateway.key().await;
        // The relay forwards an event only after metering it.
        abandon(&gateway, client, &key, until).await;
        let record = record(&gateway).await;
        assert_eq!(record["status"], 499, "{record:#}");
        assert_eq!(tokens(&record), (25, 9), "{client:?}: {record:#}");
        assert_eq!(record["usage_estimated"], false);
        assert!(record["ttft_ms"].is_u64());
    }
}

#[tokio::test]
async fn responses_stream_abandoned_on_the_same_dialect_path_is_billed_estimated() {
    let upstream = Stalling::start(responses_stream()).await;
    let gateway = gateway("openai", &upstream.base_url()).await;
    let key = gateway.key().await;
    abandon(&gateway, Client::Responses, &key, "quick brown").await;
    let record = record(&gateway).await;
    assert_estimated(&record);
    assert_eq!(tokens(&record).1, text_estimate());
}

#[tokio::test]
async fn a_non_streamed_request_abandoned_before_its_answer_is_billed_its_input_estimate() {
    for client in [Client::OpenAi, Client::Anthropic, Client::Responses] {
        let fake = FakeUpstream::start().await;
        fake.always(Reply::Stall);
        let kind = match client {
            Client::Anthropic => "anthropic",
            _ => "openai",
        };
        let gateway = gateway(kind, &fake.base_url()).await;
        let key = gateway.key().await;
        let request = gateway
            .http
            .post(gateway.url(client.path()))
            .bearer_auth(&key)
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .timeout(Duration::from_millis(300))
            .json(&client.body(false))
            .send();
        assert!(request.await.is_err(), "the client gives up");
        let record = record(&gateway).await;
        assert_eq!(record["status"], 499, "{client:?}: {record:#}");
        let (input, output) = tokens(&record);
        assert!(input > 0, "{client:?}: {record:#}");
        assert_eq!(output, 0, "nothing was answered");
        assert_eq!(record["usage_estimated"], true);
        assert!(record["ttft_ms"].is_null());
    }
}

#[tokio::test]
async fn upstream_answers_without_usage_are_billed_estimated() {
    let fake = FakeUpstream::start().await;
    let gateway = gateway("openai-compatible", &fake.base_url()).await;
    let key = gateway.key().await;
    // A complete answer without `usage`.
    let body = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "up-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}]});
    fake.push(Reply::status(200, &body.to_string()));
    assert_eq!(gateway.chat(&key, &Client::OpenAi.body(false)).await.status(), 200);
    // A stream that ends properly but never sends usage.
    fake.push(Reply::Sse {
        events: vec![chunk(json!({"content": TEXT}), Value::Null), chunk(json!({}), json!("stop"))],
        usage: None,
        delay: Duration::ZERO,
        cut_after: None,
    });
    let streamed = gateway.chat(&key, &Client::OpenAi.body(true)).await;
    assert!(streamed.text().await.unwrap().contains("[DONE]"));
    // The same through the Anthropic client's translation.
    fake.push(Reply::status(200, &body.to_string()));
    assert_eq!(gateway.messages(&key, &Client::Anthropic.body(false)).await.status(), 200);
    let records = gateway.wait_usage(3).await;
    for record in &records {
        assert_eq!(record["status"], 200, "{record:#}");
        let (input, output) = tokens(record);
        assert!(input > 0, "{record:#}");
        assert_eq!(output, text_estimate(), "{record:#}");
        assert_eq!(record["usage_estimated"], true);
    }
}

#[tokio::test]
async fn an_upstream_cut_mid_stream_is_billed_for_what_was_relayed() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::Sse {
        events: vec![chunk(json!({"content": TEXT}), Value::Null)],
        usage: None,
        delay: Duration::from_millis(10),
        cut_after: Some(1),
    });
    let gateway = gateway("openai-compatible", &fake.base_url()).await;
    let key = gateway.key().await;
    let body = gateway.chat(&key, &Client::OpenAi.body(true)).await.text().await.unwrap();
    assert!(body.contains("upstream_error"), "{body}");
    let record = record(&gateway).await;
    assert_eq!(record["status"], 200);
    assert_eq!(record["error_code"], "upstream_error");
    assert_eq!(tokens(&record).1, text_estimate());
    assert!(tokens(&record).0 > 0);
    assert_eq!(record["usage_estimated"], true);
}

#[tokio::test]
async fn a_complete_stream_with_usage_is_not_estimated() {
    let fake = FakeUpstream::start().await;
    fake.push(Reply::chat_stream(&["Hel", "lo"], 7, 2));
    let gateway = gateway("openai-compatible", &fake.base_url()).await;
    let key = gateway.key().await;
    gateway.chat(&key, &Client::OpenAi.body(true)).await.text().await.unwrap();
    let record = record(&gateway).await;
    assert_eq!(tokens(&record), (7, 2));
    assert_eq!(record["usage_estimated"], false);
}

#[tokio::test]
async fn a_key_with_a_small_budget_cannot_outspend_it_by_disconnecting() {
    spend_by_disconnecting(false).await;
}

#[tokio::test]
async fn a_team_with_a_small_budget_cannot_be_outspent_by_disconnecting() {
    spend_by_disconnecting(true).await;
}

/// Streams abandoned after the finish, until the budget (the key's, or with `team` its
/// team's) refuses.
async fn spend_by_disconnecting(team: bool) {
    let upstream = Stalling::start(openai_stream(true)).await;
    // 1000 per million tokens: one abandoned request costs a few cents.
    let gateway = TestGateway::start(&format!(
        "[[providers]]\nname = \"up\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\napi_key = \"sk-upstream-secret\"\n\n\
         [[models]]\nname = \"m\"\nroutes = [{{ provider = \"up\", model = \"up-model\", price = {{ input = 1000, output = 1000 }} }}]\n",
        upstream.base_url()
    ))
    .await;
    let budget = 0.2;
    let small = json!({"amount": budget, "period": "monthly"});
    let (key, _) = if team {
        let response = gateway
            .http
            .post(gateway.url("/admin/teams"))
            .bearer_auth(crate::MASTER)
            .json(&json!({"name": "small", "budget": small}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        gateway.create_key(json!({"name": "member", "team": "small"})).await
    } else {
        gateway.create_key(json!({"name": "small", "budget": small})).await
    };
    let mut refused = None;
    for round in 0..40 {
        let mut body = Client::OpenAi.body(true);
        body["max_tokens"] = json!(16);
        let response = gateway.chat(&key, &body).await;
        if response.status() != 200 {
            refused = Some((round, response.status().as_u16(), response.text().await.unwrap()));
            break;
        }
        let mut stream = response.bytes_stream();
        let mut seen = String::new();
        while !seen.contains("finish_reason\":\"stop") {
            seen.push_str(&String::from_utf8_lossy(&stream.next().await.unwrap().unwrap()));
        }
        drop(stream);
        // The record settles the budget when the disconnect is noticed.
        gateway.wait_usage(round + 1).await;
    }
    let (round, status, body) = refused.expect("the key is refused once its budget is spent");
    assert!(round > 1, "some requests fit the budget");
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("budget"), "{body}");
    let records = gateway.wait_usage(round + 1).await;
    let costs: Vec<f64> = records
        .iter()
        .filter(|record| record["status"] == 499)
        .map(|record| record["cost"].as_f64().unwrap())
        .collect();
    let spent: f64 = costs.iter().sum();
    let most = costs.iter().copied().fold(0.0, f64::max);
    assert!(spent >= budget - most, "the budget was spent: {spent} of {budget}");
    assert!(spent <= budget + most, "at most one request past the budget: {spent} of {budget}");
}

#[tokio::test]
async fn an_abandoned_stream_is_recorded_estimated_on_postgres() {
    let base = llmux_testkit::services::postgres_url();
    let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("PostgreSQL");
    tokio::spawn(connection);
    let schema = format!("llmux_billing_{:016x}", fastrand::u64(..));
    admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-csearch_path%3D{schema}");

    let upstream = Stalling::start(openai_stream(true)).await;
    let dir = crate::temp_dir("billing-pg");
    let config_path = dir.join("llmux.toml");
    let base_config = crate::base_config(&dir)
        .replace(&format!("url = \"sqlite://{}/llmux.db\"", dir.display()), &format!("url = \"{url}\""));
    std::fs::write(
        &config_path,
        format!(
            "{base_config}[[providers]]\nname = \"up\"\nkind = \"openai-compatible\"\nbase_url = \"{}\"\napi_key = \"sk-upstream-secret\"\n\n\
             [[models]]\nname = \"m\"\nroutes = [{{ provider = \"up\", model = \"up-model\", price = {{ input = 1, output = 2 }} }}]\n",
            upstream.base_url()
        ),
    )
    .unwrap();
    let gateway = TestGateway::start_with(dir, config_path).await;
    let key = gateway.key().await;
    abandon(&gateway, Client::OpenAi, &key, "finish_reason").await;
    let record = record(&gateway).await;
    assert_estimated(&record);
    gateway.stop().await;
    let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test]
async fn abandoned_streams_count_against_the_key_tokens_per_minute() {
    crate::early_in_a_minute().await;
    let upstream = Stalling::start(openai_stream(true)).await;
    let gateway = gateway("openai-compatible", &upstream.base_url()).await;
    // One abandoned request bills about 44 tokens (30 input, 14 output), estimated.
    let (key, _) = gateway.create_key(json!({"name": "tpm", "tpm_limit": 100})).await;
    for round in 0..3 {
        abandon(&gateway, Client::OpenAi, &key, "finish_reason").await;
        gateway.wait_usage(round + 1).await;
    }
    let refused = gateway.chat(&key, &Client::OpenAi.body(true)).await;
    assert_eq!(refused.status(), 429, "the window holds the abandoned requests' tokens");
    let records = gateway.wait_usage(4).await;
    let billed: u64 = records.iter().map(|record| tokens(record).0 + tokens(record).1).sum();
    assert!(billed >= 100, "{billed} tokens billed");
}

#[tokio::test]
async fn an_abandoned_stream_of_the_in_process_provider_is_billed_estimated() {
    let gateway = TestGateway::start(
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\nmock = { chunk_chars = 4, chunk_delay_ms = 5000 }\n\n\
         [[models]]\nname = \"m\"\nroutes = [{ provider = \"mock\", model = \"echo\", price = { input = 1, output = 2 } }]\n",
    )
    .await;
    let key = gateway.key().await;
    // The echo's first chunk is the prompt's first four characters; the next one would
    // come five seconds later.
    abandon(&gateway, Client::OpenAi, &key, "Tell").await;
    let record = record(&gateway).await;
    assert_eq!(record["status"], 499, "{record:#}");
    assert_eq!(tokens(&record).1, 1, "four bytes relayed: one token");
    assert!(tokens(&record).0 > 0);
    assert_eq!(record["usage_estimated"], true);
    assert!(record["ttft_ms"].is_u64());
}

/// A complete stream whose upstream keeps its connection open after the end: the client
/// hangs up as soon as it has the end marker (`[DONE]`, `message_stop`), as SDKs do when
/// they do not reuse the connection. The request was served: status 200 and the
/// upstream's own usage, not a 499.
#[tokio::test]
async fn a_client_hanging_up_right_after_the_end_of_a_whole_stream_was_served() {
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19});
    let mut openai = openai_stream(true);
    openai.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up-model", "choices": [], "usage": usage})
    ));
    let mut anthropic = anthropic_stream(true);
    anthropic.push_str(&named_frames(&[json!({"type": "message_stop"})]));
    for (kind, frames, client, until, expected) in [
        ("openai-compatible", openai, Client::OpenAi, "[DONE]", (12, 7)),
        ("anthropic", anthropic, Client::Anthropic, "message_stop", (25, 9)),
    ] {
        let upstream = Stalling::start(frames).await;
        let gateway = gateway(kind, &upstream.base_url()).await;
        let key = gateway.key().await;
        abandon(&gateway, client, &key, until).await;
        let record = record(&gateway).await;
        assert_eq!(record["status"], 200, "{client:?}: {record:#}");
        assert_eq!(tokens(&record), expected, "{client:?}: {record:#}");
        assert_eq!(record["usage_estimated"], false);
        assert!(record["ttft_ms"].is_u64());
    }
}
