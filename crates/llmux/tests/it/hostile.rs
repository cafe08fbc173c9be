//! Hostile clients against the inbound server: what holds connections or memory
//! without a key, slowloris, bodies nobody authenticated, clients that stop reading,
//! guessing keys. The cases that measure memory run the real binary (RSS from
//! `/proc/<pid>/status`).

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{TestGateway, base_config, early_in_a_minute, temp_dir, user};

const BIN: &str = env!("CARGO_BIN_EXE_llmux");

/// A config for the binary (the mock behind model `chat`, the default body limit of
/// 32 MiB) with `server` lines added, and a key created through the CLI.
fn binary_setup(tag: &str, server: &str) -> (String, String) {
    let dir = temp_dir(tag);
    let path = dir.join("llmux.toml");
    let base = base_config(&dir).replace("max_body_bytes = 65536\n", server);
    std::fs::write(
        &path,
        format!(
            "{base}[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"mock\", model = \"echo\" }}]\n"
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap().to_owned();
    let output = Command::new(BIN).args(["keys", "create", "--config", &config, "--name", "hostile"]).output().unwrap();
    assert!(output.status.success());
    let key = String::from_utf8_lossy(&output.stdout).lines().next().unwrap().to_owned();
    (config, key)
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

async fn chat_ok(http: &reqwest::Client, address: &str, key: &str) {
    let response = http
        .post(format!("http://{address}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "chat", "messages": user("still here")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_of_2000_half_open_connections_neither_holds_nor_grows_the_gateway() {
    let (config, key) = binary_setup("slowloris", "header_read_timeout_ms = 5000\n");
    let (child, address) = crate::cli::serve(&config);
    let pid = child.id();
    let http = reqwest::Client::new();
    chat_ok(&http, &address, &key).await;
    let before = rss_mib(pid);
    let mut held = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: llmux\r\ncontent-type: applic").await.unwrap();
        held.push(stream);
    }
    // The gateway answers while they are held.
    let health = http.get(format!("http://{address}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    chat_ok(&http, &address, &key).await;
    let during = rss_mib(pid);
    eprintln!("slowloris: RSS {before} MiB before, {during} MiB with 2000 half-open connections");
    // Measured: about 25 KiB per half-open connection (hyper's buffers, the task).
    assert!(during < before + 128, "RSS grew from {before} to {during} MiB");
    // Every one is closed after the header-read timeout, without an answer.
    for mut stream in held {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "a half-open connection was held past the header-read timeout");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let metrics = http.get(format!("http://{address}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metric(&metrics, "llmux_connections_open") <= 2, "{metrics}");
}

/// A body that never completes: `size - 1` bytes, lazily, then nothing.
fn one_byte_short(size: usize) -> reqwest::Body {
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let mut left = size - 1;
    let chunks = std::iter::from_fn(move || {
        let take = left.min(chunk.len());
        left -= take;
        (take > 0).then(|| Ok::<_, std::io::Error>(chunk.slice(..take)))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks).chain(futures_util::stream::pending()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_without_a_valid_key_are_never_read() {
    let (config, _key) = binary_setup(
        "unauthenticated",
        // Well above the 201 failures here: each answer is the 401 of its own key.
        "http2_max_concurrent_streams = 64\nauth_failures_per_minute = 1000\n",
    );
    let (child, address) = crate::cli::serve(&config);
    let pid = child.id();
    let before = rss_mib(pid);

    // 200 HTTP/2 streams (h2c) each one byte short of an 8 MiB body, without a key:
    // every one gets its 401 without the body.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    // One request first, so that the client has the server's SETTINGS (its stream cap)
    // before it opens 200 streams; otherwise streams over the cap that it opened before
    // reading them are refused (REFUSED_STREAM), as HTTP/2 says.
    let health = h2.get(format!("http://{address}/health")).send().await.unwrap();
    assert_eq!((health.version(), health.status().as_u16()), (reqwest::Version::HTTP_2, 200));
    let size = 8 * 1024 * 1024;
    let requests = (0..200).map(|_| {
        h2.post(format!("http://{address}/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("content-length", size.to_string())
            .body(one_byte_short(size))
            .send()
    });
    let answers = tokio::time::timeout(Duration::from_secs(60), futures_util::future::join_all(requests))
        .await
        .expect("every stream is answered without its body");
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        assert_eq!(answer.status(), 401);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    }
    let after = rss_mib(pid);
    eprintln!("h2 without a key: RSS {before} MiB before, {after} MiB after 200 streams of 8 MiB declared");
    assert!(after < before + 64, "RSS grew from {before} to {after} MiB");

    // HTTP/1.1: a bogus key and content-length 30000000 (under the 32 MiB limit): 401
    // before a single body byte is sent, and the connection is closed.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            b"POST /v1/messages HTTP/1.1\r\nhost: llmux\r\nx-api-key: sk-llmux-not-a-key\r\ncontent-type: application/json\r\ncontent-length: 30000000\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains(r#""type":"authentication_error""#), "Anthropic's shape: {answer}");
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address() {
    early_in_a_minute().await;
    let gateway = TestGateway::start_with_server(
        "auth_failures_per_minute = 5\n",
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    let body = json!({"model": "chat", "messages": user("hi")});
    for _ in 0..5 {
        assert_eq!(gateway.chat("sk-llmux-guess", &body).await.status(), 401);
    }
    // Over the limit: 429 in the caller's dialect, with when to retry, for any key from
    // this address that this instance does not hold (no store lookup)...
    let refused = gateway.chat("sk-llmux-guess", &body).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("auth_failures_per_minute"), "{error}");
    let anthropic =
        gateway.messages("sk-llmux-other", &json!({"model": "chat", "max_tokens": 5, "messages": user("hi")})).await;
    assert_eq!(anthropic.status(), 429);
    let error: Value = anthropic.json().await.unwrap();
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");
    // ...while a key it holds still works: one broken client behind a shared address
    // does not lock the others out.
    assert_eq!(gateway.chat(&key, &body).await.status(), 200);

    let metrics = gateway.http.get(gateway.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "llmux_auth_failures_total"), 5);
    assert_eq!(metric(&metrics, "llmux_auth_refused_total"), 2);
    // Supervised background tasks are listed in /ready.
    let ready: Value = gateway.http.get(gateway.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["tasks"]["key_refresh"], "running", "{ready}");
    assert_eq!(ready["tasks"]["budget_alerts"], "running", "{ready}");
    gateway.stop().await;
}

/// An OpenAI-shaped upstream that streams chunks without end, as fast as it may;
/// reports on `released` when the gateway closes its connection.
async fn endless_upstream() -> (String, tokio::sync::mpsc::UnboundedReceiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (released, released_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let released = released.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    let read = stream.read(&mut buffer).await.unwrap_or(0);
                    if read == 0 {
                        return;
                    }
                    head.extend_from_slice(&buffer[..read]);
                }
                let text = "x".repeat(8 * 1024);
                let event = format!("data: {}\n\n", llmux_testkit::chunk(json!({"content": text}), Value::Null));
                let frame = format!("{:x}\r\n{event}\r\n", event.len());
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut sent = 0u64;
                while stream.write_all(frame.as_bytes()).await.is_ok() {
                    sent += frame.len() as u64;
                }
                let _ = released.send(sent);
            });
        }
    });
    (format!("http://{address}/v1"), released_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_stream_releases_the_upstream_after_the_write_timeout() {
    let (base_url, mut released) = endless_upstream().await;
    let gateway = TestGateway::start_with_server(
        "write_timeout_ms = 500\n",
        &format!(
            "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"fake-chat\", price = {{ input = 1, output = 2 }} }}]\n",
            crate::fake_provider("fake", &base_url)
        ),
    )
    .await;
    let key = gateway.key().await;
    let body = json!({"model": "chat", "stream": true, "messages": user("tell me everything")}).to_string();
    let mut client = TcpStream::connect(gateway.addr).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: llmux\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    let mut first = vec![0u8; 16 * 1024];
    let read = client.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
    // The client stops reading and keeps its socket open.
    let sent = tokio::time::timeout(Duration::from_secs(30), released.recv())
        .await
        .expect("the upstream connection is released")
        .unwrap();
    eprintln!("the upstream had sent {} KiB when its connection was released", sent / 1024);
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["status"], 499, "{:#}", records[0]);
    // The gateway is fine.
    let health = gateway.http.get(gateway.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    drop(client);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_reading_a_stream_releases_the_upstream_too() {
    // Over HTTP/2 the client's flow-control window closes before any socket write
    // blocks: the gateway notices that the stream's frames are no longer taken.
    let (base_url, mut released) = endless_upstream().await;
    let gateway = TestGateway::start_with_server(
        "write_timeout_ms = 500\n",
        &format!(
            "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"fake\", model = \"fake-chat\", price = {{ input = 1, output = 2 }} }}]\n",
            crate::fake_provider("fake", &base_url)
        ),
    )
    .await;
    let key = gateway.key().await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mut response = h2
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "chat", "stream": true, "messages": user("tell me everything")}))
        .send()
        .await
        .unwrap();
    assert_eq!((response.status(), response.version()), (reqwest::StatusCode::OK, reqwest::Version::HTTP_2));
    assert!(response.chunk().await.unwrap().is_some());
    // The client stops reading and keeps the response (and its connection) open.
    tokio::time::timeout(Duration::from_secs(30), released.recv())
        .await
        .expect("the upstream connection is released")
        .unwrap();
    let records = gateway.wait_usage(1).await;
    assert_eq!(records[0]["status"], 499, "{:#}", records[0]);
    drop(response);
    gateway.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused_and_its_connection_closed() {
    let gateway = TestGateway::start_with_server(
        "body_read_timeout_ms = 300\n",
        "[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{ provider = \"mock\", model = \"echo\" }]\n",
    )
    .await;
    let key = gateway.key().await;
    let mut stream = TcpStream::connect(gateway.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: llmux\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("server.body_read_timeout_ms (300 ms)"), "{answer}");
    // A body that arrives in time is served.
    let served = gateway.chat(&key, &json!({"model": "chat", "messages": user("in time")})).await;
    assert_eq!(served.status(), 200);
    gateway.stop().await;
}
