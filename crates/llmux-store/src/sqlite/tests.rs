//! SQLite only; the behaviour every backend shares is in `tests/store_suite.rs`.

use super::*;

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
