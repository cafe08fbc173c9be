//! The usage ledger writer: requests hand records to a bounded channel and never wait
//! for the database; one background task writes them in batches.
//!
//! Guarantees: a record handed over is written unless the process crashes; on a
//! clean shutdown the channel is drained and flushed. A crash loses at most what
//! arrived since the last flush (`storage.flush_interval_ms`, default 200 ms). When
//! the store fails, batches are kept in memory and retried with backoff. If the
//! channel is full, records go to an overflow list the writer also drains, so a
//! burst slows nothing and loses nothing.

use std::sync::Arc;
use std::time::Duration;

use llmux_store::{Store, UsageRecord};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Records per insert transaction.
const BATCH: usize = 512;
/// Channel capacity.
const CAPACITY: usize = 16_384;

/// The sending side, cloned into every request.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<UsageRecord>,
    overflow: Arc<Mutex<Vec<UsageRecord>>>,
}

/// The writer task's handle; [`LedgerWriter::shutdown`] drains and flushes.
#[derive(Debug)]
pub struct LedgerWriter {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ledger {
    /// Starts the writer.
    pub fn start(store: Arc<dyn Store>, flush_interval: Duration) -> (Ledger, LedgerWriter) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let overflow = Arc::new(Mutex::new(Vec::new()));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(write_loop(store, rx, overflow.clone(), flush_interval, stop_rx));
        (Ledger { tx, overflow }, LedgerWriter { stop, task })
    }

    /// Hands a record to the writer without waiting.
    pub fn record(&self, record: UsageRecord) {
        if let Err(error) = self.tx.try_send(record) {
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
                "Usage ledger could not be flushed before the shutdown deadline; some records were not written."
            );
        }
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<UsageRecord>,
    overflow: Arc<Mutex<Vec<UsageRecord>>>,
    flush_interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(BATCH);
    let mut ticker = tokio::time::interval(flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Duration::ZERO;
    loop {
        let stopping = tokio::select! {
            received = rx.recv() => {
                if let Some(record) = received {
                    batch.push(record);
                }
                false
            }
            _ = ticker.tick() => false,
            _ = stop.changed() => true,
        };
        // Take what else is already waiting, without blocking.
        while batch.len() < BATCH * 4 {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        batch.append(&mut overflow.lock());
        if !batch.is_empty() {
            if !backoff.is_zero() && !stopping {
                tokio::time::sleep(backoff).await;
            }
            match flush(store.as_ref(), &mut batch).await {
                Ok(()) => backoff = Duration::ZERO,
                Err(error) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                    tracing::error!(%error, pending = batch.len(), "Usage records could not be written; retrying.");
                }
            }
        }
        if stopping {
            // Drain to the end: everything handed over before shutdown is written.
            rx.close();
            while let Some(record) = rx.recv().await {
                batch.push(record);
            }
            batch.append(&mut overflow.lock());
            let mut wait = Duration::from_millis(100);
            while !batch.is_empty() {
                match flush(store.as_ref(), &mut batch).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::error!(%error, pending = batch.len(), "Usage records could not be written at shutdown; retrying.");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                }
            }
            return;
        }
    }
}

async fn flush(store: &dyn Store, batch: &mut Vec<UsageRecord>) -> Result<(), llmux_store::StoreError> {
    // Remove each written chunk at once, so a failure never writes a record twice.
    while !batch.is_empty() {
        let take = batch.len().min(BATCH);
        store.insert_usage(&batch[..take]).await?;
        batch.drain(..take);
    }
    Ok(())
}
