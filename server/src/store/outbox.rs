//! The event outbox (DESIGN §14): a service writes an event in the SAME transaction as the
//! change it describes ([`Tx::emit`]), so an event is never lost and never emitted for a
//! change that did not commit. Dispatchers (webhooks, live streams) read it in order.
//!
//! Events are numbered by a sequence allocated inside the writing transaction (a counter in
//! [`Tree::Meta`]): transactions that emit are serialised on it, so sequence order is commit
//! order and a reader that has seen event `n` has seen every event before it. They are stored
//! in pages, one store record per writing transaction keyed by its first sequence: a store
//! insert costs the same for one small event as for a hundred, and events that have no
//! transaction of their own (a TOTP code per request) are written in batches
//! (`emit_batch`). A record written before pages existed is a single event. The
//! write primitive lives here, beside the transaction, so every service can emit without
//! importing the dispatchers (`events/`), which import those services.

use super::{codec, keys, Store, StoreError, Tree, Tx, TxStoreError};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// The trees a transaction that emits must declare, besides its own.
pub const EVENT_TREES: [Tree; 2] = [Tree::Events, Tree::Meta];

/// `Meta` key of the last sequence number handed out.
pub(super) const SEQ_KEY: &[u8] = b"events_seq";

/// One event as stored: compact (ids, never bodies or secrets); dispatchers render the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// `message.received`, `agent.revoked`, ...
    pub kind: String,
    pub created_at_ms: i64,
    /// The agent the event is about (empty for none).
    pub agent: String,
    /// The event's own fields as JSON text (the record encoding never round-trips arbitrary
    /// JSON values).
    pub data: String,
}

impl EventRecord {
    pub fn new(kind: &str, agent: &str, data: serde_json::Value) -> EventRecord {
        EventRecord {
            kind: kind.to_string(),
            created_at_ms: crate::util::now_millis(),
            agent: agent.to_string(),
            data: data.to_string(),
        }
    }

    pub fn data_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// The events of one transaction, numbered from the record's key.
#[derive(Serialize)]
struct PageRef<'a> {
    events: &'a [EventRecord],
}

#[derive(Deserialize)]
struct Page {
    events: Vec<EventRecord>,
}

/// The events of an `Events` record, oldest first.
fn decode_page(v: &[u8]) -> Result<Vec<EventRecord>, StoreError> {
    match codec::decode::<Page>(v) {
        Ok(p) => Ok(p.events),
        // A single event, as written before pages.
        Err(_) => Ok(vec![codec::decode::<EventRecord>(v)?]),
    }
}

/// The sequence of the last event in the record `(k, v)`.
fn page_last_seq(k: &[u8], v: &[u8]) -> Option<u64> {
    let first = keys::read_u64(k)?;
    let n = decode_page(v).ok()?.len() as u64;
    Some(first + n.max(1) - 1)
}

/// The public id of event `seq`: fixed width, so ids sort as their sequence numbers do.
pub fn event_id(seq: u64) -> String {
    format!("evt_{seq:016x}")
}

/// The sequence number of an id made by [`event_id`].
pub fn parse_event_id(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("evt_")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

impl Tx<'_> {
    /// Appends `ev` to the outbox; needs [`EVENT_TREES`] declared. Returns its sequence.
    pub fn emit(&self, ev: &EventRecord) -> Result<u64, TxStoreError> {
        self.emit_all(std::slice::from_ref(ev))
    }

    /// Appends `evs` (at least one) as one page. Returns the first one's sequence.
    pub(super) fn emit_all(&self, evs: &[EventRecord]) -> Result<u64, TxStoreError> {
        let last = self
            .get(Tree::Meta, SEQ_KEY)?
            .as_deref()
            .and_then(keys::read_u64)
            .unwrap_or(0);
        let first = last + 1;
        let n = evs.len() as u64;
        self.put(Tree::Meta, SEQ_KEY, &keys::u64_key(last + n))?;
        self.put_record(
            Tree::Events,
            &keys::u64_key(first),
            &PageRef { events: evs },
        )?;
        Ok(first)
    }
}

impl Store {
    /// An event for a change that has no transaction of its own (an SMTP refusal): the
    /// write is queued and batched with others (`emit_batch`); readers of the outbox and
    /// [`Store::commit`] see it. Not durable until [`Store::commit`].
    pub fn emit(&self, ev: &EventRecord) -> Result<(), StoreError> {
        self.emit_queued(ev)
    }

    /// Up to `limit` events after sequence `after`, in order.
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventRecord)>, StoreError> {
        self.drain_emits()?;
        // The page holding `after + 1` starts at or before it.
        let from = match self
            .range(
                Tree::Events,
                Bound::Unbounded,
                Bound::Included(keys::u64_key(after.saturating_add(1)).to_vec()),
                true,
            )
            .next()
        {
            Some(r) => Bound::Included(r?.0),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for r in self.range(Tree::Events, from, Bound::Unbounded, false) {
            let (k, v) = r?;
            let first =
                keys::read_u64(&k).ok_or_else(|| StoreError::Corrupt("event key".into()))?;
            for (i, ev) in decode_page(&v)?.into_iter().enumerate() {
                let seq = first + i as u64;
                if seq > after {
                    out.push((seq, ev));
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The newest event's sequence (0 when there is none).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.drain_emits()?;
        Ok(self
            .last(Tree::Events)?
            .and_then(|(k, v)| page_last_seq(&k, &v))
            .unwrap_or(0))
    }

    /// Deletes events created before `before_ms` (oldest first; they are in time order up to
    /// clock steps), whole pages at a time, at most about `max` of them. Returns how many went.
    pub fn prune_events(&self, before_ms: i64, max: usize) -> Result<usize, StoreError> {
        let mut old = Vec::new();
        let mut n = 0;
        for r in self.scan_prefix(Tree::Events, &[]) {
            if n >= max {
                break;
            }
            let (k, v) = r?;
            let page = decode_page(&v)?;
            if page.iter().any(|ev| ev.created_at_ms >= before_ms) {
                break;
            }
            n += page.len();
            old.push(k);
        }
        for k in &old {
            self.remove(Tree::Events, k)?;
        }
        Ok(n)
    }

    /// A receiver that sees a change after every write to the outbox in this process (the
    /// dispatchers' wake-up; they read what changed from the outbox itself).
    pub fn watch_events(&self) -> tokio::sync::watch::Receiver<()> {
        self.inner.events_rung.subscribe()
    }

    pub(super) fn ring_events(&self) {
        self.inner.events_rung.send_replace(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TxFail;

    #[tokio::test]
    async fn events_are_sequenced_read_in_order_rung_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut rx = s.watch_events();
        let mut ev = EventRecord::new("message.received", "ag_a", serde_json::json!({"m": 1}));
        ev.created_at_ms = 1_000;
        s.emit(&ev).unwrap();
        // Queued: the writer thread rings once it is stored.
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
            .await
            .unwrap()
            .unwrap();
        rx.borrow_and_update();
        ev.created_at_ms = 5_000;
        let seq = s
            .transact::<_, ()>(&[Tree::Events, Tree::Meta, Tree::Humans], |tx| {
                tx.put(Tree::Humans, b"h", b"1")?;
                Ok(tx.emit(&ev)?)
            })
            .unwrap();
        assert_eq!(seq, 2);
        assert!(rx.has_changed().unwrap());
        // An aborted transaction emits nothing.
        let r: Result<u64, _> = s.transact(&EVENT_TREES, |tx| {
            tx.emit(&ev)?;
            Err(TxFail::Abort("no"))
        });
        assert!(r.is_err());
        let all = s.events_after(0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(all[0].1.data_json()["m"], 1);
        assert_eq!(s.events_after(1, 10).unwrap().len(), 1);
        assert_eq!(s.last_event_seq().unwrap(), 2);
        // Durable once a flush has covered them.
        assert_eq!(s.durable_event_seq(), 0);
        s.commit().await.unwrap();
        assert_eq!(s.durable_event_seq(), 2);
        assert_eq!(s.prune_events(2_000, 100).unwrap(), 1);
        assert_eq!(s.events_after(0, 10).unwrap()[0].0, 2);
        // Ids sort as sequences do, and parse back.
        assert!(event_id(9) < event_id(10));
        assert_eq!(parse_event_id(&event_id(300)), Some(300));
        assert_eq!(parse_event_id("evt_zz"), None);
    }

    #[test]
    fn pages_are_read_across_their_bounds_and_old_single_records_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let ev = |i: i64| {
            let mut e = EventRecord::new("x", "", serde_json::json!({"i": i}));
            e.created_at_ms = i;
            e
        };
        // An event as stored before pages: one record, sequence 1.
        s.put_record(Tree::Events, &keys::u64_key(1), &ev(1))
            .unwrap();
        s.put(Tree::Meta, SEQ_KEY, &keys::u64_key(1)).unwrap();
        // A page of three (2..=4) and one of two (5..=6).
        for page in [vec![ev(2), ev(3), ev(4)], vec![ev(5), ev(6)]] {
            s.transact::<_, ()>(&EVENT_TREES, |tx| Ok(tx.emit_all(&page)?))
                .unwrap();
        }
        let seqs = |after, limit| {
            s.events_after(after, limit)
                .unwrap()
                .into_iter()
                .map(|(q, e)| (q, e.data_json()["i"].as_i64().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seqs(0, 10),
            (1..=6).map(|i| (i as u64, i)).collect::<Vec<_>>()
        );
        // Starting inside a page, and stopping inside one.
        assert_eq!(seqs(2, 2), vec![(3, 3), (4, 4)]);
        assert_eq!(seqs(4, 10), vec![(5, 5), (6, 6)]);
        assert_eq!(seqs(6, 10), vec![]);
        assert_eq!(s.last_event_seq().unwrap(), 6);
        // Whole pages go, and only once all their events are old.
        assert_eq!(s.prune_events(4, 100).unwrap(), 1);
        assert_eq!(s.prune_events(5, 100).unwrap(), 3);
        assert_eq!(seqs(0, 10), vec![(5, 5), (6, 6)]);
    }
}
