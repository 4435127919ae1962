//! Events that have no transaction of their own ([`Store::emit`]: a TOTP code, a credential
//! read, an SMTP refusal) are queued and written together.
//!
//! Every event takes the next number from one counter and sled serialises transactions on a
//! global lock, so one transaction per event cut the vault to a tenth of what it served
//! before events existed, and so did a request thread writing the others' batch (measured:
//! 8,000 TOTP codes/s with either, 36,000 without the event). Here a caller only queues its
//! event; one writer thread of the store's own stores the queue after a short linger, a
//! batch per transaction, off the request threads. Such an event is as durable as any
//! uncommitted store write (neither survives a crash before [`Store::commit`]), and everything
//! that makes events durable or reads them drains the queue first ([`Store::drain_emits`]),
//! so a reader never misses one that was queued before it looked.

use super::{outbox::EVENT_TREES, EventRecord, Store, StoreError, TxError};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// The most events one transaction writes: keeps each transaction short under a burst.
const MAX_BATCH: usize = 256;

/// How long the writer lets events gather after the first one wakes it.
const LINGER: Duration = Duration::from_millis(1);

/// How often an idle writer checks that its store still exists.
const IDLE_CHECK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct EmitBatch {
    state: Mutex<State>,
    written: Condvar,
    /// Wakes the writer thread.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<EventRecord>,
    writing: bool,
    /// Events ever queued and ever written (FIFO, so "written >= n" means the first n are).
    queued: u64,
    stored: u64,
    /// The writer thread was started, and is parked on `wake` (only then does a caller
    /// need to wake it: a futex wake per event would cost more than the write).
    started: bool,
    parked: bool,
}

impl EmitBatch {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// Queues `ev` for the outbox; the writer thread stores it within milliseconds.
    pub(super) fn emit_queued(&self, ev: &EventRecord) -> Result<(), StoreError> {
        let b = &self.inner.emit_batch;
        let mut st = b.lock();
        st.queue.push_back(ev.clone());
        st.queued += 1;
        if !st.started {
            st.started = true;
            drop(st);
            if let Err(e) = self.start_emit_writer() {
                // No thread: write it here, as a drain does.
                b.lock().started = false;
                tracing::warn!(error = %e, "cannot start the event writer thread");
                return self.drain_emits();
            }
            return Ok(());
        }
        if st.parked {
            st.parked = false;
            b.wake.notify_one();
        }
        Ok(())
    }

    fn start_emit_writer(&self) -> std::io::Result<()> {
        let weak: Weak<super::Inner> = Arc::downgrade(&self.inner);
        let batch = self.inner.emit_batch.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || emit_writer(&batch, weak))
            .map(|_| ())
    }

    /// Returns once every event queued before the call is in the store (written, not yet
    /// flushed). Blocks while another caller writes a batch.
    pub(super) fn drain_emits(&self) -> Result<(), StoreError> {
        let b = &self.inner.emit_batch;
        let mut st = b.lock();
        let target = st.queued;
        while st.stored < target {
            if st.writing {
                st = b.written.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            self.write_queue(st)?;
            st = b.lock();
        }
        Ok(())
    }

    /// Writes the queue, a batch per transaction, as the one writer: the caller checked
    /// under `st` that nobody else is writing (two writers could commit batches out of
    /// order). A failed batch goes back to the front of the queue, and its error to the
    /// caller.
    fn write_queue<'a>(&'a self, mut st: MutexGuard<'a, State>) -> Result<(), StoreError> {
        let b = &self.inner.emit_batch;
        st.writing = true;
        let mut result = Ok(());
        loop {
            let n = st.queue.len().min(MAX_BATCH);
            if n == 0 {
                break;
            }
            let batch: Vec<EventRecord> = st.queue.drain(..n).collect();
            drop(st);
            let res = self.write_events(&batch);
            st = b.lock();
            match res {
                Ok(()) => st.stored += n as u64,
                Err(e) => {
                    for ev in batch.into_iter().rev() {
                        st.queue.push_front(ev);
                    }
                    result = Err(e);
                    break;
                }
            }
        }
        st.writing = false;
        drop(st);
        b.written.notify_all();
        result
    }

    fn write_events(&self, batch: &[EventRecord]) -> Result<(), StoreError> {
        self.transact_now::<_, ()>(&EVENT_TREES, |tx| {
            tx.emit_all(batch)?;
            Ok(())
        })
        .map_err(|e| match e {
            TxError::Store(e) => e,
            TxError::Abort(()) => StoreError::Corrupt("event write aborted".into()),
        })
    }
}

/// The writer thread: parks until events are queued, lets more gather for [`LINGER`], writes
/// them all, and ends once its store is gone. It holds the store only while writing, never
/// while parked, so it never keeps a closed database open. A failed batch stays queued and
/// is tried again.
fn emit_writer(batch: &EmitBatch, weak: Weak<super::Inner>) {
    while let Some(inner) = weak.upgrade() {
        let store = Store { inner };
        // Checked and written under one guard: a drain cannot start writing in between.
        let st = batch.lock();
        if !st.queue.is_empty() && !st.writing {
            if let Err(e) = store.write_queue(st) {
                tracing::error!(error = %e, "cannot write queued events; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        drop(store);
        let mut st = st;
        st.parked = true;
        let (mut st, _) = batch
            .wake
            .wait_timeout(st, IDLE_CHECK)
            .unwrap_or_else(|p| p.into_inner());
        st.parked = false;
        let woken_for_events = !st.queue.is_empty();
        drop(st);
        if woken_for_events {
            std::thread::sleep(LINGER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_emits_are_all_written_once_in_each_callers_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let ev = EventRecord::new(
                            "vault.accessed",
                            "ag_a",
                            serde_json::json!({"t": t, "i": i}),
                        );
                        s.emit(&ev).unwrap();
                    }
                })
            })
            .collect();
        for h in threads {
            h.join().unwrap();
        }
        // Reading drains whatever a writer left queued.
        let stored = s.events_after(0, 2000).unwrap();
        let seqs: Vec<u64> = stored.iter().map(|e| e.0).collect();
        assert_eq!(seqs, (1..=1600).collect::<Vec<u64>>());
        for t in 0..8 {
            let of_t: Vec<i64> = stored
                .iter()
                .map(|(_, e)| e.data_json())
                .filter(|d| d["t"] == t)
                .map(|d| d["i"].as_i64().unwrap())
                .collect();
            assert_eq!(of_t, (0..200).collect::<Vec<i64>>());
        }
        assert_eq!(s.last_event_seq().unwrap(), 1600);
    }

    #[test]
    fn a_queued_event_is_visible_to_the_next_reader() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        // Queue one while a writer is (pretend) busy: it is not written by its caller...
        s.inner.emit_batch.lock().writing = true;
        s.emit(&EventRecord::new("x", "", serde_json::json!({})))
            .unwrap();
        assert_eq!(s.inner.emit_batch.lock().queue.len(), 1);
        // ...and once the writer is gone, a reader drains it before it looks.
        s.inner.emit_batch.lock().writing = false;
        assert_eq!(s.events_after(0, 10).unwrap().len(), 1);
        assert_eq!(s.inner.emit_batch.lock().stored, 1);
    }
}
