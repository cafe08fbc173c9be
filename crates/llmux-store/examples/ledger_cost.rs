//! CPU cost per usage record written to the SQLite store, all threads included: `cargo run --release -p llmux-store --example ledger_cost`.
use std::sync::Arc;

use llmux_store::{Store, UsageRecord};

/// utime + stime of the whole process from /proc (10 ms ticks; the run is long enough).
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks * 10_000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("ledger-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("llmux.db");
    let store = llmux_store::sqlite::SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    let record = |i: u64| UsageRecord {
        request_id: format!("req_{i:024}"),
        record_id: format!("{i:x}"),
        key_id: Some("key_0123456789abcdef".into()),
        model: "gpt-4o-mini".into(),
        provider: Some("mock".into()),
        upstream_model: Some("gpt-4o-mini".into()),
        input_tokens: 12,
        output_tokens: 34,
        cost_nanos: Some(1234),
        currency: Some("USD".into()),
        status: 200,
        attempts: 1,
        latency_ms: 1,
        created_at: 1_790_000_000_000 + i as i64,
        ..Default::default()
    };
    let total = 200_000u64;
    let per_batch: u64 = std::env::var("BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    let batches: Vec<Arc<[UsageRecord]>> =
        (0..total / per_batch).map(|b| (0..per_batch).map(|i| record(b * per_batch + i)).collect()).collect();
    let start = cpu_us();
    let wall = std::time::Instant::now();
    for batch in &batches {
        store.insert_usage(batch.clone()).await.unwrap();
    }
    let cpu = cpu_us() - start;
    println!(
        "{} records: {:.2} cpu-us/record, wall {:?}",
        total / per_batch * per_batch,
        cpu / (total / per_batch * per_batch) as f64,
        wall.elapsed()
    );
    std::fs::remove_dir_all(dir).ok();
}
