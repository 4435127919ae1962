//! `legate store verify`: every message record has its blob and every blob a holder.

use super::blob::BlobId;
use super::{Store, StoreError, Tree};

/// What `legate store verify` found. Clean when every list is empty.
#[derive(Debug, Default, serde::Serialize)]
pub struct BlobReport {
    /// Message records checked.
    pub records: u64,
    /// Blob files found, and their total size.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Message ids whose record has no blob reference, or whose blob file is missing.
    pub missing: Vec<String>,
    /// Blob files no reference names (hex ids).
    pub orphans: Vec<String>,
    /// Blobs whose stored reference count disagrees with the references found.
    pub bad_counts: Vec<String>,
    /// Blobs whose content no longer hashes to their name (with `deep`).
    pub corrupt: Vec<String>,
    /// Raw bodies still in the schema-2 tree (an upgrade that has not finished).
    pub unmigrated: u64,
    /// Orphans removed (with `sweep`).
    pub swept: u64,
}

impl BlobReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.orphans.is_empty()
            && self.bad_counts.is_empty()
            && self.corrupt.is_empty()
            && self.unmigrated == 0
    }
}

impl Store {
    /// Checks that every message record has its blob and every blob a holder (and, with
    /// `deep`, that each blob still hashes to its name); with `sweep`, removes orphans
    /// older than `grace`. Offline: the server holds the database lock while it runs.
    pub fn verify_blobs(
        &self,
        deep: bool,
        sweep: Option<std::time::Duration>,
    ) -> Result<BlobReport, StoreError> {
        let mut r = BlobReport::default();
        let mut refs: std::collections::HashMap<BlobId, u64> = Default::default();
        for e in self.scan_prefix(Tree::BlobRefs, &[]) {
            let (_, v) = e?;
            if let Some(id) = BlobId::from_slice(&v) {
                *refs.entry(id).or_insert(0) += 1;
            }
        }
        let files = self.blob_list()?;
        let present: std::collections::HashSet<BlobId> = files.iter().map(|l| l.id).collect();
        for e in self.scan_prefix(Tree::Messages, &[]) {
            let (k, _) = e?;
            r.records += 1;
            let linked = self.blob_id_of(&k)?;
            if !linked.is_some_and(|id| present.contains(&id)) {
                r.missing.push(String::from_utf8_lossy(&k).into_owned());
            }
        }
        for e in self.scan_prefix(Tree::BlobCounts, &[]) {
            let (k, v) = e?;
            let stored = <[u8; 8]>::try_from(v.as_slice()).map_or(0, u64::from_be_bytes);
            let found = BlobId::from_slice(&k).and_then(|id| refs.get(&id).copied());
            if found != Some(stored) {
                r.bad_counts.push(data_encoding::HEXLOWER.encode(&k));
            }
        }
        for (id, n) in &refs {
            if self.get(Tree::BlobCounts, &id.0)?.is_none() {
                r.bad_counts
                    .push(format!("{} (0 stored, {n} found)", id.hex()));
            }
        }
        for l in &files {
            r.blobs += 1;
            r.blob_bytes += l.len;
            if !refs.contains_key(&l.id) {
                r.orphans.push(l.id.hex());
            }
            if deep {
                let ok = self
                    .blob_by_id(&l.id)?
                    .is_some_and(|b| BlobId::of(&b) == l.id);
                if !ok {
                    r.corrupt.push(l.id.hex());
                }
            }
        }
        r.unmigrated = self.len(Tree::MessageBlobs) as u64;
        if let Some(grace) = sweep {
            r.swept = self.sweep_blobs(grace)?;
            let kept: std::collections::HashSet<BlobId> =
                self.blob_list()?.into_iter().map(|l| l.id).collect();
            r.orphans
                .retain(|h| BlobId::from_hex(h).is_some_and(|id| kept.contains(&id)));
        }
        Ok(r)
    }
}
