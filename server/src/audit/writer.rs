//! The audit writer: request threads only compute an entry's place in the chain and queue it;
//! one thread stores each queued batch as a single page record.
//!
//! A store insert costs several microseconds no matter how small the value, and an audit
//! entry is written for every agent request; one insert per batch makes the log's cost per
//! request nearly independent of load. The chain itself is computed at append time, under
//! one short lock, so the order of entries never depends on the writer.

use super::anchor::Anchor;
use super::entry::Entry;
use super::page::{self, Page};
use crate::store::{Store, StoreError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The chain's head and the queue, behind one lock (held for microseconds, never across I/O).
pub(super) struct State {
    pub next_seq: u64,
    pub prev_hash: String,
    pub pending: Vec<Entry>,
    pub stop: bool,
    /// The writer is parked on the condvar: only then does an append need to wake it (a
    /// futex wake per request costs more than the write itself).
    pub writer_waiting: bool,
}

pub(super) struct Shared {
    pub state: Mutex<State>,
    pub wake: Condvar,
    /// Highest sequence number stored (not necessarily flushed to disk).
    pub written: watch::Sender<u64>,
    /// Where the signed head checkpoint is written; `None` until the vault can sign, or while
    /// a mismatch found at start-up has not been recorded (see `Audit::set_anchor`).
    pub anchor: Mutex<Option<Arc<Anchor>>>,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long the writer lets entries gather after waking, so a busy server writes pages of
/// many entries; bounded so durability waits (`Audit::commit`) stay short.
const LINGER: Duration = Duration::from_millis(2);

/// Under steady load the checkpoint is refreshed at least this often.
const ANCHOR_EVERY: Duration = Duration::from_secs(1);

/// Otherwise it is refreshed once no entry has come for this long. Refreshing after every
/// batch (as when the log goes quiet for a moment between requests) cost a flush, a file
/// created, fsynced and renamed per batch: about one per five messages sent under load.
const ANCHOR_QUIET: Duration = Duration::from_millis(50);

/// Retries before a failing store makes the writer drop a batch at shutdown.
const SHUTDOWN_RETRIES: u32 = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

pub(super) fn run(shared: Arc<Shared>, store: Store) {
    let mut anchored_at = std::time::Instant::now();
    // The newest entry stored and not yet checkpointed: (seq, hash).
    let mut unanchored: Option<(u64, String)> = None;
    loop {
        let stopping = {
            let mut st = shared.lock();
            while st.pending.is_empty() && !st.stop {
                st.writer_waiting = true;
                if unanchored.is_none() {
                    st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                    st.writer_waiting = false;
                    continue;
                }
                let (g, waited) = shared
                    .wake
                    .wait_timeout(st, ANCHOR_QUIET)
                    .unwrap_or_else(|p| p.into_inner());
                st = g;
                st.writer_waiting = false;
                if waited.timed_out() && st.pending.is_empty() && !st.stop {
                    drop(st);
                    if let Some((seq, hash)) = unanchored.take() {
                        anchor(&shared, &store, seq, &hash);
                        anchored_at = std::time::Instant::now();
                    }
                    st = shared.lock();
                }
            }
            if st.pending.is_empty() {
                drop(st);
                if let Some((seq, hash)) = unanchored.take() {
                    anchor(&shared, &store, seq, &hash);
                }
                return;
            }
            st.stop
        };
        if !stopping {
            std::thread::sleep(LINGER);
        }
        let batch = std::mem::take(&mut shared.lock().pending);
        let last = batch.last().map_or(0, |e| e.seq);
        let last_hash = batch.last().map(|e| e.hash.clone()).unwrap_or_default();
        let page = Page { entries: batch };
        let mut tries = 0;
        while let Err(e) = write(&store, &page) {
            tries += 1;
            tracing::error!(error = %e, entries = page.entries.len(), "cannot store audit entries; retrying");
            if shared.lock().stop && tries >= SHUTDOWN_RETRIES {
                tracing::error!(
                    entries = page.entries.len(),
                    "audit entries lost at shutdown"
                );
                break;
            }
            std::thread::sleep(RETRY_PAUSE);
        }
        shared.written.send_replace(last);
        unanchored = Some((last, last_hash));
        if anchored_at.elapsed() >= ANCHOR_EVERY {
            if let Some((seq, hash)) = unanchored.take() {
                anchor(&shared, &store, seq, &hash);
            }
            anchored_at = std::time::Instant::now();
        }
    }
}

/// Records `seq`/`hash` as the head, after making the log durable up to it: a checkpoint
/// must never be ahead of what a crash would leave in the store, or verify would cry
/// truncation after every power cut.
pub(super) fn anchor(shared: &Shared, store: &Store, seq: u64, hash: &str) {
    let Some(anchor) = shared
        .anchor
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    else {
        return;
    };
    if let Err(e) = store.flush_blocking() {
        tracing::error!(error = %e, "cannot flush the audit log; head checkpoint not updated");
        return;
    }
    if let Err(e) = anchor.write(seq, hash) {
        tracing::error!(error = %e, "cannot write the audit head checkpoint");
    }
}

fn write(store: &Store, page: &Page) -> Result<(), StoreError> {
    // Index first: a crash between the two leaves index records pointing at nothing,
    // which readers skip; never an entry missing from its index.
    for (k, seqs) in page::index_records(page) {
        store.put_record(crate::store::Tree::AuditByAgent, &k, &seqs)?;
    }
    store.put_record(crate::store::Tree::Audit, &page::key(page), page)
}
