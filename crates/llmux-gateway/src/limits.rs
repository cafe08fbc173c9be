//! Rate limits per key and per team (step 2, admit): requests per minute (`rpm_limit`)
//! and tokens per minute (`tpm_limit`, input + output), counted in fixed one-minute
//! windows in this process. A request of a key in a team must fit both windows, so the
//! tighter limit applies, and the team's window is shared by all its keys.
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

/// The windows of every limited key and team.
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

/// What one request is limited by: its key, and its key's team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The window's name: the key id, or `team:` and the team name.
    pub id: String,
    /// How refusals name it: `this key`, or `team NAME`.
    pub label: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
}

impl Scope {
    pub fn key(id: &str, rpm: Option<u64>, tpm: Option<u64>) -> Scope {
        Scope { id: id.to_owned(), label: "this key".to_owned(), rpm, tpm }
    }

    pub fn team(name: &str, rpm: Option<u64>, tpm: Option<u64>) -> Scope {
        Scope { id: format!("team:{name}"), label: format!("team {name}"), rpm, tpm }
    }

    /// A deployment's window: every route to `upstream_model` at `provider`.
    pub fn route(provider: &str, upstream_model: &str, rpm: Option<u64>, tpm: Option<u64>) -> Scope {
        Scope {
            id: format!("route:{provider}/{upstream_model}"),
            label: format!("route {provider}/{upstream_model}"),
            rpm,
            tpm,
        }
    }

    fn limited(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// The limits as the `x-ratelimit-*` headers show them: of all the request's scopes,
/// the one with the fewest requests (and, separately, tokens) left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit_requests: Option<u64>,
    pub remaining_requests: Option<u64>,
    pub limit_tokens: Option<u64>,
    pub remaining_tokens: Option<u64>,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
}

impl RateInfo {
    fn tighten(&mut self, scope: &Scope, window: &Window) {
        if let Some(limit) = scope.rpm {
            let remaining = limit.saturating_sub(window.requests);
            if self.remaining_requests.is_none_or(|known| remaining < known) {
                (self.limit_requests, self.remaining_requests) = (Some(limit), Some(remaining));
            }
        }
        if let Some(limit) = scope.tpm {
            let remaining = limit.saturating_sub(window.tokens);
            if self.remaining_tokens.is_none_or(|known| remaining < known) {
                (self.limit_tokens, self.remaining_tokens) = (Some(limit), Some(remaining));
            }
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// Seconds until the next window.
    pub retry_after_s: u64,
    pub info: RateInfo,
}

/// An admitted request: counts its tokens in each of its windows when it settles.
#[derive(Debug)]
pub struct Reservation {
    limits: Arc<Limits>,
    scopes: Vec<String>,
    window_start: u64,
}

impl Reservation {
    /// Adds the request's tokens to the windows it was admitted in.
    pub fn settle(self, tokens: u64) {
        let mut windows = self.limits.windows.lock();
        for id in &self.scopes {
            if let Some(window) = windows.get_mut(id)
                && window.start_ms == self.window_start
            {
                window.tokens = window.tokens.saturating_add(tokens);
            }
        }
    }
}

impl Limits {
    /// Whether `scope`'s window would admit a request now (nothing is counted).
    pub fn has_room(&self, scope: &Scope, now_ms: u64) -> bool {
        let start = now_ms - now_ms % WINDOW_MS;
        let windows = self.windows.lock();
        let Some(window) = windows.get(&scope.id).filter(|window| window.start_ms == start) else { return true };
        scope.rpm.is_none_or(|limit| window.requests < limit) && scope.tpm.is_none_or(|limit| window.tokens < limit)
    }

    /// Admits a request limited by `scopes` at `now_ms`: all of them admit it, or none
    /// counts it. `None` when no scope has a limit.
    pub fn admit(self: &Arc<Self>, scopes: &[Scope], now_ms: u64) -> Result<Option<(Reservation, RateInfo)>, Refusal> {
        if !scopes.iter().any(Scope::limited) {
            return Ok(None);
        }
        let start = now_ms - now_ms % WINDOW_MS;
        let reset_ms = start + WINDOW_MS - now_ms;
        let mut info = RateInfo {
            limit_requests: None,
            remaining_requests: None,
            limit_tokens: None,
            remaining_tokens: None,
            reset_ms,
        };
        let mut windows = self.windows.lock();
        let mut refusal = None;
        for scope in scopes.iter().filter(|scope| scope.limited()) {
            let window = windows.entry(scope.id.clone()).or_default();
            if window.start_ms != start {
                *window = Window { start_ms: start, requests: 0, tokens: 0 };
            }
            info.tighten(scope, window);
            if refusal.is_some() {
                continue;
            }
            if let Some(limit) = scope.rpm
                && window.requests >= limit
            {
                refusal = Some(format!("Rate limit reached: {limit} requests per minute for {}.", scope.label));
            } else if let Some(limit) = scope.tpm
                && window.tokens >= limit
            {
                refusal = Some(format!("Rate limit reached: {limit} tokens per minute for {}.", scope.label));
            }
        }
        if let Some(message) = refusal {
            return Err(Refusal { message, retry_after_s: reset_ms.div_ceil(1000).max(1), info });
        }
        let mut ids = Vec::with_capacity(scopes.len());
        for scope in scopes.iter().filter(|scope| scope.limited()) {
            if let Some(window) = windows.get_mut(&scope.id) {
                window.requests += 1;
            }
            ids.push(scope.id.clone());
        }
        if let Some(remaining) = &mut info.remaining_requests {
            *remaining = remaining.saturating_sub(1);
        }
        Ok(Some((Reservation { limits: self.clone(), scopes: ids, window_start: start }, info)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, rpm: Option<u64>, tpm: Option<u64>) -> [Scope; 1] {
        [Scope::key(id, rpm, tpm)]
    }

    #[test]
    fn exactly_the_rpm_limit_is_admitted_per_window() {
        let limits = Arc::new(Limits::default());
        let now = 120_000 + 5_000;
        let admitted: Vec<_> = (0..8).map(|_| limits.admit(&key("k", Some(5), None), now)).collect();
        assert_eq!(admitted.iter().filter(|outcome| outcome.is_ok()).count(), 5);
        let (_, info) = admitted[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!((info.limit_requests, info.remaining_requests), (Some(5), Some(4)));
        let refusal = admitted.last().unwrap().as_ref().unwrap_err();
        assert_eq!(refusal.retry_after_s, 55);
        assert_eq!(refusal.info.remaining_requests, Some(0));
        // The next window starts afresh; other keys have their own.
        assert!(limits.admit(&key("k", Some(5), None), 180_000).is_ok());
        assert!(limits.admit(&key("other", Some(5), None), now).is_ok());
        assert!(limits.admit(&key("free", None, None), now).unwrap().is_none());
    }

    #[test]
    fn tokens_count_when_requests_settle() {
        let limits = Arc::new(Limits::default());
        let (first, info) = limits.admit(&key("k", None, Some(30)), 1_000).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(30));
        first.settle(13);
        let (second, info) = limits.admit(&key("k", None, Some(30)), 2_000).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(17));
        second.settle(20);
        let refusal = limits.admit(&key("k", None, Some(30)), 3_000).unwrap_err();
        assert!(refusal.message.contains("30 tokens per minute for this key"));
        assert_eq!(refusal.info.remaining_tokens, Some(0));
        // A settlement after its window ended does not count against the next one.
        let (late, _) = limits.admit(&key("j", None, Some(30)), 59_000).unwrap().unwrap();
        assert!(limits.admit(&key("j", None, Some(30)), 61_000).is_ok());
        late.settle(1_000);
        assert!(limits.admit(&key("j", None, Some(30)), 62_000).is_ok());
    }

    #[test]
    fn a_team_window_is_shared_by_its_keys_and_the_tighter_limit_wins() {
        let limits = Arc::new(Limits::default());
        let team = Scope::team("search", Some(3), Some(1_000));
        let of = |key_id: &str, rpm| [Scope::key(key_id, rpm, None), team.clone()];
        // Two keys with generous limits of their own share the team's three requests.
        let (first, info) = limits.admit(&of("a", Some(100)), 1_000).unwrap().unwrap();
        assert_eq!((info.limit_requests, info.remaining_requests), (Some(3), Some(2)));
        assert_eq!((info.limit_tokens, info.remaining_tokens), (Some(1_000), Some(1_000)));
        assert!(limits.admit(&of("b", Some(100)), 1_000).is_ok());
        assert!(limits.admit(&of("a", Some(100)), 1_000).is_ok());
        let refusal = limits.admit(&of("b", Some(100)), 1_000).unwrap_err();
        assert_eq!(refusal.message, "Rate limit reached: 3 requests per minute for team search.");
        // A refused request counted in none of its windows: key b has had one request.
        let (_, info) = limits.admit(&[Scope::key("b", Some(100), None)], 2_000).unwrap().unwrap();
        assert_eq!(info.remaining_requests, Some(98));
        // Tokens settle into every window of the request.
        first.settle(400);
        let tokens = Scope::team("search", None, Some(1_000));
        let (_, info) = limits.admit(&[Scope::key("b", None, Some(2_000)), tokens.clone()], 2_000).unwrap().unwrap();
        assert_eq!((info.limit_tokens, info.remaining_tokens), (Some(1_000), Some(600)));
        let (_, info) = limits.admit(&[Scope::key("a", None, Some(500)), tokens], 2_000).unwrap().unwrap();
        assert_eq!((info.limit_tokens, info.remaining_tokens), (Some(500), Some(100)));
        // A key's own tighter limit applies inside its team.
        let tight = [Scope::key("c", Some(1), None), Scope::team("search", Some(3), None)];
        assert!(limits.admit(&tight, 61_000).is_ok());
        assert!(limits.admit(&tight, 61_000).unwrap_err().message.contains("for this key"));
    }
}
