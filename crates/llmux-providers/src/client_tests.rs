//! The pool against a raw HTTP/1.1 server whose connection handling the tests script.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// How the scripted server treats each connection.
#[derive(Clone, Copy)]
enum Mode {
    /// Keep-alive: answer every request on the connection.
    KeepAlive,
    /// Answer one request, then close the socket without saying so in the headers.
    CloseAfterOne,
    /// Promise 10 body bytes, send 5 and stall.
    Truncated,
    /// A `100 Continue` first, then a chunked body written in pieces; keep-alive.
    InterimThenChunked,
    /// A body without length that ends when the server closes the connection.
    UntilClose,
    /// Promise 10 body bytes, send 5 and close.
    TruncatedThenClose,
}

struct Server {
    url: String,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

async fn server(mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (connections.clone(), heads.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, mode, seen.clone()));
        }
    });
    Server { url, connections, heads }
}

async fn serve(mut stream: TcpStream, mode: Mode, heads: Arc<Mutex<Vec<String>>>) {
    let mut buffer = Vec::new();
    loop {
        // Read one request: head, then a Content-Length body.
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .map_or(0, |value| value.parse().unwrap());
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
        }
        buffer.drain(..head_end + length);
        heads.lock().unwrap().push(head);
        match mode {
            Mode::KeepAlive | Mode::CloseAfterOne => {
                let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
                if matches!(mode, Mode::CloseAfterOne) {
                    return;
                }
            }
            Mode::InterimThenChunked => {
                let pieces: [&[u8]; 4] = [
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                    b"2\r\n{\"\r",
                    b"\n6\r\na\":[1]\r\n1\r\n}\r\n0\r\n",
                    b"\r\n",
                ];
                for piece in pieces {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Mode::UntilClose => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n{\"until\":").await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                let _ = stream.write_all(b"\"close\"}").await;
                return;
            }
            Mode::TruncatedThenClose => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345").await;
                return;
            }
            Mode::Truncated => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345").await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
        }
    }
}

fn request(url: &str) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::from_static(b"{\"model\":\"m\"}"));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = url.parse().unwrap();
    request
}

async fn send_and_read(client: &UpstreamClient, url: &str) -> Bytes {
    let response = client.send(request(url)).await.expect("response");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn sequential_requests_share_one_connection_in_origin_form_with_host() {
    let server = server(Mode::KeepAlive).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    for _ in 0..5 {
        assert_eq!(send_and_read(&client, &server.url).await, "{}");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    let heads = server.heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 5);
    let authority = server.url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    for head in heads {
        assert!(head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains(&format!("host: {authority}\r\n")), "{head}");
    }
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let server = server(Mode::KeepAlive).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let (client, url) = (client.clone(), server.url.clone());
            tokio::spawn(async move { send_and_read(&client, &url).await })
        })
        .collect();
    for task in burst {
        assert_eq!(task.await.unwrap(), "{}");
    }
    let opened = server.connections.load(Ordering::SeqCst);
    assert!((1..=8).contains(&opened), "{opened} connections for 8 requests");
    for _ in 0..20 {
        send_and_read(&client, &server.url).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), opened, "later requests reuse pooled connections");
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_reused() {
    let server = server(Mode::CloseAfterOne).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    for round in 1..=3 {
        assert_eq!(send_and_read(&client, &server.url).await, "{}");
        // Back to back, and with time for the close to be noticed.
        if round == 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    assert_eq!(server.heads.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn interim_responses_are_skipped_and_chunked_bodies_decoded_on_a_reused_connection() {
    let server = server(Mode::InterimThenChunked).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    for _ in 0..3 {
        assert_eq!(send_and_read(&client, &server.url).await, r#"{"a":[1]}"#);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_delimited_by_the_close_is_read_whole_and_its_connection_not_reused() {
    let server = server(Mode::UntilClose).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    for _ in 0..2 {
        assert_eq!(send_and_read(&client, &server.url).await, r#"{"until":"close"}"#);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_waits_for_its_promised_length_and_a_close_before_it_is_an_error() {
    let closing = server(Mode::TruncatedThenClose).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    let response = client.send(request(&closing.url)).await.unwrap();
    let error = response.into_body().collect().await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Protocol);

    let server = server(Mode::Truncated).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    let response = client.send(request(&server.url)).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "12345");
    // The server stalls; a read that waits for the rest must not complete early.
    let rest = tokio::time::timeout(Duration::from_millis(100), body.frame()).await;
    assert!(rest.is_err(), "the body must wait for its remaining 5 bytes");
}

#[tokio::test]
async fn a_body_dropped_before_its_end_does_not_return_the_connection() {
    let server = server(Mode::Truncated).await;
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    let response = client.send(request(&server.url)).await.unwrap();
    drop(response);
    let second = tokio::time::timeout(Duration::from_secs(5), client.send(request(&server.url))).await;
    assert_eq!(second.expect("no hang").unwrap().status(), 200);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    drop(listener);
    let client = UpstreamClient::new(Duration::from_secs(5)).unwrap();
    let error = client.send(request(&url)).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connect);
}

#[tokio::test]
async fn a_request_connect_timeout_bounds_tcp_and_tls_together() {
    // Accepts connections and never speaks TLS: the handshake would wait forever.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/v1/chat/completions", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = UpstreamClient::new(Duration::from_secs(30)).unwrap();
    let started = std::time::Instant::now();
    let error = client.send_with(request(&url), Some(Duration::from_millis(200))).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connect);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
