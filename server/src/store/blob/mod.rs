//! Message bodies out of the key-value trees: a content-addressed blob store.
//!
//! Why: in sled a large value is rewritten with its leaf every time a neighbour changes, so
//! raw messages in a tree cost 8-9x their size on disk and inflate the page cache. Bodies
//! now live as plain files named by their SHA-256 under `<data>/blobs/ab/cdef…`; the trees
//! keep only a 32-byte reference per message ([`super::Tree::BlobRefs`]) and a count per
//! blob ([`super::Tree::BlobCounts`]), so identical bodies are stored once.
//!
//! Write order (what keeps "250 means on disk" true): [`BlobStore::put`] writes a temp
//! file, fsyncs it, renames it into place and fsyncs the directory BEFORE the transaction
//! that links it to a message commits. A crash in between leaves at most an unreferenced
//! file, which [`BlobStore::sweep`] removes (at start and by `legate store verify --sweep`).
//!
//! Deletion races with a concurrent put of the same content (a file whose count just went
//! to zero may be about to gain a holder). A put therefore *pins* its hash from before it
//! writes until its transaction is over, and a deletion happens only for a hash that is not
//! pinned and whose count is still absent, checked under the same lock as pinning.
//!
//! Callers above `store/` never see paths: they link and unlink blobs in transactions
//! ([`super::Tx::link_blob`], [`super::Tx::unlink_blob`]) and read by the key they linked
//! them under ([`super::Store::blob_of`]).

mod dirs;
mod zst;

use super::StoreError;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A blob's name: the SHA-256 of its content.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(Sha256::digest(bytes).into())
    }

    pub fn from_slice(b: &[u8]) -> Option<BlobId> {
        Some(BlobId(b.try_into().ok()?))
    }

    pub fn hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    pub(crate) fn from_hex(s: &str) -> Option<BlobId> {
        let v = data_encoding::HEXLOWER.decode(s.as_bytes()).ok()?;
        BlobId::from_slice(&v)
    }
}

/// The `fs` backend.
pub struct BlobStore {
    root: PathBuf,
    /// Handles on the fan-out directories: files are opened by name, not by path.
    dirs: dirs::Dirs,
    /// Bodies of at least this many bytes are compressed ([`zst`]); None: never.
    compress_min: Option<usize>,
    /// Hashes with a put in flight (count of puts): not to be deleted meanwhile.
    pins: Arc<Pins>,
    /// The form the last read found: tried first by the next. A bulk FETCH reads thousands
    /// of bodies of one kind, and a failed open is a path lookup spent for nothing.
    plain_last: std::sync::atomic::AtomicBool,
}

/// Blobs in use in this process: pinned hashes with their pin counts, and for a backend
/// that writes a body in the transaction that links it (PostgreSQL), the body itself until
/// then.
#[derive(Default)]
pub struct Pins(Mutex<PinMap>);

/// Pin count, and the body kept for its linking transaction.
type PinMap = HashMap<BlobId, (usize, Option<Arc<Vec<u8>>>)>;

impl Pins {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, PinMap> {
        // A panic while holding this lock leaves the map consistent (single operations).
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pins `id`, keeping `body` (if given) for the transaction that links it.
    pub(crate) fn pin(self: &Arc<Self>, id: BlobId, body: Option<Arc<Vec<u8>>>) -> BlobPin {
        let mut map = self.lock();
        let e = map.entry(id).or_insert((0, None));
        e.0 += 1;
        if body.is_some() {
            e.1 = body;
        }
        BlobPin {
            pins: self.clone(),
            id,
        }
    }

    pub(crate) fn contains(&self, id: &BlobId) -> bool {
        self.lock().contains_key(id)
    }

    /// The body a pin keeps, if any.
    pub(crate) fn body(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.lock().get(id).and_then(|e| e.1.clone())
    }
}

/// Keeps a freshly written blob from being deleted until its linking transaction is over.
pub struct BlobPin {
    pins: Arc<Pins>,
    id: BlobId,
}

impl BlobPin {
    pub fn id(&self) -> BlobId {
        self.id
    }
}

impl Drop for BlobPin {
    fn drop(&mut self) {
        let mut pins = self.pins.lock();
        if let Some(n) = pins.get_mut(&self.id) {
            n.0 -= 1;
            if n.0 == 0 {
                pins.remove(&self.id);
            }
        }
    }
}

/// One file found by [`BlobStore::list`].
pub struct Listed {
    pub id: BlobId,
    pub len: u64,
    pub modified: SystemTime,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl BlobStore {
    /// Opens (creating) the blob directory `root`; removes temp files a crash left behind.
    /// Either form of a blob reads whatever `compress_min` is now.
    pub fn open(root: &Path, compress_min: Option<usize>) -> Result<BlobStore, StoreError> {
        fs::create_dir_all(root.join("tmp")).map_err(io)?;
        for e in fs::read_dir(root.join("tmp")).map_err(io)? {
            // Nothing else writes here while the database lock is held: every temp file is
            // a write that never reached its rename.
            let _ = fs::remove_file(e.map_err(io)?.path());
        }
        Ok(BlobStore {
            root: root.to_path_buf(),
            dirs: dirs::Dirs::new(root),
            compress_min,
            pins: Default::default(),
            plain_last: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        let hex = id.hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    fn zst_path(&self, id: &BlobId) -> PathBuf {
        let mut p = self.path(id).into_os_string();
        p.push(".zst");
        PathBuf::from(p)
    }

    /// Whether the blob's file is there, in either form.
    fn exists(&self, id: &BlobId) -> Result<bool, StoreError> {
        Ok(self.dirs.exists(id, true).map_err(io)? || self.dirs.exists(id, false).map_err(io)?)
    }

    /// Opens the blob's file, the form found last tried first (a bulk FETCH reads thousands
    /// of bodies of one kind, and a failed open is a lookup spent for nothing): the file and
    /// whether it is compressed, or None if it is missing.
    fn open_any(&self, id: &BlobId) -> Result<Option<(File, bool)>, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let plain_first = self.plain_last.load(Relaxed);
        for packed in [!plain_first, plain_first] {
            if let Some(f) = self.dirs.open(id, packed).map_err(io)? {
                if plain_first == packed {
                    self.plain_last.store(!packed, Relaxed);
                }
                return Ok(Some((f, packed)));
            }
        }
        Ok(None)
    }

    /// Stores `bytes` durably (unless an identical blob is already there) and pins it.
    /// Blocking: call it off the async runtime's worker threads.
    pub fn put(self: &Arc<Self>, bytes: &[u8]) -> Result<BlobPin, StoreError> {
        let id = BlobId::of(bytes);
        let pin = self.pins.pin(id, None);
        if self.exists(&id)? {
            return Ok(pin);
        }
        let packed = match self.compress_min {
            Some(min) if bytes.len() >= min => zst::compress(bytes).map_err(io)?,
            _ => None,
        };
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.{}", id.hex(), crate::util::new_id("t")));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(packed.as_deref().unwrap_or(bytes))?;
            f.sync_all()?;
            self.dirs.rename_into(&tmp, &id, packed.is_some())
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(pin)
    }

    /// The hashes pinned in this process.
    pub(crate) fn pins(&self) -> &Arc<Pins> {
        &self.pins
    }

    /// Keeps an existing blob from being deleted until the pin is dropped (a backup
    /// copying it).
    pub fn pin(self: &Arc<Self>, id: BlobId) -> BlobPin {
        self.pins.pin(id, None)
    }

    /// The whole blob, or None if its file is missing.
    pub fn get(&self, id: &BlobId) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((mut f, packed)) = self.open_any(id)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(io)?;
        if packed {
            zst::decompress_all(&bytes).map(Some).map_err(read_err)
        } else {
            Ok(Some(bytes))
        }
    }

    /// Appends the whole blob to `out`; the bytes appended, or None if its file is missing.
    /// A bulk IMAP FETCH builds a batch of responses in one buffer, and a body read straight
    /// into it is neither allocated on its own nor copied again. `size`: its length as
    /// recorded (0: unknown), so a plain file is read without asking the filesystem for its
    /// length or reading on to find its end; never more than `size` bytes of it.
    pub fn read_into(
        &self,
        id: &BlobId,
        out: &mut Vec<u8>,
        size: u64,
    ) -> Result<Option<usize>, StoreError> {
        let Some((mut f, packed)) = self.open_any(id)? else {
            return Ok(None);
        };
        let start = out.len();
        if packed {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(io)?;
            let raw = zst::decompress_all(&buf).map_err(read_err)?;
            out.extend_from_slice(&raw);
        } else {
            // Through `Take`, not `File::read_to_end`, which asks for the file's length
            // and position first (two system calls per message of a bulk read). Read up to
            // the recorded size and no further: a blob is named by the hash of its bytes and
            // never changes, so a read that got them all need not be followed by one that
            // finds the end (for a small body, one system call in three).
            out.reserve(usize::try_from(size).unwrap_or(0));
            let limit = if size == 0 { u64::MAX } else { size };
            if let Err(e) = f.take(limit).read_to_end(out) {
                out.truncate(start);
                return Err(io(e));
            }
        }
        Ok(Some(out.len() - start))
    }

    /// A reader of the blob's raw bytes, for streaming without holding it whole in memory.
    pub fn reader(&self, id: &BlobId) -> Result<Option<BlobReader>, StoreError> {
        Ok(self.open_file(id)?.map(|(f, _)| f))
    }

    /// The reader and whether it decompresses (a plain file can seek).
    fn open_file(&self, id: &BlobId) -> Result<Option<(BlobReader, bool)>, StoreError> {
        let Some((f, packed)) = self.open_any(id)? else {
            return Ok(None);
        };
        let r = if packed {
            BlobReader::Packed(zst::open(f).map_err(read_err)?)
        } else {
            BlobReader::Plain(f)
        };
        Ok(Some((r, packed)))
    }

    /// `len` bytes from `offset` (fewer at the end of the blob).
    pub fn range(&self, id: &BlobId, offset: u64, len: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((mut r, packed)) = self.open_file(id)? else {
            return Ok(None);
        };
        match (&mut r, packed) {
            (BlobReader::Plain(f), false) => {
                f.seek(SeekFrom::Start(offset)).map_err(io)?;
            }
            _ => {
                // A compressed stream seeks by reading: decode and discard up to the offset.
                std::io::copy(&mut (&mut r).take(offset), &mut std::io::sink())
                    .map_err(read_err)?;
            }
        }
        let mut out = Vec::new();
        r.take(len).read_to_end(&mut out).map_err(read_err)?;
        Ok(Some(out))
    }

    /// Removes the blob if no put has it pinned and `unreferenced()` (evaluated under the
    /// pin lock) still says nothing links it.
    pub fn delete_if(
        &self,
        id: &BlobId,
        unreferenced: impl FnOnce() -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let pins = self.pins.lock();
        if pins.contains_key(id) || !unreferenced()? {
            return Ok(false);
        }
        // Both forms: a store whose compression setting changed may hold either.
        let mut removed = false;
        for p in [self.zst_path(id), self.path(id)] {
            match fs::remove_file(p) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(removed)
    }

    /// Every blob file, for verification and sweeping. Files that are not blobs are skipped.
    pub fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut out = Vec::new();
        for d in fs::read_dir(&self.root).map_err(io)? {
            let d = d.map_err(io)?;
            let dname = d.file_name().to_string_lossy().to_string();
            if dname.len() != 2 || !d.file_type().map_err(io)?.is_dir() {
                continue;
            }
            for f in fs::read_dir(d.path()).map_err(io)? {
                let f = f.map_err(io)?;
                let fname = f.file_name().to_string_lossy().to_string();
                let name = format!("{dname}{}", fname.strip_suffix(".zst").unwrap_or(&fname));
                let Some(id) = BlobId::from_hex(&name) else {
                    continue;
                };
                let md = f.metadata().map_err(io)?;
                out.push(Listed {
                    id,
                    len: md.len(),
                    modified: md.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        out.sort_by_key(|l| l.id);
        Ok(out)
    }

    /// Removes blobs no reference names (per `referenced`) whose files are older than
    /// `grace`; returns how many were removed.
    pub fn sweep(
        &self,
        grace: Duration,
        referenced: impl Fn(&BlobId) -> Result<bool, StoreError>,
    ) -> Result<usize, StoreError> {
        let now = SystemTime::now();
        let mut removed = 0;
        for l in self.list()? {
            let old = now.duration_since(l.modified).unwrap_or_default() >= grace;
            if old && self.delete_if(&l.id, || Ok(!referenced(&l.id)?))? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes the blob files take (their lengths).
    pub fn bytes(&self) -> Result<u64, StoreError> {
        Ok(self.list()?.iter().map(|l| l.len).sum())
    }
}

/// A blob's raw bytes as a stream: the file itself, or its decompression.
pub enum BlobReader {
    Plain(File),
    Packed(Box<dyn Read + Send>),
    /// A body read from the database whole (PostgreSQL keeps bodies as `bytea`).
    Memory(std::io::Cursor<Vec<u8>>),
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            BlobReader::Plain(f) => f.read(buf),
            BlobReader::Packed(r) => r.read(buf),
            BlobReader::Memory(r) => r.read(buf),
        }
    }
}

/// A read that fails inside a compressed stream means the file is damaged, not the disk.
fn read_err(e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::Other => {
            StoreError::Corrupt(format!("blob: {e}"))
        }
        _ => io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Arc<BlobStore>) {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(BlobStore::open(&d.path().join("blobs"), Some(64)).unwrap());
        (d, s)
    }

    #[test]
    fn put_get_range_list_delete() {
        let (_d, s) = open();
        let pin = s.put(b"hello world").unwrap();
        let id = pin.id();
        assert_eq!(id, BlobId::of(b"hello world"));
        // Same content, same blob.
        assert_eq!(s.put(b"hello world").unwrap().id(), id);
        assert_eq!(s.get(&id).unwrap().unwrap(), b"hello world");
        assert_eq!(s.range(&id, 6, 100).unwrap().unwrap(), b"world");
        let mut r = String::new();
        s.reader(&id)
            .unwrap()
            .unwrap()
            .read_to_string(&mut r)
            .unwrap();
        assert_eq!(r, "hello world");
        let listed = s.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        // Pinned: not deleted even though "unreferenced".
        assert!(!s.delete_if(&id, || Ok(true)).unwrap());
        drop(pin);
        assert!(!s.delete_if(&id, || Ok(false)).unwrap());
        assert!(s.delete_if(&id, || Ok(true)).unwrap());
        assert_eq!(s.get(&id).unwrap(), None);
        let mut out = Vec::new();
        assert_eq!(s.read_into(&id, &mut out, 11).unwrap(), None);
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn large_bodies_are_compressed_and_read_back_whole_by_range_and_stream() {
        let (d, s) = open();
        let body = "Subject: hi\r\n\r\nthe same line again and again\r\n".repeat(200);
        let id = s.put(body.as_bytes()).unwrap().id();
        let listed = s.list().unwrap();
        assert_eq!(listed[0].id, id);
        assert!(
            listed[0].len < body.len() as u64 / 4,
            "stored {}",
            listed[0].len
        );
        assert!(s.zst_path(&id).exists() && !s.path(&id).exists());
        assert_eq!(s.get(&id).unwrap().unwrap(), body.as_bytes());
        assert_eq!(
            s.range(&id, 1000, 30).unwrap().unwrap(),
            &body.as_bytes()[1000..1030]
        );
        assert_eq!(s.range(&id, 1 << 20, 30).unwrap().unwrap(), b"");
        // Small ones stay plain; a store opened with compression off reads both.
        let small = s.put(b"tiny").unwrap().id();
        assert!(s.path(&small).exists());
        // Reads alternate between the forms (each tried first after the other was found).
        for _ in 0..2 {
            assert_eq!(s.get(&small).unwrap().unwrap(), b"tiny");
            assert_eq!(s.get(&id).unwrap().unwrap(), body.as_bytes());
        }
        let plain = BlobStore::open(&d.path().join("blobs"), None).unwrap();
        assert_eq!(plain.get(&id).unwrap().unwrap(), body.as_bytes());
        // Appended to what a buffer holds, whichever the form and whatever size was hinted.
        let mut out = b"head".to_vec();
        assert_eq!(s.read_into(&id, &mut out, 10).unwrap(), Some(body.len()));
        assert_eq!(s.read_into(&small, &mut out, 100).unwrap(), Some(4));
        assert_eq!(out, [&b"head"[..], body.as_bytes(), b"tiny"].concat());
        // A plain file is read up to its recorded size (0: to its end).
        let mut out = Vec::new();
        assert_eq!(s.read_into(&small, &mut out, 4).unwrap(), Some(4));
        assert_eq!(s.read_into(&small, &mut out, 0).unwrap(), Some(4));
        assert_eq!(s.read_into(&small, &mut out, 2).unwrap(), Some(2));
        assert_eq!(out, b"tinytinyti");
        // A damaged compressed file is reported as corrupt, not served as garbage.
        fs::write(s.zst_path(&id), b"\x28\xb5\x2f\xfdgarbage").unwrap();
        assert!(matches!(s.get(&id), Err(StoreError::Corrupt(_))));
        assert!(s.delete_if(&id, || Ok(true)).unwrap());
        assert!(!s.exists(&id).unwrap());
    }

    #[test]
    fn sweep_removes_only_old_unreferenced_files_and_temp_files_go_at_open() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("blobs");
        let s = Arc::new(BlobStore::open(&root, None).unwrap());
        let keep = s.put(b"keep").unwrap().id();
        let orphan = s.put(b"orphan").unwrap().id();
        fs::write(root.join("tmp").join("half-written"), b"x").unwrap();
        assert_eq!(
            s.sweep(Duration::from_secs(3600), |_| Ok(false)).unwrap(),
            0
        );
        assert_eq!(s.sweep(Duration::ZERO, |id| Ok(*id == keep)).unwrap(), 1);
        assert!(s.get(&keep).unwrap().is_some());
        assert!(s.get(&orphan).unwrap().is_none());
        drop(s);
        let _s = BlobStore::open(&root, None).unwrap();
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    }
}
