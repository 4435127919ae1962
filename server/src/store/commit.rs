//! Group commit: one flush covers every write that finished before it started.
//!
//! Each write bumps `written`; a committer takes the flush lock, and if a flush that started
//! after its write has already completed (`flushed >= my ticket`), it returns at once. Under
//! load N sessions waiting for durability cost one fsync, not N.
//!
//! The flush runs on tokio's blocking pool rather than through sled's `flush_async`: that
//! hands each flush to sled's own pool, whose every job wakes all of its idle threads
//! (`notify_all`), and under load that was a flush's worth of context switches per commit.
//! The flush itself is the engine's (`Store::commit` passes it in): sled's fsync, or
//! nothing on PostgreSQL, whose commits are durable already.

use super::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub(super) struct GroupCommit {
    written: Arc<AtomicU64>,
    flushed: AtomicU64,
    /// The newest outbox event applied before a completed flush began: every event up to it
    /// is durable. Lets the event dispatchers act on what the writers made durable already,
    /// without a flush of their own.
    pub(super) durable_event: AtomicU64,
    /// Woken after every completed flush, for those waiting on `durable_event`.
    pub(super) flushed_note: tokio::sync::Notify,
    lock: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    pub(super) fn wrote(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs `flush` (which returns the outbox sequence it read before flushing) unless a
    /// flush that started after this caller's write has completed.
    pub(super) async fn commit(
        &self,
        flush: impl FnOnce() -> Result<u64, StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let ticket = self.written.load(Ordering::SeqCst);
        let _guard = self.lock.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let written = self.written.clone();
        let (target, event) = tokio::task::spawn_blocking(move || {
            // Read under the flush: everything written before this point is covered.
            let target = written.load(Ordering::SeqCst);
            flush().map(|event| (target, event))
        })
        .await
        .map_err(|e| StoreError::Io(format!("the flush task failed: {e}")))??;
        self.flushed.fetch_max(target, Ordering::SeqCst);
        self.durable_event.fetch_max(event, Ordering::SeqCst);
        self.flushed_note.notify_waiters();
        Ok(())
    }
}
