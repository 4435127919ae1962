//! Message bodies: stored once before the transaction that links them, read whole, in
//! ranges or streamed, swept when nothing links them (the blob store on sled, rows on
//! PostgreSQL).

use super::blob::{self, BlobId, BlobPin, BlobReader};
use super::{Engine, Store, StoreError, Tree};
use std::sync::Arc;

impl Store {
    /// Stores a message body durably in the blob store, before the transaction that links
    /// it ([`Tx::link_blob`]); keep the pin until that transaction is over. Blocking. On
    /// PostgreSQL the pin keeps the body and the linking transaction writes it.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobPin, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => e.blobs.put(bytes),
            Engine::Pg(e) => Ok(e
                .pins
                .pin(BlobId::of(bytes), Some(Arc::new(bytes.to_vec())))),
        }
    }

    /// The blob linked under `key` (a message id), whole.
    pub fn blob_of(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.blob_id_of(key)? {
            Some(id) => self
                .blob_by_id(&id)?
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("blob {} is missing", id.hex()))),
            None => Ok(None),
        }
    }

    /// Appends the blob linked under `key` to `out` (see [`blob::BlobStore::read_into`]);
    /// the bytes appended, or None if nothing is linked. `size`: its recorded length.
    pub fn blob_into(
        &self,
        key: &[u8],
        out: &mut Vec<u8>,
        size: u64,
    ) -> Result<Option<usize>, StoreError> {
        let Some(id) = self.blob_id_of(key)? else {
            return Ok(None);
        };
        let n = match &self.inner.engine {
            Engine::Sled(e) => e.blobs.read_into(&id, out, size)?,
            Engine::Pg(e) => e.blob_get(&id)?.map(|b| {
                out.extend_from_slice(&b);
                b.len()
            }),
        };
        n.map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("blob {} is missing", id.hex())))
    }

    /// A reader over the blob linked under `key`, to stream it.
    pub fn blob_reader_of(&self, key: &[u8]) -> Result<Option<blob::BlobReader>, StoreError> {
        match self.blob_id_of(key)? {
            Some(id) => match &self.inner.engine {
                Engine::Sled(e) => e.blobs.reader(&id),
                Engine::Pg(e) => Ok(e
                    .blob_get(&id)?
                    .map(|b| BlobReader::Memory(std::io::Cursor::new(b)))),
            },
            None => Ok(None),
        }
    }

    /// `len` bytes from `offset` of the blob linked under `key`.
    pub fn blob_range_of(
        &self,
        key: &[u8],
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.blob_id_of(key)? {
            Some(id) => match &self.inner.engine {
                Engine::Sled(e) => e.blobs.range(&id, offset, len),
                Engine::Pg(e) => e.blob_range(&id, offset, len),
            },
            None => Ok(None),
        }
    }

    pub(super) fn blob_id_of(&self, key: &[u8]) -> Result<Option<BlobId>, StoreError> {
        match self.get(Tree::BlobRefs, key)? {
            Some(v) => BlobId::from_slice(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("blob reference".into())),
            None => Ok(None),
        }
    }

    /// Every stored blob (files, or database rows), by id.
    pub(super) fn blob_list(&self) -> Result<Vec<blob::Listed>, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => e.blobs.list(),
            Engine::Pg(e) => e.blob_list(),
        }
    }

    /// Removes blob files nothing references that are older than `grace`.
    pub fn sweep_blobs(&self, grace: std::time::Duration) -> Result<u64, StoreError> {
        match &self.inner.engine {
            Engine::Sled(e) => {
                let counts = e.tree(Tree::BlobCounts);
                let n = e.blobs.sweep(grace, |id| Ok(counts.get(id.0)?.is_some()))?;
                Ok(n as u64)
            }
            Engine::Pg(e) => e.sweep(grace),
        }
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
    fn blobs_are_stored_once_counted_and_deleted_with_their_last_holder() {
        let (d, s) = open();
        let link = |key: &[u8], body: &[u8]| {
            let pin = s.put_blob(body).unwrap();
            s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.link_blob(key, &pin.id())?))
                .unwrap();
        };
        let unlink = |key: &[u8]| {
            s.transact::<_, ()>(&[Tree::BlobRefs], |tx| Ok(tx.unlink_blob(key)?))
                .unwrap();
        };
        link(b"m1", b"body");
        link(b"m2", b"body");
        link(b"m3", b"else");
        let files = || s.blob_list().unwrap().len();
        assert_eq!(files(), 2);
        assert_eq!(s.blob_of(b"m2").unwrap().unwrap(), b"body");
        let mut out = b">".to_vec();
        assert_eq!(s.blob_into(b"m3", &mut out, 4).unwrap(), Some(4));
        assert_eq!(s.blob_into(b"none", &mut out, 4).unwrap(), None);
        assert_eq!(out, b">else");
        assert_eq!(s.blob_range_of(b"m3", 1, 2).unwrap().unwrap(), b"ls");
        assert!(s.verify_blobs(true, None).unwrap().is_clean());
        unlink(b"m1");
        assert_eq!(files(), 2);
        assert_eq!(s.blob_of(b"m2").unwrap().unwrap(), b"body");
        unlink(b"m2");
        unlink(b"m2");
        assert_eq!(files(), 1);
        assert_eq!(s.blob_of(b"m2").unwrap(), None);
        // An aborted transaction links nothing; its file is an orphan for the sweep.
        let pin = s.put_blob(b"aborted").unwrap();
        let r: Result<(), TxError<&str>> = s.transact(&[Tree::BlobRefs], |tx| {
            tx.link_blob(b"m4", &pin.id())?;
            Err(TxFail::Abort("no"))
        });
        assert!(r.is_err());
        drop(pin);
        let report = s.verify_blobs(false, None).unwrap();
        assert_eq!(report.orphans, vec![BlobId::of(b"aborted").hex()]);
        let report = s
            .verify_blobs(false, Some(std::time::Duration::ZERO))
            .unwrap();
        assert_eq!(report.swept, 1);
        assert!(report.orphans.is_empty());
        assert!(s.verify_blobs(false, None).unwrap().is_clean());
        // A crash between blob write and commit: the next open sweeps the orphan.
        let _ = s.put_blob(b"crashed").unwrap();
        drop(s);
        let s = Store::open(d.path()).unwrap();
        assert!(s.verify_blobs(false, None).unwrap().is_clean());
        assert_eq!(s.blob_of(b"m3").unwrap().unwrap(), b"else");
    }
}
