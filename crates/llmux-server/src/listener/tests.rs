//! The accept loop on a real socket, with routes injected for what the app never does
//! on purpose (panic).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{ConnStats, Limits, WriteTimeout, run};

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(30),
        keep_alive_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(30),
        max_connections: 100,
        http2_max_concurrent_streams: 16,
    }
}

async fn panics() -> &'static str {
    panic!("injected handler panic");
}

async fn start(limits: Limits) -> (std::net::SocketAddr, Arc<ConnStats>, tokio::sync::oneshot::Sender<()>) {
    let router = Router::new()
        .route("/v1/chat/completions", get(panics))
        .route("/v1/messages", get(panics))
        .route("/health", get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(ConnStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(
        listener,
        router,
        limits,
        stats.clone(),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    (addr, stats, stop)
}

/// Sends `request` on a new connection and reads until the server closes it (or resets
/// it: a refused connection may be reset when written to).
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("closed");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_panicking_handler_answers_500_in_the_callers_dialect_with_the_request_id() {
    let (addr, stats, _stop) = start(limits()).await;
    let openai = exchange(
        addr,
        "GET /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-request-id: req-panic-1\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(openai.starts_with("HTTP/1.1 500"), "{openai}");
    assert!(openai.contains("x-request-id: req-panic-1"), "{openai}");
    assert!(openai.contains(r#""code":"internal_error""#), "{openai}");
    assert!(openai.contains(r#""type":"api_error""#), "{openai}");
    // Anthropic's shape, and a request id the server chose (in both of its headers).
    let anthropic = exchange(addr, "GET /v1/messages HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(anthropic.starts_with("HTTP/1.1 500"), "{anthropic}");
    assert!(anthropic.contains(r#""type":"error""#), "{anthropic}");
    assert!(anthropic.contains("request-id: req_"), "{anthropic}");
    // The server keeps serving.
    let health = exchange(addr, "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok"), "{health}");
    assert_eq!(stats.panics.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test]
async fn a_half_sent_head_and_an_idle_connection_are_closed() {
    let (addr, stats, _stop) = start(Limits {
        header_read_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(300),
        ..limits()
    })
    .await;
    // Half a head: closed after the header-read timeout, without an answer.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // Nothing at all: the same.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // A served request, then idle on a kept-alive connection: closed after the idle timeout.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    for stream in [&mut slow, &mut silent, &mut idle] {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("the server closed the connection")
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    for _ in 0..100 {
        if stats.open() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stats.open(), 0);
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once_and_counted() {
    let (addr, stats, _stop) = start(Limits { max_connections: 2, ..limits() }).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    for _ in 0..100 {
        if stats.open() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = exchange(addr, "GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(refused, "", "closed without an answer");
    assert_eq!(stats.refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    drop((first, second));
    for _ in 0..100 {
        if stats.open() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let served = exchange(addr, "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    let mut text = String::new();
    stats.render(&mut text);
    assert!(text.contains("llmux_connections_refused_total 1"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_write_blocked_longer_than_the_timeout_fails() {
    let (client, server) = tokio::io::duplex(1024);
    let mut server = WriteTimeout::new(server, Duration::from_secs(5));
    // The client reads nothing: the pipe fills, and the write stays blocked.
    let started = tokio::time::Instant::now();
    let error = loop {
        match server.write(&[0u8; 512]).await {
            Ok(_) => continue,
            Err(error) => break error,
        }
    };
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_secs(5));
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_keeps_reading_is_not_cut() {
    let (mut client, server) = tokio::io::duplex(1024);
    let mut server = WriteTimeout::new(server, Duration::from_secs(5));
    let reader = tokio::spawn(async move {
        let mut buffer = [0u8; 256];
        let mut total = 0;
        while total < 64 * 1024 {
            // Slower than the writer, but never stalled for the timeout.
            tokio::time::sleep(Duration::from_secs(1)).await;
            total += client.read(&mut buffer).await.unwrap();
        }
        total
    });
    for _ in 0..128 {
        server.write_all(&[1u8; 512]).await.expect("a reading client is never timed out");
    }
    drop(server);
    assert!(reader.await.unwrap() >= 64 * 1024);
}
