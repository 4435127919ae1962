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
mod bodies;
pub mod codec;
mod commit;
#[cfg(test)]
mod conformance;
pub mod copy;
mod emit_batch;
mod error;
pub mod keys;
mod kv;
mod lease;
mod options;
pub mod outbox;
mod pg;
mod schema;
pub mod signal;
mod sled_engine;
pub mod snapshot;
pub mod space;
pub mod stats;
mod transact;
mod trees;
mod tx;
mod verify;

pub use blob::{BlobId, BlobPin, BlobReader};
pub use codec::{decode, encode};
pub use error::StoreError;
pub use kv::Entry;
pub use options::{Backend, StoreOptions};
pub use outbox::{EventRecord, EVENT_TREES};
pub use pg::{PgOptions, SslMode};
pub use schema::{CURRENT as SCHEMA_VERSION, SEARCH_BACKFILL_KEY};
pub use space::{SpaceGuard, SpaceStatus};
pub use trees::Tree;
pub use tx::{Tx, TxError, TxFail, TxStoreError};
pub use verify::BlobReport;

use blob::Pins;
use commit::GroupCommit;
use pg::PgEngine;
use sled_engine::SledEngine;
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
    /// This handle's name among the nodes sharing the store (`lease`, `signal`).
    node_id: String,
    /// Other nodes' signals, as received (`signal`).
    signals: tokio::sync::broadcast::Sender<Arc<str>>,
}

/// The storage engine.
enum Engine {
    Sled(SledEngine),
    Pg(Arc<PgEngine>),
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
        let signals = tokio::sync::broadcast::channel(signal::DEPTH).0;
        let node_id = crate::util::new_id("node");
        let engine = match &opts.backend {
            Backend::Sled => Engine::Sled(SledEngine::open(dir, opts)?),
            Backend::Postgres(p) => Engine::Pg(Arc::new(PgEngine::open(
                p,
                Arc::downgrade(&events_rung),
                signals.clone(),
                &node_id,
            )?)),
        };
        let store = Store {
            inner: Arc::new(Inner {
                engine,
                commit: GroupCommit::default(),
                space: Arc::new(SpaceGuard::new(dir, opts.min_free_bytes)),
                gate: Default::default(),
                events_rung,
                emit_batch: Default::default(),
                node_id,
                signals,
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
