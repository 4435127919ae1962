//! Signals between the nodes sharing a store: one short line, sent after the writes it
//! announces are committed, received by every other node (on PostgreSQL through
//! LISTEN/NOTIFY, [`pg`](super::pg)). What a node keeps in memory or sleeps on (long-polls,
//! IMAP IDLE, DKIM signers) learns this way that another node changed it. sled has one
//! process and nothing to tell: sending is a no-op and nothing is ever received.
//!
//! A signal is a wake-up, never the data: receivers read what changed from the store, so a
//! lost one costs latency only. After the listener reconnects (signals may have been
//! missed) it delivers [`RESYNC`] so receivers look again at everything they hold.

use super::{Engine, Store};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Longest line [`Store::signal`] sends.
pub const MAX_SIGNAL: usize = 512;

/// Received after signals may have been lost (the database listener reconnected).
pub const RESYNC: &str = "*";

/// Received lines a slow receiver may fall behind by (it then sees `Lagged`: resync).
pub(super) const DEPTH: usize = 4096;

impl Store {
    /// Tells every other node sharing this store `line` (no newline, at most
    /// [`MAX_SIGNAL`] bytes). Call it after the change is committed; it never blocks on the
    /// database.
    pub fn signal(&self, line: &str) {
        if let Engine::Pg(e) = &self.inner.engine {
            e.signal(line);
        }
    }

    /// Lines other nodes signalled (never this node's own), and [`RESYNC`].
    pub fn signals(&self) -> broadcast::Receiver<Arc<str>> {
        self.inner.signals.subscribe()
    }
}
