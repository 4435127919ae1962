//! The one module that knows the storage engine.
//!
//! Everything above speaks in [`Tree`]s, byte keys built by [`keys`], records encoded by
//! [`codec`], transactions through [`Tx`], and [`Store::commit`] for durability. That surface
//! is deliberately what an ordered key-value store with multi-key transactions offers
//! (FoundationDB directly; PostgreSQL as one table of `(tree, key, value)`), so a scale-out
//! backend can replace sled without any caller changing. Two engines sit behind it, chosen
//! by `storage.backend`: sled 0.34 (embedded, the zero-setup default; it calls itself beta:
//! one more reason to keep it behind this wall) and PostgreSQL ([`pg`], several nodes on
//! one database). [`Store`] dispatches on an enum, not a trait object: callers are
//! unchanged and the sled path costs one match more than before. Both pass one conformance
//! suite (`conformance`).

pub mod blob;
pub mod codec;
mod commit;
#[cfg(test)]
mod conformance;
pub mod copy;
mod emit_batch;
mod error;
pub mod keys;
mod lease;
pub mod outbox;
mod pg;
mod schema;
mod sled_engine;
pub mod snapshot;
pub mod space;
pub mod stats;
mod trees;
mod tx;
mod verify;

pub use blob::{BlobId, BlobPin, BlobReader};
pub use codec::{decode, encode};
pub use error::StoreError;
pub use outbox::{EventRecord, EVENT_TREES};
pub use pg::{PgOptions, SslMode};
pub use schema::{CURRENT as SCHEMA_VERSION, SEARCH_BACKFILL_KEY};
pub use space::{SpaceGuard, SpaceStatus};
pub use trees::Tree;
pub use tx::{Tx, TxError, TxFail, TxStoreError};

use blob::Pins;
use commit::GroupCommit;
use pg::PgEngine;
use serde::{de::DeserializeOwned, Serialize};
use sled_engine::SledEngine;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

/// A handle to the database. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    commit: GroupCommit,
    /// The disk reserve of the data directory, consulted before new mail is accepted.
    space: Arc<SpaceGuard>,
    /// Every write passes it; a snapshot closes it for a consistent copy (`snapshot`).
    gate: snapshot::WriteGate,
    /// Changed after every transaction that wrote the event outbox (`outbox`); on
    /// PostgreSQL also when another node's did (LISTEN/NOTIFY, `pg::listen`).
    events_rung: Arc<tokio::sync::watch::Sender<()>>,
    /// Event-only writes, committed together (`emit_batch`).
    emit_batch: Arc<emit_batch::EmitBatch>,
    /// This handle's name among the nodes sharing the store (`lease`).
    node_id: String,
}

/// The storage engine.
enum Engine {
    Sled(SledEngine),
    Pg(Arc<PgEngine>),
}

/// Which engine to open.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// sled under `<data>/db`, bodies under `<data>/blobs`.
    #[default]
    Sled,
    Postgres(PgOptions),
}

/// How to open the store; every field has a safe default.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in MiB (`storage.cache_mb`). sled's own default is 1 GiB, which
    /// is what let RSS grow with the mailbox.
    pub cache_mb: u64,
    /// Remove blob files left unreferenced by a crash while opening. Off only for
    /// `legate store verify`, which reports them instead.
    pub sweep_on_open: bool,
    /// Free bytes to keep on the data filesystem (`storage.min_free_mb`): below it new mail
    /// is refused ([`SpaceGuard`]). 0 = off, the default for tools that open the store alone.
    pub min_free_bytes: u64,
    /// zstd for what the store writes (`storage.compression`): message bodies of at least
    /// `compress_min_bytes` in the blob store, and the database's pages when it is created
    /// (sled fixes that choice for a database's life; an existing one keeps its own).
    pub compress: bool,
    pub compress_min_bytes: usize,
    /// `storage.backend`.
    pub backend: Backend,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_mb: 64,
            sweep_on_open: true,
            min_free_bytes: 0,
            compress: true,
            compress_min_bytes: 1024,
            backend: Backend::Sled,
        }
    }
}

/// What `legate store verify` found. Clean when every list is empty.
#[derive(Debug, Default, serde::Serialize)]
pub struct BlobReport {
    /// Message records checked.
    pub records: u64,
    /// Blob files found, and their total size.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Message ids whose record has no blob reference, or whose blob file is missing.
    pub missing: Vec<String>,
    /// Blob files no reference names (hex ids).
    pub orphans: Vec<String>,
    /// Blobs whose stored reference count disagrees with the references found.
    pub bad_counts: Vec<String>,
    /// Blobs whose content no longer hashes to their name (with `deep`).
    pub corrupt: Vec<String>,
    /// Raw bodies still in the schema-2 tree (an upgrade that has not finished).
    pub unmigrated: u64,
    /// Orphans removed (with `sweep`).
    pub swept: u64,
}

impl BlobReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.orphans.is_empty()
            && self.bad_counts.is_empty()
            && self.corrupt.is_empty()
            && self.unmigrated == 0
    }
}

/// One key/value pair returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A scan over either engine.
enum Scan<'a> {
    Sled(sled_engine::SledScan<'a>),
    Pg(pg::PgScan<'a>),
}

impl Iterator for Scan<'_> {
    type Item = Result<Entry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Scan::Sled(s) => s.next(),
            Scan::Pg(s) => s.next(),
        }
    }
}

impl Store {
    /// Opens (or creates) the database in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(dir, &StoreOptions::default())
    }

    /// [`Store::open`] with options. Also removes blob files a crash left unreferenced (the
    /// database lock guarantees no delivery is in flight). With PostgreSQL, `dir` still
    /// holds the node's own files (keys, certificates, the admin socket); the database
    /// schema is migrated first.
    pub fn open_with(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let events_rung = Arc::new(tokio::sync::watch::channel(()).0);
        let engine = match &opts.backend {
            Backend::Sled => Engine::Sled(SledEngine::open(dir, opts)?),
            Backend::Postgres(p) => {
                Engine::Pg(Arc::new(PgEngine::open(p, Arc::downgrade(&events_rung))?))
            }
        };
        let store = Store {
            inner: Arc::new(Inner {
                engine,
                commit: GroupCommit::default(),
                space: Arc::new(SpaceGuard::new(dir, opts.min_free_bytes)),
                gate: Default::default(),
                events_rung,
                emit_batch: Default::default(),
                node_id: crate::util::new_id("node"),
            }),
        };
        schema::migrate(&store)?;
        let swept = if opts.sweep_on_open {
            // On PostgreSQL other nodes may be linking blobs right now: only old orphans go.
            let grace = match store.inner.engine {
                Engine::Sled(_) => std::time::Duration::ZERO,
                Engine::Pg(_) => std::time::Duration::from_secs(3600),
            };
            store.sweep_blobs(grace)?
        } else {
            0
        };
        if swept > 0 {
            tracing::info!(swept, "removed blob files left unreferenced by a crash");
        }
        Ok(store)
    }

    /// The free-space guard of the data directory (see [`space`]).
    pub fn space(&self) -> &Arc<SpaceGuard> {
        &self.inner.space
    }

    /// `"sled"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.engine {
            Engine::Sled(_) => "sled",
            Engine::Pg(_) => "postgres",
        }
    }

    /// Checks that the database answers (readiness): a read on sled, a query on PostgreSQL.
    pub fn ping(&self) -> Result<(), StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => e.tree(Tree::Meta).get(b"schema_version").map(|_| ())?,
            Engine::Pg(e) => e.ping()?,
        }
        Ok(())
    }

    /// The database schema migrations: (version found at open, version now). sled has
    /// none of its own (its data migrations are [`SCHEMA_VERSION`]'s): `(0, 0)`.
    pub fn database_schema(&self) -> (i32, i32) {
        match &self.inner.engine {
            Engine::Sled(_) => (0, 0),
            Engine::Pg(e) => (e.found_version, pg::schema::CURRENT),
        }
    }

    fn pins(&self) -> &Arc<Pins> {
        match &self.inner.engine {
            Engine::Sled(e) => e.blobs.pins(),
            Engine::Pg(e) => &e.pins,
        }
    }

    pub fn get(&self, t: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => Ok(e.tree(t).get(key)?.map(|v| v.to_vec())),
            Engine::Pg(e) => e.get(t, key),
        }
    }

    pub fn get_record<T: DeserializeOwned>(
        &self,
        t: Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match &self.inner.engine {
            // Decoded where the engine holds it: no copy of the value first (a bulk read of
            // records, such as an IMAP FETCH of a whole mailbox, makes thousands).
            Engine::Sled(e) => e.tree(t).get(key)?.map(|v| decode(&v)).transpose(),
            Engine::Pg(e) => e.get(t, key)?.map(|v| decode(&v)).transpose(),
        }
    }

    /// A single write outside a transaction. Not durable until [`Store::commit`].
    pub fn put(&self, t: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let _pass = self.inner.gate.enter();
        match &self.inner.engine {
            Engine::Sled(e) => {
                e.tree(t).insert(key, value)?;
            }
            Engine::Pg(e) => e.put(t, key, value)?,
        }
        self.inner.commit.wrote();
        Ok(())
    }

    pub fn put_record<T: Serialize>(&self, t: Tree, key: &[u8], v: &T) -> Result<(), StoreError> {
        self.put(t, key, &encode(v)?)
    }

    pub fn remove(&self, t: Tree, key: &[u8]) -> Result<(), StoreError> {
        let _pass = self.inner.gate.enter();
        match &self.inner.engine {
            Engine::Sled(e) => {
                e.tree(t).remove(key)?;
            }
            Engine::Pg(e) => e.remove(t, key)?,
        }
        self.inner.commit.wrote();
        Ok(())
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(
        &'a self,
        t: Tree,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + 'a {
        match &self.inner.engine {
            Engine::Sled(e) => Scan::Sled(e.scan(t, prefix)),
            Engine::Pg(e) => Scan::Pg(e.scan(t, prefix)),
        }
    }

    /// Entries in a key range, forwards or backwards. Lets lists page by cursor in time
    /// independent of the tree's size.
    pub fn range<'a>(
        &'a self,
        t: Tree,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<Entry, StoreError>> + 'a> {
        Box::new(match &self.inner.engine {
            Engine::Sled(e) => Scan::Sled(e.range(t, from, to, reverse)),
            Engine::Pg(e) => Scan::Pg(e.range(t, from, to, reverse)),
        })
    }

    /// The entry with the greatest key, if any.
    pub fn last(&self, t: Tree) -> Result<Option<Entry>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => Ok(e.tree(t).last()?.map(|(k, v)| (k.to_vec(), v.to_vec()))),
            Engine::Pg(e) => e.last(t),
        }
    }

    /// Entries in the tree (on PostgreSQL a count over the tree: not for request paths).
    /// A database that cannot answer counts 0.
    pub fn len(&self, t: Tree) -> usize {
        match &self.inner.engine {
            Engine::Sled(e) => e.tree(t).len(),
            Engine::Pg(e) => e.len(t).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "cannot count a tree");
                0
            }),
        }
    }

    /// Whether the tree is empty. A database that cannot answer says empty.
    pub fn is_empty(&self, t: Tree) -> bool {
        match &self.inner.engine {
            Engine::Sled(e) => e.tree(t).is_empty(),
            Engine::Pg(e) => e.is_empty(t).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "cannot read a tree");
                true
            }),
        }
    }

    /// Runs `f` atomically over `trees` (serializable; retried on conflict, so `f` may run
    /// more than once and must not have side effects outside the transaction).
    pub fn transact<R, E>(
        &self,
        trees: &[Tree],
        f: impl Fn(&Tx<'_>) -> Result<R, TxFail<E>>,
    ) -> Result<R, TxError<E>> {
        // Events queued before this transaction began were caused first: they are written
        // first, so the outbox's order is the order things happened in (a vault read
        // before a delivery must not come after its `message.received`).
        if trees.contains(&Tree::Events) {
            self.drain_emits().map_err(TxError::Store)?;
        }
        self.transact_now(trees, f)
    }

    /// [`Store::transact`] without writing queued events first: for the event writer itself.
    fn transact_now<R, E>(
        &self,
        trees: &[Tree],
        f: impl Fn(&Tx<'_>) -> Result<R, TxFail<E>>,
    ) -> Result<R, TxError<E>> {
        // Blob references come with their counts.
        let mut names = trees.to_vec();
        if names.contains(&Tree::BlobRefs) && !names.contains(&Tree::BlobCounts) {
            names.push(Tree::BlobCounts);
        }
        let (r, freed) = match &self.inner.engine {
            Engine::Sled(e) => {
                let handles: Vec<&sled::Tree> = names.iter().map(|t| e.tree(*t)).collect();
                let _pass = self.inner.gate.enter();
                tx::run(&handles, &names, f)?
            }
            Engine::Pg(e) => {
                let _pass = self.inner.gate.enter();
                (tx::run_pg(e, &names, f)?, Vec::new())
            }
        };
        self.inner.commit.wrote();
        if names.contains(&Tree::Events) {
            self.ring_events();
        }
        if let Engine::Sled(e) = &self.inner.engine {
            for id in freed {
                // Best effort: a file left behind is an orphan for the next sweep, never a loss.
                let counts = e.tree(Tree::BlobCounts);
                if let Err(err) = e.blobs.delete_if(&id, || Ok(counts.get(id.0)?.is_none())) {
                    tracing::warn!(error = %err, "could not delete an unreferenced blob");
                }
            }
        }
        Ok(r)
    }

    /// Stores a message body durably in the blob store, before the transaction that links
    /// it ([`Tx::link_blob`]); keep the pin until that transaction is over. Blocking. On
    /// PostgreSQL the pin keeps the body and the linking transaction writes it.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobPin, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => e.blobs.put(bytes),
            Engine::Pg(e) => Ok(e
                .pins
                .pin(BlobId::of(bytes), Some(Arc::new(bytes.to_vec())))),
        }
    }

    /// The blob linked under `key` (a message id), whole.
    pub fn blob_of(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.blob_id_of(key)? {
            Some(id) => self
                .blob_by_id(&id)?
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("blob {} is missing", id.hex()))),
            None => Ok(None),
        }
    }

    /// A reader over the blob linked under `key`, to stream it.
    pub fn blob_reader_of(&self, key: &[u8]) -> Result<Option<blob::BlobReader>, StoreError> {
        match self.blob_id_of(key)? {
            Some(id) => match &self.inner.engine {
                Engine::Sled(e) => e.blobs.reader(&id),
                Engine::Pg(e) => Ok(e
                    .blob_get(&id)?
                    .map(|b| BlobReader::Memory(std::io::Cursor::new(b)))),
            },
            None => Ok(None),
        }
    }

    /// `len` bytes from `offset` of the blob linked under `key`.
    pub fn blob_range_of(
        &self,
        key: &[u8],
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.blob_id_of(key)? {
            Some(id) => match &self.inner.engine {
                Engine::Sled(e) => e.blobs.range(&id, offset, len),
                Engine::Pg(e) => e.blob_range(&id, offset, len),
            },
            None => Ok(None),
        }
    }

    fn blob_id_of(&self, key: &[u8]) -> Result<Option<BlobId>, StoreError> {
        match self.get(Tree::BlobRefs, key)? {
            Some(v) => BlobId::from_slice(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("blob reference".into())),
            None => Ok(None),
        }
    }

    /// Every stored blob (files, or database rows), by id.
    fn blob_list(&self) -> Result<Vec<blob::Listed>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => e.blobs.list(),
            Engine::Pg(e) => e.blob_list(),
        }
    }

    /// Removes blob files nothing references that are older than `grace`.
    pub fn sweep_blobs(&self, grace: std::time::Duration) -> Result<u64, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => {
                let counts = e.tree(Tree::BlobCounts);
                let n = e.blobs.sweep(grace, |id| Ok(counts.get(id.0)?.is_some()))?;
                Ok(n as u64)
            }
            Engine::Pg(e) => e.sweep(grace),
        }
    }

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
        }
        Ok(())
    }

    /// A monotonically increasing number unique within this database (for sequence keys).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => Ok(e.db.generate_id()?),
            Engine::Pg(e) => e.next_id(),
        }
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        match &self.inner.engine {
            Engine::Sled(e) => e.db.size_on_disk().unwrap_or(0),
            Engine::Pg(e) => e.size_on_disk().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn records_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_record(Tree::Meta, b"k", &("hello".to_string(), 7u32))
                .unwrap();
            s.commit().await.unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let v: (String, u32) = s.get_record(Tree::Meta, b"k").unwrap().unwrap();
        assert_eq!(v, ("hello".to_string(), 7));
    }

    #[test]
    fn transaction_is_all_or_nothing() {
        let (_d, s) = open();
        let r: Result<(), TxError<&str>> = s.transact(&[Tree::Humans, Tree::Orgs], |tx| {
            tx.put(Tree::Humans, b"a", b"1")?;
            tx.put(Tree::Orgs, b"b", b"2")?;
            Err(TxFail::Abort("no"))
        });
        assert!(matches!(r, Err(TxError::Abort("no"))));
        assert_eq!(s.get(Tree::Humans, b"a").unwrap(), None);
        s.transact::<_, ()>(&[Tree::Humans, Tree::Orgs], |tx| {
            tx.put(Tree::Humans, b"a", b"1")?;
            tx.put(Tree::Orgs, b"b", b"2")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(s.get(Tree::Orgs, b"b").unwrap(), Some(b"2".to_vec()));
    }

    #[test]
    fn ranges_go_both_ways() {
        let (_d, s) = open();
        for i in 0u64..10 {
            s.put(Tree::Audit, &i.to_be_bytes(), b"x").unwrap();
        }
        let rev: Vec<u64> = s
            .range(
                Tree::Audit,
                Bound::Unbounded,
                Bound::Excluded(5u64.to_be_bytes().to_vec()),
                true,
            )
            .map(|r| keys::read_u64(&r.unwrap().0).unwrap())
            .collect();
        assert_eq!(rev, vec![4, 3, 2, 1, 0]);
    }

    #[test]
    fn blobs_are_stored_once_counted_and_deleted_with_their_last_holder() {
        let (d, s) = open();
        let link = |key: &[u8], body: &[u8]| {
            let pin = s.put_blob(body).unwrap();
            s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(key, &pin.id())?))
                .unwrap();
        };
        let unlink = |key: &[u8]| {
            s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.unlink_blob(key)?))
                .unwrap();
        };
        link(b"m1", b"body");
        link(b"m2", b"body");
        link(b"m3", b"else");
        let files = || s.blob_list().unwrap().len();
        assert_eq!(files(), 2);
        assert_eq!(s.blob_of(b"m2").unwrap().unwrap(), b"body");
        assert_eq!(s.blob_range_of(b"m3", 1, 2).unwrap().unwrap(), b"ls");
        assert!(s.verify_blobs(true, None).unwrap().is_clean());
        unlink(b"m1");
        assert_eq!(files(), 2);
        assert_eq!(s.blob_of(b"m2").unwrap().unwrap(), b"body");
        unlink(b"m2");
        unlink(b"m2");
        assert_eq!(files(), 1);
        assert_eq!(s.blob_of(b"m2").unwrap(), None);
        // An aborted transaction links nothing; its file is an orphan for the sweep.
        let pin = s.put_blob(b"aborted").unwrap();
        let r: Result<(), TxError<&str>> = s.transact(&[Tree::BlobRefs], |tx| {
            tx.link_blob(b"m4", &pin.id())?;
            Err(TxFail::Abort("no"))
        });
        assert!(r.is_err());
        drop(pin);
        let report = s.verify_blobs(false, None).unwrap();
        assert_eq!(report.orphans, vec![BlobId::of(b"aborted").hex()]);
        let report = s
            .verify_blobs(false, Some(std::time::Duration::ZERO))
            .unwrap();
        assert_eq!(report.swept, 1);
        assert!(report.orphans.is_empty());
        assert!(s.verify_blobs(false, None).unwrap().is_clean());
        // A crash between blob write and commit: the next open sweeps the orphan.
        let _ = s.put_blob(b"crashed").unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        assert!(s.verify_blobs(false, None).unwrap().is_clean());
        assert_eq!(s.blob_of(b"m3").unwrap().unwrap(), b"else");
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
