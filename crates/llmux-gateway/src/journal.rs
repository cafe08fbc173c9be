//! The usage journal: every record on local disk before the writer sees it, so a crash
//! of the process loses none.
//!
//! [`Journal::append`] writes the record (one JSON line) to this instance's current
//! segment, `journal-<pid>-<random>-<n>.jsonl` in `storage.spill_dir` (mode 0600,
//! locked while this instance holds it), with one `write(2)` from the request's own
//! thread: once it returns, the record is in the kernel and survives SIGKILL of the
//! process. A dedicated thread makes it durable against a crash of the machine too:
//! it calls `fdatasync` once for everything appended since its last call (group
//! commit), at most every [`MIN_SYNC_INTERVAL`], so a burst costs one sync, not one
//! per record.
//!
//! The ledger writer reports records as settled once the store (or the spill file) has
//! them; a segment (rotated every [`SEGMENT_BYTES`]) is deleted when all its records
//! are settled, so the journal holds little more than what the store has not taken
//! yet. Segments left by a crashed instance (their lock free) are replayed by the
//! spill's replay, which is idempotent (the ledger skips a `request_id` it holds).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use llmux_store::UsageRecord;
use parking_lot::{Condvar, Mutex};

/// A segment is closed and a new one opened past this size.
const SEGMENT_BYTES: u64 = 8 << 20;

/// The least time between two `fdatasync`s: under load a sync every few milliseconds
/// costs the kernel (and the request path, preempted by the wake-ups) far more than
/// the few more milliseconds of records a crash of the machine could lose.
const MIN_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(25);

/// The journal; cheap to clone. Disabled (every call a no-op) if its directory or
/// file cannot be written, which is logged.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// `journal-<pid>-<random>-`.
    prefix: String,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    current: u64,
    file: Arc<File>,
    bytes: u64,
    /// Per segment: records written, records settled.
    segments: BTreeMap<u64, Counts>,
    /// Files with writes not yet synced.
    unsynced: Vec<Arc<File>>,
    stop: bool,
    /// Set once a write failed: the journal is off from then on (logged once).
    broken: bool,
    /// Syncs done and the longest one, for the log at shutdown.
    syncs: u64,
    slowest_sync_us: u64,
}

#[derive(Debug, Default)]
struct Counts {
    written: u64,
    settled: u64,
    /// No longer written to (rotated, or the journal closed).
    closed: bool,
    /// A closed segment's file, kept open until the segment is deleted: its lock tells
    /// other instances (and this one's replay) that it is not theirs to take.
    held: Option<Arc<File>>,
}

/// Where a record was journaled: its segment, for [`Journal::settle`].
pub type Segment = Option<u64>;

impl Journal {
    /// Opens a new journal for this instance in `dir`, named after `instance`
    /// (`<pid>-<random>`). Never fails: a journal that cannot be opened is off.
    pub fn open(dir: &Path, instance: &str) -> Journal {
        let prefix = format!("journal-{instance}-");
        match create_segment(dir, &prefix, 0) {
            Ok(file) => {
                let file = Arc::new(file);
                let inner = Arc::new(Inner {
                    dir: dir.to_owned(),
                    prefix,
                    state: Mutex::new(State {
                        current: 0,
                        file,
                        bytes: 0,
                        segments: BTreeMap::from([(0, Counts::default())]),
                        unsynced: Vec::new(),
                        stop: false,
                        broken: false,
                        syncs: 0,
                        slowest_sync_us: 0,
                    }),
                    wake: Condvar::new(),
                });
                let syncer = inner.clone();
                let started =
                    std::thread::Builder::new().name("llmux-journal".to_owned()).spawn(move || syncer.sync_loop());
                if let Err(error) = started {
                    tracing::error!(%error, "Usage journal off: cannot start its thread.");
                    return Journal::default();
                }
                Journal { inner: Some(inner) }
            }
            Err(error) => {
                tracing::error!(%error, dir = %dir.display(), "Usage journal off: cannot create its file; records of answered requests may be lost in a crash.");
                Journal::default()
            }
        }
    }

    /// Writes `record` to the journal (in the kernel when this returns). Its segment,
    /// or `None` when the journal is off.
    pub fn append(&self, record: &UsageRecord) -> Segment {
        let inner = self.inner.as_ref()?;
        let mut line = Vec::with_capacity(512);
        serde_json::to_writer(&mut line, record).ok()?;
        line.push(b'\n');
        let mut state = inner.state.lock();
        if state.broken {
            return None;
        }
        if state.bytes >= SEGMENT_BYTES
            && let Err(error) = inner.rotate(&mut state)
        {
            tracing::error!(%error, "Usage journal off: cannot open a new segment.");
            state.broken = true;
            return None;
        }
        if let Err(error) = (&*state.file).write_all(&line) {
            tracing::error!(%error, "Usage journal off: a write failed.");
            state.broken = true;
            return None;
        }
        state.bytes += line.len() as u64;
        let current = state.current;
        state.segments.entry(current).or_default().written += 1;
        if state.unsynced.is_empty() {
            let file = state.file.clone();
            state.unsynced.push(file);
            inner.wake.notify_one();
        }
        Some(current)
    }

    /// Records that the store (or the spill file) holds the records journaled in
    /// `segments` (one entry per record); deletes segments that are done.
    pub fn settle(&self, segments: impl IntoIterator<Item = Segment>) {
        let Some(inner) = &self.inner else { return };
        let mut state = inner.state.lock();
        for segment in segments.into_iter().flatten() {
            if let Some(counts) = state.segments.get_mut(&segment) {
                counts.settled += 1;
            }
        }
        let done: Vec<u64> = state
            .segments
            .iter()
            .filter(|(_, counts)| counts.closed && counts.settled >= counts.written)
            .map(|(segment, _)| *segment)
            .collect();
        for segment in done {
            // Removed while still locked, then closed.
            let _ = std::fs::remove_file(inner.path(segment));
            state.segments.remove(&segment);
        }
    }

    /// At a clean shutdown, once the ledger has written everything: removes the
    /// segments whose records are all settled (the rest stay for the next start) and
    /// stops the sync thread.
    pub fn close(&self) {
        let Some(inner) = &self.inner else { return };
        let mut state = inner.state.lock();
        let current = state.current;
        if let Some(counts) = state.segments.get_mut(&current) {
            counts.closed = true;
        }
        drop(state);
        self.settle([]);
        let mut state = inner.state.lock();
        state.stop = true;
        inner.wake.notify_one();
        if state.syncs > 0 {
            tracing::debug!(syncs = state.syncs, slowest_sync_us = state.slowest_sync_us, "Usage journal closed.");
        }
    }
}

impl Inner {
    fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{}{segment}.jsonl", self.prefix))
    }

    /// Closes the current segment (its file stays open, to be synced) and opens the next.
    fn rotate(&self, state: &mut State) -> std::io::Result<()> {
        let next = state.current + 1;
        let file = Arc::new(create_segment(&self.dir, &self.prefix, next)?);
        let previous = state.current;
        let held = std::mem::replace(&mut state.file, file);
        if let Some(counts) = state.segments.get_mut(&previous) {
            counts.closed = true;
            counts.held = Some(held);
        }
        state.current = next;
        state.bytes = 0;
        state.segments.insert(next, Counts::default());
        Ok(())
    }

    /// Group commit: one `fdatasync` per file for everything written since the last.
    fn sync_loop(self: Arc<Self>) {
        let mut state = self.state.lock();
        loop {
            while state.unsynced.is_empty() && !state.stop {
                self.wake.wait(&mut state);
            }
            if state.unsynced.is_empty() && state.stop {
                return;
            }
            let files = std::mem::take(&mut state.unsynced);
            drop(state);
            let started = Instant::now();
            for file in &files {
                if let Err(error) = file.sync_data() {
                    tracing::error!(%error, "Usage journal: fdatasync failed.");
                }
            }
            let elapsed = started.elapsed();
            let took = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            state = self.state.lock();
            state.syncs += 1;
            state.slowest_sync_us = state.slowest_sync_us.max(took);
            // Let appends gather before the next sync (not at shutdown).
            if !state.stop {
                let rest = MIN_SYNC_INTERVAL.saturating_sub(elapsed);
                let _ = self.wake.wait_while_for(&mut state, |state| !state.stop, rest);
            }
        }
    }
}

/// Creates segment `n` (0600), locked by this instance.
fn create_segment(dir: &Path, prefix: &str, n: u64) -> std::io::Result<File> {
    crate::spill::create_private_dir(dir)?;
    let file = crate::spill::create_private(&dir.join(format!("{prefix}{n}.jsonl")))?;
    file.try_lock().map_err(|error| std::io::Error::other(error.to_string()))?;
    Ok(file)
}

/// Whether `name` is a journal segment's (`journal-<pid>-<12 hex>-<n>.jsonl`).
pub fn is_segment_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("journal-").and_then(|rest| rest.strip_suffix(".jsonl")) else {
        return false;
    };
    let mut parts = rest.split('-');
    let (Some(pid), Some(random), Some(n), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    crate::spill::all_digits(pid) && crate::spill::is_random(random) && crate::spill::all_digits(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_exact() {
        assert!(is_segment_name("journal-123-0a1b2c3d4e5f-0.jsonl"));
        assert!(is_segment_name("journal-1-ffffffffffff-42.jsonl"));
        for name in [
            "journal-123-0a1b2c3d4e5f.jsonl",
            "journal-x-0a1b2c3d4e5f-0.jsonl",
            "journal-123-0A1B2C3D4E5F-0.jsonl",
            "journal-123-0a1b2c3d4e5f-0.jsonl.tmp",
            "usage-123-0a1b2c3d4e5f.jsonl",
            "journal-123-0a1b2c3d4e5f-0-1.jsonl",
        ] {
            assert!(!is_segment_name(name), "{name}");
        }
    }

    #[test]
    fn records_are_on_disk_at_once_and_segments_go_when_settled() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("llmux-journal-test-{}", std::process::id()));
        let journal = Journal::open(&dir, "1-0a1b2c3d4e5f");
        let record = UsageRecord { request_id: "r1".into(), model: "m".into(), ..UsageRecord::default() };
        let segment = journal.append(&record);
        assert_eq!(segment, Some(0));
        let path = dir.join("journal-1-0a1b2c3d4e5f-0.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(serde_json::from_str::<UsageRecord>(text.trim()).unwrap(), record);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // The current segment stays while open, even settled...
        journal.settle([segment]);
        assert!(path.exists());
        // ...and goes at a clean close once settled.
        journal.close();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_segment_is_rotated_held_locked_and_deleted_once_settled() {
        let dir = std::env::temp_dir().join(format!("llmux-journal-test-rotate-{}", std::process::id()));
        let journal = Journal::open(&dir, "3-0a1b2c3d4e5f");
        let record = UsageRecord { request_id: "r".repeat(1000), ..UsageRecord::default() };
        let mut first = Vec::new();
        let second = loop {
            match journal.append(&record) {
                Some(0) => first.push(Some(0)),
                other => break other,
            }
        };
        assert_eq!(second, Some(1));
        let full = dir.join("journal-3-0a1b2c3d4e5f-0.jsonl");
        assert!(std::fs::metadata(&full).unwrap().len() >= SEGMENT_BYTES);
        // Still locked by this instance: no replay may take it.
        assert!(File::open(&full).unwrap().try_lock().is_err());
        let last = first.pop().flatten();
        journal.settle(first);
        assert!(full.exists(), "one record of it is not settled yet");
        journal.settle([last]);
        assert!(!full.exists());
        assert!(dir.join("journal-3-0a1b2c3d4e5f-1.jsonl").exists());
        journal.close();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_closed_segment_with_unsettled_records_stays() {
        let dir = std::env::temp_dir().join(format!("llmux-journal-test-open-{}", std::process::id()));
        let journal = Journal::open(&dir, "2-0a1b2c3d4e5f");
        let record = UsageRecord { request_id: "r1".into(), ..UsageRecord::default() };
        journal.append(&record);
        journal.close();
        assert!(dir.join("journal-2-0a1b2c3d4e5f-0.jsonl").exists(), "unsettled: kept for the next start");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
