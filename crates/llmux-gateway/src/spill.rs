//! Usage records on local disk while the store is unreachable.
//!
//! When a ledger write fails, the ledger writer appends the batch to this instance's
//! spill file (`usage-<pid>-<random>.jsonl` in `storage.spill_dir`, one JSON record a
//! line, synced to disk) instead of holding it in memory, so records survive a crash
//! of the instance during the outage. Once the store answers again the files are
//! written to it and removed. Each file is locked by the instance writing it; an
//! instance also replays the files of instances that are gone (their lock is free),
//! at start and every minute. The files together hold at most
//! `storage.spill_max_mb`; beyond that, records wait in memory.
//!
//! A crash between writing a chunk of a replayed file to the store and shortening
//! the file can write that chunk (at most [`BATCH`] records) twice.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
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
    own_name: String,
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
        Spill {
            dir: dir.to_owned(),
            max_bytes,
            own: None,
            own_name: format!("usage-{}-{suffix}.jsonl", std::process::id()),
            own_bytes: 0,
            // Files left by an earlier run are looked for at the first chance.
            backlog: true,
            last_scan: None,
        }
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
            std::fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(&self.own_name);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
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
                    .is_some_and(|name| name.starts_with("usage-") && name.ends_with(".jsonl"))
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
            written += replay_file(&path, &file, store).await?;
        }
        self.backlog = false;
        Ok(written)
    }
}

/// Writes the records of one locked file to the store in chunks; removes the file
/// when all are written. On a failure, the file is cut down to what is left.
async fn replay_file(path: &Path, file: &File, store: &dyn Store) -> Result<usize, SpillError> {
    let records: Vec<UsageRecord> = BufReader::new(File::open(path)?)
        .lines()
        .map_while(Result::ok)
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| match serde_json::from_str(&line) {
            Ok(record) => Some(record),
            Err(error) => {
                // A line cut short by a crash while it was being written.
                tracing::error!(%error, file = %path.display(), "Skipping an unreadable spilled usage record.");
                None
            }
        })
        .collect();
    let mut done = 0;
    for chunk in records.chunks(BATCH) {
        if let Err(error) = store.insert_usage(Arc::from(chunk)).await {
            rewrite(path, &records[done..])?;
            return Err(error.into());
        }
        done += chunk.len();
    }
    std::fs::remove_file(path)?;
    let _ = file.unlock();
    if done > 0 {
        tracing::info!(records = done, file = %path.display(), "Spilled usage records written to the store.");
    }
    Ok(done)
}

/// Replaces `path` by a file holding just `records` (written aside, then renamed).
fn rewrite(path: &Path, records: &[UsageRecord]) -> Result<(), SpillError> {
    let aside = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(File::create(&aside)?);
    for record in records {
        serde_json::to_writer(&mut out, record).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    out.into_inner().map_err(|error| error.into_error())?.sync_data()?;
    std::fs::rename(&aside, path)?;
    Ok(())
}
