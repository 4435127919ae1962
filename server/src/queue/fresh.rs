//! Messages just queued, handed to the delivery worker in memory.
//!
//! The queue delivers the Sent copy's own bytes (one stored copy, see `mailbox::holds`).
//! Reading them back for the first attempt, a few milliseconds after they were written,
//! cost an open, a stat and a decompression (zstd making a fresh context) per message. The
//! bytes `enqueue` has just made durable are kept here until that attempt takes them; every
//! later attempt (a retry, or any attempt after a restart) reads the blob as before. This
//! is a cache of what is on disk, never instead of it: a message is put here only after
//! its transaction is durable, and a missing entry only costs the read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes kept at most. The worker takes an entry within milliseconds unless attempts are
/// backed up; past this, new messages are read from disk by their attempt.
const MAX_BYTES: usize = 32 << 20;
/// An entry no attempt took in this time (its message was cancelled before one ran) is
/// dropped when room is needed.
const MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(super) struct Fresh {
    /// A std mutex: held to insert or remove one entry, never across an await.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, (Arc<[u8]>, Instant)>,
    bytes: usize,
}

impl Fresh {
    /// Keeps `raw`, the durable bytes of queued message `id`, for its first attempt.
    pub(super) fn put(&self, id: &str, raw: Arc<[u8]>) {
        let mut g = self.lock();
        if g.bytes + raw.len() > MAX_BYTES {
            let before = g.by_id.len();
            g.by_id.retain(|_, (_, at)| at.elapsed() < MAX_AGE);
            if g.by_id.len() != before {
                g.bytes = g.by_id.values().map(|(r, _)| r.len()).sum();
            }
            if g.bytes + raw.len() > MAX_BYTES {
                return;
            }
        }
        g.bytes += raw.len();
        if let Some((old, _)) = g.by_id.insert(id.to_string(), (raw, Instant::now())) {
            g.bytes -= old.len();
        }
    }

    /// Marks `id`'s bytes durable now (the `handoff` stage is timed from here).
    pub(super) fn stamp(&self, id: &str) {
        if let Some((_, at)) = self.lock().by_id.get_mut(id) {
            *at = Instant::now();
        }
    }

    /// The bytes of `id` and when they were made durable (or put), if still here; the
    /// entry is removed.
    pub(super) fn take(&self, id: &str) -> Option<(Arc<[u8]>, Instant)> {
        let mut g = self.lock();
        let taken = g.by_id.remove(id)?;
        g.bytes -= taken.0.len();
        Some(taken)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_taken_once_and_the_budget_holds() {
        let f = Fresh::default();
        f.put("msg_a", Arc::from(&b"one"[..]));
        let put_at = f.lock().by_id["msg_a"].1;
        f.stamp("msg_a");
        f.stamp("msg_unknown");
        let (raw, at) = f.take("msg_a").unwrap();
        assert_eq!((&*raw, at >= put_at), (&b"one"[..], true));
        assert!(f.take("msg_a").is_none());
        // Past the budget (and with nothing old enough to drop), new entries are skipped.
        let big: Arc<[u8]> = vec![0u8; MAX_BYTES / 2 + 1].into();
        f.put("msg_b", big.clone());
        f.put("msg_c", big);
        assert!(f.take("msg_c").is_none());
        assert!(f.take("msg_b").is_some());
        assert_eq!(f.lock().bytes, 0);
    }
}
