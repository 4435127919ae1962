//! Transactions across trees, with caller-defined abort errors.

use super::{codec, StoreError, Tree};
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
    UnabortableTransactionError,
};

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
}

/// Carries a codec error out of sled's closure, which only knows engine errors and aborts.
enum Abort<E> {
    User(E),
    Codec(StoreError),
}

pub(super) fn run<R, E>(
    handles: &[&sled::Tree],
    names: &[Tree],
    f: impl Fn(&Tx<'_>) -> Result<R, TxFail<E>>,
) -> Result<R, TxError<E>> {
    let r = handles.transaction(|trees: &Vec<TransactionalTree>| {
        let tx = Tx {
            trees: trees.as_slice(),
            names,
        };
        match f(&tx) {
            Ok(r) => Ok(r),
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
