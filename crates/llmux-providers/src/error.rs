//! Upstream failures as data: what kind, whether another route may be tried, and how
//! long a rate-limited route should rest. Messages never contain provider keys.

use std::fmt;
use std::time::Duration;

/// What went wrong upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not connect (DNS, refused, TLS).
    Connect,
    /// A connect, first-byte, idle or total deadline passed.
    Timeout,
    /// 429 rate limit (retryable elsewhere, and later here).
    RateLimited,
    /// 503/529 overloaded.
    Overloaded,
    /// Billing or quota exhausted (402, `insufficient_quota`): not retryable here.
    QuotaExhausted,
    /// The provider refused our credentials (401/403): an operator problem.
    Auth,
    /// The provider refuses to serve the caller's region.
    RegionDenied,
    /// The route's model does not exist at the provider (404).
    NotFound,
    /// The request itself is invalid (400/413/422): the caller's fault.
    BadRequest,
    /// The prompt exceeds the model's context window.
    ContextLength,
    /// The provider's content filter blocked the request.
    ContentFiltered,
    /// 5xx or other server failure.
    Server,
    /// The provider answered something we could not understand.
    Protocol,
}

impl ErrorKind {
    /// Whether the failure is the caller's fault, so trying another route would
    /// fail the same way.
    pub fn is_client_fault(&self) -> bool {
        matches!(self, ErrorKind::BadRequest | ErrorKind::ContextLength | ErrorKind::ContentFiltered)
    }

    /// Whether another route may be tried after this failure.
    pub fn may_fail_over(&self) -> bool {
        !self.is_client_fault()
    }

    /// Stable label for metrics and the usage ledger.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::Auth => "auth",
            ErrorKind::RegionDenied => "region_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::ContextLength => "context_length",
            ErrorKind::ContentFiltered => "content_filtered",
            ErrorKind::Server => "server",
            ErrorKind::Protocol => "protocol",
        }
    }
}

/// One failed attempt at one provider.
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub kind: ErrorKind,
    /// HTTP status the provider answered with, if it answered.
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// The provider's own message, passed to the caller only for caller faults.
    pub message: Option<String>,
}

impl UpstreamError {
    pub fn new(kind: ErrorKind) -> UpstreamError {
        UpstreamError { kind, status: None, retry_after: None, message: None }
    }

    /// Classifies an HTTP error answer with an OpenAI-shaped body.
    pub fn from_openai_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> UpstreamError {
        let (message, code, kind_text) = llmux_wire::openai::error::parse_upstream(body).unwrap_or_default();
        let code = code.unwrap_or_default();
        let kind_text = kind_text.unwrap_or_default();
        let mentions = |needle: &str| code.contains(needle) || kind_text.contains(needle);
        let kind = match status {
            400 if mentions("context_length") => ErrorKind::ContextLength,
            400 if mentions("content_filter") => ErrorKind::ContentFiltered,
            400 | 413 | 422 => ErrorKind::BadRequest,
            401 => ErrorKind::Auth,
            402 => ErrorKind::QuotaExhausted,
            403 if mentions("unsupported_country") => ErrorKind::RegionDenied,
            403 => ErrorKind::Auth,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            429 if mentions("insufficient_quota") => ErrorKind::QuotaExhausted,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Overloaded,
            _ if status >= 500 => ErrorKind::Server,
            _ => ErrorKind::Protocol,
        };
        UpstreamError { kind, status: Some(status), retry_after, message }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} (HTTP {status})", self.kind.label()),
            None => f.write_str(self.kind.label()),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// Parses a `Retry-After` header value in seconds (HTTP dates are ignored).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let seconds: f64 = value?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_openai_errors() {
        let cases: [(u16, &str, ErrorKind); 9] = [
            (400, r#"{"error":{"code":"context_length_exceeded","message":"too long"}}"#, ErrorKind::ContextLength),
            (400, r#"{"error":{"message":"bad"}}"#, ErrorKind::BadRequest),
            (401, r#"{"error":{"message":"Incorrect API key"}}"#, ErrorKind::Auth),
            (
                403,
                r#"{"error":{"code":"unsupported_country_region_territory","message":"no"}}"#,
                ErrorKind::RegionDenied,
            ),
            (429, r#"{"error":{"code":"insufficient_quota"}}"#, ErrorKind::QuotaExhausted),
            (429, r#"{"error":{"code":"rate_limit_exceeded"}}"#, ErrorKind::RateLimited),
            (503, "not json", ErrorKind::Overloaded),
            (500, "", ErrorKind::Server),
            (422, r#"{"object":"error","message":"x","code":422}"#, ErrorKind::BadRequest),
        ];
        for (status, body, kind) in cases {
            assert_eq!(
                UpstreamError::from_openai_response(status, None, body.as_bytes()).kind,
                kind,
                "{status} {body}"
            );
        }
        assert!(ErrorKind::BadRequest.is_client_fault());
        assert!(ErrorKind::RegionDenied.may_fail_over());
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
