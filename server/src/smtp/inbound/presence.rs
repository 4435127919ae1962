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

/// How long a session inside a mail transaction may sit quiet before it may be shed.
const TXN_GRACE_MS: u64 = 30_000;

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

    /// Waiting for a command inside an open transaction (after MAIL FROM, before DATA):
    /// sheddable only once it has been quiet for [`TXN_GRACE_MS`]. Without this, a client
    /// could hold every slot unsheddable by opening a transaction and then saying nothing.
    pub fn quiet_in_transaction(&self) {
        self.idle_since_ms
            .store(now_ms() + TXN_GRACE_MS, Ordering::Relaxed);
    }

    pub fn busy(&self) {
        self.idle_since_ms.store(0, Ordering::Relaxed);
    }

    /// When it went idle, if it is idle and not already being shed.
    pub fn idle_since(&self) -> Option<u64> {
        match self.idle_since_ms.load(Ordering::Relaxed) {
            0 => None,
            _ if self.evict.is_cancelled() => None,
            t if t > now_ms() => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_transaction_is_sheddable_only_after_the_grace_period() {
        let p = Presence::new_idle();
        assert!(p.idle_since().is_some());
        p.quiet_in_transaction();
        assert!(p.idle_since().is_none(), "within the grace period");
        // what quiet_in_transaction stored, once the grace period has passed
        p.idle_since_ms.store(now_ms() - 1, Ordering::Relaxed);
        assert!(p.idle_since().is_some(), "quiet for longer than the grace");
        p.busy();
        assert!(p.idle_since().is_none());
    }
}
