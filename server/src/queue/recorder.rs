//! Delivery results, recorded in shared transactions.
//!
//! Every store transaction seals sled's log buffer twice and hands each seal to sled's I/O
//! threads (a write and a `sync_file_range`), so one transaction per delivered message was
//! one of the largest costs of sending it. Results that finish at about the same time now
//! share a transaction. Nothing is weakened: each result makes the same writes, atomically
//! (a batch commits or retries whole), and results were never fsynced one by one (a result
//! lost in a crash means a redelivery, never a loss).
//!
//! The first result to arrive leads: it takes everything pending and runs the transaction
//! while later arrivals queue behind it, then hands each its own outcome.
//!
//! The circuit breaker observes each final outcome (delivered, hard-bounced) in the same
//! transaction: its per-agent record used to be read and written in a transaction of its
//! own per recipient, after this one, which made every delivery cost two.

use super::model::{schedule_key, QueuedMessage, RcptStatus};
use super::{QueueError, QueueSettings, RcptOutcome, TlsLevel};

/// A record/rewrite transaction's trees: the queue's own, and what releasing a hold touches.
/// Here, with the writes they guard, so the worker and the admin commands depend on the
/// recorder and never the other way round.
pub(super) const RECORD_TREES: [Tree; 9] = [
    Tree::Queue,
    Tree::ReputationTally,
    Tree::BreakerState,
    Tree::QueueSchedule,
    holds::RELEASE_TREES[0],
    holds::RELEASE_TREES[1],
    holds::RELEASE_TREES[2],
    crate::store::EVENT_TREES[0],
    crate::store::EVENT_TREES[1],
];
use crate::config::BreakerConfig;
use crate::mailbox::holds;
use crate::policy::{is_hard_bounce, BreakerBatch, Observation, Pause};
use crate::store::{Store, StoreError, Tree, Tx, TxError, TxStoreError};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// One attempt's outcomes: (recipient index, outcome, the session it came from).
pub(super) type Results = Vec<(usize, RcptOutcome, Via)>;

/// The session an outcome came from: the host that answered and the TLS level reached.
#[derive(Debug, Clone, Default)]
pub(super) struct Via {
    pub host: Option<String>,
    pub tls: Option<TlsLevel>,
}

/// One attempt as recorded: the queue record after its results, and the pause of the
/// agent's sending they caused (the caller audits it and notifies the owner).
#[derive(Debug)]
pub(super) struct Written {
    pub msg: QueuedMessage,
    pub tripped: Option<Pause>,
}

/// The attempt as recorded, or `None` when the message is gone (cancelled).
type Recorded = Result<Option<Written>, QueueError>;

struct Job {
    id: String,
    now: i64,
    results: Results,
    done: oneshot::Sender<Recorded>,
}

/// A job whose caller is dropped while it waits (only at shutdown, after the drain) may be
/// written by a later batch or not at all: either way the attempt counts as not recorded,
/// and the message is delivered again, as after a crash.
#[derive(Default)]
pub(super) struct Recorder {
    /// Results waiting for a leader. A std mutex: held only to push or take, never across
    /// an await.
    pending: Mutex<Vec<Job>>,
    /// Held by the one task writing a batch; the others queue here, async.
    leader: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// `breaker`: the thresholds outcomes are observed with (`None`: no breaker is kept).
    pub(super) async fn record(
        &self,
        store: &Store,
        settings: &QueueSettings,
        breaker: Option<&BreakerConfig>,
        id: &str,
        now: i64,
        results: Results,
    ) -> Recorded {
        let (done, mut outcome) = oneshot::channel();
        self.lock_pending().push(Job {
            id: id.to_string(),
            now,
            results,
            done,
        });
        let _lead = self.leader.lock().await;
        match outcome.try_recv() {
            Ok(r) => return r,
            Err(oneshot::error::TryRecvError::Closed) => return Err(dropped()),
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        // Let attempts finishing right now join this batch.
        tokio::task::yield_now().await;
        let batch = std::mem::take(&mut *self.lock_pending());
        match write(store, settings, breaker, &batch) {
            Ok(records) => {
                for (job, rec) in batch.into_iter().zip(records) {
                    let _ = job.done.send(Ok(rec));
                }
            }
            // One result's failure must not cost the others their record (they would be
            // delivered again): each is retried in a transaction of its own.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let one = write(store, settings, breaker, std::slice::from_ref(&job))
                        .map(|mut r| r.pop().flatten())
                        .map_err(QueueError::from);
                    let _ = job.done.send(one);
                }
            }
            Err(e) => {
                if let Some(job) = batch.into_iter().next() {
                    let _ = job.done.send(Err(e.into()));
                }
            }
        }
        outcome.await.unwrap_or_else(|_| Err(dropped()))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The jobs' results in one transaction, in order.
fn write(
    store: &Store,
    settings: &QueueSettings,
    breaker: Option<&BreakerConfig>,
    jobs: &[Job],
) -> Result<Vec<Option<Written>>, TxError<QueueError>> {
    store.transact(&RECORD_TREES, |tx| {
        // The batch's last result is as recent as any: the breaker's clock.
        let now = jobs.iter().map(|j| j.now).max().unwrap_or_default();
        let mut observed = breaker.map(|c| BreakerBatch::new(c, now));
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(apply(tx, settings, observed.as_mut(), job)?);
        }
        if let Some(b) = observed {
            b.finish(tx)?;
        }
        Ok::<_, crate::store::TxFail<QueueError>>(out)
    })
}

fn dropped() -> QueueError {
    StoreError::Io("a delivery record was dropped unwritten".into()).into()
}

/// One attempt's results applied to its queue record: recipient states, the schedule entry
/// moved to the next due time, the blob's hold released once every recipient is final, and
/// each final outcome observed by the breaker.
fn apply(
    tx: &Tx<'_>,
    settings: &QueueSettings,
    mut breaker: Option<&mut BreakerBatch<'_>>,
    job: &Job,
) -> Result<Option<Written>, TxStoreError> {
    let id = job.id.as_str();
    let Some(mut msg) = tx.get_record::<QueuedMessage>(Tree::Queue, id.as_bytes())? else {
        return Ok(None);
    };
    let old_due = msg.next_due_ms();
    let before = crate::reputation::tally::Tally::of(&msg);
    // Our own DSNs (null reverse-path) are no agent's sending.
    if msg.mail_from.is_empty() {
        breaker = None;
    }
    let mut tripped = None;
    for (i, outcome, via) in &job.results {
        let Some(r) = msg.recipients.get_mut(*i) else {
            continue;
        };
        if r.status.is_final() {
            continue;
        }
        r.attempts += 1;
        r.last_attempt_ms = Some(job.now);
        r.last_reply = Some(outcome.reply().to_string());
        r.remote_host = via.host.clone();
        r.tls = via.tls;
        let (kind, obs) = match outcome {
            RcptOutcome::Delivered { .. } => {
                r.status = RcptStatus::Delivered;
                ("message.delivered", Some(Observation::Delivered))
            }
            RcptOutcome::Permanent { reply } => {
                r.status = RcptStatus::PermanentFailure;
                let hard = is_hard_bounce(reply).then_some(Observation::HardBounce);
                ("message.bounced", hard)
            }
            RcptOutcome::Temporary { .. } => {
                r.status = RcptStatus::TemporaryFailure;
                r.next_attempt_ms = job.now + settings.retry_after(r.attempts).as_millis() as i64;
                ("message.delayed", None)
            }
        };
        tx.emit(&crate::store::EventRecord::new(
            kind,
            &msg.agent_id,
            serde_json::json!({
                "message_id": id,
                "recipient": r.address,
                "attempts": r.attempts,
                "reply": r.last_reply,
                "remote_host": r.remote_host,
            }),
        ))?;
        if let (Some(b), Some(obs)) = (breaker.as_deref_mut(), obs) {
            let key = format!("{id}/{i}");
            if let Some(p) = b.observe(tx, &msg.agent_id, &key, obs)? {
                tripped = Some(p);
            }
        }
    }
    if let Some(d) = old_due {
        tx.remove(Tree::QueueSchedule, &schedule_key(d, id))?;
    }
    // Entries from before a crash may sit at other times; `attempt` tolerates them.
    match msg.next_due_ms() {
        Some(d) => tx.put(Tree::QueueSchedule, &schedule_key(d, id), &[])?,
        None => holds::release(tx, id)?,
    }
    crate::reputation::tally::record_tallied(tx, &msg, before)?;
    tx.put_record(Tree::Queue, id.as_bytes(), &msg)?;
    Ok(Some(Written { msg, tripped }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn recipient(address: &str) -> super::super::model::Recipient {
        super::super::model::Recipient {
            address: address.into(),
            domain: "b.test".into(),
            local_agent: None,
            status: RcptStatus::Scheduled,
            attempts: 0,
            next_attempt_ms: 1_000,
            last_attempt_ms: None,
            last_reply: None,
            remote_host: None,
            tls: None,
            delay_notified: false,
        }
    }

    fn queue(store: &Store, id: &str) {
        let msg = QueuedMessage {
            id: id.into(),
            agent_id: "ag_a".into(),
            mail_from: "a@a.test".into(),
            chain: vec![],
            created_ms: 1_000,
            size: 10,
            message_id: None,
            subject: String::new(),
            recipients: vec![recipient("x@b.test")],
        };
        store
            .transact::<_, QueueError>(&RECORD_TREES, |tx| {
                tx.put_record(Tree::Queue, id.as_bytes(), &msg)?;
                tx.put(Tree::QueueSchedule, &schedule_key(1_000, id), &[])?;
                holds::hold(tx, id)?;
                Ok(())
            })
            .unwrap();
    }

    fn fixture() -> (tempfile::TempDir, Store, QueueSettings) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let settings = QueueSettings::from_config(&crate::config::Config::default());
        (dir, store, settings)
    }

    /// Records each (id, delivered?) from its own task, all at once; outcomes in input order.
    async fn record_all(
        store: &Store,
        settings: &QueueSettings,
        jobs: Vec<(String, bool)>,
    ) -> Vec<(String, Recorded)> {
        let rec = Arc::new(Recorder::default());
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|(id, ok)| {
                let (rec, store, settings) = (rec.clone(), store.clone(), settings.clone());
                tokio::spawn(async move {
                    let r = rec
                        .record(&store, &settings, None, &id, 5_000, outcome(ok))
                        .await;
                    (id, r)
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    fn outcome(ok: bool) -> Results {
        let o = if ok {
            RcptOutcome::Delivered {
                reply: "250 2.0.0 OK".into(),
            }
        } else {
            RcptOutcome::Temporary {
                reply: "451 4.3.0 later".into(),
            }
        };
        let via = Via {
            host: Some("mx.b.test".into()),
            tls: Some(TlsLevel::Verified),
        };
        vec![(0, o, via)]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_results_are_each_recorded_in_full() {
        let (_dir, store, settings) = fixture();
        let ids: Vec<String> = (0..24).map(|i| format!("msg_{i}")).collect();
        for id in &ids {
            queue(&store, id);
        }
        let jobs = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i % 2 == 0));
        let recorded = record_all(&store, &settings, jobs.collect()).await;
        for (i, (_, r)) in recorded.into_iter().enumerate() {
            let msg = r.unwrap().unwrap().msg;
            let r = &msg.recipients[0];
            assert_eq!(r.attempts, 1);
            assert_eq!(r.remote_host.as_deref(), Some("mx.b.test"));
            assert_eq!(r.tls, Some(TlsLevel::Verified));
            if i % 2 == 0 {
                assert_eq!(r.status, RcptStatus::Delivered);
            } else {
                assert_eq!(r.status, RcptStatus::TemporaryFailure);
                assert!(r.next_attempt_ms > 5_000);
            }
        }
        // Delivered: off the schedule, hold released. Deferred: rescheduled once, still held.
        let schedule: Vec<_> = store
            .scan_prefix(Tree::QueueSchedule, &[])
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(schedule.len(), 12);
        for (i, id) in ids.iter().enumerate() {
            let held = store.get(Tree::BlobHolds, id.as_bytes()).unwrap().is_some();
            assert_eq!(held, i % 2 == 1, "{id}");
            let stored: QueuedMessage = store
                .get_record(Tree::Queue, id.as_bytes())
                .unwrap()
                .unwrap();
            assert_eq!(stored.recipients[0].attempts, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_that_cannot_be_written_costs_no_other_its_record() {
        let (_dir, store, settings) = fixture();
        let good: Vec<String> = (0..8).map(|i| format!("msg_{i}")).collect();
        for id in &good {
            queue(&store, id);
        }
        store
            .put(Tree::Queue, b"msg_bad", b"\xc1 not a record")
            .unwrap();
        let mut jobs: Vec<(String, bool)> = good.iter().map(|id| (id.clone(), true)).collect();
        jobs.push(("msg_bad".into(), true));
        for (id, r) in record_all(&store, &settings, jobs).await {
            if id == "msg_bad" {
                assert!(r.is_err(), "{r:?}");
            } else {
                let msg = r.unwrap().unwrap().msg;
                assert_eq!(msg.recipients[0].status, RcptStatus::Delivered, "{id}");
            }
        }
        for id in &good {
            assert!(store.get(Tree::BlobHolds, id.as_bytes()).unwrap().is_none());
        }
    }

    fn bounce() -> Results {
        let o = RcptOutcome::Permanent {
            reply: "550 5.1.1 No such user".into(),
        };
        vec![(0, o, Via::default())]
    }

    fn breaker_of(store: &Store) -> crate::policy::BreakerState {
        store
            .get_record(Tree::BreakerState, b"ag_a")
            .unwrap()
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_breaker_observes_every_outcome_of_a_batch_in_its_transaction() {
        let (_dir, store, settings) = fixture();
        let ids: Vec<String> = (0..24).map(|i| format!("msg_{i}")).collect();
        for id in &ids {
            queue(&store, id);
        }
        let cfg = BreakerConfig {
            window: 100,
            ..Default::default()
        };
        let rec = Arc::new(Recorder::default());
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (rec, store, settings, cfg, id) = (
                    rec.clone(),
                    store.clone(),
                    settings.clone(),
                    cfg.clone(),
                    id.clone(),
                );
                tokio::spawn(async move {
                    rec.record(&store, &settings, Some(&cfg), &id, 5_000, outcome(true))
                        .await
                })
            })
            .collect();
        for t in tasks {
            let w = t.await.unwrap().unwrap().unwrap();
            assert!(w.tripped.is_none());
        }
        // Concurrent results share transactions: none of the 24 outcomes is lost.
        let st = breaker_of(&store);
        assert_eq!(st.delivered_total, 24);
        assert_eq!(st.recent.len(), 24);
        assert!(st.paused.is_none());
        // A result for a recipient already final (a repeated attempt) is not counted twice.
        let rec = Recorder::default();
        rec.record(&store, &settings, Some(&cfg), "msg_0", 6_000, outcome(true))
            .await
            .unwrap();
        assert_eq!(breaker_of(&store).delivered_total, 24);
    }

    #[tokio::test]
    async fn the_breaker_trips_at_the_threshold_in_the_recorders_transaction() {
        let (_dir, store, settings) = fixture();
        let cfg = BreakerConfig {
            window: 4,
            min_sends: 4,
            max_hard_bounce_percent: 50,
            ..Default::default()
        };
        let rec = Recorder::default();
        let mut trips = Vec::new();
        for (i, ok) in [true, false, true, false, false].into_iter().enumerate() {
            let id = format!("msg_{i}");
            queue(&store, &id);
            let results = if ok { outcome(true) } else { bounce() };
            let w = rec
                .record(
                    &store,
                    &settings,
                    Some(&cfg),
                    &id,
                    5_000 + i as i64,
                    results,
                )
                .await
                .unwrap()
                .unwrap();
            let want = if ok {
                RcptStatus::Delivered
            } else {
                RcptStatus::PermanentFailure
            };
            assert_eq!(w.msg.recipients[0].status, want);
            trips.push(w.tripped.map(|p| (p.rule, p.since_ms)));
        }
        // 1 of 2, 1 of 3: below the minimum of four; 2 of 4 = 50 %: trips, once.
        assert_eq!(
            trips,
            [
                None,
                None,
                None,
                Some(("hard_bounce_rate".into(), 5_003)),
                None
            ]
        );
        let st = breaker_of(&store);
        assert_eq!(
            (st.delivered_total, st.bounced_total, st.trips_total),
            (2, 3, 1)
        );
        assert!(st.paused.is_some());
    }

    #[tokio::test]
    async fn no_breaker_is_kept_for_our_own_dsns_nor_when_unchecked() {
        let (_dir, store, settings) = fixture();
        let cfg = BreakerConfig::default();
        let rec = Recorder::default();
        // `danger_unchecked`: no config, nothing observed.
        queue(&store, "msg_a");
        rec.record(&store, &settings, None, "msg_a", 5_000, bounce())
            .await
            .unwrap();
        assert!(store.is_empty(Tree::BreakerState));
        // A DSN of ours (null reverse-path) is no agent's sending.
        queue(&store, "msg_dsn");
        let mut m: QueuedMessage = store.get_record(Tree::Queue, b"msg_dsn").unwrap().unwrap();
        m.mail_from.clear();
        store.put_record(Tree::Queue, b"msg_dsn", &m).unwrap();
        rec.record(&store, &settings, Some(&cfg), "msg_dsn", 5_000, bounce())
            .await
            .unwrap();
        assert!(store.is_empty(Tree::BreakerState));
        // An unreadable breaker record costs the delivery nothing: it is recorded, the
        // outcome not counted.
        store
            .put(Tree::BreakerState, b"ag_a", b"\xc1 junk")
            .unwrap();
        queue(&store, "msg_b");
        let w = rec
            .record(&store, &settings, Some(&cfg), "msg_b", 5_000, outcome(true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(w.msg.recipients[0].status, RcptStatus::Delivered);
        assert_eq!(
            store.get(Tree::BreakerState, b"ag_a").unwrap().as_deref(),
            Some(&b"\xc1 junk"[..])
        );
    }

    #[tokio::test]
    async fn a_cancelled_message_records_nothing() {
        let (_dir, store, settings) = fixture();
        let rec = Recorder::default();
        let r = rec
            .record(&store, &settings, None, "msg_gone", 5_000, outcome(true))
            .await
            .unwrap();
        assert!(r.is_none());
        assert!(store.is_empty(Tree::Queue));
    }
}
