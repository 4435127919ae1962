//! Leases: work that every node sharing a store could pick up (a queued message due for an
//! attempt) is done by the one holding its lease. A lease is a record in [`Tree::Leases`]
//! naming the holder (this store handle's node id) and an expiry, taken in a transaction,
//! so two nodes never both hold it; a node that dies holding one loses it at the expiry.
//! On sled one process holds the database lock, so no other node exists: taking a lease
//! writes nothing and always succeeds.

use super::{Engine, Store, StoreError, Tree, TxError, TxFail};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    expires_ms: i64,
}

impl Store {
    /// Whether other processes may share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.engine, Engine::Pg(_))
    }

    /// Takes (or renews) the lease `name` for `ttl`; false when another node holds it and
    /// its lease has not expired.
    pub fn try_lease(&self, name: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        if !self.is_shared() {
            return Ok(true);
        }
        self.take_lease(name, ttl)
    }

    /// Gives the lease up, if this node holds it.
    pub fn release_lease(&self, name: &[u8]) -> Result<(), StoreError> {
        if !self.is_shared() {
            return Ok(());
        }
        self.give_lease(name)
    }

    /// [`try_lease`](Self::try_lease) held on sled too: for work that must also be one at a
    /// time within one process's tasks and that tests hold as another node would.
    pub fn take_lease(&self, name: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let me = self.inner.node_id.clone();
        self.take_lease_at(Tree::Leases, name, &me, crate::util::now_millis(), ttl_ms)
    }

    /// Gives up a lease [`take_lease`](Self::take_lease) took, if this node holds it.
    pub fn give_lease(&self, name: &[u8]) -> Result<(), StoreError> {
        let me = self.inner.node_id.clone();
        self.release_lease_at(Tree::Leases, name, &me)
    }

    /// The lease rule itself, on both backends: `holder` takes (or renews) the lease kept at
    /// `key` of `tree` until `now_ms + ttl_ms`; false when another holder's has not expired.
    /// For a lease that must also hold on sled (the ACME order's, tested there).
    pub fn take_lease_at(
        &self,
        tree: Tree,
        key: &[u8],
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = self.transact::<_, ()>(&[tree], |tx| {
            if let Some(l) = tx.get_record::<Lease>(tree, key)? {
                if l.holder != holder && l.expires_ms > now_ms {
                    return Err(TxFail::Abort(()));
                }
            }
            tx.put_record(
                tree,
                key,
                &Lease {
                    holder: holder.to_string(),
                    expires_ms: now_ms.saturating_add(ttl_ms),
                },
            )?;
            Ok(())
        });
        match r {
            Ok(()) => Ok(true),
            Err(TxError::Abort(())) => Ok(false),
            Err(TxError::Store(e)) => Err(e),
        }
    }

    /// Gives the lease at `key` of `tree` up, if `holder` holds it.
    pub fn release_lease_at(&self, tree: Tree, key: &[u8], holder: &str) -> Result<(), StoreError> {
        self.transact::<_, ()>(&[tree], |tx| {
            if tx
                .get_record::<Lease>(tree, key)?
                .is_some_and(|l| l.holder == holder)
            {
                tx.remove(tree, key)?;
            }
            Ok(())
        })
        .map_err(|e| match e {
            TxError::Store(e) => e,
            TxError::Abort(()) => StoreError::Io("lease release aborted".into()),
        })
    }
}
