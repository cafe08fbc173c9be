//! Route handlers, one module per surface.

pub mod admin;
pub mod health;
pub mod openai;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

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
    format!("req_{prefix}{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed))
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
