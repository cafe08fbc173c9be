//! Route handlers, one module per surface.

pub mod admin;
pub mod anthropic;
pub mod health;
pub mod openai;
pub mod responses;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use llmux_gateway::auth::Caller;
use llmux_gateway::error::GatewayError;
use llmux_gateway::{Failure, Reply, ReplyBody, RequestMeta};
use tokio::time::Instant;

use crate::error::{ATTEMPTS, DROPPED_PARAMS, Dialect, PROVIDER, render_gateway, request_id_headers};

/// A lifecycle request as read at the edge: its id, what the gateway needs from the
/// headers, the caller (authenticated from the headers before the body was read), and
/// the body (at most `server.max_body_bytes`, within `server.body_read_timeout_ms`).
pub struct Incoming {
    pub request_id: String,
    pub meta: RequestMeta,
    pub caller: Caller,
    pub body: bytes::Bytes,
}

/// Reads a client request: the key is checked from the headers first, so a missing,
/// bad or revoked key gets its 401 (or an address over its failed-authentication limit
/// its 429) at once and no byte of the body is read; then the body, within the size
/// limit (413) and the body-read timeout (400).
pub async fn read_request(
    state: &crate::AppState,
    request: axum::extract::Request,
    dialect: Dialect,
) -> Result<Incoming, Response> {
    let started = Instant::now();
    // Headers are borrowed from the request, not cloned as the `HeaderMap` extractor does.
    let (parts, body) = request.into_parts();
    let request_id = request_id(&parts.headers);
    let meta = request_meta(&parts.headers, &request_id, started);
    let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let caller = match state.gateway.authenticate_from(meta.api_key.as_deref(), client).await {
        Ok(caller) => caller,
        Err(error) => return Err(render_gateway(dialect, &error, &request_id)),
    };
    let (limit, timeout) = {
        let runtime = state.gateway.runtime();
        (runtime.config.server.max_body_bytes, runtime.config.server.body_read_timeout)
    };
    let body = match tokio::time::timeout(timeout, read_body(&parts.headers, body, limit)).await {
        Ok(Ok(body)) => body,
        Ok(Err(error)) => return Err(render_gateway(dialect, &error, &request_id)),
        Err(_) => {
            let message = format!(
                "The request body did not arrive within server.body_read_timeout_ms ({} ms).",
                timeout.as_millis()
            );
            let error = GatewayError::BadRequest(llmux_wire::DecodeError::new(None, &message));
            return Err(render_gateway(dialect, &error, &request_id));
        }
    };
    Ok(Incoming { request_id, meta, caller, body })
}

/// Reads the body, refusing more than `limit` bytes with 413.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(GatewayError::TooLarge { limit });
    }
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(error) => {
            let inner = error.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some()
                || inner.source().is_some_and(|source| source.is::<http_body_util::LengthLimitError>())
            {
                Err(GatewayError::TooLarge { limit })
            } else {
                Err(GatewayError::BadRequest(llmux_wire::DecodeError::new(None, "the request body could not be read")))
            }
        }
    }
}

/// A JSON answer with the request id where `dialect`'s clients read it.
pub fn json_response(body: Vec<u8>, dialect: Dialect, request_id: &str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    request_id_headers(response.headers_mut(), dialect, request_id);
    response
}

/// The client's address, when the request came through our accept loop (not in
/// router tests that call the router directly).
pub struct Client(Option<SocketAddr>);

impl Client {
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.0.map(|address| address.ip())
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Client, Self::Rejection> {
        Ok(Client(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)))
    }
}

/// The lifecycle a client route runs.
#[derive(Debug, Clone, Copy)]
pub enum Surface {
    OpenAi(llmux_wire::openai::peek::Endpoint),
    Anthropic,
    Responses,
}

/// A client route: reads the request, runs its lifecycle, answers in its dialect.
pub async fn serve(state: crate::AppState, request: axum::extract::Request, surface: Surface) -> Response {
    let dialect = match surface {
        Surface::Anthropic => Dialect::Anthropic,
        Surface::OpenAi(_) | Surface::Responses => Dialect::OpenAi,
    };
    let incoming = match read_request(&state, request, dialect).await {
        Ok(incoming) => incoming,
        Err(response) => return response,
    };
    let gateway = &state.gateway;
    let outcome = match surface {
        Surface::OpenAi(endpoint) => gateway.openai(incoming.caller, incoming.meta, endpoint, incoming.body).await,
        Surface::Anthropic => gateway.anthropic(incoming.caller, incoming.meta, incoming.body).await,
        Surface::Responses => gateway.responses(incoming.caller, incoming.meta, incoming.body).await,
    };
    respond(dialect, outcome, &incoming.request_id)
}

/// What the gateway needs from a request's headers.
pub fn request_meta(headers: &HeaderMap, request_id: &str, started: Instant) -> RequestMeta {
    RequestMeta {
        request_id: request_id.to_owned(),
        api_key: api_key(headers),
        region_header: headers.get("x-llmux-region").and_then(|value| value.to_str().ok()).map(str::to_owned),
        claude_code_session: header_text(headers, "x-claude-code-session-id"),
        session: header_text(headers, "x-session-id").or_else(|| header_text(headers, "session_id")),
        started,
    }
}

/// A header's value as text, if it is sent, printable and not blank.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The HTTP response for a lifecycle's outcome: the reply with llmux's headers, or the
/// error in the caller's dialect.
pub fn respond(dialect: Dialect, outcome: Result<Reply, Failure>, request_id: &str) -> Response {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(failure) => {
            let mut response = render_gateway(dialect, &failure.error, request_id);
            if failure.attempts > 0 {
                response.headers_mut().insert(ATTEMPTS, HeaderValue::from(failure.attempts));
            }
            if let Some(info) = &failure.rate_limits {
                rate_limit_headers(response.headers_mut(), info);
            }
            return response;
        }
    };
    let mut response = match reply.body {
        ReplyBody::Full(bytes) => Response::new(Body::from(bytes)),
        ReplyBody::Stream(stream) => {
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    };
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    request_id_headers(headers, dialect, request_id);
    if let Some(provider) = reply.provider.as_deref().and_then(|provider| HeaderValue::from_str(provider).ok()) {
        headers.insert(PROVIDER, provider);
    }
    headers.insert(ATTEMPTS, HeaderValue::from(reply.attempts));
    if !reply.dropped.is_empty()
        && let Ok(value) = HeaderValue::from_str(&reply.dropped.join(","))
    {
        headers.insert(DROPPED_PARAMS, value);
    }
    if let Some(info) = &reply.rate_limits {
        rate_limit_headers(headers, info);
    }
    response
}

/// OpenAI's `x-ratelimit-*` headers for a limited key (only the limits it has).
fn rate_limit_headers(headers: &mut HeaderMap, info: &llmux_gateway::limits::RateInfo) {
    let reset = HeaderValue::from_str(&format!("{:.3}s", info.reset_ms as f64 / 1000.0)).ok();
    for (limit, remaining, names) in [
        (
            info.limit_requests,
            info.remaining_requests,
            ["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"],
        ),
        (
            info.limit_tokens,
            info.remaining_tokens,
            ["x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"],
        ),
    ] {
        if let (Some(limit), Some(remaining)) = (limit, remaining) {
            headers.insert(names[0], HeaderValue::from(limit));
            headers.insert(names[1], HeaderValue::from(remaining));
            if let Some(reset) = &reset {
                headers.insert(names[2], reset.clone());
            }
        }
    }
}

/// The request id: the client's `x-request-id` if it is sane, else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(value) = headers.get(crate::error::REQUEST_ID).and_then(|value| value.to_str().ok())
        && !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_graphic())
    {
        return value.to_owned();
    }
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A process-unique random prefix plus a counter: unique without a syscall per request.
    let prefix = PREFIX.get_or_init(|| llmux_gateway::auth::generate_key_id()[4..14].to_owned());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(4 + prefix.len() + 16);
    id.push_str("req_");
    id.push_str(prefix);
    // At least 8 hex digits, as `{:08x}` would print them, without the formatter.
    let digits = (16 - count.leading_zeros() as usize / 4).max(8);
    for shift in (0..digits).rev() {
        id.push(char::from(b"0123456789abcdef"[((count >> (shift * 4)) & 0xf) as usize]));
    }
    id
}

/// The presented API key: `Authorization: Bearer ...` or `x-api-key`.
pub fn api_key(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|value| value.to_str().ok()) {
        let value = value.trim();
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value);
        return Some(token.trim().to_owned());
    }
    headers.get("x-api-key").and_then(|value| value.to_str().ok()).map(|value| value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_request_ids_are_unique_prefixed_hex() {
        let headers = axum::http::HeaderMap::new();
        let first = super::request_id(&headers);
        let second = super::request_id(&headers);
        assert_ne!(first, second);
        for id in [&first, &second] {
            assert!(id.starts_with("req_") && id.len() == 4 + 10 + 8, "{id}");
            assert!(id[4..].bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
        // A process-wide counter: other tests running at the same time take ids too.
        let number = |id: &str| u64::from_str_radix(&id[14..], 16).unwrap();
        assert!(number(&second) > number(&first));
    }

    #[test]
    fn session_headers_reach_the_gateway() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-claude-code-session-id", "cc-1".parse().unwrap());
        headers.insert("session_id", "codex-1".parse().unwrap());
        let meta = super::request_meta(&headers, "req", tokio::time::Instant::now());
        assert_eq!((meta.claude_code_session.as_deref(), meta.session.as_deref()), (Some("cc-1"), Some("codex-1")));
        headers.insert("x-session-id", " generic ".parse().unwrap());
        headers.insert("x-claude-code-session-id", " ".parse().unwrap());
        let meta = super::request_meta(&headers, "req", tokio::time::Instant::now());
        assert_eq!((meta.claude_code_session.as_deref(), meta.session.as_deref()), (None, Some("generic")));
    }

    #[test]
    fn a_sane_client_request_id_is_kept() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(super::request_id(&headers), "abc-123");
        headers.insert("x-request-id", "has space".parse().unwrap());
        assert!(super::request_id(&headers).starts_with("req_"));
    }
}
