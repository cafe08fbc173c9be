//! Google Gemini: the Gemini API (generativelanguage, `v1beta`). The model is part of
//! the URL (`{base_url}/v1beta/models/{model}:generateContent`, or
//! `:streamGenerateContent?alt=sse` for streams: SSE `data:` lines, no terminator).
//! Auth is the `x-goog-api-key` header (never the `?key=` query parameter: URLs end up
//! in logs). Requests and answers are translated through the canonical model
//! (`llmux_wire::gemini::upstream`); errors are Google's `{"error":{code, message,
//! status, details}}`, classified by [`classify`].

use std::time::Duration;

use llmux_types::Currency;

use crate::error::{ErrorKind, UpstreamError};
use llmux_types::chat::{ChatRequest, ChatResponse};
use llmux_wire::openai::peek::Endpoint;
use llmux_wire::{DecodeError, Dialect, UpstreamDecoder};

use crate::{Adapter, AuthStyle, Preset, ProviderSpec, Quirks};

pub static PRESET: Preset = Preset {
    kind: "gemini",
    adapter: &GeminiAdapter,
    base_url: Some("https://generativelanguage.googleapis.com"),
    auth: AuthStyle::GoogApiKey,
    key_required: true,
    // The Gemini API's available-regions page excludes these; operators can override
    // per provider entry.
    regions: &["!CN", "!HK", "!MO", "!RU", "!BY", "!IR", "!KP", "!SY", "!CU"],
    currency: Currency::USD,
    // Per million tokens: input, output (thinking included), cached input. Prompts
    // over 200k tokens cost more on the Pro models; override per route where that
    // matters.
    prices: &[
        ("gemini-3-pro-preview", "2", "12", "0.2"),
        ("gemini-2.5-pro", "1.25", "10", "0.125"),
        ("gemini-2.5-flash", "0.3", "2.5", "0.03"),
        ("gemini-2.5-flash-lite", "0.1", "0.4", "0.01"),
    ],
    quirks: Quirks { stream_usage: false, responses_api: false },
    env_key: Some("GEMINI_API_KEY"),
    cache_write_percent: 100,
};

/// The URL of a generate call for `model`.
pub fn url(base_url: &str, model: &str, stream: bool) -> String {
    let base = base_url.trim_end_matches('/');
    if stream {
        format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/v1beta/models/{model}:generateContent")
    }
}

/// Classifies a Gemini error answer. `retry_after` (the header) wins over the body's
/// `RetryInfo.retryDelay`.
///
/// Google answers a key it does not accept (invalid, expired, deleted) with 400
/// `INVALID_ARGUMENT`, `ErrorInfo.reason` `API_KEY_INVALID` and "API key not valid.
/// Please pass a valid API key." (or "API key expired", "API Key not found"): that is
/// the route's credentials failing, not the caller's request (another route is tried,
/// and Google's message is not passed on as the caller's fault).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
    let (code, message) = llmux_wire::gemini::upstream::error_message(body).unwrap_or_default();
    let lower = message.to_ascii_lowercase();
    let key_refused = || {
        llmux_wire::gemini::upstream::error_reason(body).is_some_and(|reason| reason.starts_with("API_KEY_"))
            || ["api key not valid", "api key expired", "api key not found"].iter().any(|text| lower.contains(text))
    };
    let kind = match status {
        400 if key_refused() => ErrorKind::Auth,
        // "User location is not supported for the API use."
        400 if code == "FAILED_PRECONDITION" && lower.contains("location") => ErrorKind::RegionDenied,
        // "The input token count (…) exceeds the maximum number of tokens allowed (…)."
        400 if lower.contains("token count") && lower.contains("exceeds") => ErrorKind::ContextLength,
        400 if code == "FAILED_PRECONDITION" => ErrorKind::QuotaExhausted,
        400 | 413 | 422 => ErrorKind::BadRequest,
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        503 => ErrorKind::Overloaded,
        _ if status >= 500 => ErrorKind::Server,
        _ => ErrorKind::Protocol,
    };
    let retry_after = retry_after.or_else(|| llmux_wire::gemini::upstream::retry_delay(body));
    let message = (!message.is_empty()).then_some(message);
    UpstreamError { kind, status: Some(status), retry_after, message }
}

/// The Gemini API: no client speaks it, so every call goes through the canonical model.
#[derive(Debug)]
pub struct GeminiAdapter;

impl Adapter for GeminiAdapter {
    fn native(&self) -> Option<Dialect> {
        None
    }

    fn speaks_responses(&self) -> bool {
        false
    }

    fn url(&self, spec: &ProviderSpec, _endpoint: Endpoint, upstream_model: &str, stream: bool) -> String {
        url(&spec.base_url, upstream_model, stream)
    }

    fn fixed_urls(&self) -> bool {
        false
    }

    fn chat_request(&self, request: &ChatRequest, _upstream_model: &str) -> (Vec<u8>, Vec<&'static str>) {
        llmux_wire::gemini::upstream::generate_content_request(request)
    }

    fn chat_response(&self, body: &[u8]) -> Result<ChatResponse, DecodeError> {
        llmux_wire::gemini::upstream::generate_content_response(body)
    }

    fn stream_decoder(&self) -> Box<dyn UpstreamDecoder> {
        Box::new(llmux_wire::gemini::upstream::StreamDecoder::new())
    }

    fn classify(&self, status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
        classify(status, retry_after, body)
    }

    fn probe_path(&self) -> Option<&'static str> {
        Some("/v1beta/models")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_model_and_ask_for_sse_when_streaming() {
        assert_eq!(
            url("https://generativelanguage.googleapis.com/", "gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            url("http://127.0.0.1:9", "gemini-2.5-pro", true),
            "http://127.0.0.1:9/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn classifies_google_errors() {
        let body = |status: &str, message: &str| {
            format!(r#"{{"error":{{"code":400,"message":"{message}","status":"{status}"}}}}"#).into_bytes()
        };
        let cases = [
            (
                400,
                body("FAILED_PRECONDITION", "User location is not supported for the API use."),
                ErrorKind::RegionDenied,
            ),
            (
                400,
                body(
                    "INVALID_ARGUMENT",
                    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                ),
                ErrorKind::ContextLength,
            ),
            (400, body("INVALID_ARGUMENT", "Invalid JSON payload received."), ErrorKind::BadRequest),
            (
                400,
                body(
                    "FAILED_PRECONDITION",
                    "Gemini API free tier is not available in your country. Please enable billing.",
                ),
                ErrorKind::QuotaExhausted,
            ),
            (403, body("PERMISSION_DENIED", "Method doesn't allow unregistered callers."), ErrorKind::Auth),
            (400, body("INVALID_ARGUMENT", "API key expired. Please renew the API key."), ErrorKind::Auth),
            // As Google answers an invalid key (the message alone decides too).
            (
                400,
                br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.",
                    "status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",
                    "reason":"API_KEY_INVALID","domain":"googleapis.com",
                    "metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#
                    .to_vec(),
                ErrorKind::Auth,
            ),
            (
                400,
                br#"{"error":{"code":400,"message":"Bad key","status":"INVALID_ARGUMENT",
                    "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#
                    .to_vec(),
                ErrorKind::Auth,
            ),
            (404, body("NOT_FOUND", "models/x is not found"), ErrorKind::NotFound),
            (500, body("INTERNAL", "An internal error has occurred."), ErrorKind::Server),
            (503, body("UNAVAILABLE", "The model is overloaded."), ErrorKind::Overloaded),
            (504, body("DEADLINE_EXCEEDED", "Deadline exceeded."), ErrorKind::Timeout),
        ];
        for (status, body, kind) in cases {
            let error = classify(status, None, &body);
            assert_eq!(error.kind, kind, "{}", String::from_utf8_lossy(&body));
            assert_eq!(error.status, Some(status));
        }
        let limited = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#;
        let error = classify(429, None, limited);
        assert_eq!((error.kind, error.retry_after), (ErrorKind::RateLimited, Some(Duration::from_secs(22))));
        let error = classify(429, Some(Duration::from_secs(3)), limited);
        assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
    }
}
