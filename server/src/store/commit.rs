//! Group commit: one flush covers every write that finished before it started.
//!
//! Each write bumps `written`; a committer takes the flush lock, and if a flush that started
//! after its write has already completed (`flushed >= my ticket`), it returns at once. Under
//! load N sessions waiting for durability cost one fsync, not N.

use super::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(super) struct GroupCommit {
    written: AtomicU64,
    flushed: AtomicU64,
    lock: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    pub(super) fn wrote(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) async fn commit(&self, db: &sled::Db) -> Result<(), StoreError> {
        let ticket = self.written.load(Ordering::SeqCst);
        let _guard = self.lock.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let target = self.written.load(Ordering::SeqCst);
        db.flush_async().await?;
        self.flushed.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }
}
