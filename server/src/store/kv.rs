//! Single reads, writes and scans outside transactions, on either engine.

use super::{codec::decode, encode, pg, sled_engine, Engine, Store, StoreError, Tree};
use serde::{de::DeserializeOwned, Serialize};
use std::ops::Bound;

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
    pub fn get(&self, t: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => Ok(e.tree(t).get(key)?.map(|v| v.to_vec())),
            Engine::Pg(e) => e.get(t, key),
        }
    }

    /// Several keys of one tree, each `None` when absent, in `keys` order: on PostgreSQL
    /// one round trip for all of them instead of one each (a decision that looks up many
    /// candidate keys, such as a sender against its lists, waits for one answer).
    pub fn get_many(&self, t: Tree, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => {
                let tree = e.tree(t);
                keys.iter()
                    .map(|k| Ok(tree.get(k)?.map(|v| v.to_vec())))
                    .collect()
            }
            Engine::Pg(e) => e.get_many(t, keys),
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
                super::sled_engine::release_deferred();
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
                super::sled_engine::release_deferred();
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

    /// The last entry of each inclusive range `[lo, hi]`, in the order asked: on PostgreSQL
    /// one round trip for all of them (a search merge finds each term's newest block so).
    pub fn last_in_ranges(
        &self,
        t: Tree,
        ranges: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<Option<Entry>>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => ranges
                .iter()
                .map(|(lo, hi)| {
                    let from = Bound::Included(lo.clone());
                    let to = Bound::Included(hi.clone());
                    e.range(t, from, to, true).next().transpose()
                })
                .collect(),
            Engine::Pg(e) => e.last_in_ranges(t, ranges),
        }
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
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use std::ops::Bound;

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
}
