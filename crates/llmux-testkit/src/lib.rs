//! Test-only helpers. [`FakeUpstream`] is an OpenAI-dialect upstream on
//! `127.0.0.1:0` that records every request and answers from a script: JSON bodies,
//! SSE streams dribbled with delays, mid-stream disconnects, stalls, and answers whose
//! usage reports a simulated prompt cache ([`prompt_cache`]). A request to a path ending
//! in `/responses` is checked as OpenAI's Responses API checks it first
//! ([`responses::body_problems`]) and answered 400 without using the script if it fails;
//! [`responses`] also builds the Responses API's answers.
//! [`services`] finds the PostgreSQL and Redis that tests needing them run against.

pub mod prompt_cache;
pub mod responses;
pub mod services;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use parking_lot::Mutex;
use serde_json::{Value, json};

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status, a body and extra headers.
    Json { status: u16, body: String, headers: Vec<(String, String)> },
    /// SSE events (the `data:` payloads), one every `delay`. `usage` is appended as a
    /// `choices: []` chunk only when the request asked for
    /// `stream_options.include_usage`, like OpenAI. With `cut_after = Some(n)`, the
    /// connection drops after `n` events without `[DONE]`.
    Sse { events: Vec<String>, usage: Option<String>, delay: Duration, cut_after: Option<usize> },
    /// A complete SSE body sent as given (for dialects other than OpenAI's).
    RawSse(String),
    /// Never answers.
    Stall,
    /// `reply`, after waiting `delay` before the response head.
    Delayed { delay: Duration, reply: Box<Reply> },
    /// A non-streamed answer with `text` whose usage reports as cached the longest prefix
    /// of the prompt this fake answered before ([`prompt_cache`]): an OpenAI chat
    /// completion, or with `anthropic` an Anthropic message.
    PromptCached { text: String, anthropic: bool },
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Reply {
        Reply::Json { status, body: body.to_owned(), headers: Vec::new() }
    }

    /// An OpenAI chat completion answering `text`.
    pub fn chat(text: &str, prompt_tokens: u64, completion_tokens: u64) -> Reply {
        let body = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1,
            "model": "fake-upstream-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        });
        Reply::status(200, &body.to_string())
    }

    /// An OpenAI chat completion answering `text` whose
    /// `usage.prompt_tokens_details.cached_tokens` is what this fake's simulated prompt
    /// cache holds of the prompt ([`prompt_cache`]).
    pub fn chat_with_prompt_cache(text: &str) -> Reply {
        Reply::PromptCached { text: text.to_owned(), anthropic: false }
    }

    /// An Anthropic message answering `text` whose `cache_read_input_tokens` is what
    /// this fake's simulated prompt cache holds of the prompt ([`prompt_cache`]).
    pub fn message_with_prompt_cache(text: &str) -> Reply {
        Reply::PromptCached { text: text.to_owned(), anthropic: true }
    }

    /// A streamed chat completion: one chunk per piece of text, then a finish chunk.
    pub fn chat_stream(pieces: &[&str], prompt_tokens: u64, completion_tokens: u64) -> Reply {
        let mut events = Vec::new();
        for (index, piece) in pieces.iter().enumerate() {
            let delta =
                if index == 0 { json!({"role": "assistant", "content": piece}) } else { json!({"content": piece}) };
            events.push(chunk(delta, Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        Reply::Sse {
            events,
            usage: Some(usage_chunk(prompt_tokens, completion_tokens)),
            delay: Duration::ZERO,
            cut_after: None,
        }
    }
}

/// One `chat.completion.chunk` JSON with a single choice.
pub fn chunk(delta: Value, finish_reason: Value) -> String {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "fake-upstream-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null
    })
    .to_string()
}

/// The usage-only chunk OpenAI sends with `include_usage`.
pub fn usage_chunk(prompt_tokens: u64, completion_tokens: u64) -> String {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "fake-upstream-model",
        "choices": [],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
    })
    .to_string()
}

#[derive(Debug, Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    prompt_cache: Mutex<prompt_cache::PromptCache>,
}

/// An in-process fake upstream. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream { addr, shared, task }
    }

    /// The OpenAI-style base URL (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues an answer for the next request.
    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().push_back(reply);
    }

    /// The answer used when the queue is empty.
    pub fn always(&self, reply: Reply) {
        *self.shared.fallback.lock() = Some(reply);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().clone()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("the fake upstream received a request")
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request =
        Received { method, path: uri.path().to_owned(), query: uri.query().map(str::to_owned), headers, body };
    let json = request.json();
    let wants_usage = json["stream_options"]["include_usage"] == json!(true);
    let problems = if request.method == Method::POST && request.path.ends_with("/responses") {
        responses::body_problems(&request.body)
    } else {
        Vec::new()
    };
    shared.received.lock().push(request);
    if !problems.is_empty() {
        let error = json!({"error": {"message": problems.join(" "), "type": "invalid_request_error", "param": null, "code": null}});
        return Response::builder()
            .status(400)
            .header("content-type", "application/json")
            .body(Body::from(error.to_string()))
            .unwrap_or_default();
    }
    let mut reply = shared.script.lock().pop_front().or_else(|| shared.fallback.lock().clone());
    while let Some(Reply::Delayed { delay, reply: inner }) = reply {
        tokio::time::sleep(delay).await;
        reply = Some(*inner);
    }
    match reply {
        None => Response::builder()
            .status(500)
            .body(Body::from(r#"{"error":{"message":"no scripted reply"}}"#))
            .unwrap_or_default(),
        Some(Reply::Json { status, body, headers }) => {
            let mut builder = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                .header("content-type", "application/json");
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            builder.body(Body::from(body)).unwrap_or_default()
        }
        Some(Reply::PromptCached { text, anthropic }) => {
            let tokens = shared.prompt_cache.lock().serve(&json);
            let body = if anthropic {
                prompt_cache::message_body(&text, tokens)
            } else {
                prompt_cache::chat_body(&text, tokens)
            };
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap_or_default()
        }
        Some(Reply::RawSse(body)) => Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(Body::from(body))
            .unwrap_or_default(),
        // Unwrapped above; a stall is what is left of one that was not.
        Some(Reply::Stall | Reply::Delayed { .. }) => {
            std::future::pending::<()>().await;
            Response::default()
        }
        Some(Reply::Sse { events, usage, delay, cut_after }) => {
            let mut frames: Vec<String> = events;
            if wants_usage && let Some(usage) = usage {
                frames.push(usage);
            }
            let cut = cut_after.is_some();
            if let Some(count) = cut_after {
                frames.truncate(count);
            } else {
                frames.push("[DONE]".to_owned());
            }
            let stream = futures_util::stream::unfold(
                (frames.into_iter(), delay, cut, false),
                |(mut frames, delay, cut, started)| async move {
                    match frames.next() {
                        Some(frame) => {
                            if started && !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            Some((
                                Ok::<Bytes, std::io::Error>(Bytes::from(format!("data: {frame}\n\n"))),
                                (frames, delay, cut, true),
                            ))
                        }
                        None if cut => {
                            tokio::time::sleep(delay).await;
                            Some((Err(std::io::Error::other("connection cut")), (frames, delay, false, true)))
                        }
                        None => None,
                    }
                },
            );
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap_or_default()
        }
    }
}

/// A TCP relay in front of a real service (PostgreSQL, Redis) on port 0, for fault
/// tests: [`FaultProxy::cut`] closes every relayed connection and refuses new ones
/// until [`FaultProxy::restore`], as if the service had gone away.
pub struct FaultProxy {
    addr: SocketAddr,
    up: Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.up.send_replace(false);
    }
}

impl FaultProxy {
    /// Relays connections on a fresh loopback port to `target` (`host:port`).
    pub async fn start(target: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (up, _) = tokio::sync::watch::channel(true);
        let up = Arc::new(up);
        let target = target.to_owned();
        let relay_up = up.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !*relay_up.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut = relay_up.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        FaultProxy { addr, up, task }
    }

    /// `host:port` to connect to instead of the service.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service "goes away": relayed connections close, new ones are dropped.
    pub fn cut(&self) {
        // `send_replace`: the value must change even when no relay is listening.
        self.up.send_replace(false);
    }

    /// The service "comes back".
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}
