//! Persistence behind traits: keys, teams and the usage ledger.
//!
//! [`Store`] is what the gateway and the CLI use; [`open`] picks the backend from the
//! storage URL. SQLite (`sqlite://FILE`) and PostgreSQL (`postgres://...`) are built
//! in; either is created or migrated when opened.
//!
//! Times are Unix milliseconds; money is integer nano-units (see `llmux-types`).

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A virtual key as stored. The plain key is never stored, only its SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// Hex SHA-256 of the plain key.
    pub key_hash: String,
    /// The first characters of the key (`sk-llmux-AbCd`), for recognising it in lists.
    pub key_prefix: String,
    pub team: Option<String>,
    /// Allowed public model names; `None` means all.
    pub models: Option<Vec<String>>,
    pub region: Option<String>,
    pub budget: Option<Budget>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub expires_at: Option<i64>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    /// The store's change counter when this version was written: set by the store on
    /// every write (ignored in what is handed to it, except as the version an update
    /// expects); increases with every change to any key, in commit order.
    #[serde(default)]
    pub change_seq: i64,
}

/// A team: owns keys (a key names it in `team`) and limits them all together. A key's
/// effective limits are the tighter of its own and its team's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeamRecord {
    /// The team's identifier, unique.
    pub name: String,
    /// Models the team's keys may use; `None` means all.
    pub models: Option<Vec<String>>,
    /// The region of the team's keys that have none of their own.
    pub region: Option<String>,
    pub budget: Option<Budget>,
    pub rpm_limit: Option<u64>,
    pub tpm_limit: Option<u64>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The store's change counter when this version was written (see
    /// [`KeyRecord::change_seq`]).
    #[serde(default)]
    pub change_seq: i64,
}

/// A spending limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Nano-units of `currency`.
    pub amount_nanos: i64,
    pub currency: String,
    /// `daily`, `weekly`, `monthly` or `total`.
    pub period: String,
}

/// One request's usage record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageRecord {
    /// The request id the client saw (`x-request-id`; the client's own if it sent
    /// one, so not unique).
    pub request_id: String,
    /// The record's own id, unique: given by the ledger when the record is handed
    /// over; the store keeps one record per id, so writing a record again (a replay
    /// after a crash) never bills twice.
    pub record_id: String,
    pub key_id: Option<String>,
    /// The key's team when the request was made.
    pub team: Option<String>,
    /// The public model name the client asked for.
    pub model: String,
    pub provider: Option<String>,
    pub upstream_model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// `None` when the route has no price.
    pub cost_nanos: Option<i64>,
    pub currency: Option<String>,
    /// The HTTP status the client got.
    pub status: u16,
    pub error_code: Option<String>,
    pub attempts: u32,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub created_at: i64,
    /// When the request took more than one attempt or failed upstream: each attempt as
    /// JSON `[{"provider", "model", "outcome", "latency_ms"}]` (`outcome` is `ok`, an
    /// error class such as `rate_limited`, or `cancelled` for a hedge that lost).
    pub attempt_log: Option<String>,
    /// Some of the tokens are llmux's estimate, not the upstream's figures: the request
    /// ended before the upstream reported its usage (client gone, upstream cut, timeout)
    /// or the upstream's answer had none.
    pub usage_estimated: bool,
}

/// A Responses API response kept for later turns (`store: true`); times in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// `resp_…`, as the client saw it.
    pub id: String,
    /// The key that created it: the only one that may read or delete it.
    pub key_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// The response object (JSON), as answered.
    pub response: String,
    /// Every item the response was made from, earlier turns included (a JSON array).
    pub input_items: String,
}

/// A usage record read back, with its ledger id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUsage {
    pub id: i64,
    pub record: UsageRecord,
}

#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Model,
    Provider,
    Day,
    Team,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<GroupBy> {
        match text {
            "key" => Some(GroupBy::Key),
            "model" => Some(GroupBy::Model),
            "provider" => Some(GroupBy::Provider),
            "day" => Some(GroupBy::Day),
            "team" => Some(GroupBy::Team),
            _ => None,
        }
    }
}

/// Totals for one group (and currency) of usage records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageSummaryRow {
    pub group: String,
    pub currency: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nanos: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// A key with the same hash, or a team with the same name, exists already.
    #[error("the record exists already")]
    Conflict,
    /// The store refused the data itself (a value it cannot hold, a constraint): trying
    /// again will not help, trying the records of a batch one by one may.
    #[error("the store refused the data: {0}")]
    Rejected(String),
    #[error("unsupported storage URL: {0}")]
    Unsupported(String),
}

/// Everything the gateway and CLI persist.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Checks the store answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    async fn create_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// Replaces the mutable fields of an existing key (matched by id) if it is still the
    /// version `key.change_seq` (compare-and-set); `false` if it is not (changed
    /// meanwhile, or no such key). A revocation is never undone: `revoked_at` stays as
    /// stored once set.
    async fn update_key(&self, key: &KeyRecord) -> Result<bool, StoreError>;
    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Keys created, changed or revoked after change `after` (their `change_seq` is
    /// greater), in change order. The counter is the store's, so no writer's clock
    /// matters, and changes become visible in counter order.
    async fn keys_changed_since(&self, after: i64) -> Result<Vec<KeyRecord>, StoreError>;

    /// Fails with [`StoreError::Conflict`] when a team of that name exists.
    async fn create_team(&self, team: &TeamRecord) -> Result<(), StoreError>;
    /// Replaces the mutable fields of an existing team (matched by name) if it is still
    /// the version `team.change_seq` (compare-and-set); `false` if it is not.
    async fn update_team(&self, team: &TeamRecord) -> Result<bool, StoreError>;
    async fn team(&self, name: &str) -> Result<Option<TeamRecord>, StoreError>;
    async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError>;
    /// Teams created or changed at or after `since` (ms).
    async fn teams_updated_since(&self, since: i64) -> Result<Vec<TeamRecord>, StoreError>;
    /// Deletes a team; `false` if there was none.
    async fn delete_team(&self, name: &str) -> Result<bool, StoreError>;

    /// Appends records to the ledger in one transaction. A record whose `record_id` is
    /// in the ledger already is skipped (so writing a batch again never bills twice).
    /// Text the store cannot hold (NUL in PostgreSQL) is replaced by U+FFFD.
    async fn insert_usage(&self, records: Arc<[UsageRecord]>) -> Result<(), StoreError>;
    /// Records matching `filter`, newest first.
    async fn usage(&self, filter: &UsageFilter) -> Result<Vec<StoredUsage>, StoreError>;
    async fn usage_summary(
        &self,
        group_by: GroupBy,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<UsageSummaryRow>, StoreError>;
    /// What key `key_id` spent in `currency` (nano-units) since `since` (ms), from the
    /// ledger (for budgets).
    async fn key_spend(&self, key_id: &str, currency: &str, since: i64) -> Result<i64, StoreError>;
    /// What the keys of `team` spent in `currency` since `since` (ms), by the team
    /// recorded with each request.
    async fn team_spend(&self, team: &str, currency: &str, since: i64) -> Result<i64, StoreError>;

    /// Keeps a response (replacing one of the same id).
    async fn put_response(&self, response: &StoredResponse) -> Result<(), StoreError>;
    /// The response `id` unless it expired before `now` (ms).
    async fn response(&self, id: &str, now: i64) -> Result<Option<StoredResponse>, StoreError>;
    /// Deletes the response `id` of key `key_id`; `false` if it had none.
    async fn delete_response(&self, id: &str, key_id: &str) -> Result<bool, StoreError>;
    /// Deletes the responses that expired before `now` (ms); how many.
    async fn purge_responses(&self, now: i64) -> Result<u64, StoreError>;
}

/// `text` with every NUL replaced by U+FFFD (PostgreSQL's text cannot hold NUL).
pub fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Opens (creating and migrating if needed) the store at `url`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        return Ok(Arc::new(sqlite::SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    Err(StoreError::Unsupported(url.to_owned()))
}
