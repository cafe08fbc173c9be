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
        let number = |id: &str| u64::from_str_radix(&id[14..], 16).unwrap();
        assert_eq!(number(&second), number(&first) + 1);
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
