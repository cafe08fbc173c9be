//! The real binary killed with SIGKILL: every answered request has exactly one usage
//! record after a restart (the journal), and a replay killed midway bills nothing
//! twice. On SQLite and on PostgreSQL (a schema of its own).

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmux_store::{Store, UsageFilter, UsageRecord};
use serde_json::json;

use crate::cli::{Running, serve};
use crate::{base_config, temp_dir, user};

const BIN: &str = env!("CARGO_BIN_EXE_llmux");

/// A schema of its own on the test PostgreSQL, and a URL whose connections use it.
struct Schema {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Schema {
    async fn create() -> Schema {
        let base = llmux_testkit::services::postgres_url();
        let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.expect("PostgreSQL");
        tokio::spawn(connection);
        let name = format!("llmux_crash_{:016x}", fastrand::u64(..));
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-csearch_path%3D{name}");
        Schema { admin, name, url }
    }

    async fn drop(self) {
        let _ = self.admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await;
    }
}

/// `dir/llmux.toml` with the mock model `chat`, on `storage` (a URL) if given, else
/// SQLite in `dir`.
fn config(dir: &std::path::Path, storage: Option<&str>) -> String {
    let mut base = base_config(dir);
    if let Some(url) = storage {
        base = base.replace(&format!("sqlite://{}/llmux.db", dir.display()), url);
    }
    let path = dir.join("llmux.toml");
    std::fs::write(
        &path,
        format!(
            "{base}[[providers]]\nname = \"mock\"\nkind = \"mock\"\n\n[[models]]\nname = \"chat\"\nroutes = [{{ provider = \"mock\", model = \"echo\" }}]\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn create_key(config: &str) -> String {
    let output = Command::new(BIN).args(["keys", "create", "--config", config, "--name", "crash"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().next().unwrap().to_owned()
}

fn kill9(child: &mut Running) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Every record in the store, by request id, with how many there are of each.
async fn records(store: &dyn Store) -> HashMap<String, usize> {
    let rows = store.usage(&UsageFilter { limit: 1_000_000, ..UsageFilter::default() }).await.unwrap();
    let mut counts = HashMap::new();
    for row in rows {
        *counts.entry(row.record.request_id).or_insert(0) += 1;
    }
    counts
}

/// Waits until the store holds `count` records (or 20 s).
async fn wait_for(store: &dyn Store, count: usize) -> HashMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = records(store).await;
        if found.values().sum::<usize>() >= count || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `requests` chat requests over `lanes` concurrent connections, each with its own
/// `x-request-id`; the ids of those answered 200 with the whole body read.
async fn answered(address: &str, key: &str, requests: usize, lanes: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (http, address, key) = (http.clone(), address.to_owned(), key.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in (lane..requests).step_by(lanes) {
                let id = format!("crash-{n}");
                let stream = n % 2 == 1;
                let response = http
                    .post(format!("http://{address}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .header("x-request-id", &id)
                    .json(&json!({"model": "chat", "stream": stream, "messages": user("one two three")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let body = response.text().await.unwrap();
                assert!(!body.is_empty());
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids
}

async fn killed_right_after_answers(storage: Option<&str>, tag: &str, lanes: usize) {
    let dir = temp_dir(tag);
    let config = config(&dir, storage);
    let key = create_key(&config);
    let url = storage.map_or_else(|| format!("sqlite://{}/llmux.db", dir.display()), str::to_owned);
    let (mut child, address) = serve(&config);
    let ids = answered(&address, &key, 150, lanes).await;
    kill9(&mut child);

    let (mut child, _) = serve(&config);
    let store = llmux_store::open(&url).await.unwrap();
    let found = wait_for(store.as_ref(), ids.len()).await;
    let missing: Vec<&String> = ids.iter().filter(|id| !found.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} of {} answered requests have no record: {missing:?}", missing.len(), ids.len());
    let twice: Vec<_> = found.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "records written more than once: {twice:?}");
    assert_eq!(found.len(), ids.len());
    kill9(&mut child);
    check_private(&dir.join("spill"));
}

/// Every file llmux left in `dir` is readable by its owner only.
fn check_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
    }
}

#[tokio::test]
async fn sigkill_after_sequential_answers_loses_no_record() {
    killed_right_after_answers(None, "crash-seq", 1).await;
}

#[tokio::test]
async fn sigkill_after_concurrent_answers_loses_no_record() {
    killed_right_after_answers(None, "crash-conc", 16).await;
}

#[tokio::test]
async fn sigkill_after_answers_loses_no_record_on_postgres() {
    let schema = Schema::create().await;
    killed_right_after_answers(Some(&schema.url), "crash-pg", 16).await;
    schema.drop().await;
}

/// A journal left by a crashed instance, written as llmux writes it.
fn crashed_journal(dir: &std::path::Path, records: usize) -> std::path::PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("journal-4000000-0a1b2c3d4e5f-0.jsonl");
    let file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&path).unwrap();
    let mut out = std::io::BufWriter::new(file);
    for n in 0..records {
        let record = UsageRecord {
            request_id: format!("replayed-{n}"),
            record_id: format!("4000000-0a1b2c3d4e5f-{n:x}"),
            key_id: Some("key_x".into()),
            model: "chat".into(),
            status: 200,
            input_tokens: 3,
            output_tokens: 2,
            created_at: 1_790_000_000_000 + n as i64,
            ..UsageRecord::default()
        };
        serde_json::to_writer(&mut out, &record).unwrap();
        out.write_all(b"\n").unwrap();
    }
    // A last line cut short by the crash.
    out.write_all(b"{\"request_id\":\"cut").unwrap();
    out.flush().unwrap();
    path
}

async fn killed_during_replay(storage: Option<&str>, tag: &str) {
    const RECORDS: usize = 40_000;
    let dir = temp_dir(tag);
    let config = config(&dir, storage);
    let url = storage.map_or_else(|| format!("sqlite://{}/llmux.db", dir.display()), str::to_owned);
    let store: Arc<dyn Store> = llmux_store::open(&url).await.unwrap();
    let journal = crashed_journal(&dir.join("spill"), RECORDS);
    // Another program's file that merely looks alike is never taken.
    let foreign = dir.join("spill").join("usage-backup.jsonl");
    std::fs::copy(&journal, &foreign).unwrap();

    let (mut child, _) = serve(&config);
    // Killed as soon as the replay has written something.
    let deadline = Instant::now() + Duration::from_secs(20);
    while records(store.as_ref()).await.is_empty() {
        assert!(Instant::now() < deadline, "the journal was never replayed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill9(&mut child);
    let after_kill = records(store.as_ref()).await.len();
    eprintln!("killed during replay after {after_kill} of {RECORDS} records");

    let (mut child, _) = serve(&config);
    let found = wait_for(store.as_ref(), RECORDS).await;
    assert_eq!(found.len(), RECORDS, "every journaled record (killed after {after_kill})");
    assert!(found.values().all(|count| *count == 1), "a record written twice (killed after {after_kill})");
    let deadline = Instant::now() + Duration::from_secs(10);
    while journal.exists() {
        assert!(Instant::now() < deadline, "the replayed journal is removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(foreign.exists(), "a file llmux did not write is left alone");
    kill9(&mut child);
}

#[tokio::test]
async fn sigkill_during_replay_writes_no_record_twice() {
    killed_during_replay(None, "crash-replay").await;
}

#[tokio::test]
async fn sigkill_during_replay_writes_no_record_twice_on_postgres() {
    let schema = Schema::create().await;
    killed_during_replay(Some(&schema.url), "crash-replay-pg").await;
    schema.drop().await;
}

#[tokio::test]
async fn a_nul_in_a_model_name_blocks_no_record_on_postgres() {
    let schema = Schema::create().await;
    let dir = temp_dir("nul-pg");
    let config = config(&dir, Some(&schema.url));
    let key = create_key(&config);
    let (mut child, address) = serve(&config);
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for n in 0..10 {
        let model = if n == 4 { "chat\u{0}evil" } else { "chat" };
        let id = format!("nul-{n}");
        let response = http
            .post(format!("http://{address}/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-request-id", &id)
            .json(&json!({"model": model, "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success() || response.status().is_client_error(), "{}", response.status());
        ids.push(id);
    }
    let store = llmux_store::open(&schema.url).await.unwrap();
    let found = wait_for(store.as_ref(), ids.len()).await;
    for id in &ids {
        assert_eq!(found.get(id), Some(&1), "{id}: {found:?}");
    }
    kill9(&mut child);
    schema.drop().await;
}
