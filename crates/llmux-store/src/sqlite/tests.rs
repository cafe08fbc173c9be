use super::*;

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
        metadata: Some(serde_json::json!({"owner": "alice"})),
        created_at: 1_000,
        updated_at: 1_000,
        revoked_at: None,
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
    }
}

#[tokio::test]
async fn keys_round_trip_and_update() {
    let store = SqliteStore::open(":memory:").await.unwrap();
    let original = key("k1", "h1");
    store.create_key(&original).await.unwrap();
    assert!(matches!(store.create_key(&key("k2", "h1")).await, Err(StoreError::Conflict)));
    assert_eq!(store.key("k1").await.unwrap(), Some(original.clone()));
    assert_eq!(store.key_by_hash("h1").await.unwrap(), Some(original.clone()));
    assert_eq!(store.key_by_hash("nope").await.unwrap(), None);

    let mut revoked = original.clone();
    revoked.revoked_at = Some(2_000);
    revoked.updated_at = 2_000;
    revoked.models = None;
    assert!(store.update_key(&revoked).await.unwrap());
    assert_eq!(store.key("k1").await.unwrap(), Some(revoked.clone()));
    assert_eq!(store.keys_updated_since(1_500).await.unwrap(), vec![revoked]);
    assert!(store.keys_updated_since(2_001).await.unwrap().is_empty());
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn usage_filters_and_summaries() {
    let store = SqliteStore::open(":memory:").await.unwrap();
    let day = 86_400_000;
    store
        .insert_usage(Arc::from([
            record("r1", "k1", "chat", 10, 100),
            UsageRecord {
                attempts: 2,
                attempt_log: Some(r#"[{"provider":"a","outcome":"server"},{"provider":"p","outcome":"ok"}]"#.into()),
                ..record("r2", "k1", "embed", day + 10, 50)
            },
            record("r3", "k2", "chat", day + 20, 7),
        ]))
        .await
        .unwrap();
    let all = store.usage(&UsageFilter { limit: 10, ..UsageFilter::default() }).await.unwrap();
    assert_eq!(all.iter().map(|r| r.record.request_id.as_str()).collect::<Vec<_>>(), vec!["r3", "r2", "r1"]);
    assert_eq!(all[2].record, record("r1", "k1", "chat", 10, 100));
    let k1 = store
        .usage(&UsageFilter { key_id: Some("k1".into()), since: Some(day), limit: 10, ..UsageFilter::default() })
        .await
        .unwrap();
    assert_eq!(k1.len(), 1);
    assert_eq!(k1[0].record.request_id, "r2");
    assert_eq!(k1[0].record.attempts, 2);
    assert!(k1[0].record.attempt_log.as_deref().is_some_and(|log| log.contains(r#""outcome":"server""#)));

    let by_model = store.usage_summary(GroupBy::Model, None, None).await.unwrap();
    assert_eq!(by_model.len(), 2);
    assert_eq!((by_model[0].group.as_str(), by_model[0].requests, by_model[0].cost_nanos), ("chat", 2, 107));
    let by_day = store.usage_summary(GroupBy::Day, None, None).await.unwrap();
    assert_eq!(by_day.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(), vec!["1970-01-01", "1970-01-02"]);
}

#[tokio::test]
async fn file_store_survives_reopen() {
    let dir = std::env::temp_dir().join(format!("llmux-store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.db");
    let path = path.to_str().unwrap();
    {
        let store = SqliteStore::open(path).await.unwrap();
        store.insert_usage(Arc::from([record("r1", "k1", "chat", 10, 1)])).await.unwrap();
    }
    let store = SqliteStore::open(path).await.unwrap();
    assert_eq!(store.usage(&UsageFilter { limit: 5, ..UsageFilter::default() }).await.unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn large_batches_keep_every_column_and_their_order() {
    // 150 = several multi-row statements plus single-row ones for the rest.
    let store = SqliteStore::open(":memory:").await.unwrap();
    let records: Vec<UsageRecord> = (0..150)
        .map(|i| {
            let mut record = record(&format!("r{i}"), &format!("k{}", i % 7), "m", i, i * 3);
            record.input_tokens = i as u64;
            record.output_tokens = 1000 + i as u64;
            if i % 3 == 0 {
                record.key_id = None;
                record.ttft_ms = None;
                record.cost_nanos = None;
                record.error_code = Some("upstream_error".to_owned());
                record.status = 502;
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
