//! Per-agent, per-day counts of recipients by outcome, kept as queue records are written, so
//! a reputation score reads at most a window's worth of days instead of scanning every
//! queued message of every agent (issue 24 §6).
//!
//! Each queue record contributes to the bucket of the UTC day it was queued (`created_ms`).
//! Every transaction that writes a queue record calls [`record_change`] with the record as it
//! was and as it is written: the bucket moves by the difference, in the same transaction,
//! so the counts are exactly what a scan of the queue would count now (checked against that
//! scan in the tests below), survive restarts and hold on several nodes. Records written
//! before this index existed are counted once by [`backfill`] at start.

use crate::queue::{QueuedMessage, RcptStatus};
use crate::store::{Store, StoreError, Tree, Tx, TxStoreError};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

pub const DAY_MS: i64 = 86_400_000;
/// `Tree::Meta` marker: the tally holds every queue record (set by [`backfill`]).
const BACKFILLED: &[u8] = b"reputation_tally_v1";

/// Recipients by outcome (the rules of the reputation score's `delivery` factor).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub delivered: u64,
    /// Deferred now, plus final recipients that needed more than one attempt.
    pub deferred: u64,
    /// Permanent failures at delivery and bounces reported afterwards.
    pub bounced: u64,
    pub complained: u64,
    /// Still waiting for a first attempt.
    pub pending: u64,
}

impl Tally {
    /// What one queue record counts.
    pub fn of(m: &QueuedMessage) -> Tally {
        let mut t = Tally::default();
        for rc in &m.recipients {
            match rc.status {
                RcptStatus::Delivered => t.delivered += 1,
                RcptStatus::PermanentFailure | RcptStatus::Bounced => t.bounced += 1,
                // Delivered, then reported as unwanted: a final outcome of its own.
                RcptStatus::Complained => t.complained += 1,
                RcptStatus::TemporaryFailure => t.deferred += 1,
                RcptStatus::Scheduled => t.pending += 1,
                RcptStatus::Cancelled => {}
            }
            if rc.status.is_final() && rc.attempts > 1 {
                t.deferred += 1;
            }
        }
        t
    }

    pub fn add(&mut self, o: &Tally) {
        self.delivered = self.delivered.saturating_add(o.delivered);
        self.deferred = self.deferred.saturating_add(o.deferred);
        self.bounced = self.bounced.saturating_add(o.bounced);
        self.complained = self.complained.saturating_add(o.complained);
        self.pending = self.pending.saturating_add(o.pending);
    }

    fn sub(&mut self, o: &Tally) {
        self.delivered = self.delivered.saturating_sub(o.delivered);
        self.deferred = self.deferred.saturating_sub(o.deferred);
        self.bounced = self.bounced.saturating_sub(o.bounced);
        self.complained = self.complained.saturating_sub(o.complained);
        self.pending = self.pending.saturating_sub(o.pending);
    }
}

/// The UTC day (days since the epoch) a time falls on.
pub fn day_of(ms: i64) -> u64 {
    ms.max(0).div_euclid(DAY_MS) as u64
}

fn key(agent: &str, day: u64) -> Vec<u8> {
    crate::store::keys::with_u64(&[agent], day)
}

/// The queue record `before` (None: new) is written as `after` (None: removed): the agent's
/// day bucket moves by the difference. Nothing is written when the counts do not change
/// (a retry scheduled, a delay notice noted), so most rewrites cost one comparison.
pub fn record_change(
    tx: &Tx<'_>,
    before: Option<&QueuedMessage>,
    after: Option<&QueuedMessage>,
) -> Result<(), TxStoreError> {
    let old = before.map(|m| (m, Tally::of(m)));
    let new = after.map(|m| (m, Tally::of(m)));
    match (old, new) {
        (Some((a, ta)), Some((b, tb)))
            if a.agent_id == b.agent_id && day_of(a.created_ms) == day_of(b.created_ms) =>
        {
            if ta != tb {
                shift(tx, &b.agent_id, day_of(b.created_ms), &ta, &tb)?;
            }
        }
        (old, new) => {
            if let Some((a, ta)) = old {
                shift(
                    tx,
                    &a.agent_id,
                    day_of(a.created_ms),
                    &ta,
                    &Tally::default(),
                )?;
            }
            if let Some((b, tb)) = new {
                shift(
                    tx,
                    &b.agent_id,
                    day_of(b.created_ms),
                    &Tally::default(),
                    &tb,
                )?;
            }
        }
    }
    Ok(())
}

/// A rewrite of a queue record (same message: same agent and day) whose counts were
/// `before`: the writer takes them before editing, so the record need not be copied.
pub fn record_tallied(
    tx: &Tx<'_>,
    after: &QueuedMessage,
    before: Tally,
) -> Result<(), TxStoreError> {
    shift(
        tx,
        &after.agent_id,
        day_of(after.created_ms),
        &before,
        &Tally::of(after),
    )
}

fn shift(
    tx: &Tx<'_>,
    agent: &str,
    day: u64,
    minus: &Tally,
    plus: &Tally,
) -> Result<(), TxStoreError> {
    if minus == plus {
        return Ok(());
    }
    let k = key(agent, day);
    let mut t: Tally = tx
        .get_record(Tree::ReputationTally, &k)?
        .unwrap_or_default();
    t.sub(minus);
    t.add(plus);
    if t == Tally::default() {
        tx.remove(Tree::ReputationTally, &k)
    } else {
        tx.put_record(Tree::ReputationTally, &k, &t)
    }
}

/// The agent's counts for messages queued on `since_day` or later.
pub fn since(store: &Store, agent: &str, since_day: u64) -> Result<Tally, StoreError> {
    let mut total = Tally::default();
    let to = key(agent, u64::MAX);
    for item in store.range(
        Tree::ReputationTally,
        Bound::Included(key(agent, since_day)),
        Bound::Included(to),
        false,
    ) {
        let (_, v) = item?;
        // A damaged bucket counts nothing rather than failing every score of the agent.
        if let Ok(t) = crate::store::decode::<Tally>(&v) {
            total.add(&t);
        }
    }
    Ok(total)
}

/// Counts every queue record once, the first time a server with this index starts on a
/// store written before it. The buckets are computed by one scan, then written in one
/// transaction that finds the marker absent (so two nodes starting together count once);
/// the server does this before it accepts mail, so no send is counted twice.
pub fn backfill(store: &Store) -> Result<usize, StoreError> {
    if store.get(Tree::Meta, BACKFILLED)?.is_some() {
        return Ok(0);
    }
    let mut buckets: std::collections::BTreeMap<Vec<u8>, Tally> = Default::default();
    let mut n = 0;
    for item in store.range(Tree::Queue, Bound::Unbounded, Bound::Unbounded, false) {
        let (_, v) = item?;
        let Ok(m) = crate::store::decode::<QueuedMessage>(&v) else {
            continue;
        };
        n += 1;
        buckets
            .entry(key(&m.agent_id, day_of(m.created_ms)))
            .or_default()
            .add(&Tally::of(&m));
    }
    let r = store.transact::<_, ()>(&[Tree::Meta, Tree::ReputationTally], |tx| {
        if tx.get(Tree::Meta, BACKFILLED)?.is_some() {
            return Ok(false);
        }
        // A day whose recipients all count for nothing (cancelled) keeps no bucket, as the
        // incremental path removes one that falls to zero.
        for (k, t) in buckets.iter().filter(|(_, t)| **t != Tally::default()) {
            tx.put_record(Tree::ReputationTally, k, t)?;
        }
        tx.put(Tree::Meta, BACKFILLED, b"1")?;
        Ok(true)
    });
    match r {
        Ok(true) => Ok(n),
        Ok(false) => Ok(0),
        Err(crate::store::TxError::Store(e)) => Err(e),
        Err(crate::store::TxError::Abort(())) => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Recipient;

    /// The computation this index replaced: a scan of every queue record.
    fn by_scan(store: &Store, agent: &str, since_ms: i64) -> Tally {
        let mut t = Tally::default();
        for r in store.range(Tree::Queue, Bound::Unbounded, Bound::Unbounded, false) {
            let (_, v) = r.unwrap();
            let m = crate::store::decode::<QueuedMessage>(&v).unwrap();
            if m.agent_id != agent || m.created_ms < since_ms {
                continue;
            }
            t.add(&Tally::of(&m));
        }
        t
    }

    fn msg(id: &str, agent: &str, created_ms: i64, n: usize) -> QueuedMessage {
        QueuedMessage {
            id: id.into(),
            agent_id: agent.into(),
            mail_from: format!("{agent}@a.test"),
            chain: vec![],
            created_ms,
            size: 10,
            message_id: None,
            subject: String::new(),
            recipients: (0..n)
                .map(|i| Recipient::new(format!("r{i}@b.test"), "b.test".into(), None, created_ms))
                .collect(),
        }
    }

    /// Writes `after` over whatever record `id` has, as the queue's writers do.
    fn write(store: &Store, after: &QueuedMessage) {
        store
            .transact::<_, ()>(&[Tree::Queue, Tree::ReputationTally], |tx| {
                let before: Option<QueuedMessage> =
                    tx.get_record(Tree::Queue, after.id.as_bytes())?;
                record_change(tx, before.as_ref(), Some(after))?;
                tx.put_record(Tree::Queue, after.id.as_bytes(), after)?;
                Ok(())
            })
            .unwrap();
    }

    /// A seeded, deterministic history: messages of three agents over 40 days, each
    /// recipient moved through attempts, deferrals, deliveries, bounces, complaints and
    /// cancellations in an interleaved order. At every tenth step and at the end, the index
    /// gives exactly what the old scan gives, for every agent and several windows.
    #[test]
    fn the_index_equals_a_scan_of_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let agents = ["ag_a", "ag_b", "ag_c"];
        let t0 = 20_000 * DAY_MS;
        let mut msgs: Vec<QueuedMessage> = Vec::new();
        let check = |store: &Store| {
            for a in agents {
                for d in [0u64, 5, 20, 39, 41] {
                    let day = day_of(t0) + d;
                    assert_eq!(
                        since(store, a, day).unwrap(),
                        by_scan(store, a, day as i64 * DAY_MS),
                        "agent {a}, since day +{d}"
                    );
                }
            }
        };
        for step in 0..600 {
            if msgs.is_empty() || rnd(3) == 0 {
                let a = agents[rnd(3) as usize];
                let m = msg(
                    &format!("msg_{step}"),
                    a,
                    t0 + rnd(40 * DAY_MS as u64) as i64,
                    1 + rnd(4) as usize,
                );
                write(&store, &m);
                msgs.push(m);
            } else {
                let i = rnd(msgs.len() as u64) as usize;
                let m = &mut msgs[i];
                let j = rnd(m.recipients.len() as u64) as usize;
                let r = &mut m.recipients[j];
                r.attempts += 1;
                r.status = match rnd(7) {
                    0 => RcptStatus::TemporaryFailure,
                    1 | 2 => RcptStatus::Delivered,
                    3 => RcptStatus::PermanentFailure,
                    4 => RcptStatus::Bounced,
                    5 => RcptStatus::Complained,
                    _ => RcptStatus::Cancelled,
                };
                let m = m.clone();
                write(&store, &m);
            }
            if step % 10 == 0 {
                check(&store);
            }
        }
        check(&store);
        // Determinism: a backfill over the same queue rebuilds the same buckets.
        let mut kept: Vec<_> = store
            .range(
                Tree::ReputationTally,
                Bound::Unbounded,
                Bound::Unbounded,
                false,
            )
            .map(|r| r.unwrap())
            .collect();
        for (k, _) in &kept {
            store.remove(Tree::ReputationTally, k).unwrap();
        }
        assert_eq!(backfill(&store).unwrap(), msgs.len());
        let rebuilt: Vec<_> = store
            .range(
                Tree::ReputationTally,
                Bound::Unbounded,
                Bound::Unbounded,
                false,
            )
            .map(|r| r.unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, rebuilt);
        assert_eq!(backfill(&store).unwrap(), 0, "once");
        check(&store);
    }

    #[test]
    fn a_bucket_at_zero_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut m = msg("msg_1", "ag_a", 5 * DAY_MS, 1);
        write(&store, &m);
        assert_eq!(since(&store, "ag_a", 0).unwrap().pending, 1);
        m.recipients[0].status = RcptStatus::Cancelled;
        write(&store, &m);
        assert!(store.is_empty(Tree::ReputationTally));
    }
}
