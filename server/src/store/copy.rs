//! `legate store copy`: every tree and every message body from one store into another, empty
//! one (sled to PostgreSQL when a domain outgrows one machine, and back), verified.

use super::{BlobId, Engine, Store, StoreError, Tree};
use std::collections::BTreeMap;

/// Entries written per transaction into the target.
const BATCH: usize = 1000;

/// What a copy moved; `verified` when the target holds exactly what the source held.
#[derive(Debug, Default, serde::Serialize)]
pub struct CopyReport {
    /// Entries per tree (trees with none are left out).
    pub trees: BTreeMap<&'static str, u64>,
    pub entries: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// What disagreed after the copy (empty: verified).
    pub mismatches: Vec<String>,
}

impl Store {
    /// Whether the store holds nothing but its schema version (a fresh target).
    pub fn is_blank(&self) -> Result<bool, StoreError> {
        for t in Tree::ALL {
            for item in self.scan_prefix(t, &[]) {
                let (k, _) = item?;
                if !(t == Tree::Meta && k == b"schema_version") {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Copies everything into `target`, which must be blank, from one consistent snapshot
    /// of this store, then counts both sides again tree by tree and blob by blob.
    pub fn copy_into(&self, target: &Store) -> Result<CopyReport, StoreError> {
        if !target.is_blank()? {
            return Err(StoreError::Io(
                "the target store is not empty: copy only into a new one".into(),
            ));
        }
        let mut report = CopyReport::default();
        let mut batch: Vec<(Tree, Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH);
        let flush = |batch: &mut Vec<(Tree, Vec<u8>, Vec<u8>)>| -> Result<(), StoreError> {
            if batch.is_empty() {
                return Ok(());
            }
            let mut trees: Vec<Tree> = batch.iter().map(|e| e.0).collect();
            trees.sort();
            trees.dedup();
            target
                .transact::<_, StoreError>(&trees, |tx| {
                    for (t, k, v) in batch.iter() {
                        tx.put(*t, k, v)?;
                    }
                    Ok(())
                })
                .map_err(|e| match e {
                    super::TxError::Abort(e) | super::TxError::Store(e) => e,
                })?;
            batch.clear();
            Ok(())
        };
        let blobs = self.snapshot::<StoreError>(
            |t, k, v| {
                *report.trees.entry(t.name()).or_insert(0) += 1;
                report.entries += 1;
                batch.push((t, k.to_vec(), v.to_vec()));
                if batch.len() >= BATCH {
                    flush(&mut batch)?;
                }
                Ok(())
            },
            || Ok(()),
        )?;
        flush(&mut batch)?;
        let ids: Vec<BlobId> = blobs.ids().collect();
        for id in &ids {
            let bytes = self
                .blob_by_id(id)?
                .ok_or_else(|| StoreError::Corrupt(format!("blob {} is missing", id.hex())))?;
            report.blobs += 1;
            report.blob_bytes += bytes.len() as u64;
            target.import_blob(id, &bytes)?;
        }
        drop(blobs);
        if let Engine::Pg(_) = target.inner.engine {
            // Ids handed out by the source must not come again from the target.
            target.advance_ids(self.next_id()?)?;
        }
        target.flush_blocking()?;
        // Verify: every tree's count, every blob present and whole.
        for t in Tree::ALL {
            let want = report.trees.get(t.name()).copied().unwrap_or(0);
            let mut got = 0u64;
            for item in target.scan_prefix(t, &[]) {
                item?;
                got += 1;
            }
            if got != want {
                report
                    .mismatches
                    .push(format!("tree {}: {want} copied, {got} found", t.name()));
            }
        }
        for id in &ids {
            let ok = target
                .blob_by_id(id)?
                .is_some_and(|b| BlobId::of(&b) == *id);
            if !ok {
                report
                    .mismatches
                    .push(format!("blob {} missing or damaged", id.hex()));
            }
        }
        Ok(report)
    }

    /// Makes [`Store::next_id`] return more than `n` from now on (PostgreSQL; sled's ids
    /// cannot be set, and a copy into sled starts them past what it reserves at open).
    fn advance_ids(&self, n: u64) -> Result<(), StoreError> {
        match &self.inner.engine {
            Engine::Sled(_) => Ok(()),
            Engine::Pg(e) => e.advance_ids(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_complete_verified_and_refuses_a_used_target() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let s = Store::open(a.path()).unwrap();
        for i in 0u64..2500 {
            s.put(Tree::Audit, &i.to_be_bytes(), b"e").unwrap();
        }
        let pin = s.put_blob(b"body").unwrap();
        s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(b"m", &pin.id())?))
            .unwrap();
        drop(pin);
        let t = Store::open(b.path()).unwrap();
        assert!(t.is_blank().unwrap());
        let r = s.copy_into(&t).unwrap();
        assert!(r.mismatches.is_empty(), "{r:?}");
        assert_eq!(r.trees["audit"], 2500);
        assert_eq!(r.blobs, 1);
        assert_eq!(t.blob_of(b"m").unwrap().unwrap(), b"body");
        assert!(t.verify_blobs(true, None).unwrap().is_clean());
        assert!(s.copy_into(&t).is_err());
    }
}
