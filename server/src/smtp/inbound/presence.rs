//! What the listener knows about each live session: whether it sits idle, and a way to
//! close it. Shared by `listener` (which picks a session to shed at the connection cap) and
//! `session` (which reports its state and obeys).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// One live connection, as seen by its listener.
#[derive(Debug, Default)]
pub(super) struct Presence {
    /// Milliseconds since the epoch when the session began waiting for a command with no
    /// transaction open; 0 while it is busy (reading a message, in a transaction, working).
    idle_since_ms: AtomicU64,
    /// Cancelled by the listener to shed this session (`421 4.7.0`, then close).
    evict: CancellationToken,
}

fn now_ms() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    ms.max(1)
}

impl Presence {
    /// A connection just accepted: idle until it says something.
    pub fn new_idle() -> Self {
        let p = Self::default();
        p.idle();
        p
    }

    pub fn idle(&self) {
        self.idle_since_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn busy(&self) {
        self.idle_since_ms.store(0, Ordering::Relaxed);
    }

    /// When it went idle, if it is idle and not already being shed.
    pub fn idle_since(&self) -> Option<u64> {
        match self.idle_since_ms.load(Ordering::Relaxed) {
            0 => None,
            _ if self.evict.is_cancelled() => None,
            t => Some(t),
        }
    }

    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
    }

    pub fn evict(&self) {
        self.evict.cancel();
    }

    pub async fn evicted(&self) {
        self.evict.cancelled().await
    }
}
