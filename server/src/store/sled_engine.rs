//! The embedded backend: sled 0.34 under `<data>/db`, message bodies as files under
//! `<data>/blobs` ([`super::blob`]). The zero-setup default.

use super::blob::BlobStore;
use super::{Entry, StoreError, StoreOptions, Tree};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

pub(super) struct SledEngine {
    pub(super) db: sled::Db,
    /// Opened trees, indexed by `Tree as usize`.
    trees: Vec<sled::Tree>,
    /// Message bodies (`store::blob`), under `<data>/blobs`.
    pub(super) blobs: Arc<BlobStore>,
}

impl SledEngine {
    pub(super) fn open(dir: &Path, opts: &StoreOptions) -> Result<SledEngine, StoreError> {
        let db = open_db(dir, opts)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        let blobs = Arc::new(BlobStore::open(
            &dir.join("blobs"),
            opts.compress.then_some(opts.compress_min_bytes),
        )?);
        Ok(SledEngine { db, trees, blobs })
    }

    pub(super) fn tree(&self, t: Tree) -> &sled::Tree {
        &self.trees[t as usize]
    }

    pub(super) fn scan<'a>(&'a self, t: Tree, prefix: &[u8]) -> SledScan<'a> {
        SledScan {
            it: self.tree(t).scan_prefix(prefix),
            reverse: false,
            _p: std::marker::PhantomData,
        }
    }

    pub(super) fn range<'a>(
        &'a self,
        t: Tree,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        reverse: bool,
    ) -> SledScan<'a> {
        SledScan {
            it: self.tree(t).range((from, to)),
            reverse,
            _p: std::marker::PhantomData,
        }
    }
}

/// Hands this thread's deferred frees to the shared queue, where the next reader or writer
/// on any thread can free them. Call it after a write.
///
/// Why: sled frees what a write replaced (the old page versions, and each sealed log buffer,
/// which keeps its whole 512 KiB segment buffer alive) through crossbeam's epochs, and a
/// thread collects those frees in a bag of its own that is handed on only once it holds 64.
/// The blocking pool's threads each kept such a bag after a burst of deliveries, and
/// together they held dozens of segment buffers: heaptrack found 21.7 MB of the 74 MB live
/// after 20,000 deliveries in sealed log buffers alone.
pub(super) fn release_deferred() {
    crossbeam_epoch::pin().flush();
}

/// A sled iterator, forwards or backwards, copying out keys and values.
pub(super) struct SledScan<'a> {
    it: sled::Iter,
    reverse: bool,
    _p: std::marker::PhantomData<&'a ()>,
}

impl Iterator for SledScan<'_> {
    type Item = Result<Entry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        let r = if self.reverse {
            self.it.next_back()
        } else {
            self.it.next()
        };
        r.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
    }
}

/// Opens sled under `dir/db`, waiting a little for a lock a process that is still exiting
/// may hold. Page compression is chosen when the database is created: sled refuses to open
/// one with the other setting, so an existing database is reopened with the setting it has.
fn open_db(dir: &Path, opts: &StoreOptions) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut compress = opts.compress;
    let mut flipped = false;
    loop {
        let opened = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes(opts.cache_mb, compress))
            .use_compression(compress)
            .compression_factor(SLED_ZSTD_LEVEL)
            .open();
        match opened {
            Err(sled::Error::Unsupported(m)) if m.contains("compression") && !flipped => {
                tracing::info!(
                    compression = !compress,
                    "the database keeps the page compression it was created with"
                );
                compress = !compress;
                flipped = true;
            }
            Err(e) => match StoreError::from_open(e) {
                StoreError::Locked if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                e => return Err(e),
            },
            Ok(db) => return Ok(db),
        }
    }
}

/// sled's cache capacity for `cache_mb` of memory. sled counts a cached page at its size
/// on disk, which for compressed pages is a fraction of what the page takes in memory. At
/// 100,000 messages a quarter (16 MiB counted for the default 64) held 70-80 MB more than
/// 1 MiB counted once the cache had filled (RSS 168 against 91-98 MB): 4.4-5 MB per MiB
/// counted, node overhead included, so the cap was overshot. A sixth keeps `cache_mb` a cap.
fn cache_bytes(cache_mb: u64, compressed: bool) -> u64 {
    let bytes = cache_mb.saturating_mul(1024 * 1024);
    let counted = if compressed { bytes / 6 } else { bytes };
    counted.max(1024 * 1024)
}

/// sled's zstd level for pages. Its cost is dominated by creating a context per page
/// write, not by the level, and 1 compresses the small records nearly as well as 3.
const SLED_ZSTD_LEVEL: i32 = 1;

#[cfg(test)]
mod tests {
    use super::cache_bytes;

    #[test]
    fn compressed_pages_count_a_sixth_of_the_budget_and_never_nothing() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(cache_bytes(64, true), 64 * MIB / 6);
        assert_eq!(cache_bytes(64, false), 64 * MIB);
        assert_eq!(cache_bytes(1, true), MIB, "a floor of 1 MiB counted");
        assert_eq!(cache_bytes(u64::MAX, true), u64::MAX / 6);
    }
}
