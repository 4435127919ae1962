//! The audit writer: request threads only compute an entry's place in the chain and queue it;
//! one thread stores each queued batch as a single page record.
//!
//! A store insert costs several microseconds no matter how small the value, and an audit
//! entry is written for every agent request; one insert per batch makes the log's cost per
//! request nearly independent of load. The chain itself is computed at append time, under
//! one short lock, so the order of entries never depends on the writer.
//!
//! Several nodes may share one store (the PostgreSQL backend): each page is then written in
//! a store transaction that reads the stored head (`Meta/audit_head`) and, when another node
//! appended since this one computed its chain, renumbers and rehashes the batch onto it (and
//! the entries still queued here), so the log stays one valid chain whoever appends. On one
//! node the stored head is always this node's own and nothing is recomputed.

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
    /// Entries ever appended in this process: what durability waits count in, since a
    /// chain sequence number may still change when another node appended first.
    pub appended: u64,
    pub stop: bool,
    /// The writer is parked on the condvar: only then does an append need to wake it (a
    /// futex wake per request costs more than the write itself).
    pub writer_waiting: bool,
}

pub(super) struct Shared {
    pub state: Mutex<State>,
    pub wake: Condvar,
    /// How many of this process's appended entries are stored (not necessarily flushed).
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
        let (batch, ordinal) = {
            let mut st = shared.lock();
            (std::mem::take(&mut st.pending), st.appended)
        };
        let mut page = Page { entries: batch };
        let mut tries = 0;
        while let Err(e) = write(&shared, &store, &mut page) {
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
        let last = page.entries.last().map_or(0, |e| e.seq);
        let last_hash = page
            .entries
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_default();
        shared.written.send_replace(ordinal);
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

/// `Meta` key of the stored chain head: `seq` (u64 BE), the key of its page, its hash.
const HEAD_KEY: &[u8] = b"audit_head";

fn read_head(v: &[u8]) -> Option<(u64, [u8; 8], String)> {
    let seq = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let page: [u8; 8] = v.get(8..16)?.try_into().ok()?;
    let hash = std::str::from_utf8(v.get(16..)?).ok()?;
    Some((seq, page, hash.to_string()))
}

/// Stores `page` after the stored head, renumbering it onto that head first if another node
/// appended since this one chained it (then `page` holds what was stored, and the entries
/// still queued are rechained after it).
fn write(shared: &Shared, store: &Store, page: &mut Page) -> Result<(), StoreError> {
    use crate::store::{Tree, TxError};
    let trees = [Tree::Audit, Tree::AuditByAgent, Tree::Meta];
    let written = store
        .transact::<_, StoreError>(&trees, |tx| {
            let mut entries = page.entries.clone();
            let first = entries.first().map(|e| (e.seq, e.prev_hash.clone()));
            let head = match tx.get(Tree::Meta, HEAD_KEY)?.as_deref().and_then(read_head) {
                // A head whose page is gone (pages removed offline) names nothing: the
                // chain goes on from what this node read at open, and verify names the cut.
                Some((seq, pk, hash)) if tx.get(Tree::Audit, &pk)?.is_some() => Some((seq, hash)),
                _ => None,
            };
            let renumbered = match (head, first) {
                (Some((hseq, hhash)), Some((fseq, fprev)))
                    if fseq != hseq + 1 || fprev != hhash =>
                {
                    rechain(&mut entries, hseq + 1, hhash);
                    true
                }
                _ => false,
            };
            let p = Page { entries };
            // Index first: a crash between the two leaves index records pointing at nothing,
            // which readers skip; never an entry missing from its index.
            for (k, seqs) in page::index_records(&p) {
                tx.put_record(Tree::AuditByAgent, &k, &seqs)?;
            }
            tx.put_record(Tree::Audit, &page::key(&p), &p)?;
            if let Some(last) = p.entries.last() {
                let mut head = last.seq.to_be_bytes().to_vec();
                head.extend_from_slice(&page::key(&p));
                head.extend_from_slice(last.hash.as_bytes());
                tx.put(Tree::Meta, HEAD_KEY, &head)?;
            }
            Ok((p.entries, renumbered))
        })
        .map_err(|e| match e {
            TxError::Abort(e) | TxError::Store(e) => e,
        })?;
    let (entries, renumbered) = written;
    if renumbered {
        if let Some(last) = entries.last() {
            let mut st = shared.lock();
            let (next, prev) = (last.seq + 1, last.hash.clone());
            let pending = std::mem::take(&mut st.pending);
            let mut pending = pending;
            rechain(&mut pending, next, prev);
            st.next_seq = next + pending.len() as u64;
            st.prev_hash = pending
                .last()
                .map_or_else(|| last.hash.clone(), |e| e.hash.clone());
            st.pending = pending;
        }
    }
    page.entries = entries;
    Ok(())
}

/// Numbers `entries` from `seq` after `prev_hash`, recomputing each hash.
fn rechain(entries: &mut [Entry], mut seq: u64, mut prev_hash: String) {
    for e in entries {
        e.seq = seq;
        e.prev_hash = prev_hash;
        e.hash = e.compute_hash();
        prev_hash = e.hash.clone();
        seq += 1;
    }
}
