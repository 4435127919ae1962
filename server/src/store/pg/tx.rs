//! A store transaction on PostgreSQL: SERIALIZABLE, every statement on one leased
//! connection, retried on serialization failures and deadlocks (SQLSTATE 40001, 40P01).

use super::conn::{Lease, PgError};
use super::{PgEngine, KV_DEL, KV_GET, KV_PUT};
use crate::store::blob::BlobId;
use crate::store::{StoreError, Tree};
use std::cell::RefCell;

/// Attempts before a transaction that keeps conflicting gives up (sled retries forever; a
/// database shared by several nodes should not let one transaction spin).
pub(in crate::store) const MAX_ATTEMPTS: u32 = 100;

/// An open transaction.
pub(in crate::store) struct PgTx<'a> {
    pub(in crate::store) eng: &'a PgEngine,
    lease: &'a Lease<'a>,
    generation: u64,
    /// The first statement that failed: the database has aborted the transaction, so it
    /// must not commit (PostgreSQL answers COMMIT with a rollback then), whatever the body
    /// made of the error.
    pub(in crate::store) failed: RefCell<Option<PgError>>,
}

impl<'a> PgTx<'a> {
    /// Begins a transaction on `lease`.
    pub(in crate::store) fn begin(
        eng: &'a PgEngine,
        lease: &'a Lease<'a>,
    ) -> Result<PgTx<'a>, PgError> {
        let generation = lease.run(|c| {
            c.batch("BEGIN ISOLATION LEVEL SERIALIZABLE")?;
            Ok(c.generation)
        })?;
        lease.in_tx.set(true);
        Ok(PgTx {
            eng,
            lease,
            generation,
            failed: RefCell::new(None),
        })
    }

    pub(in crate::store) fn commit(self) -> Result<(), PgError> {
        let generation = self.generation;
        let r = self.lease.run(move |c| {
            if c.generation != generation {
                return Err(PgError::new("the connection broke during the transaction"));
            }
            c.batch("COMMIT")
        });
        self.lease.in_tx.set(false);
        r
    }

    /// Tells every node, once this transaction commits, that the outbox changed.
    pub(in crate::store) fn notify_events(&self) -> Result<(), PgError> {
        let sql = format!("NOTIFY {}", super::listen::CHANNEL);
        self.run(move |c| c.batch(&sql))
    }

    pub(in crate::store) fn rollback(self) {
        let _ = self.lease.run(|c| c.batch("ROLLBACK"));
        self.lease.in_tx.set(false);
    }

    fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut super::conn::Conn) -> Result<R, PgError> + Send + 'static,
    ) -> Result<R, PgError> {
        if let Some(e) = self.failed.borrow().as_ref() {
            return Err(e.clone());
        }
        let generation = self.generation;
        let r = self.lease.run(move |c| {
            if c.generation != generation {
                return Err(PgError::new("the connection broke during the transaction"));
            }
            f(c)
        });
        if let Err(e) = &r {
            *self.failed.borrow_mut() = Some(e.clone());
        }
        r
    }

    pub(in crate::store) fn get(&self, t: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, PgError> {
        let (tree, key) = (self.eng.id(t), key.to_vec());
        self.run(move |c| {
            let rows = c.query(KV_GET, &[&tree, &key])?;
            rows.first()
                .map(|r| r.try_get::<_, Vec<u8>>(0))
                .transpose()
                .map_err(PgError::from)
        })
    }

    pub(in crate::store) fn put(&self, t: Tree, key: &[u8], value: &[u8]) -> Result<(), PgError> {
        let (tree, key, value) = (self.eng.id(t), key.to_vec(), value.to_vec());
        self.run(move |c| c.execute(KV_PUT, &[&tree, &key, &value]).map(|_| ()))
    }

    pub(in crate::store) fn remove(&self, t: Tree, key: &[u8]) -> Result<(), PgError> {
        let (tree, key) = (self.eng.id(t), key.to_vec());
        self.run(move |c| c.execute(KV_DEL, &[&tree, &key]).map(|_| ()))
    }

    /// Makes sure blob `id`'s row exists, now that a first holder links it: inserted from
    /// the body its pin keeps, or an existing row (left by a pinned unlink) touched, so a
    /// concurrent sweep of it conflicts with this transaction instead of deleting it.
    pub(in crate::store) fn ensure_blob(&self, id: &BlobId) -> Result<(), PgError> {
        let key = id.0.to_vec();
        match self.eng.pins.body(id) {
            Some(body) => self.run(move |c| {
                c.execute(
                    "INSERT INTO legate_blobs (id, data) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET created_at = now()",
                    &[&key, &body.as_slice()],
                )
                .map(|_| ())
            }),
            None => {
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
        }
    }

    /// Deletes blob `id`'s row with its last reference, unless this process has it pinned
    /// (a backup still reading it: the sweep removes it later).
    pub(in crate::store) fn drop_blob(&self, id: &BlobId) -> Result<(), PgError> {
        if self.eng.pins.contains(id) {
            return Ok(());
        }
        let key = id.0.to_vec();
        self.run(move |c| {
            c.execute("DELETE FROM legate_blobs WHERE id = $1", &[&key])
                .map(|_| ())
        })
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
