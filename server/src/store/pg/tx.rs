//! A store transaction on PostgreSQL: SERIALIZABLE, every statement on one leased
//! connection, retried on serialization failures and deadlocks (SQLSTATE 40001, 40P01).
//!
//! Round trips, not the database's work, bound a node (docs/scaling.md), so a transaction
//! makes as few as it can:
//! - its writes stay in the transaction (which reads its own writes from there) and go at
//!   commit as ONE statement (`unnest` arrays, one CTE per kind of change);
//! - BEGIN goes with the first read, so a transaction that reads k keys costs k + 3 round
//!   trips (BEGIN, the reads, the writes, COMMIT), and one that only writes is that one
//!   statement (serializable too: the connections' default, `super::PgEngine::open`);
//! - transactions of a class that all write one hot row (the event outbox's sequence, the
//!   audit chain's head) first lock that class's empty table. `LOCK TABLE`, unlike any
//!   SELECT, takes no snapshot, so each one reads what the one before it committed: they
//!   queue instead of all running and all but one failing at commit (and running again).

use super::conn::{Conn, Lease, PgError};
use super::many::{in_order, kv_get_many};
use super::{PgEngine, KV_GET};
use crate::store::blob::BlobId;
use crate::store::{StoreError, Tree};
use postgres::types::ToSql;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Attempts before a transaction that keeps conflicting gives up (sled retries forever; a
/// database shared by several nodes should not let one transaction spin).
pub(in crate::store) const MAX_ATTEMPTS: u32 = 100;

/// The trees whose transactions all write one hot row, and the table each class locks, in
/// the order they are locked (one order: no deadlock between classes).
const LOCK_CLASSES: [(Tree, &str); 2] = [
    (Tree::Events, "legate_lock_events"),
    (Tree::Audit, "legate_lock_audit"),
];

/// Writes by (tree, key): a value, or None for a removal.
type Writes = BTreeMap<(i16, Vec<u8>), Option<Vec<u8>>>;

/// Blob rows by id: the body to write, or None to delete.
type Blobs = BTreeMap<Vec<u8>, Option<Arc<Vec<u8>>>>;

/// The longest a transaction waits for its class's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// An open transaction.
pub(in crate::store) struct PgTx<'a> {
    pub(in crate::store) eng: &'a PgEngine,
    lease: &'a Lease<'a>,
    /// The simple statements that open it, sent with its first read.
    begin: String,
    /// The connection it began on (None: nothing sent yet).
    generation: Cell<Option<u64>>,
    /// Writes not yet sent, by (tree, key): a value, or None for a removal.
    writes: RefCell<Writes>,
    /// Blob rows to write (the body) or delete (None), by id.
    blobs: RefCell<Blobs>,
    /// Tell every node the outbox changed, once this commits.
    notify: Cell<bool>,
    /// The first statement that failed: the database has aborted the transaction, so it
    /// must not commit (PostgreSQL answers COMMIT with a rollback then), whatever the body
    /// made of the error.
    pub(in crate::store) failed: RefCell<Option<PgError>>,
}

impl<'a> PgTx<'a> {
    /// A transaction over `names` on `lease`; nothing is sent until it reads or commits.
    pub(in crate::store) fn begin(
        eng: &'a PgEngine,
        lease: &'a Lease<'a>,
        names: &[Tree],
    ) -> PgTx<'a> {
        let mut begin = String::from("BEGIN ISOLATION LEVEL SERIALIZABLE");
        let locks: Vec<&str> = LOCK_CLASSES
            .iter()
            .filter(|(tree, _)| names.contains(tree))
            .map(|(_, table)| *table)
            .collect();
        if !locks.is_empty() {
            // Bounded: a class transaction begun inside another one's body (a caller's bug)
            // fails after LOCK_WAIT instead of waiting forever on its own caller.
            begin.push_str(&format!(
                "; SET LOCAL lock_timeout = '{}s'; LOCK TABLE {} IN EXCLUSIVE MODE; SET LOCAL lock_timeout = DEFAULT",
                LOCK_WAIT.as_secs(),
                locks.join(", ")
            ));
        }
        PgTx {
            eng,
            lease,
            begin,
            generation: Cell::new(None),
            writes: RefCell::new(BTreeMap::new()),
            blobs: RefCell::new(BTreeMap::new()),
            notify: Cell::new(false),
            failed: RefCell::new(None),
        }
    }

    /// Sends the writes and commits: one round trip for a transaction that never read, two
    /// otherwise.
    pub(in crate::store) fn commit(self) -> Result<(), PgError> {
        let flush = Flush::of(
            std::mem::take(&mut *self.writes.borrow_mut()),
            std::mem::take(&mut *self.blobs.borrow_mut()),
            self.notify.get(),
        );
        let Some(generation) = self.generation.get() else {
            // Nothing read: the writes are one statement, a transaction of their own.
            return match flush {
                Some(f) => self.lease.run(move |c| f.run(c)),
                None => Ok(()),
            };
        };
        let r = self.lease.run(move |c| {
            if c.generation != generation {
                return Err(PgError::new("the connection broke during the transaction"));
            }
            if let Some(f) = flush {
                if let Err(e) = f.run(c) {
                    let _ = c.batch("ROLLBACK");
                    return Err(e);
                }
            }
            // A failed COMMIT has rolled back.
            c.batch("COMMIT")
        });
        self.lease.in_tx.set(false);
        r
    }

    /// Tells every node, once this transaction commits, that the outbox changed (with the
    /// writes: nothing written, nothing to tell).
    pub(in crate::store) fn notify_events(&self) {
        self.notify.set(true);
    }

    pub(in crate::store) fn rollback(self) {
        if self.generation.get().is_some() || self.lease.in_tx.get() {
            let _ = self.lease.run(|c| c.batch("ROLLBACK"));
        }
        self.lease.in_tx.set(false);
    }

    /// Runs `f` in the transaction, beginning it first if this is its first statement.
    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, PgError> + Send + 'static,
    ) -> Result<R, PgError> {
        if let Some(e) = self.failed.borrow().as_ref() {
            return Err(e.clone());
        }
        let expect = self.generation.get();
        let begin = expect.is_none().then(|| self.begin.clone());
        if begin.is_some() {
            // Whatever happens next, a transaction may be open: end it before reuse.
            self.lease.in_tx.set(true);
        }
        let r = self.lease.run(move |c| {
            if expect.is_some_and(|g| c.generation != g) {
                return Err(PgError::new("the connection broke during the transaction"));
            }
            if let Some(b) = begin {
                c.batch(&b)?;
            }
            let g = c.generation;
            f(c).map(|r| (r, g))
        });
        match r {
            Ok((r, g)) => {
                self.generation.set(Some(g));
                Ok(r)
            }
            Err(e) => {
                *self.failed.borrow_mut() = Some(e.clone());
                Err(e)
            }
        }
    }

    pub(in crate::store) fn get(&self, t: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, PgError> {
        let (tree, key) = (self.eng.id(t), key.to_vec());
        if let Some(w) = self.writes.borrow().get(&(tree, key.clone())) {
            return Ok(w.clone());
        }
        self.run(move |c| {
            let rows = c.query(KV_GET, &[&tree, &key])?;
            rows.first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
                .map_err(PgError::from)
        })
    }

    /// [`get`](Self::get) for several keys of one tree: this transaction's own writes, and
    /// the rest in one statement.
    pub(in crate::store) fn get_many(
        &self,
        t: Tree,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<Vec<u8>>>, PgError> {
        let tree = self.eng.id(t);
        let mut found = std::collections::HashMap::new();
        let mut ask = Vec::new();
        {
            let writes = self.writes.borrow();
            for k in keys {
                match writes.get(&(tree, k.to_vec())) {
                    Some(Some(v)) => {
                        found.insert(k.to_vec(), v.clone());
                    }
                    Some(None) => {}
                    None => ask.push(k.to_vec()),
                }
            }
        }
        if !ask.is_empty() {
            found.extend(self.run(move |c| kv_get_many(c, tree, &ask))?);
        }
        Ok(in_order(keys, found))
    }

    pub(in crate::store) fn put(&self, t: Tree, key: &[u8], value: &[u8]) -> Result<(), PgError> {
        self.write(t, key, Some(value.to_vec()))
    }

    pub(in crate::store) fn remove(&self, t: Tree, key: &[u8]) -> Result<(), PgError> {
        self.write(t, key, None)
    }

    fn write(&self, t: Tree, key: &[u8], value: Option<Vec<u8>>) -> Result<(), PgError> {
        if let Some(e) = self.failed.borrow().as_ref() {
            return Err(e.clone());
        }
        self.writes
            .borrow_mut()
            .insert((self.eng.id(t), key.to_vec()), value);
        Ok(())
    }

    /// Makes sure blob `id`'s row exists, now that a first holder links it: inserted from
    /// the body its pin keeps, or an existing row (left by a pinned unlink) touched, so a
    /// concurrent sweep of it conflicts with this transaction instead of deleting it.
    pub(in crate::store) fn ensure_blob(&self, id: &BlobId) -> Result<(), PgError> {
        let key = id.0.to_vec();
        if let Some(body) = self.eng.pins.body(id) {
            self.blobs.borrow_mut().insert(key, Some(body));
            return Ok(());
        }
        // Its deletion, queued by this transaction, is void: the row is still there.
        let queued = self.blobs.borrow_mut().remove(&key);
        if let Some(Some(body)) = queued {
            self.blobs.borrow_mut().insert(key, Some(body));
            return Ok(());
        }
        let n = self.run(move |c| {
            c.execute(
                "UPDATE legate_blobs SET created_at = now() WHERE id = $1",
                &[&key],
            )
        })?;
        if n == 0 {
            let e = PgError::new(format!(
                "blob {} was linked without being stored first",
                id.hex()
            ));
            *self.failed.borrow_mut() = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Deletes blob `id`'s row with its last reference, unless this process has it pinned
    /// (a backup still reading it: the sweep removes it later).
    pub(in crate::store) fn drop_blob(&self, id: &BlobId) -> Result<(), PgError> {
        if self.eng.pins.contains(id) {
            return Ok(());
        }
        self.blobs.borrow_mut().insert(id.0.to_vec(), None);
        Ok(())
    }
}

/// A transaction's writes as one statement.
struct Flush {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Flush {
    fn of(writes: Writes, blobs: Blobs, notify: bool) -> Option<Flush> {
        if writes.is_empty() && blobs.is_empty() {
            return None;
        }
        let (mut del_t, mut del_k, mut put_t, mut put_k, mut put_v) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((t, k), v) in writes {
            match v {
                Some(v) => {
                    put_t.push(t);
                    put_k.push(k);
                    put_v.push(v);
                }
                None => {
                    del_t.push(t);
                    del_k.push(k);
                }
            }
        }
        let (mut bin_id, mut bin_data, mut bdel) = (Vec::new(), Vec::new(), Vec::new());
        for (id, body) in blobs {
            match body {
                // One copy of the body, into the statement's parameters.
                Some(b) => {
                    bin_id.push(id);
                    bin_data.push(b.as_ref().clone());
                }
                None => bdel.push(id),
            }
        }
        let mut f = Flush {
            sql: String::new(),
            params: Vec::new(),
        };
        let mut ctes = Vec::new();
        if !del_t.is_empty() {
            let (a, b) = (f.param(del_t), f.param(del_k));
            ctes.push(format!(
                "d AS (DELETE FROM legate_kv k USING unnest(${a}::smallint[], ${b}::bytea[]) AS x(tree, key) \
                 WHERE k.tree = x.tree AND k.key = x.key)"
            ));
        }
        if !put_t.is_empty() {
            let (a, b, c) = (f.param(put_t), f.param(put_k), f.param(put_v));
            ctes.push(format!(
                "p AS (INSERT INTO legate_kv (tree, key, value) \
                 SELECT * FROM unnest(${a}::smallint[], ${b}::bytea[], ${c}::bytea[]) \
                 ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value)"
            ));
        }
        if !bin_id.is_empty() {
            let (a, b) = (f.param(bin_id), f.param(bin_data));
            ctes.push(format!(
                "b AS (INSERT INTO legate_blobs (id, data) \
                 SELECT * FROM unnest(${a}::bytea[], ${b}::bytea[]) \
                 ON CONFLICT (id) DO UPDATE SET created_at = now())"
            ));
        }
        if !bdel.is_empty() {
            let a = f.param(bdel);
            ctes.push(format!(
                "e AS (DELETE FROM legate_blobs WHERE id = ANY(${a}::bytea[]))"
            ));
        }
        f.sql = format!(
            "WITH {} SELECT {}",
            ctes.join(", "),
            if notify {
                format!("pg_notify('{}', '')", super::listen::CHANNEL)
            } else {
                "1".to_string()
            }
        );
        Some(f)
    }

    /// Adds a parameter; returns its number.
    fn param(&mut self, p: impl ToSql + Sync + Send + 'static) -> usize {
        self.params.push(Box::new(p));
        self.params.len()
    }

    fn run(self, c: &mut Conn) -> Result<(), PgError> {
        let params: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        c.query(&self.sql, &params).map(|_| ())
    }
}

/// Waits a little before attempt `n` + 1 of a conflicting transaction: exponential with
/// jitter, at most about 50 ms.
pub(in crate::store) fn backoff(n: u32) {
    let cap_us = 50_000u64.min(100u64 << n.min(9));
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    let us = u64::from_le_bytes(b) % cap_us.max(1);
    std::thread::sleep(std::time::Duration::from_micros(us));
}

/// Deletes blob row `id` if no count names it, in a serializable transaction (retried).
pub(super) fn delete_unreferenced_blob(eng: &PgEngine, id: Vec<u8>) -> Result<bool, StoreError> {
    let counts = eng.id(Tree::BlobCounts);
    let lease = eng.txs().lease()?;
    for n in 0..MAX_ATTEMPTS {
        let id = id.clone();
        let r = lease.run(move |c| {
            c.batch("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
            let r = c
                .execute(
                    "DELETE FROM legate_blobs b WHERE b.id = $2 AND NOT EXISTS
                     (SELECT 1 FROM legate_kv k WHERE k.tree = $1 AND k.key = b.id)",
                    &[&counts, &id],
                )
                .and_then(|n| c.batch("COMMIT").map(|_| n));
            if r.is_err() {
                let _ = c.batch("ROLLBACK");
            }
            r
        });
        match r {
            Ok(deleted) => return Ok(deleted > 0),
            Err(e) if e.retry => backoff(n),
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Io(
        "database: a blob sweep kept conflicting".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transactions_writes_are_one_statement_with_only_what_it_changed() {
        assert!(Flush::of(BTreeMap::new(), BTreeMap::new(), true).is_none());
        let mut w = BTreeMap::new();
        w.insert((1i16, b"a".to_vec()), Some(b"1".to_vec()));
        w.insert((1i16, b"b".to_vec()), None);
        w.insert((2i16, b"c".to_vec()), Some(b"3".to_vec()));
        let f = Flush::of(w, BTreeMap::new(), false).unwrap();
        // Deletes: two arrays; upserts: three.
        assert_eq!(f.params.len(), 5);
        assert!(f.sql.starts_with("WITH d AS (DELETE"));
        assert!(f.sql.contains("p AS (INSERT INTO legate_kv"));
        assert!(f.sql.ends_with("SELECT 1"));
        let mut b = BTreeMap::new();
        b.insert(vec![7u8; 32], Some(Arc::new(b"body".to_vec())));
        b.insert(vec![8u8; 32], None);
        let f = Flush::of(BTreeMap::new(), b, true).unwrap();
        assert_eq!(f.params.len(), 3);
        assert!(!f.sql.contains("legate_kv"));
        assert!(
            f.sql.contains("INSERT INTO legate_blobs")
                && f.sql.contains("DELETE FROM legate_blobs")
        );
        assert!(f.sql.ends_with(&format!(
            "pg_notify('{}', '')",
            super::super::listen::CHANNEL
        )));
    }
}
