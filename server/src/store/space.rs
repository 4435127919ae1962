//! The disk reserve (`storage.min_free_mb`, like postfix's `queue_minfree`).
//!
//! A full disk is the one storage failure an operator can see coming. sled and the blob
//! store behave worst at the very end of a filesystem (a write that fails half way, a log
//! segment that cannot grow), so new mail is refused while the free space of the
//! filesystem holding the data directory is below a reserve: SMTP answers `452 4.3.1` (the
//! sender keeps the message and retries), the send API `507 insufficient_storage`. The
//! reserve is what the rest needs to finish: mail already accepted (queued local
//! deliveries, DSNs, status updates, deletes, the audit log) keeps being written into it,
//! so nothing accepted is lost and the store stays readable. Refusal stops by itself as
//! soon as space returns: every check reads the filesystem again once the last reading is
//! older than [`MAX_AGE`].
//!
//! Reading the free space is one `statvfs` call; caching it keeps the hot path to two
//! atomic loads, and only one caller at a time pays for a new reading.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How old a reading may be before a check reads the filesystem again. A second is far
/// shorter than it takes to write a reserve's worth of mail, and far longer than a call.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// `free` before the first reading, or after a failed one.
const UNKNOWN: u64 = u64::MAX;
/// `read_at` meaning "read again at the next check" (start, a changed reserve).
const STALE: u64 = u64::MAX;

/// Reads the bytes available to this (unprivileged) process on the filesystem of a path.
type Probe = Box<dyn Fn(&Path) -> io::Result<u64> + Send + Sync>;

/// The free-space guard of the data directory. One per store, shared by every writer.
pub struct SpaceGuard {
    /// The data directory (`storage.path`): sled's `db/` and `blobs/` live under it.
    path: PathBuf,
    /// Bytes that must stay free; 0 turns the guard off.
    reserve: AtomicU64,
    /// The latest reading, in bytes ([`UNKNOWN`] when none succeeded).
    free: AtomicU64,
    /// When `free` was read, in milliseconds since `epoch` ([`STALE`]: read at next check).
    read_at: AtomicU64,
    /// Monotonic origin of `read_at` (wall-clock jumps must not freeze or force readings).
    epoch: Instant,
    /// Whether the latest reading was below the reserve: state changes are logged once.
    low: AtomicBool,
    probe: Probe,
}

/// What the guard saw: for `/readyz`, the metrics and refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceStatus {
    /// Bytes free on the data filesystem; `None` when it cannot be read.
    pub free_bytes: Option<u64>,
    /// The configured reserve in bytes (0 = off).
    pub reserve_bytes: u64,
    /// False when new mail of the asked size is refused.
    pub accepting: bool,
}

impl std::fmt::Debug for SpaceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpaceGuard")
            .field("path", &self.path)
            .field("reserve", &self.reserve.load(Ordering::Relaxed))
            .field("free", &self.free.load(Ordering::Relaxed))
            .finish()
    }
}

impl SpaceGuard {
    /// A guard for the filesystem holding `path`, keeping `reserve_bytes` free (0 = off).
    pub fn new(path: &Path, reserve_bytes: u64) -> Self {
        Self::with_probe(path, reserve_bytes, Box::new(|p| fs2::available_space(p)))
    }

    fn with_probe(path: &Path, reserve_bytes: u64, probe: Probe) -> Self {
        let g = SpaceGuard {
            path: path.to_path_buf(),
            reserve: AtomicU64::new(reserve_bytes),
            free: AtomicU64::new(UNKNOWN),
            read_at: AtomicU64::new(STALE),
            epoch: Instant::now(),
            low: AtomicBool::new(false),
            probe,
        };
        g.refresh();
        g
    }

    pub fn reserve_bytes(&self) -> u64 {
        self.reserve.load(Ordering::Relaxed)
    }

    /// Changes the reserve at run time (tests simulate a full disk with it; a config reload
    /// could use it). Takes effect at the next check, which reads the filesystem again.
    pub fn set_reserve_bytes(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
        self.read_at.store(STALE, Ordering::Release);
    }

    /// The current state, reading the filesystem when the last reading is stale.
    pub fn status(&self) -> SpaceStatus {
        self.check(0)
    }

    /// May `incoming` more bytes of new mail be accepted? Yes when the guard is off, when
    /// the free space cannot be read (the write itself will then say what is wrong; a
    /// guard that fails closed would stop all mail over a monitoring problem), or when
    /// `incoming` still leaves the reserve free.
    pub fn check(&self, incoming: u64) -> SpaceStatus {
        let reserve = self.reserve_bytes();
        self.refresh_if_stale();
        let free = self.free.load(Ordering::Acquire);
        let free_bytes = (free != UNKNOWN).then_some(free);
        let accepting = match free_bytes {
            _ if reserve == 0 => true,
            None => true,
            Some(f) => f >= reserve.saturating_add(incoming),
        };
        SpaceStatus {
            free_bytes,
            reserve_bytes: reserve,
            accepting,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(STALE - 1)
    }

    /// Reads again when the last reading is older than [`MAX_AGE`]. Of callers arriving
    /// together, one reads; the others use the previous reading.
    fn refresh_if_stale(&self) {
        let at = self.read_at.load(Ordering::Acquire);
        let now = self.now_ms();
        let max_age = MAX_AGE.as_millis() as u64;
        if at != STALE && now.saturating_sub(at) < max_age {
            return;
        }
        if self
            .read_at
            .compare_exchange(at, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.read();
        }
    }

    /// Reads now, whatever the age of the last reading.
    fn refresh(&self) {
        self.read_at.store(self.now_ms(), Ordering::Release);
        self.read();
    }

    fn read(&self) {
        let free = match (self.probe)(&self.path) {
            Ok(b) => b.min(UNKNOWN - 1),
            Err(e) => {
                if self.free.load(Ordering::Relaxed) != UNKNOWN {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot read the free disk space; the storage.min_free_mb reserve is not enforced");
                }
                UNKNOWN
            }
        };
        self.free.store(free, Ordering::Release);
        let reserve = self.reserve_bytes();
        let low = reserve > 0 && free != UNKNOWN && free < reserve;
        if self.low.swap(low, Ordering::AcqRel) != low {
            if low {
                tracing::warn!(free_bytes = free, reserve_bytes = reserve, path = %self.path.display(), "disk space below storage.min_free_mb: refusing new mail until space is freed");
            } else {
                tracing::info!(
                    free_bytes = free,
                    reserve_bytes = reserve,
                    "disk space above storage.min_free_mb again: accepting new mail"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A guard over a fake filesystem whose free space the test sets, counting readings.
    fn fake(reserve: u64, free: u64) -> (SpaceGuard, Arc<AtomicU64>, Arc<AtomicU64>) {
        let space = Arc::new(AtomicU64::new(free));
        let reads = Arc::new(AtomicU64::new(0));
        let (s, r) = (space.clone(), reads.clone());
        let probe: Probe = Box::new(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            match s.load(Ordering::SeqCst) {
                UNKNOWN => Err(io::Error::other("statvfs failed")),
                v => Ok(v),
            }
        });
        (
            SpaceGuard::with_probe(Path::new("/data"), reserve, probe),
            space,
            reads,
        )
    }

    #[test]
    fn refuses_below_the_reserve_and_counts_the_incoming_size() {
        let (g, _, _) = fake(100, 150);
        assert!(g.status().accepting);
        assert!(g.check(50).accepting);
        let st = g.check(51);
        assert!(!st.accepting);
        assert_eq!(st.free_bytes, Some(150));
        assert_eq!(st.reserve_bytes, 100);
        let (g, _, _) = fake(200, 150);
        assert!(!g.status().accepting);
    }

    #[test]
    fn zero_turns_it_off() {
        let (g, _, _) = fake(0, 0);
        assert!(g.check(u64::MAX).accepting);
        assert_eq!(g.status().free_bytes, Some(0));
    }

    #[test]
    fn readings_are_cached_then_renewed_so_returning_space_resumes() {
        let (g, space, reads) = fake(100, 50);
        assert_eq!(reads.load(Ordering::SeqCst), 1, "read once at start");
        assert!(!g.status().accepting);
        // Space is freed: within MAX_AGE the cached reading still answers, without a read.
        space.store(500, Ordering::SeqCst);
        for _ in 0..1000 {
            g.status();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the hot path is cached");
        std::thread::sleep(MAX_AGE + Duration::from_millis(50));
        assert!(g.status().accepting, "resumes by itself");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_new_reserve_applies_at_once() {
        let (g, _, reads) = fake(0, 1000);
        assert!(g.status().accepting);
        g.set_reserve_bytes(u64::MAX);
        assert!(!g.status().accepting);
        assert_eq!(g.reserve_bytes(), u64::MAX);
        g.set_reserve_bytes(0);
        assert!(g.status().accepting);
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_unreadable_filesystem_fails_open() {
        let (g, _, _) = fake(100, UNKNOWN);
        let st = g.status();
        assert_eq!(st.free_bytes, None);
        assert!(st.accepting);
    }

    #[test]
    fn reads_the_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let g = SpaceGuard::new(dir.path(), 1);
        let st = g.status();
        assert!(st.free_bytes.is_some_and(|f| f > 0), "{st:?}");
        g.set_reserve_bytes(u64::MAX / 2);
        assert!(!g.status().accepting);
    }
}
