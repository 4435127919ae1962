//! The delivery worker: finds due messages, runs one attempt per message (recipients grouped
//! by destination domain), records every outcome durably, and writes DSNs.
//!
//! A message's schedule entry is only moved after its attempt is recorded, so a crash in the
//! middle of an attempt leaves it due: it is delivered again after restart (a duplicate is
//! possible, a loss is not).

use super::dsn::{self, DsnKind};
use super::model::{parse_schedule_key, QueuedMessage, RcptStatus, Recipient};
use super::recorder::Via;
use super::service::QueueService;
use super::{DeliveryReport, Envelope, QueueError, RcptOutcome};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::mailbox::{DeliveryMeta, Folder, MailboxError};
use crate::metrics::SendStage;
use crate::store::{keys, Tree};
use crate::util::{now_millis, now_unix};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Due messages started per scan; the rest wait for the next one (which follows at once).
const SCAN_BATCH: usize = 256;

impl QueueService {
    /// Runs until `shutdown`, then waits (bounded) for attempts in flight.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        loop {
            let (started, mut next_due) = self.dispatch(&tasks);
            if let Err(e) = self.expire_approvals(now_millis()) {
                tracing::warn!(error = %e, "could not expire held messages");
            }
            if let Some(d) = self.fire_due_drafts(&tasks) {
                next_due = Some(next_due.map_or(d, |n| n.min(d)));
            }
            let now = now_millis();
            let mut wait = self.settings.scan_interval;
            if let Some(due) = next_due {
                wait = wait.min(Duration::from_millis((due - now).max(0) as u64));
            }
            if started >= SCAN_BATCH {
                wait = Duration::ZERO;
            }
            tokio::select! {
                _ = self.nudge.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("delivery attempts still running at shutdown; they will be retried");
        }
    }

    /// Starts an attempt for every due message not already in flight. Returns how many were
    /// started and the earliest due time still in the future.
    fn dispatch(self: &Arc<Self>, tasks: &TaskTracker) -> (usize, Option<i64>) {
        let now = now_millis();
        let mut started = 0;
        let mut next_due = None;
        let cap = self.settings.max_concurrent.max(1) * 2;
        for item in self.store.scan_prefix(Tree::QueueSchedule, &[]) {
            let Ok((key, _)) = item else { break };
            let Some((due, id)) = parse_schedule_key(&key) else {
                tracing::warn!("unreadable queue schedule key; removing it");
                let _ = self.store.remove(Tree::QueueSchedule, &key);
                continue;
            };
            if due > now {
                next_due = Some(due);
                break;
            }
            if started >= SCAN_BATCH {
                break;
            }
            {
                let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                // Enough attempts are waiting for a slot: stop here, so a deep queue is not
                // walked again on every completion (each one nudges a rescan).
                if inflight.len() >= cap {
                    break;
                }
                if !inflight.insert(id.clone()) {
                    continue;
                }
            }
            started += 1;
            let this = self.clone();
            tasks.spawn(async move {
                let permit = this.all.clone().acquire_owned().await;
                // Nodes sharing the store attempt a message one at a time (`store::lease`).
                let lease = keys::join(&["queue", &id]);
                match this.store.try_lease(&lease, this.settings.lease) {
                    Ok(true) => {
                        if let Err(e) = this.attempt(&id).await {
                            tracing::warn!(id, error = %e, "delivery attempt failed; will retry");
                        }
                        if let Err(e) = this.store.release_lease(&lease) {
                            tracing::warn!(id, error = %e, "cannot release a queue lease; it expires");
                        }
                    }
                    Ok(false) => {
                        // Another node is attempting it: its outcome reschedules it. No
                        // nudge, or the scanner would only find it here again at once.
                        drop(permit);
                        this.inflight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&id);
                        return;
                    }
                    Err(e) => tracing::warn!(id, error = %e, "cannot take a queue lease; will retry"),
                }
                drop(permit);
                this.inflight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                // What was just rescheduled may be due sooner than the scanner's timer.
                this.nudge.notify_one();
            });
        }
        (started, next_due)
    }

    fn domain_slot(&self, domain: &str) -> Arc<Semaphore> {
        let mut m = self.per_domain.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_per_domain.max(1))))
            .clone()
    }

    /// One attempt for every due recipient of message `id`.
    pub(super) async fn attempt(&self, id: &str) -> Result<(), QueueError> {
        let Some(msg) = self
            .store
            .get_record::<QueuedMessage>(Tree::Queue, id.as_bytes())?
        else {
            // A schedule entry whose message is gone (cancelled): drop every entry of it.
            self.fresh.take(id);
            self.drop_schedule(id)?;
            return Ok(());
        };
        let now = now_millis();
        let expired = now - msg.created_ms > self.settings.max_age.as_millis() as i64;
        // The first attempt usually finds the bytes `enqueue` just made durable in memory;
        // any other reads the held blob.
        let raw: Option<Arc<[u8]>> = match self.fresh.take(id) {
            Some((raw, queued_at)) => {
                self.metrics.send_stages.done(SendStage::Handoff, queued_at);
                Some(raw)
            }
            None => self.mailbox.held_raw(id)?.map(Arc::from),
        };
        let mut results: super::recorder::Results = Vec::new();
        match raw.as_deref() {
            _ if expired => {
                for (i, r) in msg.recipients.iter().enumerate() {
                    if !r.status.is_final() {
                        let last = r.last_reply.clone().unwrap_or_default();
                        results.push((
                            i,
                            RcptOutcome::Permanent {
                                reply: format!(
                                    "554 4.4.7 Message expired in queue; last reply: {last}"
                                ),
                            },
                            Via {
                                host: r.remote_host.clone(),
                                tls: r.tls,
                            },
                        ));
                    }
                }
            }
            None => {
                for (i, r) in msg.recipients.iter().enumerate() {
                    if !r.status.is_final() {
                        results.push((
                            i,
                            RcptOutcome::Permanent {
                                reply: "554 5.3.0 Queued message body is missing".into(),
                            },
                            Via::default(),
                        ));
                    }
                }
            }
            Some(raw) => {
                let due: Vec<usize> = (0..msg.recipients.len())
                    .filter(|i| msg.recipients[*i].is_due(now))
                    .collect();
                results = self.deliver_due(&msg, &due, raw).await;
            }
        }
        let recording = Instant::now();
        let recorded = self.record(&msg, results, raw.as_deref()).await;
        self.metrics.send_stages.done(SendStage::Record, recording);
        recorded
    }

    /// Delivers to the due recipients: local ones into their mailboxes, remote ones through
    /// the transport, one envelope per domain.
    async fn deliver_due(
        &self,
        msg: &QueuedMessage,
        due: &[usize],
        raw: &[u8],
    ) -> super::recorder::Results {
        let mut out = Vec::new();
        // One envelope per domain; with VERP, one per recipient (each its own reverse-path).
        let mut remote: BTreeMap<(String, Option<usize>), Vec<usize>> = BTreeMap::new();
        for &i in due {
            let r = &msg.recipients[i];
            match &r.local_agent {
                Some(agent) => {
                    let outcome = self.deliver_local(msg, r, agent, raw).await;
                    // Local delivery never leaves this host: no transport, no TLS level.
                    let via = Via {
                        host: Some(self.settings.hostname.clone()),
                        tls: None,
                    };
                    out.push((i, outcome, via));
                }
                None => {
                    let own = (self.settings.verp && !msg.mail_from.is_empty()).then_some(i);
                    remote.entry((r.domain.clone(), own)).or_default().push(i)
                }
            }
        }
        let attempts = remote.into_iter().map(|((domain, own), idx)| async move {
            let slot = self.domain_slot(&domain);
            let _permit = slot.acquire_owned().await;
            let env = Envelope {
                mail_from: match own {
                    Some(i) => self.reverse_path(msg, i),
                    None => msg.mail_from.clone(),
                },
                rcpts: idx
                    .iter()
                    .map(|i| msg.recipients[*i].address.clone())
                    .collect(),
                domain,
            };
            let delivering = Instant::now();
            let report: DeliveryReport = self.transport.deliver(&env, raw).await;
            self.metrics
                .send_stages
                .done(SendStage::Delivery, delivering);
            idx.into_iter()
                .enumerate()
                .map(|(k, i)| {
                    let o = report
                        .outcomes
                        .get(k)
                        .cloned()
                        .unwrap_or(RcptOutcome::Temporary {
                            reply: "451 4.3.0 No result for this recipient".into(),
                        });
                    let via = Via {
                        host: report.remote_host.clone(),
                        tls: report.tls,
                    };
                    (i, o, via)
                })
                .collect::<Vec<_>>()
        });
        for group in futures::future::join_all(attempts).await {
            out.extend(group);
        }
        out
    }

    async fn deliver_local(
        &self,
        msg: &QueuedMessage,
        r: &Recipient,
        agent: &str,
        raw: &[u8],
    ) -> RcptOutcome {
        let mut copy = crate::util::received_header(
            None,
            &self.settings.hostname,
            "LOCAL",
            &msg.id,
            Some(&r.address),
            &crate::util::rfc2822(now_unix()),
        )
        .into_bytes();
        copy.extend_from_slice(raw);
        let tag = r
            .address
            .split_once('@')
            .and_then(|(l, _)| l.split_once('+'))
            .map(|(_, t)| t.to_ascii_lowercase())
            .filter(|t| !t.is_empty());
        let meta = DeliveryMeta {
            received_at_ms: now_millis(),
            labels: tag.into_iter().collect(),
            auth: Some(json!({"internal": true, "sender": msg.mail_from})),
            envelope_from: msg.mail_from.clone(),
            envelope_to: vec![r.address.clone()],
            flags: vec![],
        };
        // Mail between agents of this server meets the recipient's sender lists too (an org
        // block, an allow list) exactly as mail from outside does.
        let org = match self.identity.agent(agent) {
            Ok(Some(a)) => a.org_id,
            Ok(None) => {
                return RcptOutcome::Permanent {
                    reply: "550 5.1.1 No such local mailbox".into(),
                }
            }
            Err(e) => {
                return RcptOutcome::Temporary {
                    reply: format!("451 4.3.0 Local delivery failed: {e}"),
                }
            }
        };
        match self
            .mailbox
            .deliver_inbound(agent, &org, Folder::Inbox, copy, meta)
            .await
        {
            Ok(_) => RcptOutcome::Delivered {
                reply: "250 2.0.0 Delivered to a local mailbox".into(),
            },
            Err(MailboxError::SenderRefused(why)) => RcptOutcome::Permanent {
                reply: format!("550 5.7.1 {why}"),
            },
            Err(MailboxError::QuotaExceeded { .. }) => RcptOutcome::Permanent {
                reply: "552 5.2.2 Mailbox full".into(),
            },
            Err(e) if e.is_temporary() => RcptOutcome::Temporary {
                reply: format!("451 4.3.0 Local delivery failed: {e}"),
            },
            Err(e) => RcptOutcome::Permanent {
                reply: format!("550 5.1.1 Local delivery refused: {e}"),
            },
        }
    }

    /// Applies outcomes to the stored record (re-read inside the transaction, so an operator's
    /// cancel in between is kept), reschedules, audits, then sends DSNs.
    async fn record(
        &self,
        before: &QueuedMessage,
        results: super::recorder::Results,
        original: Option<&[u8]>,
    ) -> Result<(), QueueError> {
        let recorded = self
            .recorder
            .record(
                &self.store,
                &self.settings,
                self.policy.breaker_config(),
                &before.id,
                now_millis(),
                results.clone(),
            )
            .await?;
        // Cancelled meanwhile: nothing left to report on.
        let Some(super::recorder::Written { msg, tripped }) = recorded else {
            return Ok(());
        };
        for (i, outcome, _) in &results {
            let (result, outcome_kind) = match outcome {
                RcptOutcome::Delivered { .. } => ("delivered", Outcome::Ok),
                RcptOutcome::Temporary { .. } => ("deferred", Outcome::Error),
                RcptOutcome::Permanent { .. } => ("failed", Outcome::Error),
            };
            self.metrics.delivery.with_label_values(&[result]).inc();
            let rcpt = msg
                .recipients
                .get(*i)
                .map(|r| r.address.clone())
                .unwrap_or_default();
            self.audit.append(NewEntry {
                actor: ActorRef::agent(&msg.agent_id),
                chain: msg.chain.clone(),
                action: "mail.delivery".into(),
                target: msg.id.clone(),
                outcome: outcome_kind,
                detail: json!({"recipient": rcpt, "result": result, "reply": outcome.reply()}),
            })?;
        }
        // The breaker observed the outcomes in the recorder's transaction; a trip is told.
        if let Some(p) = &tripped {
            self.tripped(&msg, p).await;
        }
        // No fsync here: a delivery result lost in a crash means the message is delivered
        // again (a duplicate, never a loss), and sled flushes on its own within 500 ms.
        // Skipping it keeps deliveries from queueing behind, and adding to, the flushes that
        // acceptance (which must be durable) waits for.
        self.notify_sender(before, &msg, original).await
    }

    /// DSNs for recipients that just failed for good, and the one-time delay notice.
    async fn notify_sender(
        &self,
        before: &QueuedMessage,
        msg: &QueuedMessage,
        original: Option<&[u8]>,
    ) -> Result<(), QueueError> {
        if msg.mail_from.is_empty() {
            return Ok(());
        }
        let newly_failed: Vec<&Recipient> = msg
            .recipients
            .iter()
            .zip(&before.recipients)
            .filter(|(now, was)| {
                now.status == RcptStatus::PermanentFailure
                    && was.status != RcptStatus::PermanentFailure
            })
            .map(|(now, _)| now)
            .collect();
        let now = now_millis();
        let delay = self.settings.delay_notice.as_millis() as i64;
        let delayed: Vec<&Recipient> = msg
            .recipients
            .iter()
            .filter(|r| {
                r.status == RcptStatus::TemporaryFailure
                    && !r.delay_notified
                    && now - msg.created_ms >= delay
            })
            .collect();
        if newly_failed.is_empty() && delayed.is_empty() {
            return Ok(());
        }
        // Read before the hold was released: the sender may have purged the Sent copy.
        let original = match original {
            Some(raw) => raw.to_vec(),
            None => self
                .mailbox
                .raw_bytes(&msg.agent_id, &msg.id)
                .unwrap_or_default(),
        };
        for (kind, rcpts) in [
            (DsnKind::Failed, &newly_failed),
            (DsnKind::Delayed, &delayed),
        ] {
            if rcpts.is_empty() {
                continue;
            }
            let raw = dsn::build(
                kind,
                msg,
                rcpts,
                &original,
                &self.settings.hostname,
                &msg.mail_from,
                now_unix(),
            );
            let meta = DeliveryMeta {
                received_at_ms: now,
                labels: vec!["dsn".into()],
                auth: Some(json!({"internal": true, "sender": "mailer-daemon"})),
                envelope_from: String::new(),
                envelope_to: vec![msg.mail_from.clone()],
                flags: vec![],
            };
            match self
                .mailbox
                .deliver(&msg.agent_id, Folder::Inbox, raw, meta)
                .await
            {
                Ok(_) => {
                    self.metrics
                        .queue_events
                        .with_label_values(&[match kind {
                            DsnKind::Failed => "dsn_failed",
                            DsnKind::Delayed => "dsn_delayed",
                        }])
                        .inc();
                }
                Err(e) => tracing::warn!(id = %msg.id, error = %e, "could not store a DSN"),
            }
        }
        if !delayed.is_empty() {
            let addrs: Vec<String> = delayed.iter().map(|r| r.address.clone()).collect();
            let id = msg.id.clone();
            self.store.transact::<_, QueueError>(&[Tree::Queue], |tx| {
                if let Some(mut m) = tx.get_record::<QueuedMessage>(Tree::Queue, id.as_bytes())? {
                    for r in m
                        .recipients
                        .iter_mut()
                        .filter(|r| addrs.contains(&r.address))
                    {
                        r.delay_notified = true;
                    }
                    tx.put_record(Tree::Queue, id.as_bytes(), &m)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Removes every schedule entry of `id` (whatever its time).
    pub(super) fn drop_schedule(&self, id: &str) -> Result<(), QueueError> {
        let mut stale = Vec::new();
        for item in self.store.scan_prefix(Tree::QueueSchedule, &[]) {
            let (k, _) = item?;
            if parse_schedule_key(&k).is_some_and(|(_, i)| i == id) {
                stale.push(k);
            }
        }
        for k in stale {
            self.store.remove(Tree::QueueSchedule, &k)?;
        }
        Ok(())
    }
}
