//! Hostile upstreams: answers and stream events over their caps (against the real
//! binary, its memory measured), `Retry-After` caps, Google's invalid-key answer, and
//! region refusals remembered for the deployment.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use llmux_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{MASTER, TestGateway, base_config, fake_provider, temp_dir, user};

/// What a hostile upstream sends after reading a request.
#[derive(Clone, Copy)]
enum Hostile {
    /// A 200 SSE answer: one ordinary chunk ("Hel"), then one `data:` line that never
    /// ends.
    EndlessLine,
    /// A 200 JSON answer of 400 MB: chunked on the first connection, with a
    /// `Content-Length` on the next ones.
    HugeBody,
}

const HUGE: usize = 400 * 1024 * 1024;

/// A raw HTTP/1.1 upstream on port 0 answering every request as `hostile` does;
/// returns its base URL and how many requests it got.
async fn hostile_upstream(hostile: Hostile) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let nth = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = answer(stream, hostile, nth).await;
            });
        }
    });
    (format!("http://{address}/v1"), requests)
}

async fn answer(mut stream: TcpStream, hostile: Hostile, nth: usize) -> std::io::Result<()> {
    read_request(&mut stream).await?;
    let chunked = |data: &[u8]| [format!("{:x}\r\n", data.len()).as_bytes(), data, b"\r\n"].concat();
    let filler = vec![b'x'; 64 * 1024];
    match hostile {
        Hostile::EndlessLine => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await?;
            let first = format!(
                "data: {}\n\n",
                llmux_testkit::chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null)
            );
            stream.write_all(&chunked(first.as_bytes())).await?;
            stream.write_all(&chunked(b"data: {\"choices\":[{\"delta\":{\"content\":\"")).await?;
            let piece = chunked(&filler);
            // Until the gateway hangs up (or far beyond any cap).
            for _ in 0..HUGE / filler.len() {
                stream.write_all(&piece).await?;
            }
        }
        Hostile::HugeBody => {
            let opening = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""#;
            if nth == 0 {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                    )
                    .await?;
                stream.write_all(&chunked(opening)).await?;
                let piece = chunked(&filler);
                for _ in 0..HUGE / filler.len() {
                    stream.write_all(&piece).await?;
                }
            } else {
                let head =
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {HUGE}\r\n\r\n");
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(opening).await?;
                for _ in 0..(HUGE - opening.len()) / filler.len() {
                    stream.write_all(&filler).await?;
                }
            }
        }
    }
    stream.shutdown().await
}

/// Reads one request head and its `Content-Length` body.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&buf[..read]);
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut remaining = length.saturating_sub(received.len() - head_end);
    while remaining > 0 {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        remaining = remaining.saturating_sub(read);
    }
    Ok(())
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

const RSS_BOUND: u64 = 256 * 1024 * 1024;

/// The real binary with model `chat` routed to `first` then `second`.
async fn binary_with_two_routes(tag: &str, first: &str, second: &str) -> (crate::cli::Running, String, String) {
    let dir = temp_dir(tag);
    let config = dir.join("llmux.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"first\", model = \"m1\" }}, {{ provider = \"second\", model = \"m2\" }}]\n",
            base_config(&dir),
            fake_provider("first", first),
            fake_provider("second", second),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let (child, address) = tokio::task::spawn_blocking(move || crate::cli::serve(&config)).await.unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("http://{address}/admin/keys"))
        .bearer_auth(MASTER)
        .json(&json!({"name": "t"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (child, address, created["key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_400_mb_answer_fails_over_within_bounded_memory() {
    let (huge, requests) = hostile_upstream(Hostile::HugeBody).await;
    let second = FakeUpstream::start().await;
    second.always(Reply::chat("from second", 3, 2));
    let (child, address, key) = binary_with_two_routes("huge-body", &huge, &second.base_url()).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    // Chunked (read up to the cap), then with a Content-Length (refused unread).
    for attempt in 1..=2 {
        let response = http
            .post(format!("http://{address}/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "attempt {attempt}");
        assert_eq!(response.headers()["x-llmux-provider"], "second");
        assert_eq!(response.headers()["x-llmux-attempts"], "2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "from second");
    }
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let (peak, now) = memory(child.id());
    eprintln!("400 MB answer: VmHWM {} MiB, VmRSS {} MiB", peak >> 20, now >> 20);
    assert!(peak < RSS_BOUND, "peak RSS {peak} bytes");
    let health = http.get(format!("http://{address}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_endless_sse_line_ends_the_stream_with_an_error_event_within_bounded_memory() {
    let (endless, _) = hostile_upstream(Hostile::EndlessLine).await;
    let second = FakeUpstream::start().await;
    second.always(Reply::chat_stream(&["never", "used"], 3, 2));
    let (child, address, key) = binary_with_two_routes("endless-line", &endless, &second.base_url()).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let response = http
        .post(format!("http://{address}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&json!({"model": "chat", "stream": true, "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let data = crate::sse_data(&body);
    // The first event was relayed; then the stream ends with the error event, no [DONE].
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "Hel");
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{body}");
    assert!(last["error"]["message"].as_str().unwrap().contains("max_upstream_event_bytes"), "{body}");
    assert!(body.len() < 64 * 1024, "nothing of the endless line reaches the client");
    assert!(second.received().is_empty(), "no failover once the stream has started");
    let (peak, now) = memory(child.id());
    eprintln!("endless SSE line: VmHWM {} MiB, VmRSS {} MiB", peak >> 20, now >> 20);
    assert!(peak < RSS_BOUND, "peak RSS {peak} bytes");
    let health = http.get(format!("http://{address}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

use crate::routing::ask;

/// Model `chat` with the routes `first` then `second` (in process).
async fn two_routes(server: &str, first: &FakeUpstream, second: &FakeUpstream) -> TestGateway {
    crate::routing::two_routes_with(server, "", first, second).await
}

#[tokio::test]
async fn a_day_long_retry_after_rests_a_route_only_for_max_retry_after_s() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.push(Reply::Json {
        status: 429,
        body: r#"{"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#.to_owned(),
        headers: vec![("retry-after".to_owned(), "86400".to_owned())],
    });
    first.always(Reply::chat("from first", 3, 2));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes("max_retry_after_s = 1\n", &first, &second).await;
    let key = gateway.key().await;
    for attempts in ["2", "1"] {
        let response = gateway.chat(&key, &ask()).await;
        assert_eq!(response.headers()["x-llmux-provider"], "second");
        assert_eq!(response.headers()["x-llmux-attempts"], attempts, "the rate-limited route rests");
    }
    assert_eq!(first.received().len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = gateway.chat(&key, &ask()).await;
    assert_eq!(response.headers()["x-llmux-provider"], "first", "rested 1 s, not a day");
}

#[tokio::test]
async fn googles_invalid_key_answer_fails_over_as_the_routes_auth_failure() {
    let (google, backup) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let invalid_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#;
    google.always(Reply::status(400, invalid_key));
    backup.always(Reply::chat("from backup", 3, 2));
    let gateway = TestGateway::start(&format!(
        "[[providers]]\nname = \"google\"\nkind = \"gemini\"\nbase_url = \"http://{}\"\napi_key = \"gm-bad\"\n\n{}\
         [[models]]\nname = \"flash\"\nroutes = [{{ provider = \"google\", model = \"gemini-2.5-flash\" }}, {{ provider = \"backup\", model = \"b\" }}]\n",
        google.addr,
        fake_provider("backup", &backup.base_url()),
    ))
    .await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "flash", "messages": user("hi")})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "backup");
    assert_eq!(response.headers()["x-llmux-attempts"], "2");
    let body = response.text().await.unwrap();
    assert!(!body.contains("API key"), "{body}");
    let providers = gateway.admin_get("/admin/providers").await;
    let google_route = &providers["providers"][0]["routes"][0];
    assert_eq!(google_route["consecutive_failures"], 1, "{providers}");
    // Alone, the route's failure is the gateway's (502), never the caller's 400.
    let gateway = TestGateway::start(&format!(
        "[[providers]]\nname = \"google\"\nkind = \"gemini\"\nbase_url = \"http://{}\"\napi_key = \"gm-bad\"\n\n\
         [[models]]\nname = \"flash\"\nroutes = [{{ provider = \"google\", model = \"gemini-2.5-flash\" }}]\n",
        google.addr,
    ))
    .await;
    let key = gateway.key().await;
    let response = gateway.chat(&key, &json!({"model": "flash", "messages": user("hi")})).await;
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(!body.contains("API key not valid") && !body.contains("gm-bad"), "{body}");
}

#[tokio::test]
async fn a_region_refusal_without_a_caller_region_closes_the_route_for_the_deployment() {
    let (first, second) = (FakeUpstream::start().await, FakeUpstream::start().await);
    first.push(Reply::status(
        403,
        r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","type":"request_forbidden"}}"#,
    ));
    first.always(Reply::chat("from first", 3, 2));
    second.always(Reply::chat("from second", 3, 2));
    let gateway = two_routes("region_refusal_ttl_s = 600\n", &first, &second).await;
    let key = gateway.key().await;
    let (de_key, _) = gateway.create_key(json!({"name": "de", "region": "DE"})).await;
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for (key, attempts) in [(&key, "2"), (&key, "1"), (&de_key, "1")] {
        let response = gateway.chat(key, &ask()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-llmux-provider"], "second");
        assert_eq!(response.headers()["x-llmux-attempts"], attempts, "the refused route is not tried again");
    }
    assert_eq!(first.received().len(), 1);
    let providers = gateway.admin_get("/admin/providers").await;
    let refusals = &providers["providers"][0]["routes"][0]["region_refusals"];
    assert_eq!(refusals.as_array().map(Vec::len), Some(1), "{providers}");
    assert_eq!(refusals[0]["region"], Value::Null);
    assert_eq!(refusals[0]["scope"], "deployment");
    let reopens_in = refusals[0]["reopens_in_s"].as_u64().unwrap();
    assert!((595..=600).contains(&reopens_in), "{reopens_in}");
    let reopens_at = refusals[0]["reopens_at_ms"].as_i64().unwrap();
    assert!((before + 595_000..=before + 601_000).contains(&reopens_at), "{reopens_at} vs {before}");
    assert_eq!(providers["providers"][1]["routes"][0]["region_refusals"], json!([]));
    // `llmux check` shows it too.
    let listen = gateway.url("").trim_start_matches("http://").to_owned();
    let config = gateway.dir.join("check.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{listen}\"\nmaster_key = \"{MASTER}\"\n\n{}{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"first\", model = \"m1\" }}, {{ provider = \"second\", model = \"m2\" }}]\n",
            fake_provider("first", &first.base_url()),
            fake_provider("second", &second.base_url()),
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_llmux"))
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("chat via first -> m1: REFUSED for the deployment ("), "{stdout}");
    assert!(stdout.contains("chat via second -> m2: available"), "{stdout}");
}

#[tokio::test]
async fn an_oversized_embeddings_answer_fails_over_and_one_within_the_cap_passes() {
    let (huge, requests) = hostile_upstream(Hostile::HugeBody).await;
    let second = FakeUpstream::start().await;
    let embedding = |values: usize| {
        let vector: Vec<f64> = (0..values).map(|i| i as f64 / 1000.0).collect();
        json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "m2", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
        .to_string()
    };
    let fits = embedding(2000);
    assert!(fits.len() < 65536);
    second.always(Reply::status(200, &fits));
    let gateway = TestGateway::start_with_server(
        "max_upstream_body_bytes = 65536\n",
        &format!(
            "{}{}[[models]]\nname = \"embed\"\nroutes = [{{ provider = \"first\", model = \"m1\" }}, {{ provider = \"second\", model = \"m2\" }}]\n",
            fake_provider("first", &huge),
            fake_provider("second", &second.base_url()),
        ),
    )
    .await;
    let key = gateway.key().await;
    let response = gateway.post("/v1/embeddings", &key, &json!({"model": "embed", "input": "x"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmux-provider"], "second");
    assert_eq!(response.headers()["x-llmux-attempts"], "2");
    assert_eq!(response.text().await.unwrap(), fits, "an answer within the cap passes as it is");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_anthropic_client_gets_its_error_event_when_a_translated_stream_event_is_too_large() {
    let (endless, _) = hostile_upstream(Hostile::EndlessLine).await;
    let gateway = TestGateway::start_with_server(
        "max_upstream_event_bytes = 65536\n",
        &format!(
            "{}[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"first\", model = \"m1\" }}]\n",
            fake_provider("first", &endless),
        ),
    )
    .await;
    let key = gateway.key().await;
    let response = gateway
        .messages(&key, &json!({"model": "chat", "max_tokens": 50, "stream": true, "messages": user("hi")}))
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let events = crate::sse_events(&body);
    assert!(
        events.iter().any(|(name, data)| name == "content_block_delta" && data["delta"]["text"] == "Hel"),
        "{body}"
    );
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error", "{body}");
    assert!(error["error"]["message"].as_str().unwrap().contains("max_upstream_event_bytes"), "{body}");
    assert!(!events.iter().any(|(name, _)| name == "message_stop"), "{body}");
}
