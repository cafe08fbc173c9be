//! A route as the request path names it: indexes into the configuration in force, and
//! the identity that outlives a configuration.

use sha2::{Digest, Sha256};

/// One route to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Index into `Config::models`.
    pub model: usize,
    /// Index into that model's routes.
    pub route: usize,
}

/// A route's identity across reloads and instances: its provider's name and upstream
/// model, hashed. What a conversation is pinned to (see `affinity`); kept in Redis as a
/// positive `i64`, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(u64);

impl RouteId {
    pub fn of(provider: &str, upstream_model: &str) -> RouteId {
        let mut hash = Sha256::new();
        hash.update(provider.as_bytes());
        hash.update([0]);
        hash.update(upstream_model.as_bytes());
        let digest = hash.finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        RouteId((u64::from_le_bytes(bytes) >> 1) | 1)
    }

    /// As stored in the fleet.
    pub fn to_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// From the fleet: `None` for a value no route id has.
    pub fn from_i64(value: i64) -> Option<RouteId> {
        u64::try_from(value).ok().filter(|value| value & 1 == 1).map(RouteId)
    }
}
