//! Group commit for events that have no transaction of their own ([`Store::emit`]: a TOTP
//! code, a credential read, an SMTP refusal).
//!
//! Every event takes the next number from one counter, so concurrent event-only
//! transactions all conflict on it, and sled's transactions are serialised by a global lock
//! anyway: one transaction per event capped the vault at a fraction of what it served
//! before events existed. Here callers queue their event; whoever finds no writer at work
//! becomes it, writes everything queued in one transaction, hands each caller its sequence
//! (or the error) and steps down once its own event is written, so no caller serves the
//! others for long. Order within a batch is queue order.

use super::{outbox::EVENT_TREES, EventRecord, Store, StoreError, TxError};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The most events one transaction writes: keeps a transaction (and the wait of whoever is
/// last in it) short under a burst.
const MAX_BATCH: usize = 256;

#[derive(Default)]
pub(super) struct EmitBatch {
    state: Mutex<State>,
    written: Condvar,
}

#[derive(Default)]
struct State {
    next_ticket: u64,
    queue: Vec<(u64, EventRecord)>,
    writing: bool,
    /// Outcomes not yet collected by their callers, by ticket.
    done: HashMap<u64, Result<u64, String>>,
}

impl EmitBatch {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// Writes `ev` to the outbox, batched with concurrent callers. Returns its sequence.
    pub(super) fn emit_batched(&self, ev: &EventRecord) -> Result<u64, StoreError> {
        let b = &self.inner.emit_batch;
        let mut st = b.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push((ticket, ev.clone()));
        loop {
            if let Some(r) = st.done.remove(&ticket) {
                return r.map_err(StoreError::Io);
            }
            if st.writing || st.queue.is_empty() {
                st = b.written.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Nobody is writing and events wait (ours among them, or it would be done):
            // write them, then look again.
            st.writing = true;
            let n = st.queue.len().min(MAX_BATCH);
            let batch: Vec<(u64, EventRecord)> = st.queue.drain(..n).collect();
            drop(st);
            let res = self.write_events(&batch);
            st = b.lock();
            st.writing = false;
            match res {
                Ok(seqs) => {
                    for ((t, _), seq) in batch.iter().zip(seqs) {
                        st.done.insert(*t, Ok(seq));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (t, _) in &batch {
                        st.done.insert(*t, Err(msg.clone()));
                    }
                }
            }
            b.written.notify_all();
        }
    }

    fn write_events(&self, batch: &[(u64, EventRecord)]) -> Result<Vec<u64>, StoreError> {
        self.transact::<_, ()>(&EVENT_TREES, |tx| {
            let mut seqs = Vec::with_capacity(batch.len());
            for (_, ev) in batch {
                seqs.push(tx.emit(ev)?);
            }
            Ok(seqs)
        })
        .map_err(|e| match e {
            TxError::Store(e) => e,
            TxError::Abort(()) => StoreError::Corrupt("event write aborted".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_emits_each_get_a_distinct_sequence_and_all_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| {
                            let ev = EventRecord::new(
                                "vault.accessed",
                                "ag_a",
                                serde_json::json!({"t": t, "i": i}),
                            );
                            (s.emit(&ev).unwrap(), t, i)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut got: Vec<(u64, i32, i32)> = threads
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        got.sort_unstable();
        let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(seqs, (1..=1600).collect::<Vec<u64>>());
        let stored = s.events_after(0, 2000).unwrap();
        assert_eq!(stored.len(), 1600);
        // Each caller's sequence names its own event.
        for ((seq, t, i), (stored_seq, ev)) in got.iter().zip(&stored) {
            assert_eq!(seq, stored_seq);
            assert_eq!(ev.data_json()["t"], *t);
            assert_eq!(ev.data_json()["i"], *i);
        }
        // One thread's events keep their order.
        let of_t0: Vec<i64> = stored
            .iter()
            .map(|(_, e)| e.data_json())
            .filter(|d| d["t"] == 0)
            .map(|d| d["i"].as_i64().unwrap())
            .collect();
        assert_eq!(of_t0, (0..200).collect::<Vec<i64>>());
    }
}
