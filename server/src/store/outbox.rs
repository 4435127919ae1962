//! The event outbox (DESIGN §14): a service writes an event in the SAME transaction as the
//! change it describes ([`Tx::emit`]), so an event is never lost and never emitted for a
//! change that did not commit. Dispatchers (webhooks, live streams) read it in order.
//!
//! Events are keyed by a sequence number allocated inside the writing transaction (a counter
//! in [`Tree::Meta`]): transactions that emit are serialised on it, so sequence order is
//! commit order and a reader that has seen event `n` has seen every event before it. The
//! write primitive lives here, beside the transaction, so every service can emit without
//! importing the dispatchers (`events/`), which import those services.

use super::{codec, keys, Store, StoreError, Tree, Tx, TxStoreError};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// The trees a transaction that emits must declare, besides its own.
pub const EVENT_TREES: [Tree; 2] = [Tree::Events, Tree::Meta];

/// `Meta` key of the last sequence number handed out.
const SEQ_KEY: &[u8] = b"events_seq";

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
        let last = self
            .get(Tree::Meta, SEQ_KEY)?
            .as_deref()
            .and_then(keys::read_u64)
            .unwrap_or(0);
        let seq = last + 1;
        self.put(Tree::Meta, SEQ_KEY, &keys::u64_key(seq))?;
        self.put_record(Tree::Events, &keys::u64_key(seq), ev)?;
        Ok(seq)
    }
}

impl Store {
    /// An event for a change that has no transaction of its own (an SMTP refusal): the
    /// insert is its transaction, shared with concurrent callers (`emit_batch`). Not durable
    /// until [`Store::commit`].
    pub fn emit(&self, ev: &EventRecord) -> Result<u64, StoreError> {
        self.emit_batched(ev)
    }

    /// Up to `limit` events after sequence `after`, in order.
    pub fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, EventRecord)>, StoreError> {
        self.range(
            Tree::Events,
            Bound::Excluded(keys::u64_key(after).to_vec()),
            Bound::Unbounded,
            false,
        )
        .take(limit)
        .map(|r| {
            let (k, v) = r?;
            let seq = keys::read_u64(&k).ok_or_else(|| StoreError::Corrupt("event key".into()))?;
            Ok((seq, codec::decode(&v)?))
        })
        .collect()
    }

    /// The newest event's sequence (0 when there is none).
    pub fn last_event_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .last(Tree::Events)?
            .and_then(|(k, _)| keys::read_u64(&k))
            .unwrap_or(0))
    }

    /// Deletes events created before `before_ms` (oldest first; they are in time order up to
    /// clock steps), at most `max` of them. Returns how many went.
    pub fn prune_events(&self, before_ms: i64, max: usize) -> Result<usize, StoreError> {
        let mut old = Vec::new();
        for r in self.scan_prefix(Tree::Events, &[]).take(max) {
            let (k, v) = r?;
            let ev: EventRecord = codec::decode(&v)?;
            if ev.created_at_ms >= before_ms {
                break;
            }
            old.push(k);
        }
        for k in &old {
            self.remove(Tree::Events, k)?;
        }
        Ok(old.len())
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
        assert_eq!(s.emit(&ev).unwrap(), 1);
        assert!(rx.has_changed().unwrap());
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
}
