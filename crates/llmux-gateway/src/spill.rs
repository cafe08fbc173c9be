//! Usage records on local disk while the store is unreachable.
//!
//! When a ledger write fails, the ledger writer appends the batch to this instance's
//! spill file (`usage-<pid>-<random>.jsonl` in `storage.spill_dir`, one JSON record a
//! line, synced to disk, mode 0600) instead of holding it in memory, so records survive
//! a crash of the instance during the outage. Once the store answers again the files
//! are written to it and removed. Each file is locked by the instance writing it; an
//! instance also replays the files of instances that are gone (their lock is free),
//! at start and every minute: spill files and journal segments (see `journal`), and
//! only names of exactly those two patterns. The files together hold at most
//! `storage.spill_max_mb`; beyond that, records wait in memory.
//!
//! A replay streams: a file is read [`BATCH`] records at a time, each chunk written
//! before the next is read. The ledger skips a `request_id` it holds already, so a
//! replay cut short (a crash, the store failing) is simply done again from the start
//! of the file, and never bills a request twice.
//!
//! A record the store refuses on its own (not a batch failing for a reason that would
//! pass, such as the store being down) is written to `rejected-<pid>-<random>.jsonl`
//! in the same directory (0600; never replayed) and logged with its request id, so it
//! neither blocks the records behind it nor is lost.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmux_store::{Store, StoreError, UsageRecord};

/// Records per store write during a replay.
const BATCH: usize = 512;
/// How often files of other (stopped) instances are looked for.
const RESCAN: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    max_bytes: u64,
    /// This instance's file, locked, once something was spilled.
    own: Option<(PathBuf, File)>,
    /// `<pid>-<random>`: names this instance's files.
    instance: String,
    own_name: String,
    /// Where records the store refuses on their own go.
    pub(crate) rejected: Rejected,
    /// Bytes in this instance's file.
    own_bytes: u64,
    /// Whether any file may hold records.
    backlog: bool,
    last_scan: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the spill directory is full ({0} bytes)")]
    Full(u64),
    #[error("spill file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Spill {
    pub fn new(dir: &Path, max_bytes: u64) -> Spill {
        let mut random = [0u8; 6];
        let _ = getrandom::fill(&mut random);
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let instance = format!("{}-{suffix}", std::process::id());
        Spill {
            dir: dir.to_owned(),
            max_bytes,
            own: None,
            own_name: format!("usage-{instance}.jsonl"),
            rejected: Rejected::new(dir, &instance),
            instance,
            own_bytes: 0,
            // Files left by an earlier run are looked for at the first chance.
            backlog: true,
            last_scan: None,
        }
    }

    /// The directory of the spill files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<pid>-<random>`: what this instance's files are named after.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether records may be waiting on disk (checked again every minute).
    pub fn has_backlog(&mut self) -> bool {
        if !self.backlog && self.last_scan.is_none_or(|at| at.elapsed() >= RESCAN) {
            self.backlog = true;
        }
        self.backlog
    }

    /// Appends `records` to this instance's file, synced to disk.
    pub fn append(&mut self, records: &[UsageRecord]) -> Result<(), SpillError> {
        let mut lines = Vec::with_capacity(records.len() * 400);
        for record in records {
            serde_json::to_writer(&mut lines, record).map_err(std::io::Error::from)?;
            lines.push(b'\n');
        }
        if self.others_bytes() + self.own_bytes + lines.len() as u64 > self.max_bytes {
            return Err(SpillError::Full(self.max_bytes));
        }
        if self.own.is_none() {
            create_private_dir(&self.dir)?;
            let path = self.dir.join(&self.own_name);
            let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path)?;
            file.try_lock().map_err(|error| std::io::Error::other(error.to_string()))?;
            self.own_bytes = file.metadata()?.len();
            self.own = Some((path, file));
        }
        let Some((_, file)) = &mut self.own else { unreachable!("opened above") };
        file.write_all(&lines)?;
        file.sync_data()?;
        self.own_bytes += lines.len() as u64;
        self.backlog = true;
        Ok(())
    }

    fn others_bytes(&self) -> u64 {
        self.files()
            .iter()
            .filter(|path| path.file_name().is_some_and(|name| name != self.own_name.as_str()))
            .filter_map(|path| path.metadata().ok())
            .map(|metadata| metadata.len())
            .sum()
    }

    fn files(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| is_spill_name(name) || crate::journal::is_segment_name(name))
            })
            .collect();
        files.sort();
        files
    }

    /// Writes every spilled record this instance may take (its own, and those of
    /// stopped instances) to `store`, removing what was written. Returns how many.
    pub async fn replay(&mut self, store: &dyn Store) -> Result<usize, SpillError> {
        self.last_scan = Some(Instant::now());
        // This instance's own file is closed first (its lock released), so that every
        // file is taken the same way: opened and locked, or skipped when another live
        // instance holds it. The next append opens a new one.
        self.own = None;
        self.own_bytes = 0;
        let mut written = 0;
        for path in self.files() {
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else { continue };
            if file.try_lock().is_err() {
                continue;
            }
            written += replay_file(&path, &file, store, &mut self.rejected).await?;
        }
        self.backlog = false;
        Ok(written)
    }
}

/// Writes the records of one locked file to the store, [`BATCH`] at a time as they are
/// read; removes the file when all are written. On a failure the file stays as it is:
/// the next replay writes it again from the start, and the ledger skips what it holds.
async fn replay_file(
    path: &Path,
    file: &File,
    store: &dyn Store,
    rejected: &mut Rejected,
) -> Result<usize, SpillError> {
    let mut lines = BufReader::new(File::open(path)?);
    let mut chunk: Vec<UsageRecord> = Vec::with_capacity(BATCH);
    let mut line = Vec::new();
    let mut done = 0;
    loop {
        let end = !read_line(&mut lines, &mut line)?;
        if line.iter().any(|byte| !byte.is_ascii_whitespace()) {
            match serde_json::from_slice(&line) {
                Ok(record) => chunk.push(record),
                // A line cut short by a crash while it was being written.
                Err(error) => {
                    tracing::error!(%error, file = %path.display(), "Skipping an unreadable spilled usage record.")
                }
            }
        }
        if chunk.len() == BATCH || (end && !chunk.is_empty()) {
            let records = chunk.len();
            insert_or_set_aside(store, Arc::from(std::mem::take(&mut chunk)), rejected).await?;
            done += records;
            chunk.reserve(BATCH);
        }
        if end {
            break;
        }
    }
    std::fs::remove_file(path)?;
    let _ = file.unlock();
    if done > 0 {
        tracing::info!(file = %path.display(), "Spilled or journaled usage records written to the store.");
    }
    Ok(done)
}

/// The longest line a replay reads; a longer one (no record is near it) is skipped.
const MAX_LINE: u64 = 4 << 20;

/// Reads the next line into `line` (cleared first; empty if it was over [`MAX_LINE`]),
/// holding at most that much in memory. `false` at the end of the file.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let read = reader.by_ref().take(MAX_LINE).read_until(b'\n', line)?;
    if read == 0 {
        return Ok(false);
    }
    if line.len() as u64 == MAX_LINE && line.last() != Some(&b'\n') {
        tracing::error!("Skipping an over-long line in a spilled or journaled usage file.");
        line.clear();
        // Discards the rest of it, a buffer at a time.
        loop {
            let buffer = reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(false);
            }
            match buffer.iter().position(|byte| *byte == b'\n') {
                Some(at) => {
                    reader.consume(at + 1);
                    return Ok(true);
                }
                None => {
                    let all = buffer.len();
                    reader.consume(all);
                }
            }
        }
    }
    Ok(true)
}

/// Writes `records` to the store. When the store refuses the batch itself
/// ([`StoreError::Rejected`]), the batch is split in halves and each written on its
/// own, down to single records: a record refused alone goes to `rejected` (on disk,
/// logged) and the others are written. Fails only for a store that is unavailable.
pub(crate) async fn insert_or_set_aside(
    store: &dyn Store,
    records: Arc<[UsageRecord]>,
    rejected: &mut Rejected,
) -> Result<(), StoreError> {
    let mut todo = vec![records];
    while let Some(batch) = todo.pop() {
        match store.insert_usage(batch.clone()).await {
            Ok(()) => {}
            Err(StoreError::Rejected(reason)) if batch.len() > 1 => {
                tracing::warn!(%reason, records = batch.len(), "The store refused a batch of usage records; writing it in parts.");
                let (first, second) = batch.split_at(batch.len() / 2);
                // Popped last first: the first half is written first.
                todo.push(Arc::from(second));
                todo.push(Arc::from(first));
            }
            Err(StoreError::Rejected(reason)) => rejected.set_aside(&batch[0], &reason),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Records the store refused on their own: `rejected-<pid>-<random>.jsonl`, kept for
/// an operator (never replayed).
#[derive(Debug)]
pub(crate) struct Rejected {
    path: PathBuf,
}

impl Rejected {
    pub(crate) fn new(dir: &Path, instance: &str) -> Rejected {
        Rejected { path: dir.join(format!("rejected-{instance}.jsonl")) }
    }

    fn set_aside(&mut self, record: &UsageRecord, reason: &str) {
        let written = (|| -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                create_private_dir(dir)?;
            }
            let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
            let mut line = serde_json::to_vec(record).map_err(std::io::Error::from)?;
            line.push(b'\n');
            file.write_all(&line)?;
            file.sync_data()
        })();
        match written {
            Ok(()) => tracing::error!(
                request_id = %record.request_id, %reason, file = %self.path.display(),
                "The store refused a usage record; it is kept in the file named here and not written."
            ),
            Err(error) => tracing::error!(
                request_id = %record.request_id, %reason, %error,
                "The store refused a usage record and it could not be kept on disk; it is dropped."
            ),
        }
    }
}

/// Creates `dir` (and its parents) if missing, the last one 0700.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates (or opens for appending) `path` with mode 0600.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

pub(crate) fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.len() <= 20 && text.bytes().all(|byte| byte.is_ascii_digit())
}

/// The random part of a name: 12 lowercase hex digits.
pub(crate) fn is_random(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` is a spill file's (`usage-<pid>-<12 hex>.jsonl`).
fn is_spill_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("usage-").and_then(|rest| rest.strip_suffix(".jsonl")) else { return false };
    rest.split_once('-').is_some_and(|(pid, random)| all_digits(pid) && is_random(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exact() {
        assert!(is_spill_name("usage-42-0a1b2c3d4e5f.jsonl"));
        for name in [
            "usage-backup.jsonl",
            "usage-42-0a1b2c3d4e5f.jsonl.tmp",
            "usage-42-0a1b.jsonl",
            "usage--0a1b2c3d4e5f.jsonl",
        ] {
            assert!(!is_spill_name(name), "{name}");
        }
    }

    #[test]
    fn lines_are_read_within_a_bound() {
        let long = vec![b'x'; MAX_LINE as usize + 10];
        let mut text = b"{\"a\":1}\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\nlast");
        let mut reader = std::io::Cursor::new(text);
        let mut line = Vec::new();
        assert!(read_line(&mut reader, &mut line).unwrap());
        assert_eq!(line, b"{\"a\":1}\n");
        assert!(read_line(&mut reader, &mut line).unwrap());
        assert!(line.is_empty(), "the over-long line is skipped, not held");
        assert!(read_line(&mut reader, &mut line).unwrap());
        assert_eq!(line, b"last");
        assert!(!read_line(&mut reader, &mut line).unwrap());
    }
}
