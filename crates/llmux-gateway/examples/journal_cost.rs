//! CPU cost per usage record of the journal (serialising, `write(2)` under the lock,
//! and the sync thread's group-committed `fdatasync`), all threads included, and what
//! one `fdatasync` takes on this disk:
//! `cargo run --release -p llmux-gateway --example journal_cost [DIR]`.
use std::time::{Duration, Instant};

use llmux_gateway::journal::Journal;
use llmux_store::UsageRecord;

/// utime + stime of the whole process from /proc, in µs (10 ms ticks).
fn cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) * 10_000.0
}

fn record(i: u64) -> UsageRecord {
    UsageRecord {
        request_id: format!("req_{i:024}"),
        record_id: format!("12345-0a1b2c3d4e5f-{i:x}"),
        key_id: Some("key_0123456789abcdef".into()),
        team: Some("team-a".into()),
        model: "gpt-4o-mini".into(),
        provider: Some("openai".into()),
        upstream_model: Some("gpt-4o-mini-2024-07-18".into()),
        input_tokens: 1200,
        output_tokens: 340,
        cost_nanos: Some(123_400),
        currency: Some("USD".into()),
        status: 200,
        attempts: 1,
        latency_ms: 812,
        ttft_ms: Some(210),
        created_at: 1_790_000_000_000 + i as i64,
        ..UsageRecord::default()
    }
}

fn main() {
    let base = std::env::args().nth(1).map_or_else(std::env::temp_dir, Into::into);
    let dir = base.join(format!("journal-cost-{}", std::process::id()));
    let total: u64 = 200_000;
    let records: Vec<UsageRecord> = (0..total).map(record).collect();

    // Serialising alone, for reference.
    let start = cpu_us();
    let mut bytes = 0;
    for record in &records {
        bytes += serde_json::to_vec(record).unwrap().len();
    }
    let serialise = (cpu_us() - start) / total as f64;

    for threads in [1usize, 4] {
        let journal = Journal::open(&dir, &format!("{threads}-0a1b2c3d4e5f"));
        let start = cpu_us();
        let wall = Instant::now();
        std::thread::scope(|scope| {
            for part in records.chunks(records.len() / threads) {
                let journal = journal.clone();
                scope.spawn(move || {
                    for record in part {
                        journal.append(record);
                    }
                });
            }
        });
        // Let the sync thread finish its last round.
        std::thread::sleep(Duration::from_millis(200));
        let cpu = cpu_us() - start;
        println!("{threads} thread(s): {:.2} cpu-µs/record (journal), wall {:?}", cpu / total as f64, wall.elapsed());
        journal.close();
    }
    println!("serialising alone: {serialise:.2} cpu-µs/record, {} bytes/record", bytes / total as usize);

    // One write(2) of a record's size to a file, alone, for reference.
    {
        use std::io::Write;
        let line = vec![b'x'; bytes / total as usize];
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("write-probe")).unwrap();
        let start = cpu_us();
        for _ in 0..total {
            file.write_all(&line).unwrap();
        }
        println!("write(2) alone: {:.2} cpu-µs/record", (cpu_us() - start) / total as f64);
    }

    // One fdatasync after a small append, as the sync thread does under light load.
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("sync-probe")).unwrap();
    let mut took = Vec::new();
    for _ in 0..50 {
        file.write_all(&[b'x'; 400]).unwrap();
        let at = Instant::now();
        file.sync_data().unwrap();
        took.push(at.elapsed());
    }
    took.sort();
    println!("fdatasync of one 400-byte append: median {:?}, max {:?}", took[25], took[49]);
    std::fs::remove_dir_all(&dir).ok();
}
