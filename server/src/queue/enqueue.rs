//! [`QueueService::enqueue`]: the single way into the queue. The send policy is judged
//! before any signing work and again in the one transaction that stores the Sent copy, the
//! queue record (or the approval a held send waits in), the hold on the bytes and the
//! schedule entry.

use super::model::{schedule_key, QueuedMessage, Recipient};
use super::service::{Accepted, QueueService, SendAudit};
use super::QueueError;
use crate::identity::Agent;
use crate::mailbox::{holds, DeliveryMeta, Folder, MailboxError, StoredMessage, TxHook};
use crate::metrics::SendStage;
use crate::policy::{Rcpt, Refusal};
use crate::store::{Tree, Tx, TxFail};
use crate::util::now_millis;
use mail_parser::HeaderName;
use std::sync::Mutex;
use std::time::Instant;

/// Header fields RFC 5322 §3.6 allows at most once. A message with two of one of them is
/// read differently by different readers (which From, which Subject), so none is sent.
const AT_MOST_ONCE: &[(HeaderName<'static>, &str)] = &[
    (HeaderName::From, "From"),
    (HeaderName::Sender, "Sender"),
    (HeaderName::ReplyTo, "Reply-To"),
    (HeaderName::To, "To"),
    (HeaderName::Cc, "Cc"),
    (HeaderName::Bcc, "Bcc"),
    (HeaderName::Subject, "Subject"),
    (HeaderName::Date, "Date"),
    (HeaderName::MessageId, "Message-ID"),
    (HeaderName::InReplyTo, "In-Reply-To"),
    (HeaderName::References, "References"),
];

/// Exactly one From, naming exactly one mailbox, which is `me`; a Sender, if any, is `me`
/// too; no header RFC 5322 allows once appears twice.
fn check_identity_headers(
    parsed: Option<&mail_parser::Message<'_>>,
    me: &str,
) -> Result<(), QueueError> {
    let Some(m) = parsed else {
        return Err(QueueError::Invalid("the message has no header".into()));
    };
    let headers = m.headers();
    for (name, label) in AT_MOST_ONCE {
        let n = headers.iter().filter(|h| &h.name == name).count();
        if n > 1 {
            return Err(QueueError::Invalid(format!(
                "the message has {n} {label} headers; RFC 5322 allows one"
            )));
        }
    }
    let only = |name: HeaderName<'static>| -> Option<Vec<String>> {
        let h = headers.iter().find(|h| h.name == name)?;
        Some(match &h.value {
            mail_parser::HeaderValue::Address(a) => a
                .iter()
                .map(|a| a.address().unwrap_or_default().to_ascii_lowercase())
                .collect(),
            _ => vec![String::new()],
        })
    };
    let want = format!("the From header must be exactly <{me}>");
    match only(HeaderName::From) {
        Some(list) if list.len() == 1 && list[0] == me => {}
        _ => return Err(QueueError::Invalid(want)),
    }
    if let Some(list) = only(HeaderName::Sender) {
        if list.len() != 1 || list[0] != me {
            return Err(QueueError::Invalid(format!(
                "the Sender header, if given, must be <{me}>"
            )));
        }
    }
    Ok(())
}

/// The recipients as the send policy judges them.
fn policy_rcpts(recipients: &[Recipient]) -> Vec<Rcpt<'_>> {
    recipients
        .iter()
        .map(|r| Rcpt {
            address: &r.address,
            domain: &r.domain,
        })
        .collect()
}

impl QueueService {
    /// DKIM-signs `raw` for the sender's domain (Ed25519 and RSA), stores the Sent copy and
    /// queues it for `rcpts`, and records `audit`, durably. The single way into the queue.
    pub async fn enqueue(
        &self,
        agent: &Agent,
        rcpts: &[String],
        raw: Vec<u8>,
        message_id: Option<String>,
        audit: SendAudit<'_>,
    ) -> Result<Accepted, QueueError> {
        self.enqueue_since(agent, rcpts, raw, message_id, audit, Instant::now())
            .await
    }

    /// [`enqueue`](Self::enqueue) for a message whose composition began at `started` (the
    /// `compose` stage runs from there to signing).
    pub(super) async fn enqueue_since(
        &self,
        agent: &Agent,
        rcpts: &[String],
        raw: Vec<u8>,
        message_id: Option<String>,
        audit: SendAudit<'_>,
        started: Instant,
    ) -> Result<Accepted, QueueError> {
        let now = now_millis();
        let recipients = self.plan_recipients(rcpts, now)?;
        if raw.len() > self.settings.max_message_size {
            return Err(QueueError::TooLarge {
                size: raw.len(),
                limit: self.settings.max_message_size,
            });
        }
        // The send policy, before any signing work; decided again in the transaction.
        let unchecked = self.policy.unchecked;
        let policy = if unchecked {
            self.policy.default_effective()
        } else {
            self.policy.effective(agent)?
        };
        let size = raw.len() as u64;
        let held = if unchecked {
            None
        } else {
            let rcpts = policy_rcpts(&recipients);
            match self
                .policy
                .precheck(agent, &policy, false, &rcpts, size, now)?
            {
                Ok(()) => None,
                Err(Refusal::Hold { rule, detail }) => Some((rule.to_string(), detail)),
                Err(r) => return Err(self.refused(&audit, &agent.id, r).await),
            }
        };
        // New mail: refused while the disk is below its reserve, before any signing work.
        self.mailbox.check_space(raw.len() as u64)?;
        let parsed = mail_parser::MessageParser::default().parse_headers(&raw);
        // The From header is what receivers show and what DMARC aligns with our signature:
        // an agent sends as itself or not at all, and with exactly one From (a second one is
        // what some readers show instead; issue 15, 2).
        check_identity_headers(parsed.as_ref(), &agent.address())?;
        let subject = parsed
            .as_ref()
            .and_then(|m| m.subject())
            .unwrap_or_default()
            .to_string();
        let message_id = message_id.or_else(|| {
            parsed
                .as_ref()
                .and_then(|m| m.message_id())
                .map(str::to_string)
        });
        drop(parsed);
        let raw = self.with_agent_signature(agent, raw)?;
        let (signed, parsed) = self.sign(&agent.domain, raw, started).await?;
        let template = QueuedMessage {
            id: String::new(),
            agent_id: agent.id.clone(),
            mail_from: agent.address(),
            chain: agent.chain.clone(),
            created_ms: now,
            size: signed.len() as u64,
            message_id,
            subject,
            recipients,
        };
        // The queue delivers the Sent copy's own bytes: one stored copy, held until every
        // recipient is final (see `mailbox::holds`). The first attempt takes them from
        // memory (`fresh`): offered here, before the schedule entry that lets the worker
        // find the message is applied, and taken back if the transaction fails.
        let offered: Mutex<Option<String>> = Mutex::new(None);
        let refused: Mutex<Option<Refusal>> = Mutex::new(None);
        let rcpts = policy_rcpts(&template.recipients);
        let write = |tx: &Tx<'_>, rec: &StoredMessage| -> Result<(), TxFail<MailboxError>> {
            if let Some(mid) = template.message_id.as_deref() {
                let key = super::feedback::message_id_key(mid);
                // The first message to use a Message-ID keeps it: a later one (an agent picks
                // its own Message-IDs) must not take over where reports about it are linked.
                if !key.is_empty() && tx.get(Tree::SentMessageIds, key.as_bytes())?.is_none() {
                    tx.put(Tree::SentMessageIds, key.as_bytes(), rec.id.as_bytes())?;
                }
            }
            if let Some((rule, reason)) = &held {
                let mut q = template.clone();
                q.id = rec.id.clone();
                let hold = super::approvals::NewHold {
                    agent,
                    eff: &policy,
                    rcpts: &rcpts,
                    size,
                    now,
                    rule,
                    reason,
                };
                if let Err(r) = self.hold_in(tx, &hold, q)? {
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                    return Err(TxFail::Abort(MailboxError::HookRefused));
                }
                return Ok(());
            }
            if unchecked {
                // send_policy.danger_unchecked: nothing judged, nothing counted.
            } else if let Err(r) = self
                .policy
                .admit_in(tx, agent, &policy, false, &rcpts, size, now)?
            {
                *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                return Err(TxFail::Abort(MailboxError::HookRefused));
            }
            let mut q = template.clone();
            q.id = rec.id.clone();
            crate::reputation::tally::record_change(tx, None, Some(&q))?;
            tx.put_record(Tree::Queue, q.id.as_bytes(), &q)?;
            holds::hold(tx, &q.id)?;
            tx.put(Tree::QueueSchedule, &schedule_key(now, &q.id), &[])?;
            tx.emit(&crate::store::EventRecord::new(
                "message.sent",
                &q.agent_id,
                serde_json::json!({
                    "message_id": q.id,
                    "recipients": q.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                }),
            ))?;
            self.fresh.put(&q.id, signed.clone());
            *offered.lock().unwrap_or_else(|p| p.into_inner()) = Some(q.id);
            Ok(())
        };
        let meta = DeliveryMeta {
            received_at_ms: now,
            labels: vec![],
            auth: None,
            envelope_from: agent.address(),
            envelope_to: template
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect(),
            flags: vec!["\\Seen".into()],
        };
        let audit_entry = |rec: &StoredMessage| -> Result<(), MailboxError> {
            let auditing = Instant::now();
            let rule = held.as_ref().map(|(rule, _)| rule.as_str());
            audit.append(&self.audit, &rec.id, &template, rule)?;
            self.metrics.send_stages.done(SendStage::Audit, auditing);
            Ok(())
        };
        let hook = TxHook {
            trees: &[
                Tree::Queue,
                Tree::BlobHolds,
                Tree::QueueSchedule,
                Tree::Events,
                Tree::Meta,
                crate::policy::TX_TREES[0],
                crate::policy::TX_TREES[1],
                crate::policy::TX_TREES[2],
                crate::policy::TX_TREES[3],
                Tree::Approvals,
                Tree::ApprovalsPending,
                Tree::ApprovalExpiry,
                Tree::SentMessageIds,
                Tree::ReputationTally,
            ],
            write: &write,
            before_commit: Some(&audit_entry),
        };
        let storing = Instant::now();
        let stored = if audit.sent_copy {
            self.mailbox
                .deliver_parsed(
                    &agent.id,
                    Folder::Sent,
                    signed.clone(),
                    parsed,
                    meta,
                    Some(hook),
                )
                .await
        } else {
            self.mailbox
                .store_unfiled(&agent.id, signed.clone(), parsed, meta, hook)
                .await
        };
        let message = match stored {
            Ok(m) => m,
            Err(e) => {
                if let Some(id) = offered.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    self.fresh.take(&id);
                }
                let refusal = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(r) = refusal {
                    return Err(self.refused(&audit, &agent.id, r).await);
                }
                return Err(e.into());
            }
        };
        self.metrics.send_stages.done(SendStage::Store, storing);
        let mut queued = template;
        queued.id = message.id.clone();
        if held.is_some() {
            self.metrics
                .queue_events
                .with_label_values(&["held"])
                .inc_by(queued.recipients.len() as u64);
            return Ok(Accepted {
                message,
                queued,
                held,
            });
        }
        self.fresh.stamp(&message.id);
        self.metrics
            .queue_events
            .with_label_values(&["queued"])
            .inc_by(queued.recipients.len() as u64);
        self.nudge.notify_one();
        Ok(Accepted {
            message,
            queued,
            held: None,
        })
    }

    /// A send the policy refused: audited as a denial naming the rule, made durable, and
    /// turned into the error every front-end answers.
    pub(super) async fn refused(
        &self,
        audit: &SendAudit<'_>,
        agent_id: &str,
        r: Refusal,
    ) -> QueueError {
        self.policy
            .audit_refusal(audit.actor, audit.action, agent_id, &r);
        if let Err(e) = self.audit.commit().await {
            tracing::error!(error = %e, "could not commit the audit of a refused send");
        }
        QueueError::Policy(r)
    }
}
