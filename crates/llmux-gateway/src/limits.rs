//! Rate limits per key (step 2, admit): requests per minute (`rpm_limit`) and tokens per
//! minute (`tpm_limit`, input + output), counted in fixed one-minute windows in this
//! process.
//!
//! - A request is admitted while its key's window has fewer than `rpm_limit` requests;
//!   under a burst exactly `rpm_limit` get through per window.
//! - Tokens are known only when a request finishes: a request is admitted while the
//!   window's tokens are under `tpm_limit`, and its own tokens count when it settles.
//!   A window can therefore end above the limit by what the requests admitted before it
//!   filled were still to use.
//! - A refused request gets 429 `rate_limit_exceeded` with `Retry-After` (seconds to the
//!   next window); every answer to a limited key carries OpenAI's `x-ratelimit-*`
//!   headers.
//!
//! Windows are per instance; sharing them across a fleet (Redis) is the next step.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::FastMap;

const WINDOW_MS: u64 = 60_000;

/// The windows of every limited key.
#[derive(Debug, Default)]
pub struct Limits {
    windows: Mutex<FastMap<String, Window>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start_ms: u64,
    requests: u64,
    tokens: u64,
}

/// A key's limits as the `x-ratelimit-*` headers show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit_requests: Option<u64>,
    pub remaining_requests: Option<u64>,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// Seconds until the next window.
    pub retry_after_s: u64,
    pub info: RateInfo,
}

/// An admitted request of a limited key: counts its tokens when it settles.
#[derive(Debug)]
pub struct Reservation {
    limits: Arc<Limits>,
    key_id: String,
    window_start: u64,
}

impl Reservation {
    /// Adds the request's tokens to the window it was admitted in.
    pub fn settle(self, tokens: u64) {
        let mut windows = self.limits.windows.lock();
        if let Some(window) = windows.get_mut(&self.key_id)
            && window.start_ms == self.window_start
        {
            window.tokens = window.tokens.saturating_add(tokens);
        }
    }
}

impl Limits {
    /// Admits a request of key `key_id` with limits `rpm` / `tpm` at `now_ms`; `None`
    /// when the key has no limit.
    pub fn admit(
        self: &Arc<Self>,
        key_id: &str,
        rpm: Option<u64>,
        tpm: Option<u64>,
        now_ms: u64,
    ) -> Result<Option<(Reservation, RateInfo)>, Refusal> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(None);
        }
        let start = now_ms - now_ms % WINDOW_MS;
        let reset_ms = start + WINDOW_MS - now_ms;
        let mut windows = self.windows.lock();
        let window = windows.entry(key_id.to_owned()).or_default();
        if window.start_ms != start {
            *window = Window { start_ms: start, requests: 0, tokens: 0 };
        }
        let info = |window: &Window| RateInfo {
            limit_requests: rpm,
            remaining_requests: rpm.map(|limit| limit.saturating_sub(window.requests)),
            limit_tokens: tpm,
            remaining_tokens: tpm.map(|limit| limit.saturating_sub(window.tokens)),
            reset_ms,
        };
        let refuse = |message: String, window: &Window| Refusal {
            message,
            retry_after_s: reset_ms.div_ceil(1000).max(1),
            info: info(window),
        };
        if let Some(limit) = rpm
            && window.requests >= limit
        {
            return Err(refuse(format!("Rate limit reached: {limit} requests per minute for this key."), window));
        }
        if let Some(limit) = tpm
            && window.tokens >= limit
        {
            return Err(refuse(format!("Rate limit reached: {limit} tokens per minute for this key."), window));
        }
        window.requests += 1;
        let info = info(window);
        Ok(Some((Reservation { limits: self.clone(), key_id: key_id.to_owned(), window_start: start }, info)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_rpm_limit_is_admitted_per_window() {
        let limits = Arc::new(Limits::default());
        let now = 120_000 + 5_000;
        let admitted: Vec<_> = (0..8).map(|_| limits.admit("k", Some(5), None, now)).collect();
        assert_eq!(admitted.iter().filter(|outcome| outcome.is_ok()).count(), 5);
        let refusal = admitted.last().unwrap().as_ref().unwrap_err();
        assert_eq!(refusal.retry_after_s, 55);
        assert_eq!(refusal.info.remaining_requests, Some(0));
        // The next window starts afresh; other keys have their own.
        assert!(limits.admit("k", Some(5), None, 180_000).is_ok());
        assert!(limits.admit("other", Some(5), None, now).is_ok());
        assert!(limits.admit("free", None, None, now).unwrap().is_none());
    }

    #[test]
    fn tokens_count_when_requests_settle() {
        let limits = Arc::new(Limits::default());
        let (first, info) = limits.admit("k", None, Some(30), 1_000).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(30));
        first.settle(13);
        let (second, info) = limits.admit("k", None, Some(30), 2_000).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(17));
        second.settle(20);
        let refusal = limits.admit("k", None, Some(30), 3_000).unwrap_err();
        assert!(refusal.message.contains("30 tokens per minute"));
        assert_eq!(refusal.info.remaining_tokens, Some(0));
        // A settlement after its window ended does not count against the next one.
        let (late, _) = limits.admit("j", None, Some(30), 59_000).unwrap().unwrap();
        assert!(limits.admit("j", None, Some(30), 61_000).is_ok());
        late.settle(1_000);
        assert!(limits.admit("j", None, Some(30), 62_000).is_ok());
    }
}
