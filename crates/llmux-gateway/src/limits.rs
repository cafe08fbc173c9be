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
//! With Redis (`storage.redis`), windows are shared by the fleet without a Redis round
//! trip per request: an instance claims a lease of requests (a sixteenth of the limit,
//! at least one) from the window's counter in Redis, admits requests from it locally,
//! and claims again when it is used up. The counter only ever grows by what is
//! granted, so the fleet never admits more than the limit; leases an idle instance
//! does not use are given back after a second. Tokens are added to the fleet's counter
//! by a background sync every 200 ms, which also reads the fleet-wide totals; a window
//! can therefore end above `tpm_limit` by what the fleet used in about one sync
//! interval. While Redis is unreachable, each instance counts alone.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::FastMap;

const WINDOW_MS: u64 = 60_000;
/// Fleet counters outlive their window by this much.
const COUNTER_TTL_MS: u64 = 2 * WINDOW_MS;
/// An unused lease is given back after this long without a request.
const IDLE_RELEASE_MS: u64 = 1_000;
/// After the fleet had no more requests for a window, ask again only after this long.
const EXHAUSTED_RETRY_MS: u64 = 250;

/// The windows of every limited key, team and route.
#[derive(Debug, Default)]
pub struct Limits {
    windows: Mutex<FastMap<String, Window>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start_ms: u64,
    /// Requests admitted here in this window.
    requests: u64,
    /// Tokens of requests settled here in this window.
    tokens: u64,
    /// Fleet mode: requests this instance may admit in this window (leases claimed).
    granted: u64,
    /// Fleet mode: until when the fleet is known to have no more requests to lease.
    exhausted_until: u64,
    /// Fleet mode: of `tokens`, what was added to the fleet's counter.
    synced_tokens: u64,
    /// Fleet mode: the fleet's tokens and leased requests at the last sync.
    fleet_tokens: u64,
    fleet_requests: u64,
    last_active: u64,
}

impl Window {
    fn fresh(start_ms: u64) -> Window {
        Window { start_ms, ..Window::default() }
    }

    /// Tokens used in the window as far as this instance knows.
    fn tokens_seen(&self, fleet: bool) -> u64 {
        if fleet { self.fleet_tokens + (self.tokens - self.synced_tokens) } else { self.tokens }
    }

    /// Requests counted against the window as far as this instance knows.
    fn requests_seen(&self, fleet: bool) -> u64 {
        if fleet {
            // Leased by the fleet, less what this instance leased and has not used.
            self.fleet_requests.max(self.granted).saturating_sub(self.granted - self.requests.min(self.granted))
        } else {
            self.requests
        }
    }
}

/// What one request is limited by: its key, its key's team, or a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The window's name: the key id, `team:` and the team name, or `route:` and the
    /// provider and upstream model.
    pub id: String,
    /// How refusals name it: `this key`, `team NAME` or `route PROVIDER/MODEL`.
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
/// the one with the fewest requests (and, separately, tokens) left. With Redis the
/// remaining counts are this instance's view (at most one sync old).
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
    fn tighten(&mut self, scope: &Scope, window: &Window, fleet: bool) {
        if let Some(limit) = scope.rpm {
            let remaining = limit.saturating_sub(window.requests_seen(fleet));
            if self.remaining_requests.is_none_or(|known| remaining < known) {
                (self.limit_requests, self.remaining_requests) = (Some(limit), Some(remaining));
            }
        }
        if let Some(limit) = scope.tpm {
            let remaining = limit.saturating_sub(window.tokens_seen(fleet));
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
    /// Milliseconds until the next window.
    pub retry_after_ms: u64,
    pub info: RateInfo,
}

impl Refusal {
    /// Leases claimed for this instance's requests were taken by its other requests
    /// round after round: a brief refusal rather than counting past the fleet's limit.
    pub fn busy() -> Refusal {
        Refusal {
            message: "Rate limit reached: too many concurrent requests; retry shortly.".to_owned(),
            retry_after_ms: 1_000,
            info: RateInfo {
                limit_requests: None,
                remaining_requests: None,
                limit_tokens: None,
                remaining_tokens: None,
                reset_ms: 1_000,
            },
        }
    }
}

/// A lease of requests to claim from the fleet before a request can be admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWanted {
    pub scope: String,
    pub window_start: u64,
    /// The fleet counter's name.
    pub counter: String,
    pub limit: u64,
    pub want: u64,
    pub ttl_ms: u64,
}

/// Why [`Limits::admit`] did not admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAdmitted {
    Refused(Refusal),
    /// Fleet mode: these leases must be claimed first (then admit again).
    NeedLeases(Vec<LeaseWanted>),
}

#[cfg(test)]
impl NotAdmitted {
    fn refusal(self) -> Refusal {
        match self {
            NotAdmitted::Refused(refusal) => refusal,
            NotAdmitted::NeedLeases(leases) => panic!("not refused; leases wanted: {leases:?}"),
        }
    }
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

/// One window's part in a fleet sync: tokens to add, and what the fleet's counters
/// read afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncItem {
    pub scope: String,
    pub window_start: u64,
    pub tokens_counter: String,
    pub tokens_delta: u64,
    pub requests_counter: String,
}

/// Fleet counter names of a window.
fn counters(scope: &str, window_start: u64) -> (String, String) {
    let minute = window_start / WINDOW_MS;
    (format!("rpm:{scope}:{minute}"), format!("tpm:{scope}:{minute}"))
}

impl Limits {
    /// Whether `scope`'s window would admit a request now (nothing is counted).
    pub fn has_room(&self, scope: &Scope, now_ms: u64, fleet: bool) -> bool {
        let start = now_ms - now_ms % WINDOW_MS;
        let windows = self.windows.lock();
        let Some(window) = windows.get(&scope.id).filter(|window| window.start_ms == start) else { return true };
        let requests_full = scope.rpm.is_some_and(|limit| {
            if fleet {
                window.requests >= window.granted && window.exhausted_until > now_ms
            } else {
                window.requests >= limit
            }
        });
        !requests_full && scope.tpm.is_none_or(|limit| window.tokens_seen(fleet) < limit)
    }

    /// Admits a request limited by `scopes` at `now_ms`: all of them admit it, or none
    /// counts it. `Ok(None)` when no scope has a limit. With `fleet`, requests are
    /// admitted from leases; [`NotAdmitted::NeedLeases`] says which to claim first.
    pub fn admit(
        self: &Arc<Self>,
        scopes: &[Scope],
        now_ms: u64,
        fleet: bool,
    ) -> Result<Option<(Reservation, RateInfo)>, NotAdmitted> {
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
        let mut leases = Vec::new();
        for scope in scopes.iter().filter(|scope| scope.limited()) {
            // No key allocation for a window already known (the common case).
            if !windows.contains_key(&scope.id) {
                windows.insert(scope.id.clone(), Window::default());
            }
            let Some(window) = windows.get_mut(&scope.id) else { continue };
            if window.start_ms != start {
                *window = Window::fresh(start);
            }
            window.last_active = now_ms;
            info.tighten(scope, window, fleet);
            if refusal.is_some() {
                continue;
            }
            if let Some(limit) = scope.tpm
                && window.tokens_seen(fleet) >= limit
            {
                refusal = Some(format!("Rate limit reached: {limit} tokens per minute for {}.", scope.label));
                continue;
            }
            let Some(limit) = scope.rpm else { continue };
            let full = if fleet {
                window.requests >= window.granted && window.exhausted_until > now_ms
            } else {
                window.requests >= limit
            };
            if full {
                refusal = Some(format!("Rate limit reached: {limit} requests per minute for {}.", scope.label));
            } else if fleet && window.requests >= window.granted {
                let (requests_counter, _) = counters(&scope.id, start);
                leases.push(LeaseWanted {
                    scope: scope.id.clone(),
                    window_start: start,
                    counter: requests_counter,
                    limit,
                    want: (limit / 16).max(1),
                    ttl_ms: COUNTER_TTL_MS,
                });
            }
        }
        if let Some(message) = refusal {
            return Err(NotAdmitted::Refused(Refusal { message, retry_after_ms: reset_ms.max(1), info }));
        }
        if !leases.is_empty() {
            return Err(NotAdmitted::NeedLeases(leases));
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

    /// The fleet granted `granted` of a wanted lease (fewer than wanted: it has no more
    /// for now).
    pub fn granted(&self, lease: &LeaseWanted, granted: u64, now_ms: u64) {
        let mut windows = self.windows.lock();
        let Some(window) = windows.get_mut(&lease.scope).filter(|window| window.start_ms == lease.window_start) else {
            return;
        };
        window.granted += granted;
        window.fleet_requests = window.fleet_requests.max(window.granted);
        if granted < lease.want {
            window.exhausted_until = now_ms + EXHAUSTED_RETRY_MS;
        }
    }

    /// The fleet sync's work: for each window of the current minute that ran in fleet
    /// mode, its tokens not yet added. Also drops windows of past minutes.
    pub fn sync_items(&self, now_ms: u64) -> Vec<SyncItem> {
        let start = now_ms - now_ms % WINDOW_MS;
        let mut windows = self.windows.lock();
        windows.retain(|_, window| window.start_ms + WINDOW_MS >= start);
        windows
            .iter()
            .filter(|(_, window)| window.start_ms == start && (window.granted > 0 || window.tokens > 0))
            .map(|(scope, window)| {
                let (requests_counter, tokens_counter) = counters(scope, start);
                SyncItem {
                    scope: scope.clone(),
                    window_start: start,
                    tokens_counter,
                    tokens_delta: window.tokens - window.synced_tokens,
                    requests_counter,
                }
            })
            .collect()
    }

    /// Applies a sync: `tokens_delta` was added; the fleet's counters now read
    /// `fleet_tokens` and `fleet_requests`.
    pub fn synced(&self, item: &SyncItem, fleet_tokens: u64, fleet_requests: u64) {
        let mut windows = self.windows.lock();
        if let Some(window) = windows.get_mut(&item.scope).filter(|window| window.start_ms == item.window_start) {
            window.synced_tokens += item.tokens_delta;
            window.fleet_tokens = fleet_tokens;
            window.fleet_requests = fleet_requests;
        }
    }

    /// Leases idle for a second: (counter, unused requests) to give back. They are
    /// taken off this instance's share at once.
    pub fn idle_leases(&self, now_ms: u64) -> Vec<(String, u64)> {
        self.unused_leases(now_ms, IDLE_RELEASE_MS)
    }

    /// Every unused lease (at shutdown), taken off this instance's share.
    pub fn all_leases(&self, now_ms: u64) -> Vec<(String, u64)> {
        self.unused_leases(now_ms, 0)
    }

    fn unused_leases(&self, now_ms: u64, idle_ms: u64) -> Vec<(String, u64)> {
        let start = now_ms - now_ms % WINDOW_MS;
        let mut windows = self.windows.lock();
        let mut idle = Vec::new();
        for (scope, window) in windows.iter_mut() {
            if window.start_ms == start
                && window.granted > window.requests
                && now_ms.saturating_sub(window.last_active) >= idle_ms
            {
                idle.push((counters(scope, start).0, window.granted - window.requests));
                window.granted = window.requests;
            }
        }
        idle
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
        let admitted: Vec<_> = (0..8).map(|_| limits.admit(&key("k", Some(5), None), now, false)).collect();
        assert_eq!(admitted.iter().filter(|outcome| outcome.is_ok()).count(), 5);
        let (_, info) = admitted[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!((info.limit_requests, info.remaining_requests), (Some(5), Some(4)));
        let refusal = admitted.last().unwrap().as_ref().unwrap_err().clone().refusal();
        assert_eq!(refusal.retry_after_ms, 55_000);
        assert_eq!(refusal.info.remaining_requests, Some(0));
        // The next window starts afresh; other keys have their own.
        assert!(limits.admit(&key("k", Some(5), None), 180_000, false).is_ok());
        assert!(limits.admit(&key("other", Some(5), None), now, false).is_ok());
        assert!(limits.admit(&key("free", None, None), now, false).unwrap().is_none());
    }

    #[test]
    fn tokens_count_when_requests_settle() {
        let limits = Arc::new(Limits::default());
        let (first, info) = limits.admit(&key("k", None, Some(30)), 1_000, false).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(30));
        first.settle(13);
        let (second, info) = limits.admit(&key("k", None, Some(30)), 2_000, false).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(17));
        second.settle(20);
        let refusal = limits.admit(&key("k", None, Some(30)), 3_000, false).unwrap_err().refusal();
        assert!(refusal.message.contains("30 tokens per minute for this key"));
        assert_eq!(refusal.info.remaining_tokens, Some(0));
        // A settlement after its window ended does not count against the next one.
        let (late, _) = limits.admit(&key("j", None, Some(30)), 59_000, false).unwrap().unwrap();
        assert!(limits.admit(&key("j", None, Some(30)), 61_000, false).is_ok());
        late.settle(1_000);
        assert!(limits.admit(&key("j", None, Some(30)), 62_000, false).is_ok());
    }

    #[test]
    fn a_team_window_is_shared_by_its_keys_and_the_tighter_limit_wins() {
        let limits = Arc::new(Limits::default());
        let team = Scope::team("search", Some(3), Some(1_000));
        let of = |key_id: &str, rpm| [Scope::key(key_id, rpm, None), team.clone()];
        // Two keys with generous limits of their own share the team's three requests.
        let (first, info) = limits.admit(&of("a", Some(100)), 1_000, false).unwrap().unwrap();
        assert_eq!((info.limit_requests, info.remaining_requests), (Some(3), Some(2)));
        assert_eq!((info.limit_tokens, info.remaining_tokens), (Some(1_000), Some(1_000)));
        assert!(limits.admit(&of("b", Some(100)), 1_000, false).is_ok());
        assert!(limits.admit(&of("a", Some(100)), 1_000, false).is_ok());
        let refusal = limits.admit(&of("b", Some(100)), 1_000, false).unwrap_err().refusal();
        assert_eq!(refusal.message, "Rate limit reached: 3 requests per minute for team search.");
        // A refused request counted in none of its windows: key b has had one request.
        let (_, info) = limits.admit(&[Scope::key("b", Some(100), None)], 2_000, false).unwrap().unwrap();
        assert_eq!(info.remaining_requests, Some(98));
        // Tokens settle into every window of the request.
        first.settle(400);
        let tokens = Scope::team("search", None, Some(1_000));
        let (_, info) =
            limits.admit(&[Scope::key("b", None, Some(2_000)), tokens.clone()], 2_000, false).unwrap().unwrap();
        assert_eq!((info.limit_tokens, info.remaining_tokens), (Some(1_000), Some(600)));
        let (_, info) = limits.admit(&[Scope::key("a", None, Some(500)), tokens], 2_000, false).unwrap().unwrap();
        assert_eq!((info.limit_tokens, info.remaining_tokens), (Some(500), Some(100)));
        // A key's own tighter limit applies inside its team.
        let tight = [Scope::key("c", Some(1), None), Scope::team("search", Some(3), None)];
        assert!(limits.admit(&tight, 61_000, false).is_ok());
        assert!(limits.admit(&tight, 61_000, false).unwrap_err().refusal().message.contains("for this key"));
    }

    #[test]
    fn in_fleet_mode_requests_are_admitted_from_leases_claimed_first() {
        let limits = Arc::new(Limits::default());
        let scope = key("k", Some(32), None);
        let now = 60_000 + 1_000;
        // Nothing leased yet: claim a sixteenth of the limit first.
        let NotAdmitted::NeedLeases(leases) = limits.admit(&scope, now, true).unwrap_err() else { panic!() };
        assert_eq!(leases.len(), 1);
        let lease = &leases[0];
        assert_eq!((lease.counter.as_str(), lease.limit, lease.want, lease.ttl_ms), ("rpm:k:1", 32, 2, 120_000));
        limits.granted(lease, 2, now);
        assert!(limits.admit(&scope, now, true).unwrap().is_some());
        let (_, info) = limits.admit(&scope, now, true).unwrap().unwrap();
        assert_eq!(info.remaining_requests, Some(30), "the fleet leased 2, both used here");
        assert!(matches!(limits.admit(&scope, now, true), Err(NotAdmitted::NeedLeases(_))));
        // The fleet has none left: refused, until it is asked again a little later.
        limits.granted(lease, 0, now);
        let refusal = limits.admit(&scope, now + 10, true).unwrap_err().refusal();
        assert_eq!(refusal.message, "Rate limit reached: 32 requests per minute for this key.");
        assert!(matches!(limits.admit(&scope, now + 300, true), Err(NotAdmitted::NeedLeases(_))));
        // A lease left unused for a second is given back.
        limits.granted(lease, 2, now + 300);
        assert!(limits.admit(&scope, now + 300, true).is_ok());
        assert!(limits.idle_leases(now + 900).is_empty());
        assert_eq!(limits.idle_leases(now + 1_400), [("rpm:k:1".to_owned(), 1)]);
        assert!(limits.idle_leases(now + 2_400).is_empty(), "given back once");
    }

    #[test]
    fn in_fleet_mode_tokens_are_synced_and_the_fleet_total_counts() {
        let limits = Arc::new(Limits::default());
        let scope = key("k", None, Some(100));
        let (used, _) = limits.admit(&scope, 1_000, true).unwrap().unwrap();
        used.settle(30);
        let items = limits.sync_items(1_500);
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].tokens_counter.as_str(), items[0].tokens_delta), ("tpm:k:0", 30));
        // Other instances used 60 more: 90 of 100 seen.
        limits.synced(&items[0], 90, 0);
        let (more, info) = limits.admit(&scope, 1_600, true).unwrap().unwrap();
        assert_eq!(info.remaining_tokens, Some(10));
        more.settle(15);
        assert_eq!(limits.sync_items(1_700)[0].tokens_delta, 15, "only what is new");
        let refusal = limits.admit(&scope, 1_800, true).unwrap_err().refusal();
        assert!(refusal.message.contains("100 tokens per minute"));
        // Past windows are dropped at the next sync.
        assert!(limits.sync_items(125_000).is_empty());
    }
}
