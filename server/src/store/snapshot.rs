//! A consistent copy of the whole store while the server keeps taking mail (`legate backup`),
//! and loading one into an empty store (`legate restore`).
//!
//! # Why the copy is consistent
//!
//! sled 0.34 has no point-in-time read view across trees: an iterator sees writes that land
//! while it runs, and a change spanning trees (a message record, its folder index and its blob
//! reference, written by one transaction) could be copied half before and half after. So
//! every write into the store passes a [`WriteGate`]: [`Store::put`], [`Store::remove`] and
//! each [`Store::transact`] (the whole transaction, retries included) hold it shared. The
//! snapshot closes the gate, waits for the writes inside it to finish, reads every tree, and
//! opens it again. While it is closed no tree changes, so what is read is exactly the state
//! after the last completed write: every transaction is in the copy wholly or not at all.
//! A message acknowledged with `250` before the gate closed was committed before it (the
//! acknowledgement follows the transaction), so it is in the copy; a delivery that reaches
//! the store while the gate is closed waits (the SMTP client sees a slower reply, never a
//! failure) and is simply not in this backup.
//!
//! Message bodies live in files beside the database (`blob`), written before the transaction
//! that links them and deleted after the one that unlinks the last reference. The copy takes
//! the blobs its records reference: it pins each of them while the gate is closed, so none
//! can be deleted before it has been read, however long reading them takes.
//!
//! A writer that waits for a lock held by a thread itself blocked at the closed gate would
//! hold the gate shut forever; instead, closing gives up after [`DRAIN_TIMEOUT`], reopens the
//! gate for a moment and tries again. A thread already inside the gate (a write made from
//! within a transaction's closure) passes again without waiting.

use super::blob::{BlobId, BlobPin};
use super::{Engine, Store, StoreError, Tree};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long closing the gate waits for the writes inside to finish before it reopens and
/// tries again (see the module docs).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at closing the gate before the snapshot gives up.
const CLOSE_ATTEMPTS: u32 = 30;
/// Blocked writers and the closer re-check this often (so no wake-up can be lost for long).
const POLL: Duration = Duration::from_millis(5);

thread_local! {
    /// How deep this thread is inside the gate.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Shared passage for writers, closed by a snapshot. Writers pay two atomic operations
/// when it is open.
#[derive(Default)]
pub(super) struct WriteGate {
    closed: AtomicBool,
    inside: AtomicUsize,
    lock: Mutex<()>,
    changed: Condvar,
}

/// A writer's passage; leaving the gate when dropped.
pub(super) struct Pass<'a> {
    gate: &'a WriteGate,
    nested: bool,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        if self.nested {
            return;
        }
        self.gate.inside.fetch_sub(1, Ordering::SeqCst);
        if self.gate.closed.load(Ordering::SeqCst) {
            let _g = self.gate.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.gate.changed.notify_all();
        }
    }
}

/// The gate held closed; reopens when dropped.
pub(super) struct Closed<'a> {
    gate: &'a WriteGate,
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.gate.reopen();
    }
}

impl WriteGate {
    /// Enters for one write (waits while a snapshot holds the gate closed).
    pub(super) fn enter(&self) -> Pass<'_> {
        let depth = DEPTH.with(|d| {
            let v = d.get();
            d.set(v + 1);
            v
        });
        if depth > 0 {
            return Pass {
                gate: self,
                nested: true,
            };
        }
        loop {
            self.inside.fetch_add(1, Ordering::SeqCst);
            if !self.closed.load(Ordering::SeqCst) {
                return Pass {
                    gate: self,
                    nested: false,
                };
            }
            // Closed (or closing): step back out and wait for it to open.
            self.inside.fetch_sub(1, Ordering::SeqCst);
            let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.changed.notify_all();
            while self.closed.load(Ordering::SeqCst) {
                g = self
                    .changed
                    .wait_timeout(g, POLL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
    }

    /// Closes the gate once every write inside has finished.
    fn close(&self) -> Result<Closed<'_>, StoreError> {
        if DEPTH.with(|d| d.get()) > 0 {
            return Err(StoreError::Io(
                "a snapshot cannot be taken from inside a write".into(),
            ));
        }
        for _ in 0..CLOSE_ATTEMPTS {
            let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
            if self.closed.swap(true, Ordering::SeqCst) {
                // Another snapshot holds it: wait for that one.
                drop(g);
                std::thread::sleep(POLL);
                continue;
            }
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while self.inside.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                g = self
                    .changed
                    .wait_timeout(g, POLL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            drop(g);
            if self.inside.load(Ordering::SeqCst) == 0 {
                return Ok(Closed { gate: self });
            }
            self.reopen();
            std::thread::sleep(POLL * 4);
        }
        Err(StoreError::Io(
            "writes never paused long enough for a consistent snapshot".into(),
        ))
    }

    fn reopen(&self) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(false, Ordering::SeqCst);
        self.changed.notify_all();
    }
}

/// What a snapshot saw besides its records: the blobs to copy, pinned until dropped.
pub struct SnapshotBlobs {
    pins: Vec<BlobPin>,
}

impl SnapshotBlobs {
    pub fn ids(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.pins.iter().map(|p| p.id())
    }
}

impl Store {
    /// Calls `each(tree, key, value)` for every entry of every tree as of one instant (see
    /// the module docs), then `at_point()` while still at that instant (for files that must
    /// match the records, like the audit head checkpoint). Writes wait meanwhile, so `each`
    /// should be quick (append to a buffer or a stream). Returns the referenced blobs, pinned.
    pub fn snapshot<E: From<StoreError>>(
        &self,
        mut each: impl FnMut(Tree, &[u8], &[u8]) -> Result<(), E>,
        at_point: impl FnOnce() -> Result<(), E>,
    ) -> Result<SnapshotBlobs, E> {
        let _closed = self.inner.gate.close()?;
        let mut ids = std::collections::BTreeSet::new();
        let mut failed: Option<E> = None;
        let mut visit = |t: Tree, k: &[u8], v: &[u8]| -> Result<(), StoreError> {
            if t == Tree::BlobRefs {
                if let Some(id) = BlobId::from_slice(v) {
                    ids.insert(id);
                }
            }
            each(t, k, v).map_err(|e| {
                failed = Some(e);
                StoreError::Io("snapshot stopped".into())
            })
        };
        let walked = match &self.inner.engine {
            Engine::Sled(e) => (|| -> Result<(), StoreError> {
                for t in Tree::ALL {
                    for item in e.tree(t).iter() {
                        let (k, v) = item?;
                        visit(t, &k, &v)?;
                    }
                }
                Ok(())
            })(),
            // One REPEATABLE READ transaction: the gate only holds this node's writers.
            Engine::Pg(e) => e.snapshot(&mut visit),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        walked?;
        at_point()?;
        let pins = ids
            .into_iter()
            .map(|id| self.pins().pin(id, None))
            .collect();
        Ok(SnapshotBlobs { pins })
    }

    /// A blob's bytes by id (a snapshot's pinned blobs).
    pub fn blob_by_id(&self, id: &BlobId) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => e.blobs.get(id),
            Engine::Pg(e) => e.blob_get(id),
        }
    }

    /// Writes one entry of a snapshot into this store, as it was (restore into an empty
    /// store only: nothing is checked or indexed).
    pub fn import_entry(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let t = Tree::ALL
            .iter()
            .find(|t| t.name() == tree)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown tree {tree:?}")))?;
        self.put(*t, key, value)
    }

    /// Stores a snapshot's blob; it must hash to `id`.
    pub fn import_blob(&self, id: &BlobId, bytes: &[u8]) -> Result<(), StoreError> {
        if BlobId::of(bytes) != *id {
            return Err(StoreError::Corrupt(format!(
                "blob {} does not match its content",
                id.hex()
            )));
        }
        match &self.inner.engine {
            Engine::Sled(e) => drop(e.blobs.put(bytes)?),
            Engine::Pg(e) => e.blob_insert(id, bytes)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_snapshot_holds_whole_transactions_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    // The pair is written together or not at all.
                    s.transact::<_, ()>(&[Tree::Humans, Tree::Orgs], |tx| {
                        tx.put(Tree::Humans, &i.to_be_bytes(), b"h")?;
                        tx.put(Tree::Orgs, &i.to_be_bytes(), b"o")?;
                        Ok(())
                    })
                    .unwrap();
                    i += 1;
                }
                i
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..5 {
            let (mut humans, mut orgs) = (0, 0);
            s.snapshot::<StoreError>(
                |t, _, _| {
                    match t {
                        Tree::Humans => humans += 1,
                        Tree::Orgs => orgs += 1,
                        _ => {}
                    }
                    Ok(())
                },
                || Ok(()),
            )
            .unwrap();
            assert_eq!(humans, orgs);
            assert!(humans > 0);
        }
        stop.store(true, Ordering::SeqCst);
        assert!(writer.join().unwrap() > 0);
    }

    #[test]
    fn referenced_blobs_are_pinned_and_imports_check_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let pin = s.put_blob(b"body").unwrap();
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(b"m1", &pin.id())?))
            .unwrap();
        drop(pin);
        let blobs = s
            .snapshot::<StoreError>(|_, _, _| Ok(()), || Ok(()))
            .unwrap();
        let ids: Vec<BlobId> = blobs.ids().collect();
        assert_eq!(ids, vec![BlobId::of(b"body")]);
        // Unlinked while the backup still copies it: the file stays until the pin goes.
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.unlink_blob(b"m1")?))
            .unwrap();
        assert_eq!(
            s.blob_by_id(&ids[0]).unwrap().as_deref(),
            Some(&b"body"[..])
        );
        drop(blobs);
        let other = tempfile::tempdir().unwrap();
        let t = Store::open(other.path()).unwrap();
        assert!(t.import_blob(&ids[0], b"tampered").is_err());
        t.import_blob(&ids[0], b"body").unwrap();
        assert!(t.import_entry("no_such_tree", b"k", b"v").is_err());
        t.import_entry("humans", b"k", b"v").unwrap();
        assert_eq!(t.get(Tree::Humans, b"k").unwrap().unwrap(), b"v");
    }
}
