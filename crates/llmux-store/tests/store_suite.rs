//! The behaviour every backend shares, run against each: SQLite (in memory), and the
//! PostgreSQL of `llmux_testkit::services::postgres_url` (`LLMUX_TEST_POSTGRES_URL`, else
//! the local one; the PostgreSQL cases fail without one), each test in a schema of its
//! own, dropped at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmux_store::{
    Budget, GroupBy, KeyRecord, Store, StoreError, TeamRecord, UsageFilter, UsageRecord, UsageSummaryRow,
};

const DAY: i64 = 86_400_000;

fn key(id: &str, hash: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        name: format!("key {id}"),
        key_hash: hash.to_owned(),
        key_prefix: "sk-llmux-abcd".to_owned(),
        team: Some("team-a".to_owned()),
        models: Some(vec!["chat".to_owned()]),
        region: Some("CN".to_owned()),
        budget: Some(Budget { amount_nanos: 10_000_000_000, currency: "USD".to_owned(), period: "monthly".to_owned() }),
        rpm_limit: Some(60),
        tpm_limit: None,
        expires_at: None,
        metadata: Some(serde_json::json!({"owner": "alice", "tags": ["a", 1, null], "n": 1.5})),
        created_at: 1_000,
        updated_at: 1_000,
        revoked_at: None,
        change_seq: 0,
    }
}

/// `key` without the change number the store gave it.
fn unversioned(key: Option<KeyRecord>) -> Option<KeyRecord> {
    key.map(|key| KeyRecord { change_seq: 0, ..key })
}

fn team(name: &str) -> TeamRecord {
    TeamRecord {
        name: name.to_owned(),
        models: Some(vec!["chat".to_owned(), "embed".to_owned()]),
        region: Some("EU".to_owned()),
        budget: Some(Budget { amount_nanos: 5_000_000_000, currency: "EUR".to_owned(), period: "daily".to_owned() }),
        rpm_limit: None,
        tpm_limit: Some(100_000),
        metadata: Some(serde_json::json!({"cost_center": 42})),
        created_at: 5_000,
        updated_at: 5_000,
        change_seq: 0,
    }
}

fn record(request_id: &str, key_id: &str, model: &str, created_at: i64, cost: i64) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_owned(),
        key_id: Some(key_id.to_owned()),
        team: None,
        model: model.to_owned(),
        provider: Some("p".to_owned()),
        upstream_model: Some("up".to_owned()),
        input_tokens: 10,
        output_tokens: 5,
        cached_tokens: 2,
        reasoning_tokens: 1,
        cost_nanos: Some(cost),
        currency: Some("USD".to_owned()),
        status: 200,
        error_code: None,
        attempts: 1,
        latency_ms: 12,
        ttft_ms: Some(3),
        created_at,
        attempt_log: None,
        usage_estimated: false,
        record_id: String::new(),
    }
}

fn ids(rows: &[llmux_store::StoredUsage]) -> Vec<&str> {
    rows.iter().map(|row| row.record.request_id.as_str()).collect()
}

fn filter() -> UsageFilter {
    UsageFilter { limit: 100, ..UsageFilter::default() }
}

#[path = "store_suite/ledger.rs"]
mod ledger;

/// The cases, each a function of the store under test.
mod cases {
    pub use super::ledger::*;
    use super::*;

    pub async fn ping(store: &dyn Store) {
        store.ping().await.unwrap();
    }

    pub async fn keys_round_trip_and_update(store: &dyn Store) {
        let original = key("k1", "h1");
        store.create_key(&original).await.unwrap();
        assert!(matches!(store.create_key(&key("k2", "h1")).await, Err(StoreError::Conflict)));
        assert!(matches!(store.create_key(&key("k1", "h9")).await, Err(StoreError::Conflict)));
        assert_eq!(unversioned(store.key("k1").await.unwrap()), Some(original.clone()));
        assert_eq!(store.key("k2").await.unwrap(), None);
        let stored = store.key_by_hash("h1").await.unwrap().unwrap();
        assert_eq!(unversioned(Some(stored.clone())), Some(original.clone()));
        assert!(stored.change_seq > 0, "the store numbers every change");
        assert_eq!(store.key_by_hash("nope").await.unwrap(), None);

        let mut revoked = stored.clone();
        revoked.revoked_at = Some(2_000);
        revoked.updated_at = 2_000;
        revoked.models = None;
        revoked.metadata = None;
        revoked.budget = None;
        revoked.team = None;
        revoked.tpm_limit = Some(u64::MAX);
        revoked.expires_at = Some(9_000);
        revoked.name = "renamed".to_owned();
        assert!(store.update_key(&revoked).await.unwrap());
        // The stored value is clamped to i64::MAX, as it is stored.
        let read_back = store.key("k1").await.unwrap().unwrap();
        assert_eq!(read_back.tpm_limit, Some(i64::MAX as u64));
        assert!(read_back.change_seq > stored.change_seq);
        assert_eq!(
            KeyRecord { tpm_limit: Some(u64::MAX), change_seq: stored.change_seq, ..read_back.clone() },
            revoked
        );
        // The version read before the first update is stale now: nothing changes.
        assert!(!store.update_key(&revoked).await.unwrap());
        let mut revoked = read_back;
        revoked.tpm_limit = Some(1_000);
        assert!(store.update_key(&revoked).await.unwrap());
        let revoked = store.key("k1").await.unwrap().unwrap();
        assert_eq!(revoked.tpm_limit, Some(1_000));
        assert_eq!(store.keys_changed_since(stored.change_seq).await.unwrap(), vec![revoked.clone()]);
        assert!(store.keys_changed_since(revoked.change_seq).await.unwrap().is_empty());
        assert_eq!(store.list_keys().await.unwrap(), vec![revoked.clone()]);

        // Nothing matched: an unknown id, or an attempt to change an immutable field.
        assert!(!store.update_key(&key("missing", "h5")).await.unwrap());
        assert!(!store.update_key(&KeyRecord { key_hash: "other".to_owned(), ..revoked.clone() }).await.unwrap());
        assert!(!store.update_key(&KeyRecord { created_at: 1, ..revoked.clone() }).await.unwrap());
        assert_eq!(store.key("k1").await.unwrap(), Some(revoked));
    }

    pub async fn keys_list_in_creation_order(store: &dyn Store) {
        let keys = [
            KeyRecord { created_at: 30, updated_at: 30, ..key("b", "hb") },
            KeyRecord { created_at: 10, updated_at: 40, ..key("z", "hz") },
            KeyRecord { created_at: 30, updated_at: 35, ..key("a", "ha") },
            KeyRecord { created_at: 20, updated_at: 20, ..key("B", "hB") },
        ];
        for key in &keys {
            store.create_key(key).await.unwrap();
        }
        let listed: Vec<String> = store.list_keys().await.unwrap().into_iter().map(|key| key.id).collect();
        // Created first first; ties by id, bytewise ("B" before "a").
        assert_eq!(listed, ["z", "B", "a", "b"]);
        // In the store's change order, whatever the writers' clocks said.
        let all = store.keys_changed_since(0).await.unwrap();
        let since: Vec<&str> = all.iter().map(|key| key.id.as_str()).collect();
        assert_eq!(since, ["b", "z", "a", "B"]);
        let after_z: Vec<String> =
            store.keys_changed_since(all[1].change_seq).await.unwrap().into_iter().map(|key| key.id).collect();
        assert_eq!(after_z, ["a", "B"]);
    }

    pub async fn teams(store: &dyn Store) {
        assert!(store.list_teams().await.unwrap().is_empty());
        let a = team("team-a");
        store.create_team(&a).await.unwrap();
        assert!(matches!(store.create_team(&team("team-a")).await, Err(StoreError::Conflict)));
        let bare =
            TeamRecord { name: "Alpha".to_owned(), created_at: 6_000, updated_at: 6_000, ..TeamRecord::default() };
        store.create_team(&bare).await.unwrap();
        store.create_team(&TeamRecord { created_at: 1, updated_at: 1, ..team("m") }).await.unwrap();
        let unversioned = |team: Option<TeamRecord>| team.map(|team| TeamRecord { change_seq: 0, ..team });
        let stored_a = store.team("team-a").await.unwrap().unwrap();
        assert_eq!(unversioned(Some(stored_a.clone())), Some(a.clone()));
        assert_eq!(unversioned(store.team("Alpha").await.unwrap()), Some(bare.clone()));
        assert_eq!(store.team("nope").await.unwrap(), None);
        let names: Vec<String> = store.list_teams().await.unwrap().into_iter().map(|team| team.name).collect();
        assert_eq!(names, ["Alpha", "m", "team-a"]);

        let mut changed = stored_a.clone();
        changed.models = None;
        changed.budget = Some(Budget { amount_nanos: 1, currency: "USD".to_owned(), period: "total".to_owned() });
        changed.rpm_limit = Some(10);
        changed.updated_at = 7_000;
        assert!(store.update_team(&changed).await.unwrap());
        // A second writer that read the same version loses: compare and set.
        assert!(!store.update_team(&TeamRecord { rpm_limit: Some(99), ..changed.clone() }).await.unwrap());
        let changed = store.team("team-a").await.unwrap().unwrap();
        assert_eq!(changed.rpm_limit, Some(10));
        assert!(changed.change_seq > stored_a.change_seq);
        assert!(!store.update_team(&team("ghost")).await.unwrap());
        assert!(!store.update_team(&TeamRecord { created_at: 1, ..changed.clone() }).await.unwrap());

        let since: Vec<String> =
            store.teams_updated_since(5_500).await.unwrap().into_iter().map(|team| team.name).collect();
        assert_eq!(since, ["Alpha", "team-a"]);
        assert_eq!(store.teams_updated_since(7_000).await.unwrap(), vec![changed]);
        assert!(store.teams_updated_since(7_001).await.unwrap().is_empty());

        assert!(store.delete_team("team-a").await.unwrap());
        assert!(!store.delete_team("team-a").await.unwrap());
        assert_eq!(store.team("team-a").await.unwrap(), None);
        assert_eq!(store.list_teams().await.unwrap().len(), 2);
        // The name is free again.
        store.create_team(&a).await.unwrap();
    }

    pub async fn team_spend(store: &dyn Store) {
        let in_team = |id: &str, team: &str, at: i64, cost: i64| UsageRecord {
            team: Some(team.to_owned()),
            ..record(id, "k1", "chat", at, cost)
        };
        store
            .insert_usage(Arc::from([
                in_team("r1", "t1", 100, 10),
                in_team("r2", "t1", 200, 20),
                in_team("r3", "t2", 200, 40),
                UsageRecord { currency: Some("EUR".to_owned()), ..in_team("r4", "t1", 300, 80) },
                UsageRecord { cost_nanos: None, ..in_team("r5", "t1", 300, 0) },
                record("r6", "k1", "chat", 300, 160),
            ]))
            .await
            .unwrap();
        assert_eq!(store.team_spend("t1", "USD", 0).await.unwrap(), 30);
        assert_eq!(store.team_spend("t1", "USD", 200).await.unwrap(), 20);
        assert_eq!(store.team_spend("t1", "USD", 201).await.unwrap(), 0);
        assert_eq!(store.team_spend("t1", "EUR", 0).await.unwrap(), 80);
        assert_eq!(store.team_spend("t2", "USD", 0).await.unwrap(), 40);
        assert_eq!(store.team_spend("nobody", "USD", 0).await.unwrap(), 0);
        assert_eq!(store.key_spend("k1", "USD", 0).await.unwrap(), 230);
    }

    pub async fn key_spend(store: &dyn Store) {
        assert_eq!(store.key_spend("k1", "USD", 0).await.unwrap(), 0);
        store
            .insert_usage(Arc::from([
                record("r1", "k1", "chat", 10, 100),
                record("r2", "k1", "chat", DAY, 50),
                record("r3", "k2", "chat", DAY, 7),
                UsageRecord { currency: Some("EUR".to_owned()), ..record("r4", "k1", "chat", DAY, 1_000) },
                UsageRecord { cost_nanos: None, currency: None, ..record("r5", "k1", "chat", DAY, 0) },
                record("r6", "k1", "chat", 2 * DAY, i64::MAX / 4),
            ]))
            .await
            .unwrap();
        assert_eq!(store.key_spend("k1", "USD", 0).await.unwrap(), 150 + i64::MAX / 4);
        assert_eq!(store.key_spend("k1", "USD", DAY).await.unwrap(), 50 + i64::MAX / 4);
        assert_eq!(store.key_spend("k1", "USD", 2 * DAY + 1).await.unwrap(), 0);
        assert_eq!(store.key_spend("k1", "EUR", 0).await.unwrap(), 1_000);
        assert_eq!(store.key_spend("k2", "USD", 0).await.unwrap(), 7);
        assert_eq!(store.key_spend("k3", "USD", 0).await.unwrap(), 0);
    }

    pub async fn usage_filters(store: &dyn Store) {
        store
            .insert_usage(Arc::from([
                record("r1", "k1", "chat", 10, 100),
                UsageRecord {
                    attempts: 2,
                    attempt_log: Some(
                        r#"[{"provider":"a","outcome":"server"},{"provider":"p","outcome":"ok"}]"#.into(),
                    ),
                    ..record("r2", "k1", "embed", DAY + 10, 50)
                },
                record("r3", "k2", "chat", DAY + 20, 7),
            ]))
            .await
            .unwrap();
        store
            .insert_usage(Arc::from([UsageRecord { provider: Some("q".into()), ..record("r4", "k2", "chat", 5, 1) }]))
            .await
            .unwrap();
        store.insert_usage(Arc::from([])).await.unwrap();

        let all = store.usage(&filter()).await.unwrap();
        assert_eq!(ids(&all), ["r4", "r3", "r2", "r1"]);
        assert!(all.windows(2).all(|pair| pair[0].id > pair[1].id));
        assert_eq!(all[3].record, record("r1", "k1", "chat", 10, 100));
        let k1 = store.usage(&UsageFilter { key_id: Some("k1".into()), since: Some(DAY), ..filter() }).await.unwrap();
        assert_eq!(ids(&k1), ["r2"]);
        assert_eq!(k1[0].record.attempts, 2);
        assert!(k1[0].record.attempt_log.as_deref().is_some_and(|log| log.contains(r#""outcome":"server""#)));

        let by = |filter: UsageFilter| async move { ids(&store.usage(&filter).await.unwrap()).join(",") };
        assert_eq!(by(UsageFilter { model: Some("chat".into()), ..filter() }).await, "r4,r3,r1");
        assert_eq!(by(UsageFilter { provider: Some("q".into()), ..filter() }).await, "r4");
        assert_eq!(
            by(UsageFilter { provider: Some("p".into()), model: Some("chat".into()), ..filter() }).await,
            "r3,r1"
        );
        assert_eq!(by(UsageFilter { until: Some(DAY + 10), ..filter() }).await, "r4,r1");
        assert_eq!(by(UsageFilter { since: Some(10), until: Some(DAY + 11), ..filter() }).await, "r2,r1");
        assert_eq!(by(UsageFilter { key_id: Some("k2".into()), until: Some(DAY), ..filter() }).await, "r4");
        assert_eq!(by(UsageFilter { key_id: Some("nobody".into()), ..filter() }).await, "");
        assert_eq!(by(UsageFilter { limit: 2, ..filter() }).await, "r4,r3");
        assert_eq!(by(UsageFilter { limit: 0, ..filter() }).await, "");
        assert_eq!(
            by(UsageFilter {
                key_id: Some("k1".into()),
                model: Some("embed".into()),
                provider: Some("p".into()),
                since: Some(DAY),
                until: Some(DAY + 11),
                limit: 1,
            })
            .await,
            "r2"
        );
    }

    pub async fn summaries(store: &dyn Store) {
        let row = |group: &str, currency: Option<&str>, requests: u64, errors: u64, cost: i64| UsageSummaryRow {
            group: group.to_owned(),
            currency: currency.map(str::to_owned),
            requests,
            errors,
            input_tokens: 10 * requests,
            output_tokens: 5 * requests,
            cached_tokens: 2 * requests,
            reasoning_tokens: requests,
            cost_nanos: cost,
        };
        assert!(store.usage_summary(GroupBy::Model, None, None).await.unwrap().is_empty());
        store
            .insert_usage(Arc::from([
                UsageRecord { team: Some("t1".into()), ..record("r1", "k1", "chat", 10, 100) },
                UsageRecord {
                    status: 502,
                    error_code: Some("upstream_error".into()),
                    cost_nanos: None,
                    team: Some("t1".into()),
                    ..record("r2", "k1", "embed", DAY + 10, 0)
                },
                UsageRecord { status: 429, provider: None, ..record("r3", "k2", "chat", DAY + 20, 7) },
                UsageRecord {
                    key_id: None,
                    currency: None,
                    cost_nanos: None,
                    ..record("r4", "k1", "Chat", 2 * DAY, 0)
                },
                UsageRecord {
                    currency: Some("EUR".into()),
                    team: Some("T0".into()),
                    ..record("r5", "k2", "chat", 3 * DAY - 1, 30)
                },
            ]))
            .await
            .unwrap();

        let summary =
            |group_by, since, until| async move { store.usage_summary(group_by, since, until).await.unwrap() };
        assert_eq!(
            summary(GroupBy::Model, None, None).await,
            [
                row("Chat", None, 1, 0, 0),
                row("chat", Some("EUR"), 1, 0, 30),
                row("chat", Some("USD"), 2, 1, 107),
                row("embed", Some("USD"), 1, 1, 0),
            ]
        );
        assert_eq!(
            summary(GroupBy::Key, None, None).await,
            [
                row("(none)", None, 1, 0, 0),
                row("k1", Some("USD"), 2, 1, 100),
                row("k2", Some("EUR"), 1, 0, 30),
                row("k2", Some("USD"), 1, 1, 7),
            ]
        );
        assert_eq!(
            summary(GroupBy::Provider, None, None).await,
            [
                row("(none)", Some("USD"), 1, 1, 7),
                row("p", None, 1, 0, 0),
                row("p", Some("EUR"), 1, 0, 30),
                row("p", Some("USD"), 2, 1, 100)
            ]
        );
        assert_eq!(
            summary(GroupBy::Team, None, None).await,
            [
                row("(none)", None, 1, 0, 0),
                row("(none)", Some("USD"), 1, 1, 7),
                row("T0", Some("EUR"), 1, 0, 30),
                row("t1", Some("USD"), 2, 1, 100)
            ]
        );
        assert_eq!(
            summary(GroupBy::Day, None, None).await,
            [
                row("1970-01-01", Some("USD"), 1, 0, 100),
                row("1970-01-02", Some("USD"), 2, 2, 7),
                row("1970-01-03", None, 1, 0, 0),
                row("1970-01-03", Some("EUR"), 1, 0, 30),
            ]
        );
        // Bounds: since inclusive, until exclusive.
        assert_eq!(
            summary(GroupBy::Day, Some(DAY + 10), Some(2 * DAY)).await,
            [row("1970-01-02", Some("USD"), 2, 2, 7)]
        );
        assert_eq!(
            summary(GroupBy::Key, Some(2 * DAY), None).await,
            [row("(none)", None, 1, 0, 0), row("k2", Some("EUR"), 1, 0, 30)]
        );
        assert_eq!(summary(GroupBy::Model, None, Some(DAY)).await, [row("chat", Some("USD"), 1, 0, 100)]);
        assert!(summary(GroupBy::Team, Some(3 * DAY), None).await.is_empty());
    }

    pub async fn days_are_utc_calendar_days(store: &dyn Store) {
        // 2026-03-01T00:00:00Z and the milliseconds either side of it.
        let midnight = 1_772_323_200_000;
        store
            .insert_usage(Arc::from([
                // Before 1970: whole seconds first (toward zero), then the day.
                record("r0", "k1", "chat", -1_500, 8),
                record("r00", "k1", "chat", -999, 16),
                record("r1", "k1", "chat", midnight - 1, 1),
                record("r2", "k1", "chat", midnight, 2),
                record("r3", "k1", "chat", midnight + DAY - 1, 4),
            ]))
            .await
            .unwrap();
        let days: Vec<(String, i64)> = store
            .usage_summary(GroupBy::Day, None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.group, row.cost_nanos))
            .collect();
        assert_eq!(
            days,
            [
                ("1969-12-31".to_owned(), 8),
                ("1970-01-01".to_owned(), 16),
                ("2026-02-28".to_owned(), 1),
                ("2026-03-01".to_owned(), 6)
            ]
        );
    }

    pub async fn large_batches_keep_every_column_and_their_order(store: &dyn Store) {
        let records: Vec<UsageRecord> = (0..500)
            .map(|i| {
                let mut record = record(&format!("r{i}"), &format!("k{}", i % 7), "m", i, i * 3);
                record.input_tokens = i as u64;
                record.output_tokens = 1000 + i as u64;
                record.latency_ms = u64::MAX / 4 + i as u64;
                if i % 3 == 0 {
                    record.key_id = None;
                    record.ttft_ms = None;
                    record.cost_nanos = None;
                    record.error_code = Some("upstream_error".to_owned());
                    record.status = 502;
                    record.attempts = 3;
                    record.attempt_log = Some(format!(r#"[{{"outcome":"server","n":{i}}}]"#));
                }
                if i % 4 == 0 {
                    record.usage_estimated = true;
                }
                if i % 5 == 0 {
                    record.team = Some(format!("team-{}", i % 2));
                    record.provider = None;
                    record.upstream_model = None;
                    record.currency = None;
                    record.request_id = format!("r{i} ünïcødé 'quoted' \"double\" \\ {{}}");
                }
                record
            })
            .collect();
        store.insert_usage(Arc::from(records.clone())).await.unwrap();
        let stored = store.usage(&UsageFilter { limit: 1000, ..UsageFilter::default() }).await.unwrap();
        let mut read_back: Vec<UsageRecord> = stored.into_iter().map(|stored| stored.record).collect();
        read_back.reverse();
        assert_eq!(read_back, records);
    }

    pub async fn concurrent_writers(store: &dyn Store) {
        let batches = (0..8).map(|batch| {
            let records: Vec<UsageRecord> =
                (0..50).map(|i| record(&format!("b{batch}-{i}"), "k1", "chat", i, 1)).collect();
            store.insert_usage(Arc::from(records))
        });
        for result in join_vec(batches.collect()).await {
            result.unwrap();
        }
        assert_eq!(store.key_spend("k1", "USD", 0).await.unwrap(), 400);
        assert_eq!(store.usage(&UsageFilter { limit: 1000, ..UsageFilter::default() }).await.unwrap().len(), 400);
    }

    pub async fn responses(store: &dyn Store) {
        let stored = |id: &str, key_id: &str, expires_at: i64| llmux_store::StoredResponse {
            id: id.to_owned(),
            key_id: key_id.to_owned(),
            created_at: 1_000,
            expires_at,
            response: format!(r#"{{"id":"{id}","text":"caf\u00e9 \u0000 ok"}}"#),
            input_items: r#"[{"type":"message","role":"user","content":"hi"}]"#.to_owned(),
        };
        store.put_response(&stored("resp_a", "k1", 5_000)).await.unwrap();
        store.put_response(&stored("resp_b", "k2", 2_000)).await.unwrap();
        assert_eq!(store.response("resp_a", 3_000).await.unwrap(), Some(stored("resp_a", "k1", 5_000)));
        assert_eq!(store.response("resp_missing", 3_000).await.unwrap(), None);
        // Expired: not read back, and purged.
        assert_eq!(store.response("resp_b", 3_000).await.unwrap(), None);
        assert_eq!(store.response("resp_b", 2_000).await.unwrap().map(|r| r.key_id), Some("k2".to_owned()));
        assert_eq!(store.purge_responses(3_000).await.unwrap(), 1);
        assert_eq!(store.response("resp_b", 0).await.unwrap(), None);
        // Replaced by id.
        let mut changed = stored("resp_a", "k1", 6_000);
        changed.response = "{}".to_owned();
        store.put_response(&changed).await.unwrap();
        assert_eq!(store.response("resp_a", 0).await.unwrap(), Some(changed));
        // Only the owner deletes.
        assert!(!store.delete_response("resp_a", "k2").await.unwrap());
        assert!(store.delete_response("resp_a", "k1").await.unwrap());
        assert!(!store.delete_response("resp_a", "k1").await.unwrap());
        assert_eq!(store.response("resp_a", 0).await.unwrap(), None);
    }

    /// Runs the futures concurrently on this task; their outputs in order.
    async fn join_vec<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
        let mut futures: Vec<_> = futures.into_iter().map(|future| Some(Box::pin(future))).collect();
        let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
                if let Some(future) = slot {
                    match future.as_mut().poll(cx) {
                        std::task::Poll::Ready(value) => {
                            *output = Some(value);
                            *slot = None;
                        }
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
        })
        .await;
        outputs.into_iter().map(|output| output.expect("every future finished")).collect()
    }
}

async fn sqlite() -> Arc<dyn Store> {
    llmux_store::open("sqlite::memory:").await.unwrap()
}

/// A schema of its own on the test server, and a URL whose connections use it.
struct PgSchema {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl PgSchema {
    /// On the PostgreSQL of [`llmux_testkit::services::postgres_url`] (the test fails
    /// without one).
    async fn create(test: &str) -> PgSchema {
        let base = llmux_testkit::services::postgres_url();
        let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let name = format!("llmux_test_{}_{}", std::process::id(), test);
        admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}")).await.unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-csearch_path%3D{name}&application_name={name}");
        PgSchema { admin, name, url }
    }

    async fn drop(self) {
        self.admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await.unwrap();
    }
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::sqlite().await;
                    super::cases::$case(&*store).await;
                }
            )*
        }

        mod on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let schema = super::PgSchema::create(stringify!($case)).await;
                    let store = llmux_store::open(&schema.url).await.unwrap();
                    super::cases::$case(&*store).await;
                    drop(store);
                    schema.drop().await;
                }
            )*
        }
    };
}

suite!(
    ping,
    keys_round_trip_and_update,
    keys_list_in_creation_order,
    teams,
    team_spend,
    key_spend,
    usage_filters,
    summaries,
    days_are_utc_calendar_days,
    large_batches_keep_every_column_and_their_order,
    concurrent_writers,
    responses,
    usage_is_unique_by_record_id,
    text_with_nul_is_written,
    a_patch_racing_a_revocation_never_undoes_it,
    change_numbers_ignore_writers_clocks,
);

#[tokio::test]
async fn a_sqlite_file_store_survives_reopen() {
    let dir = std::env::temp_dir().join(format!("llmux-store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    {
        let store = llmux_store::open(&url).await.unwrap();
        store.insert_usage(Arc::from([record("r1", "k1", "chat", 10, 1)])).await.unwrap();
    }
    let store = llmux_store::open(&url).await.unwrap();
    assert_eq!(ids(&store.usage(&filter()).await.unwrap()), ["r1"]);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn postgres_reopens_without_migrating_again() {
    let schema = PgSchema::create("reopen").await;
    // Several instances starting together: the advisory lock serialises their migrations.
    let opened = join4(
        llmux_store::open(&schema.url),
        llmux_store::open(&schema.url),
        llmux_store::open(&schema.url),
        llmux_store::open(&schema.url),
    )
    .await;
    let store = opened.0.unwrap();
    for other in [opened.1, opened.2, opened.3] {
        other.unwrap();
    }
    store.insert_usage(Arc::from([record("r1", "k1", "chat", 10, 1)])).await.unwrap();
    drop(store);
    let store = llmux_store::open(&schema.url).await.unwrap();
    assert_eq!(ids(&store.usage(&filter()).await.unwrap()), ["r1"]);
    let sql = format!("SELECT version FROM {}.llmux_schema ORDER BY version", schema.name);
    let versions = schema.admin.query(&sql, &[]).await.unwrap();
    assert_eq!(versions.iter().map(|row| row.get::<_, i64>(0)).collect::<Vec<_>>(), [1, 2, 3, 4]);
    drop(store);
    schema.drop().await;
}

async fn join4<A: Future, B: Future, C: Future, D: Future>(
    a: A,
    b: B,
    c: C,
    d: D,
) -> (A::Output, B::Output, C::Output, D::Output) {
    tokio::join!(a, b, c, d)
}

#[tokio::test]
async fn postgres_recovers_from_lost_connections() {
    let schema = PgSchema::create("recover").await;
    let store = llmux_store::open(&schema.url).await.unwrap();
    store.create_key(&key("k1", "h1")).await.unwrap();
    for round in 0..3 {
        // Busy connections too: several calls at once open several.
        let (a, b, c) = tokio::join!(store.list_keys(), store.ping(), store.key("k1"));
        a.unwrap();
        b.unwrap();
        c.unwrap();
        let terminated = schema
            .admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&schema.name],
            )
            .await
            .unwrap();
        assert!(!terminated.is_empty(), "round {round}: the store had no connection to terminate");
        // At most the first calls may fail, quickly; then the store has reconnected.
        let started = Instant::now();
        let mut failures = 0;
        loop {
            match store.key("k1").await {
                Ok(found) => {
                    assert_eq!(found.map(|key| key.id).as_deref(), Some("k1"));
                    break;
                }
                Err(StoreError::Unavailable(_)) if failures < 3 => failures += 1,
                Err(error) => panic!("round {round}: still failing after {failures} failures: {error}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "recovery took {:?}", started.elapsed());
        // Writes are never repeated by the store (one may have been applied), so a write
        // may meet a lost connection once too.
        let batch: Arc<[UsageRecord]> = Arc::from([record(&format!("r{round}"), "k1", "chat", 10, 1)]);
        if let Err(error) = store.insert_usage(batch.clone()).await {
            assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
            store.insert_usage(batch).await.unwrap();
        }
    }
    assert_eq!(store.key_spend("k1", "USD", 0).await.unwrap(), 3);
    drop(store);
    schema.drop().await;
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_without_the_password() {
    // Nothing listens on port 1.
    let started = Instant::now();
    let result = llmux_store::open("postgres://llmux:hunter2-secret@127.0.0.1:1/llmux?connect_timeout=2").await;
    let Err(StoreError::Unavailable(message)) = result else { panic!("expected Unavailable, got {result:?}") };
    assert!(!message.contains("hunter2"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(12), "took {:?}", started.elapsed());
    let result = llmux_store::open("postgres://llmux:hunter2-secret@127.0.0.1:notaport/llmux").await;
    let Err(StoreError::Unsupported(message)) = result else { panic!("expected Unsupported, got {result:?}") };
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn postgres_sslmode_require_uses_tls_or_refuses() {
    let schema = PgSchema::create("tls").await;
    // The test server's certificate may not verify against this system's roots; then
    // the store must refuse rather than fall back to plain text.
    let started = Instant::now();
    match llmux_store::open(&format!("{}&sslmode=require", schema.url)).await {
        Ok(store) => {
            store.ping().await.unwrap();
            let ssl = schema
                .admin
                .query(
                    "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                    &[&schema.name],
                )
                .await
                .unwrap();
            assert!(!ssl.is_empty() && ssl.iter().all(|row| row.get::<_, bool>(0)), "plain connections");
        }
        Err(error) => {
            assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
            assert!(started.elapsed() < Duration::from_secs(12), "took {:?}", started.elapsed());
        }
    }
    schema.drop().await;
}

#[tokio::test]
async fn postgres_calls_give_up_instead_of_blocking() {
    let schema = PgSchema::create("blocked").await;
    let store = llmux_store::open(&schema.url).await.unwrap();
    store.create_team(&team("t1")).await.unwrap();
    // Another session holds the table: the store's statement waits for it.
    schema
        .admin
        .batch_execute(&format!("BEGIN; LOCK TABLE {}.teams IN ACCESS EXCLUSIVE MODE", schema.name))
        .await
        .unwrap();
    let started = Instant::now();
    let result = store.list_teams().await;
    let waited = started.elapsed();
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(15), "waited {waited:?}");
    schema.admin.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(store.list_teams().await.unwrap().len(), 1);
    drop(store);
    schema.drop().await;
}

#[tokio::test]
async fn sqlite_migration_removes_only_exact_duplicates() {
    ledger::migrating_removes_only_exact_duplicates().await;
}

#[tokio::test]
async fn postgres_migration_removes_only_exact_duplicates() {
    let schema = PgSchema::create("dedupe").await;
    ledger::postgres_migrating_removes_only_exact_duplicates(&schema.admin, &schema.name, &schema.url).await;
    schema.drop().await;
}

#[tokio::test]
async fn sqlite_numbers_writes_of_older_writers_and_keeps_revocations() {
    let dir = std::env::temp_dir().join(format!("llmux-store-unnumbered-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.db");
    let _ = std::fs::remove_file(&path);
    let store = llmux_store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let seen = ledger::before_unnumbered_writes(store.as_ref()).await;
    let raw = rusqlite::Connection::open(&path).unwrap();
    for sql in ledger::UNNUMBERED_WRITES {
        raw.execute(sql, []).unwrap();
    }
    ledger::after_unnumbered_writes(store.as_ref(), seen).await;
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn postgres_numbers_writes_of_older_writers_and_keeps_revocations() {
    let schema = PgSchema::create("unnumbered").await;
    let store = llmux_store::open(&schema.url).await.unwrap();
    let seen = ledger::before_unnumbered_writes(store.as_ref()).await;
    let search_path = format!("SET search_path = {}", schema.name);
    for sql in ledger::UNNUMBERED_WRITES {
        schema.admin.batch_execute(&format!("{search_path}; {sql}; RESET search_path")).await.unwrap();
    }
    ledger::after_unnumbered_writes(store.as_ref(), seen).await;
    drop(store);
    schema.drop().await;
}
