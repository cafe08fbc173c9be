//! Authentication: virtual keys, their hashes, and the in-memory key cache.
//!
//! The hot path never waits on the database for a known key: every key is held in
//! memory and refreshed from the store every `server.key_refresh_ms` (so a key
//! created or revoked by the CLI or another instance takes effect within that time;
//! this instance's own admin API updates the cache at once). An unknown key is looked
//! up in the store once, then remembered as unknown for a few seconds. Teams are few:
//! each refresh reads them all, so changed and deleted teams are seen in that time too.

use crate::FastMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use llmux_store::{KeyRecord, Store, StoreError, TeamRecord};
use llmux_types::Region;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

/// Every virtual key starts with this.
pub const KEY_PREFIX: &str = "sk-llmux-";

/// How long an unknown key is remembered as unknown.
const NEGATIVE_TTL_MS: i64 = 5_000;
/// Bound on remembered unknown keys (a flood of random keys cannot grow memory).
const NEGATIVE_CAPACITY: usize = 10_000;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key: Arc<KeyRecord>,
    /// The key's team, when it has one that exists.
    pub team: Option<Arc<TeamRecord>>,
    /// The key's region, else its team's.
    pub region: Option<Region>,
}

impl Caller {
    /// Whether the key (and its team) may use the public model `model`.
    pub fn may_use(&self, model: &str) -> bool {
        let allows = |list: &Option<Vec<String>>| {
            list.as_ref().is_none_or(|models| models.iter().any(|m| m == model || m == "*"))
        };
        allows(&self.key.models) && self.team.as_ref().is_none_or(|team| allows(&team.models))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key has been revoked")]
    Revoked,
    #[error("this API key has expired")]
    Expired,
    #[error("the key store is unavailable")]
    StoreUnavailable,
}

/// Generates a new plain key (`sk-llmux-` + 43 base62 characters, ~256 bits).
pub fn generate_key() -> String {
    format!("{KEY_PREFIX}{}", random_base62(43))
}

/// A new key id (`key_` + 16 base62 characters).
pub fn generate_key_id() -> String {
    format!("key_{}", random_base62(16))
}

/// Hex SHA-256 of a plain key: what the store keeps.
pub fn hash_key(plain: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(plain.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// The displayable start of a key (`sk-llmux-AbCd`).
pub fn key_prefix(plain: &str) -> String {
    plain.chars().take(KEY_PREFIX.len() + 4).collect()
}

pub(crate) fn random_base62(length: usize) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(length);
    let mut buffer = [0u8; 64];
    while out.len() < length {
        getrandom::fill(&mut buffer).expect("the operating system's random source is available");
        for byte in buffer {
            // Rejection sampling keeps the distribution uniform (248 = 4 * 62).
            if byte < 248 && out.len() < length {
                out.push(ALPHABET[usize::from(byte % 62)] as char);
            }
        }
    }
    out
}

/// Keys by hash, in memory.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: RwLock<FastMap<String, Arc<KeyRecord>>>,
    teams: RwLock<FastMap<String, Arc<TeamRecord>>>,
    unknown: RwLock<FastMap<String, i64>>,
    /// Highest store change number (`change_seq`) seen, for incremental refreshes.
    watermark: AtomicI64,
}

impl KeyCache {
    /// Loads every key.
    pub async fn load(store: &dyn Store) -> Result<KeyCache, StoreError> {
        let cache = KeyCache::default();
        cache.apply(store.list_keys().await?);
        cache.set_teams(store.list_teams().await?, i64::MIN);
        Ok(cache)
    }

    /// Authenticates a presented key.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        presented: Option<&str>,
        now_ms: i64,
    ) -> Result<Caller, AuthError> {
        let presented = presented.map(str::trim).filter(|key| !key.is_empty()).ok_or(AuthError::Missing)?;
        if !presented.starts_with(KEY_PREFIX) {
            return Err(AuthError::Invalid);
        }
        let hash = hash_key(presented);
        let cached = self.keys.read().get(&hash).cloned();
        let key = match cached {
            Some(key) => key,
            None => self.lookup(store, &hash, now_ms).await?,
        };
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if key.expires_at.is_some_and(|expires| expires <= now_ms) {
            return Err(AuthError::Expired);
        }
        let team = match key.team.as_deref() {
            None => None,
            Some(name) => {
                let cached = self.teams.read().get(name).cloned();
                match cached {
                    Some(team) => Some(team),
                    None => self.team_lookup(store, name).await?,
                }
            }
        };
        let region = key
            .region
            .as_deref()
            .or_else(|| team.as_ref().and_then(|team| team.region.as_deref()))
            .and_then(Region::parse);
        Ok(Caller { key, team, region })
    }

    /// Whether `presented` is a key this instance holds in memory (checking it costs no
    /// store read).
    pub fn holds(&self, presented: Option<&str>) -> bool {
        let Some(presented) = presented.map(str::trim).filter(|key| key.starts_with(KEY_PREFIX)) else {
            return false;
        };
        self.keys.read().contains_key(&hash_key(presented))
    }

    async fn lookup(&self, store: &dyn Store, hash: &str, now_ms: i64) -> Result<Arc<KeyRecord>, AuthError> {
        if self.unknown.read().get(hash).is_some_and(|until| *until > now_ms) {
            return Err(AuthError::Invalid);
        }
        match store.key_by_hash(hash).await {
            Ok(Some(key)) => Ok(self.looked_up(key)),
            Ok(None) => {
                let mut unknown = self.unknown.write();
                if unknown.len() >= NEGATIVE_CAPACITY {
                    unknown.retain(|_, until| *until > now_ms);
                    if unknown.len() >= NEGATIVE_CAPACITY {
                        unknown.clear();
                    }
                }
                unknown.insert(hash.to_owned(), now_ms + NEGATIVE_TTL_MS);
                Err(AuthError::Invalid)
            }
            Err(_) => Err(AuthError::StoreUnavailable),
        }
    }

    /// A key's team this instance has not cached yet (created through another instance
    /// moments ago): read from the store, so the key never goes without its team's
    /// budget and limits. A team that no longer exists is none.
    async fn team_lookup(&self, store: &dyn Store, name: &str) -> Result<Option<Arc<TeamRecord>>, AuthError> {
        match store.team(name).await {
            Ok(Some(team)) => {
                Ok(Some(self.teams.write().entry(team.name.clone()).or_insert_with(|| Arc::new(team)).clone()))
            }
            Ok(None) => Ok(None),
            Err(_) => Err(AuthError::StoreUnavailable),
        }
    }

    /// Caches a key read from the store on a miss, unless a version arrived meanwhile
    /// (a revocation through this instance, a notice, a refresh): the read may predate
    /// it. Returns the version that is cached.
    fn looked_up(&self, key: KeyRecord) -> Arc<KeyRecord> {
        self.keys.write().entry(key.key_hash.clone()).or_insert_with(|| Arc::new(key)).clone()
    }

    /// Puts (new versions of) keys into the cache.
    pub fn apply(&self, keys: Vec<KeyRecord>) {
        if keys.is_empty() {
            return;
        }
        let mut map = self.keys.write();
        let mut unknown = self.unknown.write();
        for key in keys {
            self.watermark.fetch_max(key.change_seq, Ordering::Relaxed);
            unknown.remove(&key.key_hash);
            // A refresh that read the store before a change (a revocation applied here
            // directly) must not put the older version back; versions are the store's
            // change numbers, and a revocation is never undone.
            if let Some(known) = map.get(&key.key_hash)
                && (known.change_seq > key.change_seq || (known.revoked_at.is_some() && key.revoked_at.is_none()))
            {
                continue;
            }
            map.insert(key.key_hash.clone(), Arc::new(key));
        }
    }

    /// Replaces every team with what the store held when it was read at `read_at` (Unix
    /// ms), keeping what this instance's admin API applied meanwhile: a newer version of
    /// a team, or a team created after the read (else its keys would go without its
    /// budget and limits until the next refresh).
    pub fn set_teams(&self, teams: Vec<TeamRecord>, read_at: i64) {
        let mut map = self.teams.write();
        let mut fresh: FastMap<String, Arc<TeamRecord>> = teams
            .into_iter()
            .map(|team| match map.get(&team.name) {
                Some(known) if known.updated_at > team.updated_at => (team.name.clone(), known.clone()),
                _ => (team.name.clone(), Arc::new(team)),
            })
            .collect();
        for (name, team) in map.iter() {
            // With an overlap for clock skew between writers, as for keys.
            if !fresh.contains_key(name) && team.updated_at >= read_at - 5_000 {
                fresh.insert(name.clone(), team.clone());
            }
        }
        *map = fresh;
    }

    /// Puts a new version of a team into the cache (this instance's admin API).
    pub fn apply_team(&self, team: TeamRecord) {
        self.teams.write().insert(team.name.clone(), Arc::new(team));
    }

    /// Forgets a deleted team.
    pub fn remove_team(&self, name: &str) {
        self.teams.write().remove(name);
    }

    /// Pulls keys changed since the last refresh: those with a store change number
    /// above the highest seen (the store numbers changes in commit order, so no
    /// writer's clock can hide one).
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let after = self.watermark.load(Ordering::Relaxed);
        let keys = store.keys_changed_since(after).await?;
        self.apply(keys);
        let read_at = crate::clock::wall_ms();
        self.set_teams(store.list_teams().await?, read_at);
        Ok(())
    }

    /// Runs [`KeyCache::refresh`] every `interval` until `shutdown` fires.
    pub async fn refresh_loop(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Err(error) = self.refresh(store.as_ref()).await {
                        tracing::warn!(%error, "Key refresh failed; serving cached keys.");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_right_and_hash_stably() {
        let key = generate_key();
        assert!(key.starts_with(KEY_PREFIX));
        assert_eq!(key.len(), KEY_PREFIX.len() + 43);
        assert!(key[KEY_PREFIX.len()..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(generate_key(), key);
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(key_prefix(&key).len(), KEY_PREFIX.len() + 4);
    }

    fn record(updated_at: i64, revoked_at: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: "k1".into(),
            key_hash: "h".into(),
            key_prefix: "sk-llmux-AbCd".into(),
            created_at: 1,
            updated_at,
            revoked_at,
            change_seq: updated_at,
            ..KeyRecord::default()
        }
    }

    #[test]
    fn a_stale_refresh_never_brings_a_revoked_key_back() {
        let cache = KeyCache::default();
        cache.apply(vec![record(10, None)]);
        // Revoked (applied at once by the admin API)...
        cache.apply(vec![record(20, Some(20))]);
        // ...then a refresh that read the store before the revocation lands.
        cache.apply(vec![record(10, None)]);
        assert!(cache.keys.read()["h"].revoked_at.is_some());
        // Same version, or even a newer one without the revocation: it stays revoked.
        cache.apply(vec![record(20, None)]);
        assert!(cache.keys.read()["h"].revoked_at.is_some());
        cache.apply(vec![record(25, None)]);
        assert!(cache.keys.read()["h"].revoked_at.is_some());
        // A newer version (an update after the revocation) does replace it.
        cache.apply(vec![record(30, Some(20))]);
        assert_eq!(cache.keys.read()["h"].updated_at, 30);
    }

    #[test]
    fn a_lookup_that_read_the_store_before_a_revocation_does_not_undo_it() {
        let cache = KeyCache::default();
        // A request missed the cache and read the key; the revocation lands before the
        // read is cached.
        cache.apply(vec![record(20, Some(20))]);
        assert!(cache.looked_up(record(10, None)).revoked_at.is_some());
        assert!(cache.keys.read()["h"].revoked_at.is_some());
        // Nothing cached yet: the read is.
        let fresh = KeyCache::default();
        assert_eq!(fresh.looked_up(record(10, None)).updated_at, 10);
    }

    fn team(name: &str, updated_at: i64) -> TeamRecord {
        TeamRecord { name: name.into(), created_at: updated_at, updated_at, ..TeamRecord::default() }
    }

    #[test]
    fn a_stale_refresh_keeps_teams_this_instance_created_or_changed_meanwhile() {
        let cache = KeyCache::default();
        cache.set_teams(vec![team("old", 1_000), team("gone", 1_000)], i64::MIN);
        // The admin API creates `ads` and updates `old` while a refresh that read the
        // store at 100_000 (before both) is on its way; `gone` was deleted elsewhere.
        cache.apply_team(team("ads", 100_500));
        cache.apply_team(team("old", 100_600));
        cache.set_teams(vec![team("old", 1_000)], 100_000);
        let teams = cache.teams.read();
        assert_eq!(teams.get("ads").map(|team| team.updated_at), Some(100_500));
        assert_eq!(teams["old"].updated_at, 100_600);
        assert!(!teams.contains_key("gone"));
        drop(teams);
        // Long after, a refresh that does not list `ads` means it was deleted.
        cache.set_teams(vec![team("old", 100_600)], 200_000);
        assert!(!cache.teams.read().contains_key("ads"));
    }
}

/// Bound on client addresses whose failed authentications are counted.
const FAILED_AUTH_CAPACITY: usize = 100_000;
/// The window failed authentications are counted in.
const FAILED_AUTH_WINDOW_MS: i64 = 60_000;

/// Failed authentications per client address, in fixed one-minute windows. IPv6
/// addresses count by their /64 (one host usually holds the whole prefix).
#[derive(Debug, Default)]
pub struct FailedAuths {
    windows: parking_lot::Mutex<FastMap<std::net::IpAddr, (i64, u32)>>,
    failed: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
    /// The window of the latest failure (plus one; 0: none yet): while no address
    /// failed in the current window, `over` answers without taking the lock.
    latest_window: std::sync::atomic::AtomicI64,
}

impl FailedAuths {
    fn bucket(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => std::net::IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
            },
            v4 => v4,
        }
    }

    /// Counts a request refused because its address is over the limit.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Milliseconds until `ip` may try again, when it already failed `limit` times in
    /// this window.
    pub fn over(&self, ip: std::net::IpAddr, limit: u32, now_ms: i64) -> Option<u64> {
        let window = now_ms.div_euclid(FAILED_AUTH_WINDOW_MS);
        if self.latest_window.load(Ordering::Relaxed) != window + 1 {
            return None;
        }
        let windows = self.windows.lock();
        let (seen_window, count) = *windows.get(&Self::bucket(ip))?;
        if seen_window != window || count < limit {
            return None;
        }
        Some(((window + 1) * FAILED_AUTH_WINDOW_MS - now_ms).max(1) as u64)
    }

    /// Counts a failed authentication of `ip`; returns the count in this window.
    pub fn record(&self, ip: std::net::IpAddr, now_ms: i64) -> u32 {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let window = now_ms.div_euclid(FAILED_AUTH_WINDOW_MS);
        self.latest_window.fetch_max(window + 1, Ordering::Relaxed);
        let mut windows = self.windows.lock();
        if windows.len() >= FAILED_AUTH_CAPACITY {
            windows.retain(|_, (seen, _)| *seen == window);
            if windows.len() >= FAILED_AUTH_CAPACITY {
                windows.clear();
            }
        }
        let entry = windows.entry(Self::bucket(ip)).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// `llmux_auth_failures_total` and `llmux_auth_refused_total` (Prometheus text).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# TYPE llmux_auth_failures_total counter\nllmux_auth_failures_total {}",
            self.failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE llmux_auth_refused_total counter\nllmux_auth_refused_total {}",
            self.refused.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod failed_auth_tests {
    use super::FailedAuths;

    #[test]
    fn failures_count_per_address_and_minute_and_ipv6_per_64() {
        let failed = FailedAuths::default();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        let minute = 60_000 * 1_000;
        for _ in 0..3 {
            assert_eq!(failed.over(a, 3, minute + 5_000), None);
            failed.record(a, minute + 5_000);
        }
        // Over for the rest of the minute, for that address only.
        assert_eq!(failed.over(a, 3, minute + 10_000), Some(50_000));
        assert_eq!(failed.over(b, 3, minute + 10_000), None);
        assert_eq!(failed.over(a, 3, minute + 60_000), None, "a new minute");
        // One /64 is one client; the next /64 is another; a v4-mapped address is its v4.
        let host: std::net::IpAddr = "2001:db8:1:2::1".parse().unwrap();
        for _ in 0..2 {
            failed.record(host, minute);
        }
        assert!(failed.over("2001:db8:1:2:ffff::9".parse().unwrap(), 2, minute).is_some());
        assert!(failed.over("2001:db8:1:3::1".parse().unwrap(), 2, minute).is_none());
        assert!(failed.over("::ffff:10.0.0.1".parse().unwrap(), 3, minute + 1).is_some());
    }
}
