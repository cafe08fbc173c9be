//! Round-trip cost of the fleet operations against a Redis on loopback.
//!
//! `cargo run --release -p llmux-fleet --example roundtrip` (Redis at `LLMUX_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`). Prints microseconds per operation, sequential (one
//! caller waiting for each answer: the latency an instance sees when its lease runs out) and
//! with 32 concurrent callers sharing the connection (throughput).

use std::time::{Duration, Instant};

use llmux_fleet::{Fleet, FleetOptions};

const SEQUENTIAL: usize = 20_000;
const CONCURRENT_TASKS: usize = 32;
const PER_TASK: usize = 2_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::var("LLMUX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).unwrap();
    let prefix = format!("llmux-bench:{:016x}:", u64::from_le_bytes(id));
    let fleet = Fleet::new(&url, FleetOptions { prefix: prefix.clone(), ..FleetOptions::default() }).unwrap();
    // Warm up: connect and load the scripts.
    fleet.claim("warm", i64::MAX / 2, 1, 60_000).await.unwrap();
    fleet.add_many(&[("warm".into(), 1, 60_000)]).await.unwrap();

    let batch: Vec<(String, i64, u64)> = (0..8).map(|i| (format!("tokens:key{i}"), 120, 120_000)).collect();
    let names: Vec<String> = batch.iter().map(|(n, _, _)| n.clone()).collect();

    let claim = sequential(SEQUENTIAL, || async {
        fleet.claim("rpm:bench", i64::MAX / 2, 16, 120_000).await.unwrap();
    })
    .await;
    let claim_from = sequential(SEQUENTIAL, || async {
        fleet.claim_from("budget:bench", 1_000, i64::MAX / 2, 16, 120_000).await.unwrap();
    })
    .await;
    let release = sequential(SEQUENTIAL, || async {
        fleet.release("rpm:bench", 1).await.unwrap();
    })
    .await;
    let add1 = sequential(SEQUENTIAL, || async {
        fleet.add_many(&batch[..1]).await.unwrap();
    })
    .await;
    let add8 = sequential(SEQUENTIAL, || async {
        fleet.add_many(&batch).await.unwrap();
    })
    .await;
    let get8 = sequential(SEQUENTIAL, || async {
        fleet.get_many(&names).await.unwrap();
    })
    .await;

    println!("sequential, {SEQUENTIAL} operations each:");
    println!("  claim                 {:7.1} µs/op", micros(claim, SEQUENTIAL));
    println!("  claim_from            {:7.1} µs/op", micros(claim_from, SEQUENTIAL));
    println!("  release               {:7.1} µs/op", micros(release, SEQUENTIAL));
    println!("  add_many (1 counter)  {:7.1} µs/op", micros(add1, SEQUENTIAL));
    println!("  add_many (8 counters) {:7.1} µs/op", micros(add8, SEQUENTIAL));
    println!("  get_many (8 counters) {:7.1} µs/op", micros(get8, SEQUENTIAL));

    let total = CONCURRENT_TASKS * PER_TASK;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|_| {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                for _ in 0..PER_TASK {
                    fleet.claim("rpm:bench2", i64::MAX / 2, 16, 120_000).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = start.elapsed();
    println!(
        "concurrent, {CONCURRENT_TASKS} callers, {total} claims: {:.2} µs/op ({:.0} claims/s)",
        micros(concurrent, total),
        total as f64 / concurrent.as_secs_f64()
    );

    // Clean up.
    let mut conn = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

async fn sequential<F, Fut>(n: usize, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    for _ in 0..n {
        op().await;
    }
    start.elapsed()
}

fn micros(elapsed: Duration, n: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n as f64
}
