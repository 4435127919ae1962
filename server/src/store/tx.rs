//! Transactions across trees, with caller-defined abort errors.

use super::blob::BlobId;
use super::pg::{tx::PgTx, PgError};
use super::{codec, StoreError, Tree};
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
    UnabortableTransactionError,
};
use std::cell::RefCell;

/// What a transaction body returns on failure: the caller's own reason, or a storage error
/// raised inside (which `?` converts from).
pub enum TxFail<E> {
    Abort(E),
    Store(TxStoreError),
}

/// An engine error inside a transaction, opaque to callers.
pub struct TxStoreError(Inner);

enum Inner {
    Engine(UnabortableTransactionError),
    Codec(StoreError),
    Pg(PgError),
}

impl<E> From<TxStoreError> for TxFail<E> {
    fn from(e: TxStoreError) -> Self {
        TxFail::Store(e)
    }
}

/// The result of a failed transaction.
#[derive(Debug)]
pub enum TxError<E> {
    Abort(E),
    Store(StoreError),
}

impl<E> From<StoreError> for TxError<E> {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

/// The view a transaction body works through.
pub struct Tx<'a> {
    engine: TxEngine<'a>,
    names: &'a [Tree],
    /// Blobs whose last reference this run removed: deleted after the commit (a retried
    /// run starts with a fresh `Tx`, so only the committed run's list counts).
    freed: RefCell<Vec<BlobId>>,
}

enum TxEngine<'a> {
    Sled(&'a [TransactionalTree]),
    Pg(&'a PgTx<'a>),
}

impl Tx<'_> {
    /// The position of `tree` among the declared ones. Both backends check, so a body that
    /// names a tree it did not ask for fails the same way on either (a programming error,
    /// caught by tests).
    fn pos(&self, tree: Tree) -> usize {
        self.names
            .iter()
            .position(|n| *n == tree)
            .unwrap_or_else(|| panic!("transaction did not declare tree {tree:?}"))
    }

    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, TxStoreError> {
        let i = self.pos(tree);
        match &self.engine {
            TxEngine::Sled(trees) => trees[i]
                .get(key)
                .map(|v| v.map(|v| v.to_vec()))
                .map_err(|e| TxStoreError(Inner::Engine(e))),
            TxEngine::Pg(p) => p.get(tree, key).map_err(|e| TxStoreError(Inner::Pg(e))),
        }
    }

    /// Several keys of one tree, each `None` when absent, in `keys` order: on PostgreSQL
    /// one round trip for all of them instead of one each.
    pub fn get_many(
        &self,
        tree: Tree,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, TxStoreError> {
        let i = self.pos(tree);
        match &self.engine {
            TxEngine::Sled(trees) => keys
                .iter()
                .map(|k| {
                    trees[i]
                        .get(k)
                        .map(|v| v.map(|v| v.to_vec()))
                        .map_err(|e| TxStoreError(Inner::Engine(e)))
                })
                .collect(),
            TxEngine::Pg(p) => p
                .get_many(tree, keys)
                .map_err(|e| TxStoreError(Inner::Pg(e))),
        }
    }

    pub fn get_record<T: DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<T>, TxStoreError> {
        match self.get(tree, key)? {
            Some(v) => Self::decode(&v).map(Some),
            None => Ok(None),
        }
    }

    /// A record read with [`get_many`](Self::get_many), decoded as
    /// [`get_record`](Self::get_record) decodes.
    pub fn decode<T: DeserializeOwned>(v: &[u8]) -> Result<T, TxStoreError> {
        codec::decode(v).map_err(|e| TxStoreError(Inner::Codec(e)))
    }

    pub fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), TxStoreError> {
        let i = self.pos(tree);
        match &self.engine {
            TxEngine::Sled(trees) => trees[i]
                .insert(key, value)
                .map(|_| ())
                .map_err(|e| TxStoreError(Inner::Engine(e))),
            TxEngine::Pg(p) => p
                .put(tree, key, value)
                .map_err(|e| TxStoreError(Inner::Pg(e))),
        }
    }

    pub fn put_record<T: Serialize>(
        &self,
        tree: Tree,
        key: &[u8],
        v: &T,
    ) -> Result<(), TxStoreError> {
        let bytes = codec::encode(v).map_err(|e| TxStoreError(Inner::Codec(e)))?;
        self.put(tree, key, &bytes)
    }

    pub fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), TxStoreError> {
        let i = self.pos(tree);
        match &self.engine {
            TxEngine::Sled(trees) => trees[i]
                .remove(key)
                .map(|_| ())
                .map_err(|e| TxStoreError(Inner::Engine(e))),
            TxEngine::Pg(p) => p.remove(tree, key).map_err(|e| TxStoreError(Inner::Pg(e))),
        }
    }

    /// Makes `key` (a message id) a holder of blob `id`, which a [`super::Store::put_blob`]
    /// stored (and pinned) before this transaction. Needs [`Tree::BlobRefs`] declared
    /// ([`Tree::BlobCounts`] comes with it).
    pub fn link_blob(&self, key: &[u8], id: &BlobId) -> Result<(), TxStoreError> {
        if let Some(old) = self.get(Tree::BlobRefs, key)? {
            if old == id.0 {
                return Ok(());
            }
            self.unlink_blob(key)?;
        }
        self.put(Tree::BlobRefs, key, &id.0)?;
        let n = self.count(id)?;
        if n == 0 {
            if let TxEngine::Pg(p) = &self.engine {
                // The database keeps the body: its first holder's transaction writes it.
                p.ensure_blob(id).map_err(|e| TxStoreError(Inner::Pg(e)))?;
            }
        }
        self.put(Tree::BlobCounts, &id.0, &(n + 1).to_be_bytes())
    }

    /// Drops `key`'s reference; the blob file goes after the commit if it was the last.
    pub fn unlink_blob(&self, key: &[u8]) -> Result<(), TxStoreError> {
        let Some(old) = self.get(Tree::BlobRefs, key)? else {
            return Ok(());
        };
        self.remove(Tree::BlobRefs, key)?;
        let Some(id) = BlobId::from_slice(&old) else {
            return Ok(());
        };
        match self.count(&id)? {
            0 | 1 => {
                self.remove(Tree::BlobCounts, &id.0)?;
                match &self.engine {
                    TxEngine::Sled(_) => self.freed.borrow_mut().push(id),
                    // In the database the body goes with its last reference, atomically.
                    TxEngine::Pg(p) => p.drop_blob(&id).map_err(|e| TxStoreError(Inner::Pg(e)))?,
                }
            }
            n => self.put(Tree::BlobCounts, &id.0, &(n - 1).to_be_bytes())?,
        }
        Ok(())
    }

    fn count(&self, id: &BlobId) -> Result<u64, TxStoreError> {
        Ok(self
            .get(Tree::BlobCounts, &id.0)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }
}

/// Carries a codec error out of sled's closure, which only knows engine errors and aborts.
enum Abort<E> {
    User(E),
    Codec(StoreError),
}

/// Runs the transaction; on success also returns the blobs it left unreferenced.
pub(super) fn run<R, E>(
    handles: &[&sled::Tree],
    names: &[Tree],
    f: impl Fn(&Tx<'_>) -> Result<R, TxFail<E>>,
) -> Result<(R, Vec<BlobId>), TxError<E>> {
    let r = handles.transaction(|trees: &Vec<TransactionalTree>| {
        let tx = Tx {
            engine: TxEngine::Sled(trees.as_slice()),
            names,
            freed: RefCell::new(Vec::new()),
        };
        match f(&tx) {
            Ok(r) => Ok((r, tx.freed.take())),
            Err(TxFail::Abort(e)) => Err(ConflictableTransactionError::Abort(Abort::User(e))),
            Err(TxFail::Store(TxStoreError(Inner::Engine(e)))) => Err(e.into()),
            Err(TxFail::Store(TxStoreError(Inner::Codec(e)))) => {
                Err(ConflictableTransactionError::Abort(Abort::Codec(e)))
            }
            Err(TxFail::Store(TxStoreError(Inner::Pg(e)))) => {
                Err(ConflictableTransactionError::Abort(Abort::Codec(e.into())))
            }
        }
    });
    super::sled_engine::release_deferred();
    match r {
        Ok(r) => Ok(r),
        Err(TransactionError::Abort(Abort::User(e))) => Err(TxError::Abort(e)),
        Err(TransactionError::Abort(Abort::Codec(e))) => Err(TxError::Store(e)),
        Err(TransactionError::Storage(e)) => Err(TxError::Store(e.into())),
    }
}

/// Runs the transaction on PostgreSQL (see `pg::tx`): the body runs against a SERIALIZABLE
/// transaction, and again, after a short wait, when the database reports a serialization
/// failure or deadlock, up to `pg::tx::MAX_ATTEMPTS` times. Blob rows are written and
/// deleted inside it, so nothing is left to free afterwards.
pub(super) fn run_pg<R, E>(
    eng: &super::pg::PgEngine,
    names: &[Tree],
    f: impl Fn(&Tx<'_>) -> Result<R, TxFail<E>>,
) -> Result<R, TxError<E>> {
    use std::sync::atomic::Ordering::Relaxed;
    let lease = eng.txs().lease()?;
    let mut last = String::new();
    for n in 0..super::pg::tx::MAX_ATTEMPTS {
        if n > 0 {
            eng.counters.retries.fetch_add(1, Relaxed);
        }
        let ptx = PgTx::begin(eng, &lease, names);
        let out = {
            let tx = Tx {
                engine: TxEngine::Pg(&ptx),
                names,
                freed: RefCell::new(Vec::new()),
            };
            f(&tx)
        };
        if out.is_ok() && names.contains(&Tree::Events) {
            ptx.notify_events();
        }
        let failed = ptx.failed.borrow_mut().take();
        let err = match (out, failed) {
            (Ok(r), None) => match ptx.commit() {
                Ok(()) => {
                    eng.counters.transactions.fetch_add(1, Relaxed);
                    return Ok(r);
                }
                Err(e) => e,
            },
            // A statement failed: whatever the body made of it, the transaction is over.
            (_, Some(e)) => {
                ptx.rollback();
                e
            }
            (Err(TxFail::Abort(e)), None) => {
                ptx.rollback();
                return Err(TxError::Abort(e));
            }
            (Err(TxFail::Store(TxStoreError(inner))), None) => {
                ptx.rollback();
                return Err(TxError::Store(match inner {
                    Inner::Codec(e) => e,
                    Inner::Pg(e) => e.into(),
                    Inner::Engine(e) => StoreError::Io(format!("{e:?}")),
                }));
            }
        };
        if !err.retry {
            return Err(TxError::Store(err.into()));
        }
        last = err.msg;
        super::pg::tx::backoff(n);
    }
    Err(TxError::Store(StoreError::Io(format!(
        "database: a transaction kept conflicting ({last})"
    ))))
}
