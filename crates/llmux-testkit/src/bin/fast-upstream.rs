//! `fast-upstream ADDR`: a minimal, fast OpenAI-compatible mock upstream for load
//! benchmarks (`bench/load.sh`). One worker thread, so it uses at most one core.
//!
//! `POST /v1/chat/completions` answers with a fixed `chat.completion` JSON, or, when
//! the body contains `"stream":true` (a plain substring check, no JSON parsing), a
//! fixed SSE stream: 8 `chat.completion.chunk` events, a usage chunk and `[DONE]`.
//! Every body is built once at start-up.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;

#[derive(Clone)]
struct Bodies {
    json: Bytes,
    sse: Bytes,
}

const MODEL: &str = "bench-upstream-model";

fn json_body() -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-bench0000000000000000000000","object":"chat.completion","created":1700000000,"#,
            r#""model":"{model}","system_fingerprint":"fp_bench","choices":[{{"index":0,"message":{{"role":"assistant","#,
            r#""content":"Hello! This is a fixed answer from the fast benchmark upstream. It is about as long as a short reply.","#,
            r#""refusal":null}},"logprobs":null,"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":19,"completion_tokens":23,"total_tokens":42}}}}"#
        ),
        model = MODEL
    )
}

fn sse_body() -> String {
    let pieces = ["Hello", "!", " This", " is", " a", " streamed", " answer", "."];
    let mut out = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        let delta = if index == 0 {
            format!(r#"{{"role":"assistant","content":"{piece}"}}"#)
        } else {
            format!(r#"{{"content":"{piece}"}}"#)
        };
        let finish = if index + 1 == pieces.len() { r#""stop""# } else { "null" };
        out.push_str(&format!(
            concat!(
                r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"{model}","#,
                r#""choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#,
                "\n\n"
            ),
            model = MODEL,
            delta = delta,
            finish = finish
        ));
    }
    out.push_str(&format!(
        concat!(
            r#"data: {{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"{model}","#,
            r#""choices":[],"usage":{{"prompt_tokens":19,"completion_tokens":8,"total_tokens":27}}}}"#,
            "\n\n"
        ),
        model = MODEL
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

/// True when the request asks for a stream. Tolerates one space after the colon.
fn wants_stream(body: &[u8]) -> bool {
    const NEEDLES: [&[u8]; 2] = [b"\"stream\":true", b"\"stream\": true"];
    NEEDLES.iter().any(|needle| body.windows(needle.len()).any(|window| window == *needle))
}

async fn chat(State(bodies): State<Bodies>, body: Bytes) -> Response {
    let (content_type, payload) = if wants_stream(&body) {
        ("text/event-stream", bodies.sse.clone())
    } else {
        ("application/json", bodies.json.clone())
    };
    let mut response = Response::new(Body::from(payload));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".to_owned())
        .parse()
        .expect("usage: fast-upstream ADDR (e.g. 127.0.0.1:18080)");
    let bodies = Bodies { json: Bytes::from(json_body()), sse: Bytes::from(sse_body()) };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let app = axum::Router::new().route("/v1/chat/completions", post(chat)).with_state(bodies);
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind the listen address");
        // Answers are single small writes; don't let Nagle's algorithm hold any back.
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            let _ = stream.set_nodelay(true);
        });
        eprintln!("fast-upstream listening on http://{addr}");
        axum::serve(listener, app).await.expect("serve");
    });
}
