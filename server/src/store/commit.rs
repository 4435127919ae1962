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

use super::{keys, outbox, Engine, Store, StoreError, Tree};
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

impl Store {
    /// Makes every write completed before this call durable. Concurrent callers share one
    /// flush (group commit): whoever flushes covers everyone whose write preceded the flush.
    /// On PostgreSQL every committed write is durable already; this only drains queued
    /// events and notes the outbox position.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.drain_emits()?;
        let store = self.clone();
        self.inner
            .commit
            .commit(move || {
                // Read under the flush: everything written before this point is covered.
                // The outbox's counter, written in the same transaction as each page: a key
                // read, not a page decoded on every flush.
                let event = store
                    .get(Tree::Meta, outbox::SEQ_KEY)?
                    .as_deref()
                    .and_then(keys::read_u64)
                    .unwrap_or(0);
                store.flush_blocking()?;
                Ok(event)
            })
            .await
    }

    /// Every outbox event up to this sequence is durable (a flush completed after it was
    /// written). Dispatchers compare before acting, and [`Store::commit`] when behind.
    pub fn durable_event_seq(&self) -> u64 {
        self.inner
            .commit
            .durable_event
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Returns once every outbox event up to `seq` is durable: made so by the writers' own
    /// commits if one completes within `patience`, else by a flush of the caller's. A
    /// dispatcher that keeps up with the writers would otherwise flush for every few events
    /// it reads, an fsync beside every mail session's own.
    pub async fn durable_events(
        &self,
        seq: u64,
        patience: std::time::Duration,
    ) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let note = self.inner.commit.flushed_note.notified();
            tokio::pin!(note);
            note.as_mut().enable();
            if self.durable_event_seq() >= seq {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, note).await.is_err() {
                break;
            }
        }
        self.commit().await
    }

    /// Blocking flush for shutdown and CLI paths that have no runtime.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        if let Engine::Sled(e) = &self.inner.engine {
            e.db.flush()?;
            super::sled_engine::release_deferred();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn concurrent_commits_all_return() {
        let (_d, s) = open();
        let mut tasks = Vec::new();
        for i in 0u64..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.put(Tree::Meta, &i.to_be_bytes(), b"v").unwrap();
                s.commit().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.scan_prefix(Tree::Meta, &[0]).count(), 32);
    }
}
