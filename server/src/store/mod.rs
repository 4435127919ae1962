//! The one module that knows the storage engine.
//!
//! Everything above speaks in [`Tree`]s, byte keys built by [`keys`], records encoded by
//! [`codec`], transactions through [`Tx`], and [`Store::commit`] for durability. That surface
//! is deliberately what an ordered key-value store with multi-key transactions offers
//! (FoundationDB directly; PostgreSQL as one table of `(tree, key, value)`), so a scale-out
//! backend can replace sled without any caller changing. Today the engine is sled 0.34, which
//! calls itself beta: one more reason to keep it behind this wall.

pub mod codec;
mod commit;
mod error;
pub mod keys;
mod schema;
mod trees;
mod tx;

pub use codec::{decode, encode};
pub use error::StoreError;
pub use trees::Tree;
pub use tx::{Tx, TxError, TxFail, TxStoreError};

use commit::GroupCommit;
use serde::{de::DeserializeOwned, Serialize};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

/// A handle to the database. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// Opened trees, indexed by `Tree as usize`.
    trees: Vec<sled::Tree>,
    commit: GroupCommit,
}

/// One key/value pair returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

impl Store {
    /// Opens (or creates) the database in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        // A process that is still exiting may hold the lock for a moment: wait a little.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            match sled::Config::new()
                .path(dir.join("db"))
                .open()
                .map_err(StoreError::from_open)
            {
                Err(StoreError::Locked) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other?,
            }
        };
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                trees,
                commit: GroupCommit::default(),
            }),
        };
        schema::migrate(&store)?;
        Ok(store)
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        &self.inner.trees[t as usize]
    }

    pub fn get(&self, t: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(t).get(key)?.map(|v| v.to_vec()))
    }

    pub fn get_record<T: DeserializeOwned>(
        &self,
        t: Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.get(t, key)?.map(|v| decode(&v)).transpose()
    }

    /// A single write outside a transaction. Not durable until [`Store::commit`].
    pub fn put(&self, t: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree(t).insert(key, value)?;
        self.inner.commit.wrote();
        Ok(())
    }

    pub fn put_record<T: Serialize>(&self, t: Tree, key: &[u8], v: &T) -> Result<(), StoreError> {
        self.put(t, key, &encode(v)?)
    }

    pub fn remove(&self, t: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(t).remove(key)?;
        self.inner.commit.wrote();
        Ok(())
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(
        &'a self,
        t: Tree,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<Entry, StoreError>> + 'a {
        self.tree(t)
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
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
        let it = self
            .tree(t)
            .range((from, to))
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into));
        if reverse {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// The entry with the greatest key, if any.
    pub fn last(&self, t: Tree) -> Result<Option<Entry>, StoreError> {
        Ok(self.tree(t).last()?.map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    pub fn len(&self, t: Tree) -> usize {
        self.tree(t).len()
    }

    pub fn is_empty(&self, t: Tree) -> bool {
        self.tree(t).is_empty()
    }

    /// Runs `f` atomically over `trees` (serializable; retried on conflict, so `f` may run
    /// more than once and must not have side effects outside the transaction).
    pub fn transact<R, E>(
        &self,
        trees: &[Tree],
        f: impl Fn(&Tx<'_>) -> Result<R, TxFail<E>>,
    ) -> Result<R, TxError<E>> {
        let handles: Vec<&sled::Tree> = trees.iter().map(|t| self.tree(*t)).collect();
        let r = tx::run(&handles, trees, f);
        if r.is_ok() {
            self.inner.commit.wrote();
        }
        r
    }

    /// Makes every write completed before this call durable. Concurrent callers share one
    /// flush (group commit): whoever flushes covers everyone whose write preceded the flush.
    pub async fn commit(&self) -> Result<(), StoreError> {
        self.inner.commit.commit(&self.inner.db).await
    }

    /// Blocking flush for shutdown and CLI paths that have no runtime.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// A monotonically increasing number unique within this database (for sequence keys).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.generate_id()?)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
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
