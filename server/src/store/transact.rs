//! [`Store::transact`]: a transaction over several trees on either engine.

use super::{tx, Engine, Store, Tree, Tx, TxError, TxFail};

impl Store {
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
    pub(super) fn transact_now<R, E>(
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
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
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
}
