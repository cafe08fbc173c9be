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

/// How long an error answer asks the caller to wait: `retry-after-ms` (OpenAI, Azure)
/// when present and readable, else `Retry-After` in seconds or as an HTTP date
/// (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`; a date in the past is no wait).
/// `now_unix_ms` is the wall clock (this crate reads none). At most 24 h; callers cap
/// further (`server.max_retry_after_s`).
pub fn retry_after(headers: &http::HeaderMap, now_unix_ms: i64) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let ms = text("retry-after-ms").and_then(|value| value.trim().parse::<f64>().ok());
    if let Some(ms) = ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
        return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    }
    let value = text("retry-after")?;
    parse_retry_after(Some(value)).or_else(|| {
        let at_ms = http_date_unix_s(value.trim())?.checked_mul(1000)?;
        let wait = u64::try_from(at_ms.saturating_sub(now_unix_ms)).unwrap_or(0);
        Some(Duration::from_millis(wait.min(86_400_000)))
    })
}

/// Unix seconds of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date_unix_s(text: &str) -> Option<i64> {
    let rest = text.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let (day, month, year, clock, zone) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if zone != "GMT" || parts.next().is_some() || day.len() != 2 || year.len() != 4 {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = i64::try_from(MONTHS.iter().position(|name| *name == month)?).ok()? + 1;
    let number = |digits: &str| -> Option<i64> {
        digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
    };
    let (day, year) = (number(day)?, number(year)?);
    let mut hms = clock.split(':');
    let (h, m, s) = (number(hms.next()?)?, number(hms.next()?)?, number(hms.next()?)?);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
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
    fn retry_after_headers() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = http::HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, http::HeaderValue::from_static(value));
            }
            map
        };
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777.
        let now = 784_111_777_000;
        assert_eq!(http_date_unix_s("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(http_date_unix_s("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(http_date_unix_s("Tue, 29 Feb 2028 12:00:00 GMT"), Some(1_835_438_400));
        for bad in ["Sun, 06 Nov 1994 08:49:37 PST", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 6 Nov 1994 08:49:37 GMT"] {
            assert_eq!(http_date_unix_s(bad), None, "{bad}");
        }
        let wait = |pairs| retry_after(&headers(pairs), now);
        assert_eq!(wait(&[("retry-after", "Sun, 06 Nov 1994 08:51:07 GMT")]), Some(Duration::from_secs(90)));
        assert_eq!(wait(&[("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT")]), Some(Duration::ZERO));
        assert_eq!(wait(&[("retry-after", "Mon, 06 Nov 1995 08:49:37 GMT")]), Some(Duration::from_secs(86_400)));
        assert_eq!(wait(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(wait(&[("retry-after", "7"), ("retry-after-ms", "1500")]), Some(Duration::from_millis(1500)));
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
