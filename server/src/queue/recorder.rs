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

use super::model::{schedule_key, QueuedMessage, RcptStatus};
use super::{QueueError, QueueSettings, RcptOutcome, TlsLevel};

/// A record/rewrite transaction's trees: the queue's own, and what releasing a hold touches.
/// Here, with the writes they guard, so the worker and the admin commands depend on the
/// recorder and never the other way round.
pub(super) const RECORD_TREES: [Tree; 8] = [
    Tree::Queue,
    Tree::ReputationTally,
    Tree::QueueSchedule,
    holds::RELEASE_TREES[0],
    holds::RELEASE_TREES[1],
    holds::RELEASE_TREES[2],
    crate::store::EVENT_TREES[0],
    crate::store::EVENT_TREES[1],
];
use crate::mailbox::holds;
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

/// The queue record after the results, or `None` when the message is gone (cancelled).
type Recorded = Result<Option<QueuedMessage>, QueueError>;

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
    pub(super) async fn record(
        &self,
        store: &Store,
        settings: &QueueSettings,
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
        match write(store, settings, &batch) {
            Ok(records) => {
                for (job, rec) in batch.into_iter().zip(records) {
                    let _ = job.done.send(Ok(rec));
                }
            }
            // One result's failure must not cost the others their record (they would be
            // delivered again): each is retried in a transaction of its own.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let one = write(store, settings, std::slice::from_ref(&job))
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
    jobs: &[Job],
) -> Result<Vec<Option<QueuedMessage>>, TxError<QueueError>> {
    store.transact(&RECORD_TREES, |tx| {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(apply(tx, settings, job)?);
        }
        Ok::<_, crate::store::TxFail<QueueError>>(out)
    })
}

fn dropped() -> QueueError {
    StoreError::Io("a delivery record was dropped unwritten".into()).into()
}

/// One attempt's results applied to its queue record: recipient states, the schedule entry
/// moved to the next due time, and the blob's hold released once every recipient is final.
fn apply(
    tx: &Tx<'_>,
    settings: &QueueSettings,
    job: &Job,
) -> Result<Option<QueuedMessage>, TxStoreError> {
    let id = job.id.as_str();
    let Some(mut msg) = tx.get_record::<QueuedMessage>(Tree::Queue, id.as_bytes())? else {
        return Ok(None);
    };
    let old_due = msg.next_due_ms();
    let before = crate::reputation::tally::Tally::of(&msg);
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
        let kind = match outcome {
            RcptOutcome::Delivered { .. } => {
                r.status = RcptStatus::Delivered;
                "message.delivered"
            }
            RcptOutcome::Permanent { .. } => {
                r.status = RcptStatus::PermanentFailure;
                "message.bounced"
            }
            RcptOutcome::Temporary { .. } => {
                r.status = RcptStatus::TemporaryFailure;
                r.next_attempt_ms = job.now + settings.retry_after(r.attempts).as_millis() as i64;
                "message.delayed"
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
    Ok(Some(msg))
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
                    let r = rec.record(&store, &settings, &id, 5_000, outcome(ok)).await;
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
            let msg = r.unwrap().unwrap();
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
                let msg = r.unwrap().unwrap();
                assert_eq!(msg.recipients[0].status, RcptStatus::Delivered, "{id}");
            }
        }
        for id in &good {
            assert!(store.get(Tree::BlobHolds, id.as_bytes()).unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn a_cancelled_message_records_nothing() {
        let (_dir, store, settings) = fixture();
        let rec = Recorder::default();
        let r = rec
            .record(&store, &settings, "msg_gone", 5_000, outcome(true))
            .await
            .unwrap();
        assert!(r.is_none());
        assert!(store.is_empty(Tree::Queue));
    }
}
