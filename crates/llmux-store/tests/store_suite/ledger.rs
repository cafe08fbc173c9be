//! Cases for what a crash, a hostile client or a race must not break: one record per
//! request, text the store cannot hold, compare-and-set updates of keys and teams.

use std::sync::Arc;

use llmux_store::{KeyRecord, Store, TeamRecord, UsageRecord};

use super::{filter, ids, key, record, team};

/// `record` with the ledger's id `id`.
fn with_id(id: &str, record: UsageRecord) -> UsageRecord {
    UsageRecord { record_id: id.to_owned(), ..record }
}

pub async fn usage_is_unique_by_record_id(store: &dyn Store) {
    let batch: Arc<[UsageRecord]> =
        Arc::from([with_id("a", record("r1", "k1", "chat", 10, 1)), with_id("b", record("r2", "k1", "chat", 20, 2))]);
    store.insert_usage(batch.clone()).await.unwrap();
    // The same batch again (a replay after a crash), and a batch that repeats a record
    // within itself: nothing is written twice, the new record is.
    store.insert_usage(batch).await.unwrap();
    store
        .insert_usage(Arc::from([
            with_id("c", record("r3", "k1", "chat", 30, 4)),
            with_id("c", record("r3", "k1", "chat", 31, 8)),
            with_id("a", record("r1", "k1", "chat", 40, 16)),
        ]))
        .await
        .unwrap();
    let rows = store.usage(&filter()).await.unwrap();
    assert_eq!(ids(&rows), ["r3", "r2", "r1"]);
    assert_eq!(rows[0].record.record_id, "c");
    // The first version of each record is the one kept.
    assert_eq!(store.key_spend("k1", "USD", 0).await.unwrap(), 1 + 2 + 4);
    // A request id the client chose is no identity: two requests that reuse one are two
    // records, both billed.
    store
        .insert_usage(Arc::from([
            with_id("d", record("same", "k2", "chat", 50, 32)),
            with_id("e", record("same", "k2", "chat", 50, 32)),
        ]))
        .await
        .unwrap();
    assert_eq!(store.key_spend("k2", "USD", 0).await.unwrap(), 64);
}

pub async fn text_with_nul_is_written(store: &dyn Store) {
    let mut poisoned = record("r-nul", "k1", "gpt\u{0}-4", 10, 1);
    poisoned.error_code = Some("x\u{0}y".to_owned());
    poisoned.attempt_log = Some("[\u{0}]".to_owned());
    store
        .insert_usage(Arc::from([
            record("r-before", "k1", "chat", 5, 1),
            poisoned,
            record("r-after", "k2", "chat", 20, 1),
        ]))
        .await
        .unwrap();
    let rows = store.usage(&filter()).await.unwrap();
    assert_eq!(ids(&rows), ["r-after", "r-nul", "r-before"]);
    let model = &rows[1].record.model;
    assert!(model == "gpt\u{FFFD}-4" || model == "gpt\u{0}-4", "{model:?}");
    // A key name with NUL (admin input) is stored too.
    store.create_key(&KeyRecord { name: "a\u{0}b".to_owned(), ..key("k-nul", "h-nul") }).await.unwrap();
    assert!(store.key("k-nul").await.unwrap().is_some());
}

pub async fn a_patch_racing_a_revocation_never_undoes_it(store: &dyn Store) {
    store.create_key(&key("k1", "h1")).await.unwrap();
    let read_by_patch = store.key("k1").await.unwrap().unwrap();
    let read_by_revoke = read_by_patch.clone();
    // The revocation commits first.
    let revoked = KeyRecord { revoked_at: Some(2_000), updated_at: 2_000, ..read_by_revoke };
    assert!(store.update_key(&revoked).await.unwrap());
    // The PATCH, built on the version read before, is refused (compare and set)...
    let patched = KeyRecord { name: "renamed".to_owned(), updated_at: 1_500, ..read_by_patch };
    assert!(!store.update_key(&patched).await.unwrap());
    let now = store.key("k1").await.unwrap().unwrap();
    assert_eq!((now.name.as_str(), now.revoked_at), ("key k1", Some(2_000)));
    // ...and applied again on the current version, it keeps the revocation even if it
    // carries none.
    let patched = KeyRecord { name: "renamed".to_owned(), revoked_at: None, ..now };
    assert!(store.update_key(&patched).await.unwrap());
    let now = store.key("k1").await.unwrap().unwrap();
    assert_eq!((now.name.as_str(), now.revoked_at), ("renamed", Some(2_000)));
    // A later revocation keeps the first time.
    assert!(store.update_key(&KeyRecord { revoked_at: Some(9_000), ..now }).await.unwrap());
    assert_eq!(store.key("k1").await.unwrap().unwrap().revoked_at, Some(2_000));
}

pub async fn change_numbers_ignore_writers_clocks(store: &dyn Store) {
    // A writer whose clock is far behind still produces a change others see after
    // the last one they read.
    store.create_key(&KeyRecord { updated_at: 10_000, ..key("k1", "h1") }).await.unwrap();
    let seen = store.keys_changed_since(0).await.unwrap();
    let watermark = seen.last().unwrap().change_seq;
    let behind = store.key("k1").await.unwrap().unwrap();
    assert!(store.update_key(&KeyRecord { revoked_at: Some(1), updated_at: 1, ..behind }).await.unwrap());
    let changed = store.keys_changed_since(watermark).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].revoked_at, Some(1));
    // Teams are numbered by the same rule.
    store.create_team(&team("t")).await.unwrap();
    let t = store.team("t").await.unwrap().unwrap();
    assert!(t.change_seq > 0);
    assert!(store.update_team(&TeamRecord { updated_at: 0, ..t.clone() }).await.unwrap());
    assert!(store.team("t").await.unwrap().unwrap().change_seq > t.change_seq);
}

/// The rows the dedupe cases start from: (request id, cost, latency, time).
const BEFORE: [(&str, i64, i64, i64); 4] =
    [("crashed", 5, 10, 100), ("crashed", 5, 10, 100), ("reused", 7, 11, 200), ("reused", 7, 12, 201)];

/// A SQLite ledger of the version before record ids, holding a chunk a crash wrote
/// twice and two real requests that reused a client's request id: the migration
/// removes the copies only.
pub async fn migrating_removes_only_exact_duplicates() {
    let dir = std::env::temp_dir().join(format!("llmux-store-dedupe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.db");
    let _ = std::fs::remove_file(&path);
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(concat!(
            include_str!("../../src/sqlite/migrations/0001_init.sql"),
            include_str!("../../src/sqlite/migrations/0002_attempt_log.sql"),
            include_str!("../../src/sqlite/migrations/0003_teams.sql"),
            include_str!("../../src/sqlite/migrations/0004_responses.sql"),
            "CREATE TABLE llmux_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);",
            "INSERT INTO llmux_schema VALUES (1, 0), (2, 0), (3, 0), (4, 0);",
        ))
        .unwrap();
        let insert = "INSERT INTO usage (request_id, key_id, model, status, input_tokens, output_tokens, cost_nanos, \
                      latency_ms, created_at) VALUES (?1, 'k1', 'chat', 200, 1, 1, ?2, ?3, ?4)";
        for (request_id, cost, latency, at) in BEFORE {
            db.execute(insert, rusqlite::params![request_id, cost, latency, at]).unwrap();
        }
    }
    let store = llmux_store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    assert_eq!(ids(&store.usage(&filter()).await.unwrap()), ["reused", "reused", "crashed"]);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

/// The same on PostgreSQL: a schema at version 2 (`admin` connected, `url` using it).
pub async fn postgres_migrating_removes_only_exact_duplicates(admin: &tokio_postgres::Client, schema: &str, url: &str) {
    admin
        .batch_execute(&format!(
            "SET search_path = {schema}; {}{}\
             CREATE TABLE llmux_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL); \
             INSERT INTO llmux_schema VALUES (1, 0), (2, 0);",
            include_str!("../../src/postgres/migrations/0001_init.sql"),
            include_str!("../../src/postgres/migrations/0002_responses.sql"),
        ))
        .await
        .unwrap();
    for (request_id, cost, latency, at) in BEFORE {
        admin
            .execute(
                "INSERT INTO usage (request_id, key_id, model, status, input_tokens, output_tokens, cost_nanos, \
                 latency_ms, created_at) VALUES ($1, 'k1', 'chat', 200, 1, 1, $2, $3, $4)",
                &[&request_id, &cost, &latency, &at],
            )
            .await
            .unwrap();
    }
    admin.batch_execute("RESET search_path").await.unwrap();
    let store = llmux_store::open(url).await.unwrap();
    assert_eq!(ids(&store.usage(&filter()).await.unwrap()), ["reused", "reused", "crashed"]);
}

/// What an older llmux (or a hand-written statement) writes without change numbers.
pub const UNNUMBERED_WRITES: [&str; 3] = [
    "UPDATE keys SET name = 'old writer', revoked_at = NULL, updated_at = 1 WHERE id = 'k1'",
    "INSERT INTO keys (id, name, key_hash, key_prefix, created_at, updated_at) \
     VALUES ('k2', 'old', 'h2', 'sk-llmux-x', 1, 1)",
    "UPDATE teams SET rpm_limit = 5 WHERE name = 't'",
];

/// The store before the unnumbered writes: a revoked key `k1`, a team `t`.
pub async fn before_unnumbered_writes(store: &dyn Store) -> (i64, i64) {
    store.create_key(&key("k1", "h1")).await.unwrap();
    let k1 = store.key("k1").await.unwrap().unwrap();
    assert!(store.update_key(&KeyRecord { revoked_at: Some(2_000), ..k1 }).await.unwrap());
    store.create_team(&team("t")).await.unwrap();
    let seen = store.keys_changed_since(0).await.unwrap().last().unwrap().change_seq;
    (seen, store.team("t").await.unwrap().unwrap().change_seq)
}

/// After them: each change is numbered past what was seen, and the revocation stands.
pub async fn after_unnumbered_writes(store: &dyn Store, (seen, team_seq): (i64, i64)) {
    let changed = store.keys_changed_since(seen).await.unwrap();
    let ids: Vec<&str> = changed.iter().map(|key| key.id.as_str()).collect();
    assert_eq!(ids, ["k1", "k2"]);
    assert_eq!(changed[0].name, "old writer");
    assert_eq!(changed[0].revoked_at, Some(2_000), "a writer that knows nothing of it cannot clear a revocation");
    let t = store.team("t").await.unwrap().unwrap();
    assert_eq!(t.rpm_limit, Some(5));
    assert!(t.change_seq > team_seq);
}
