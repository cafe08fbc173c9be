//! The ledger at scale: fills it through `insert_usage` in batches of 500, then times
//! the queries `llmux usage` and `/admin/usage` make.
//!
//! `cargo run --release -p llmux-store --example ledger_scale -- URL [ROWS]` with a
//! storage URL (`sqlite:///tmp/scale.db`, `postgres://...`) and a row count (default
//! 1,000,000). The records are appended to whatever the ledger holds already: start
//! from an empty one (or pass 0 rows to time the queries on the ledger as it is). Spread: 50 keys (the first 30 in 5 teams), 10 models, 5
//! providers, 30 days up to now, 3 % errors, 5 % in EUR, 1 % without a price.
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmux_store::{GroupBy, Store, UsageFilter, UsageRecord};

const BATCH: usize = 500;
const DAY: i64 = 86_400_000;
const KEYS: u64 = 50;
const MODELS: [&str; 10] = [
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "claude-sonnet",
    "claude-haiku",
    "gemini-pro",
    "gemini-flash",
    "llama",
    "mistral",
    "embed",
];
const PROVIDERS: [&str; 5] = ["openai", "anthropic", "google", "bedrock", "azure"];

/// xorshift64*: reproducible spread without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn record(rng: &mut Rng, index: u64, created_at: i64) -> UsageRecord {
    let key = rng.below(KEYS);
    let model = rng.below(MODELS.len() as u64) as usize;
    let error = rng.below(100) < 3;
    let priced = rng.below(100) != 0;
    let input_tokens = 50 + rng.below(4_000);
    let output_tokens = if error { 0 } else { 10 + rng.below(1_000) };
    UsageRecord {
        request_id: format!("req_{index:020}"),
        record_id: format!("rec_{index:020}"),
        key_id: Some(format!("key_{key:02}")),
        team: (key < 30).then(|| format!("team-{}", key % 5)),
        model: MODELS[model].to_owned(),
        provider: Some(PROVIDERS[model % PROVIDERS.len()].to_owned()),
        upstream_model: Some(format!("{}-2026-01-01", MODELS[model])),
        input_tokens,
        output_tokens,
        cached_tokens: rng.below(input_tokens / 2),
        reasoning_tokens: if model == 2 { rng.below(2_000) } else { 0 },
        cost_nanos: priced.then(|| (input_tokens * 150 + output_tokens * 600) as i64),
        currency: Some(if rng.below(100) < 5 { "EUR" } else { "USD" }.to_owned()),
        status: if error { 502 } else { 200 },
        error_code: error.then(|| "upstream_error".to_owned()),
        attempts: if error { 2 } else { 1 },
        latency_ms: 200 + rng.below(5_000),
        ttft_ms: (!error).then(|| 100 + rng.below(900)),
        created_at,
        attempt_log: error.then(|| r#"[{"provider":"openai","outcome":"server","latency_ms":120}]"#.to_owned()),
        usage_estimated: false,
    }
}

/// Runs `query` three times: the first time and the best of the three.
async fn time<T>(label: &str, mut query: impl AsyncFnMut() -> T, size: impl Fn(&T) -> usize) {
    let mut runs = Vec::new();
    let mut rows = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let result = query().await;
        runs.push(started.elapsed());
        rows = size(&result);
    }
    let best = runs.iter().min().copied().unwrap_or(Duration::ZERO);
    println!("{label:<40} first {:>9.1} ms  best {:>9.1} ms  ({rows} rows)", ms(runs[0]), ms(best));
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: ledger_scale URL [ROWS]");
    let rows: u64 = args.next().map_or(1_000_000, |rows| rows.parse().expect("ROWS is a number"));
    let store: Arc<dyn Store> = llmux_store::open(&url).await.expect("open the store");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let start = now - 30 * DAY;
    let step = (30 * DAY) as f64 / rows as f64;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut written = 0u64;
    while written < rows {
        let count = (rows - written).min(BATCH as u64);
        let batch: Arc<[UsageRecord]> = (written..written + count)
            .map(|index| record(&mut rng, index, start + (index as f64 * step) as i64))
            .collect();
        store.insert_usage(batch).await.expect("insert a batch");
        written += count;
        if written.is_multiple_of(100_000) {
            eprintln!("{written} rows, {:.0} rows/s", written as f64 / started.elapsed().as_secs_f64());
        }
    }
    let elapsed = started.elapsed();
    println!(
        "inserted {rows} rows in batches of {BATCH}: {:.1} s, {:.0} rows/s",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );

    let groupings = [
        ("key", GroupBy::Key),
        ("model", GroupBy::Model),
        ("provider", GroupBy::Provider),
        ("day", GroupBy::Day),
        ("team", GroupBy::Team),
    ];
    for (name, group_by) in groupings {
        let label = format!("usage_summary by {name}, all");
        time(&label, async || store.usage_summary(group_by, None, None).await.unwrap(), Vec::len).await;
    }
    for (name, group_by) in groupings {
        let label = format!("usage_summary by {name}, last day");
        time(&label, async || store.usage_summary(group_by, Some(now - DAY), None).await.unwrap(), Vec::len).await;
    }
    let filter = UsageFilter { key_id: Some("key_07".to_owned()), limit: 100, ..UsageFilter::default() };
    time("usage key=key_07 limit 100", async || store.usage(&filter).await.unwrap(), Vec::len).await;
    let filter = UsageFilter { limit: 100, ..UsageFilter::default() };
    time("usage limit 100", async || store.usage(&filter).await.unwrap(), Vec::len).await;
    time(
        "key_spend key_07 USD, 30 days",
        async || store.key_spend("key_07", "USD", now - 30 * DAY).await.unwrap(),
        |_| 1,
    )
    .await;
    time(
        "team_spend team-2 USD, 30 days",
        async || store.team_spend("team-2", "USD", now - 30 * DAY).await.unwrap(),
        |_| 1,
    )
    .await;
}
