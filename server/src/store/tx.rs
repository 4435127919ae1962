//! Transactions across trees, with caller-defined abort errors.

use super::blob::BlobId;
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
    trees: &'a [TransactionalTree],
    names: &'a [Tree],
    /// Blobs whose last reference this run removed: deleted after the commit (a retried
    /// run starts with a fresh `Tx`, so only the committed run's list counts).
    freed: RefCell<Vec<BlobId>>,
}

impl Tx<'_> {
    fn t(&self, tree: Tree) -> &TransactionalTree {
        // A body naming a tree it did not ask for is a programming error, caught by tests.
        let i = self
            .names
            .iter()
            .position(|n| *n == tree)
            .unwrap_or_else(|| panic!("transaction did not declare tree {tree:?}"));
        &self.trees[i]
    }

    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, TxStoreError> {
        self.t(tree)
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| TxStoreError(Inner::Engine(e)))
    }

    pub fn get_record<T: DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<T>, TxStoreError> {
        match self.get(tree, key)? {
            Some(v) => codec::decode(&v)
                .map(Some)
                .map_err(|e| TxStoreError(Inner::Codec(e))),
            None => Ok(None),
        }
    }

    pub fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), TxStoreError> {
        self.t(tree)
            .insert(key, value)
            .map(|_| ())
            .map_err(|e| TxStoreError(Inner::Engine(e)))
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
        self.t(tree)
            .remove(key)
            .map(|_| ())
            .map_err(|e| TxStoreError(Inner::Engine(e)))
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
                self.freed.borrow_mut().push(id);
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
            trees: trees.as_slice(),
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
        }
    });
    match r {
        Ok(r) => Ok(r),
        Err(TransactionError::Abort(Abort::User(e))) => Err(TxError::Abort(e)),
        Err(TransactionError::Abort(Abort::Codec(e))) => Err(TxError::Store(e)),
        Err(TransactionError::Storage(e)) => Err(TxError::Store(e.into())),
    }
}
