//! The usage ledger writer: requests hand records to a bounded channel and never wait
//! for the database; one background task writes them in batches.
//!
//! Guarantees: a record is appended to the instance's journal (see `journal`) before
//! it is handed over, so a crash of the process loses none: the next start writes
//! what the store did not get. On a clean shutdown the channel is drained and
//! flushed. When the store fails, batches go to a spill file on local disk (see
//! `spill`; in memory if that fails or is full) and are written, with backoff, when it
//! answers again. A batch the store refuses for its data is written in parts, so one
//! record it cannot hold never blocks the others (that one is set aside on disk). If
//! the channel is full, records go to an overflow list the writer also drains, so a
//! burst slows nothing and loses nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use llmux_store::{Store, UsageRecord};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::journal::{Journal, Segment};
use crate::spill::{Spill, insert_or_set_aside};

/// Records per insert transaction.
const BATCH: usize = 512;
/// Channel capacity.
const CAPACITY: usize = 16_384;

/// The sending side, cloned into every request.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Entry>,
    overflow: Arc<Mutex<Vec<Entry>>>,
    journal: Journal,
    ids: Arc<RecordIds>,
}

/// Unique record ids: this instance's name (pid and 48 random bits) and a counter.
#[derive(Debug)]
struct RecordIds {
    instance: String,
    next: std::sync::atomic::AtomicU64,
}

impl RecordIds {
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n:x}", self.instance)
    }
}

/// A record and where the journal holds it.
type Entry = (UsageRecord, Segment);

/// The writer task's handle; [`LedgerWriter::shutdown`] drains and flushes.
#[derive(Debug)]
pub struct LedgerWriter {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    journal: Journal,
}

impl Ledger {
    /// Starts the writer.
    /// Starts the writer, with this instance's journal in the spill directory.
    pub fn start(store: Arc<dyn Store>, flush_interval: Duration, spill: Spill) -> (Ledger, LedgerWriter) {
        let journal = Journal::open(spill.dir(), spill.instance());
        let (tx, rx) = mpsc::channel(CAPACITY);
        let overflow = Arc::new(Mutex::new(Vec::new()));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let ids = Arc::new(RecordIds { instance: spill.instance().to_owned(), next: Default::default() });
        let writer = Writer { store, journal: journal.clone(), spill };
        let task = tokio::spawn(write_loop(writer, rx, overflow.clone(), flush_interval, stop_rx));
        (Ledger { tx, overflow, journal: journal.clone(), ids }, LedgerWriter { stop, task, journal })
    }

    /// Appends a record to the journal (on disk, in the kernel, when this returns) and
    /// hands it to the writer without waiting.
    pub fn record(&self, mut record: UsageRecord) {
        if record.record_id.is_empty() {
            record.record_id = self.ids.next();
        }
        let segment = self.journal.append(&record);
        if let Err(error) = self.tx.try_send((record, segment)) {
            let record = match error {
                mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record) => record,
            };
            self.overflow.lock().push(record);
        }
    }
}

impl LedgerWriter {
    /// Drains everything handed over so far and writes it. Waits at most `grace`
    /// for a failing store.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::error!(
                "Usage ledger could not be flushed before the shutdown deadline; the journal keeps the records not written for the next start."
            );
        }
        self.journal.close();
    }
}

/// What the writer task owns.
struct Writer {
    store: Arc<dyn Store>,
    journal: Journal,
    spill: Spill,
}

async fn write_loop(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Entry>,
    overflow: Arc<Mutex<Vec<Entry>>>,
    flush_interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut pending = Pending::default();
    let mut backoff = Duration::ZERO;
    let mut stopping = false;
    while !stopping {
        // Wait for the first record of a batch, then collect for one flush interval
        // (or until the batch is full), so the store sees a few large transactions
        // per second whatever the request rate.
        if pending.is_empty() && !writer.spill.has_backlog() {
            tokio::select! {
                received = rx.recv_many(&mut batch, BATCH) => stopping = received == 0,
                _ = stop.changed() => stopping = true,
            }
        }
        // After a failure, wait out the backoff (collecting meanwhile) before retrying.
        // Records are taken many at a time; the timer is set once per batch.
        let deadline = tokio::time::sleep(flush_interval.max(backoff));
        tokio::pin!(deadline);
        while !stopping && batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                received = rx.recv_many(&mut batch, room) => stopping = received == 0,
                _ = &mut deadline => break,
                _ = stop.changed() => stopping = true,
            }
        }
        batch.append(&mut overflow.lock());
        pending.take_from(&mut batch);
        // A panic while writing (a bug, or a store driver's) must not stop the ledger:
        // the batch it hit is left to the journal, whose unsettled segments the next
        // start writes (once each, by record id), and the writer goes on.
        let flushed = std::panic::AssertUnwindSafe(flush(&mut pending, &mut writer)).catch_unwind().await;
        let flushed = flushed.unwrap_or_else(|_| {
            tracing::error!(
                pending = pending.len(),
                "The ledger writer panicked writing a batch; its records stay in the journal for the next start."
            );
            pending.abandon();
            Ok(())
        });
        match flushed {
            Ok(()) => backoff = Duration::ZERO,
            Err(error) => {
                if backoff.is_zero() {
                    tracing::error!(%error, "Usage records could not be written; keeping them until the store answers.");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                pending.spill_to(&mut writer);
            }
        }
    }
    // Drain to the end: everything handed over before shutdown is written.
    rx.close();
    while let Some(entry) = rx.recv().await {
        batch.push(entry);
    }
    batch.append(&mut overflow.lock());
    pending.take_from(&mut batch);
    // The store may be down: what it does not take now goes to disk for the next
    // start; only what cannot go there either is retried until the grace period ends.
    let mut wait = Duration::from_millis(100);
    while let Err(error) = pending.flush(&mut writer).await {
        pending.spill_to(&mut writer);
        if pending.is_empty() {
            tracing::warn!(%error, "Usage records kept on disk at shutdown; the next start writes them.");
            return;
        }
        tracing::error!(%error, pending = pending.len(), "Usage records could not be written at shutdown; retrying.");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Writes what is pending, then the spill's backlog.
async fn flush(pending: &mut Pending, writer: &mut Writer) -> Result<(), String> {
    match pending.flush(writer).await {
        Ok(()) if writer.spill.has_backlog() => {
            writer.spill.replay(writer.store.as_ref()).await.map(drop).map_err(|error| error.to_string())
        }
        Ok(()) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

/// Records waiting for the store, in arrival order, in chunks of at most [`BATCH`].
/// A chunk leaves only once written (or spilled), and only then is it settled in the
/// journal, so a failure never loses or duplicates a record.
#[derive(Default)]
struct Pending(VecDeque<Chunk>);

struct Chunk {
    records: Arc<[UsageRecord]>,
    segments: Vec<Segment>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.iter().map(|chunk| chunk.records.len()).sum()
    }

    /// Gives up on every chunk without settling its journal segments: the records stay
    /// on disk for the next start.
    fn abandon(&mut self) {
        self.0.clear();
    }

    fn take_from(&mut self, batch: &mut Vec<Entry>) {
        while !batch.is_empty() {
            let take = batch.len().min(BATCH);
            let (records, segments): (Vec<UsageRecord>, Vec<Segment>) = batch.drain(..take).unzip();
            self.0.push_back(Chunk { records: records.into(), segments });
        }
    }

    /// Moves chunks to disk, oldest first, while the spill takes them.
    fn spill_to(&mut self, writer: &mut Writer) {
        while let Some(chunk) = self.0.front() {
            if let Err(error) = writer.spill.append(&chunk.records) {
                tracing::error!(%error, pending = self.len(), "Usage records could not be spilled to disk; keeping them in memory.");
                return;
            }
            if let Some(chunk) = self.0.pop_front() {
                writer.journal.settle(chunk.segments);
            }
        }
    }

    async fn flush(&mut self, writer: &mut Writer) -> Result<(), llmux_store::StoreError> {
        while let Some(chunk) = self.0.front() {
            insert_or_set_aside(writer.store.as_ref(), chunk.records.clone(), &mut writer.spill.rejected).await?;
            if let Some(chunk) = self.0.pop_front() {
                writer.journal.settle(chunk.segments);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use llmux_store::{GroupBy, KeyRecord, StoreError, StoredUsage, TeamRecord, UsageFilter, UsageSummaryRow};

    use super::*;

    /// A store whose ledger fails the first `failures` writes, then records batches.
    #[derive(Debug, Default)]
    struct FlakyStore {
        failures: AtomicUsize,
        /// Writes that panic (after the failures).
        panics: AtomicUsize,
        /// Record ids held, which are skipped when written again (as both stores do).
        held: Mutex<std::collections::HashSet<String>>,
        batches: Mutex<Vec<usize>>,
        written: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Store for FlakyStore {
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn create_key(&self, _: &KeyRecord) -> Result<(), StoreError> {
            Ok(())
        }
        async fn update_key(&self, _: &KeyRecord) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn key(&self, _: &str) -> Result<Option<KeyRecord>, StoreError> {
            Ok(None)
        }
        async fn key_by_hash(&self, _: &str) -> Result<Option<KeyRecord>, StoreError> {
            Ok(None)
        }
        async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn keys_changed_since(&self, _: i64) -> Result<Vec<KeyRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn create_team(&self, _: &TeamRecord) -> Result<(), StoreError> {
            Ok(())
        }
        async fn update_team(&self, _: &TeamRecord) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn team(&self, _: &str) -> Result<Option<TeamRecord>, StoreError> {
            Ok(None)
        }
        async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn teams_updated_since(&self, _: i64) -> Result<Vec<TeamRecord>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete_team(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn team_spend(&self, _: &str, _: &str, _: i64) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn put_response(&self, _: &llmux_store::StoredResponse) -> Result<(), StoreError> {
            Ok(())
        }
        async fn response(&self, _: &str, _: i64) -> Result<Option<llmux_store::StoredResponse>, StoreError> {
            Ok(None)
        }
        async fn delete_response(&self, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn purge_responses(&self, _: i64) -> Result<u64, StoreError> {
            Ok(0)
        }
        async fn insert_usage(&self, records: Arc<[UsageRecord]>) -> Result<(), StoreError> {
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::Unavailable("down".into()));
            }
            if self.panics.load(Ordering::SeqCst) > 0 {
                self.panics.fetch_sub(1, Ordering::SeqCst);
                panic!("a store driver bug");
            }
            if records.iter().any(|r| r.model.contains('\0')) {
                return Err(StoreError::Rejected("invalid byte sequence".into()));
            }
            self.batches.lock().push(records.len());
            let mut held = self.held.lock();
            let new = records.iter().filter(|r| r.record_id.is_empty() || held.insert(r.record_id.clone()));
            self.written.lock().extend(new.map(|r| r.request_id.clone()));
            Ok(())
        }
        async fn usage(&self, _: &UsageFilter) -> Result<Vec<StoredUsage>, StoreError> {
            Ok(Vec::new())
        }
        async fn key_spend(&self, _: &str, _: &str, _: i64) -> Result<i64, StoreError> {
            Ok(0)
        }
        async fn usage_summary(
            &self,
            _: GroupBy,
            _: Option<i64>,
            _: Option<i64>,
        ) -> Result<Vec<UsageSummaryRow>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn record(id: usize) -> UsageRecord {
        UsageRecord { request_id: format!("r{id}"), model: "m".into(), status: 200, ..UsageRecord::default() }
    }

    fn spill_dir(tag: &str) -> std::path::PathBuf {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        std::env::temp_dir().join(format!("llmux-spill-{tag}-{}", u64::from_le_bytes(random)))
    }

    fn spill(dir: &std::path::Path) -> Spill {
        Spill::new(dir, 1 << 30)
    }

    fn spilled_records(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.file_name().to_string_lossy().starts_with("usage-"))
                    .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default().lines().count())
                    .sum()
            })
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn batches_per_flush_interval_and_survives_store_failures() {
        let store = Arc::new(FlakyStore { failures: AtomicUsize::new(2), ..FlakyStore::default() });
        let dir = spill_dir("flaky");
        let (ledger, writer) = Ledger::start(store.clone(), Duration::from_millis(200), spill(&dir));
        for id in 0..100 {
            ledger.record(record(id));
        }
        // The first attempt fails: the batch goes to disk. The replay fails once more,
        // then writes it in one batch and removes the file.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(spilled_records(&dir), 100);
        assert!(store.batches.lock().is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(*store.batches.lock(), vec![100]);
        assert_eq!(spilled_records(&dir), 0);
        for id in 100..110 {
            ledger.record(record(id));
        }
        writer.shutdown(Duration::from_secs(30)).await;
        let written = store.written.lock().clone();
        assert_eq!(written.len(), 110);
        let expected: Vec<String> = (0..110).map(|id| format!("r{id}")).collect();
        assert_eq!(written, expected, "every record exactly once, in order");
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_the_store_refuses_never_blocks_the_others() {
        let store = Arc::new(FlakyStore::default());
        let dir = spill_dir("poison");
        let (ledger, writer) = Ledger::start(store.clone(), Duration::from_millis(50), spill(&dir));
        for id in 0..40 {
            let model = if id == 17 { "bad\0name".to_owned() } else { "m".to_owned() };
            ledger.record(UsageRecord { model, ..record(id) });
        }
        writer.shutdown(Duration::from_secs(5)).await;
        let expected: Vec<String> = (0..40).filter(|id| *id != 17).map(|id| format!("r{id}")).collect();
        assert_eq!(*store.written.lock(), expected, "every other record, in order");
        // The refused one is kept aside on disk (0600), not replayed, not lost.
        let rejected: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("rejected-"))
            .collect();
        assert_eq!(rejected.len(), 1);
        let text = std::fs::read_to_string(rejected[0].path()).unwrap();
        assert!(text.contains("\"r17\"") && text.lines().count() == 1, "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(rejected[0].metadata().unwrap().permissions().mode() & 0o777, 0o600);
        // Nothing else is left: the journal was settled and removed at shutdown.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_while_writing_leaves_the_batch_to_the_journal_and_the_writer_goes_on() {
        let dir = spill_dir("panic");
        let store = Arc::new(FlakyStore { panics: AtomicUsize::new(1), ..FlakyStore::default() });
        let (ledger, writer) = Ledger::start(store.clone(), Duration::from_millis(50), spill(&dir));
        for id in 0..3 {
            ledger.record(record(id));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(store.written.lock().is_empty(), "the first batch hit the panic");
        for id in 3..5 {
            ledger.record(record(id));
        }
        writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(*store.written.lock(), ["r3", "r4"], "the writer kept going");
        drop(ledger);
        // The next start writes the batch the panic hit, from the journal, once the
        // first instance's journal thread has let go of its file (it is taken at a
        // start or a rescan, every minute).
        let (_ledger, writer) = Ledger::start(store.clone(), Duration::from_millis(50), spill(&dir));
        for _ in 0..200 {
            if store.written.lock().len() == 5 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            tokio::time::sleep(Duration::from_secs(61)).await;
        }
        writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(*store.written.lock(), ["r3", "r4", "r0", "r1", "r2"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_flushes_records_handed_over_just_before() {
        let store = Arc::new(FlakyStore::default());
        let (ledger, writer) = Ledger::start(store.clone(), Duration::from_secs(60), spill(&spill_dir("shutdown")));
        for id in 0..5 {
            ledger.record(record(id));
        }
        writer.shutdown(Duration::from_secs(5)).await;
        assert_eq!(store.written.lock().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn records_of_a_store_outage_wait_on_disk_across_a_restart() {
        let dir = spill_dir("restart");
        // The store is down for the whole life of the first instance.
        let down = Arc::new(FlakyStore { failures: AtomicUsize::new(usize::MAX), ..FlakyStore::default() });
        let (ledger, writer) = Ledger::start(down.clone(), Duration::from_millis(50), spill(&dir));
        for id in 0..700 {
            ledger.record(record(id));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        writer.shutdown(Duration::from_secs(1)).await;
        assert!(down.written.lock().is_empty());
        assert_eq!(spilled_records(&dir), 700, "all on disk, none lost");

        // Another instance holds its own file: a new instance must not take it.
        let mut other = spill(&dir);
        other.append(&[record(9_999)]).unwrap();

        // The next start writes them once the store answers, oldest first, in batches.
        let up = Arc::new(FlakyStore::default());
        let (_ledger, writer) = Ledger::start(up.clone(), Duration::from_millis(50), spill(&dir));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = up.written.lock().clone();
        assert_eq!(written, (0..700).map(|id| format!("r{id}")).collect::<Vec<_>>());
        assert_eq!(*up.batches.lock(), vec![512, 188]);
        assert_eq!(spilled_records(&dir), 1, "the live instance's file stays");
        // Once that instance is gone, its records are taken too (at the next scan).
        drop(other);
        let mut later = spill(&dir);
        assert_eq!(later.replay(up.as_ref()).await.unwrap(), 1);
        assert_eq!(spilled_records(&dir), 0);
        writer.shutdown(Duration::from_secs(1)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
