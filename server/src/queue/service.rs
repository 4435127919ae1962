//! The queue service: every way a message enters the queue (REST/MCP send and reply, SMTP
//! submission) goes through [`QueueService::enqueue`], which writes the sender's Sent copy
//! (the signed message), the queue record, a hold on the Sent copy's bytes and the schedule
//! entry in ONE store transaction and returns only once that is durable.

use super::compose::{compose, SendRequest};
use super::model::{schedule_key, QueuedMessage, Recipient};
use super::{QueueError, Transport};
use crate::audit::{Audit, AuditError, Outcome};
use crate::identity::envelope::{check_rcpt, Checked};
use crate::identity::{Actor, Agent, IdentityService, Scope};
use crate::mailbox::{
    holds, DeliveryMeta, Folder, MailboxError, MailboxService, StoredMessage, TxHook,
};
use crate::metrics::{Metrics, SendStage};
use crate::policy::{PolicyService, Rcpt, Refusal};
use crate::store::{Store, Tree, Tx, TxFail};
use crate::util::now_millis;
use crate::vault::VaultService;
use mail_parser::HeaderName;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// Queue behaviour from `[outbound]`, `[dkim]` and `[server]`.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Our host name: Message-IDs, `Received`, DSN `Reporting-MTA`.
    pub hostname: String,
    pub selector_prefix: String,
    pub retry: Vec<Duration>,
    pub max_age: Duration,
    pub delay_notice: Duration,
    pub max_per_domain: usize,
    pub max_concurrent: usize,
    pub scan_interval: Duration,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// `feedback.verp`: per-recipient bounce addresses as the reverse-path.
    pub verp: bool,
    /// `feedback.keep_bytes`.
    pub feedback_keep_bytes: usize,
    /// How long an attempt holds a message's lease when several nodes share the store.
    pub lease: Duration,
}

impl QueueSettings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            hostname: c.server.hostname.clone(),
            selector_prefix: c.dkim.selector_prefix.clone(),
            retry: c
                .outbound
                .retry_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            max_age: Duration::from_secs(c.outbound.max_age_secs),
            delay_notice: Duration::from_secs(c.outbound.delay_notice_secs),
            max_per_domain: c.outbound.max_per_domain,
            max_concurrent: c.outbound.max_concurrent,
            scan_interval: Duration::from_secs(c.outbound.scan_interval_secs),
            max_message_size: c.smtp.max_message_size,
            max_recipients: c.smtp.max_recipients,
            verp: c.feedback.verp,
            feedback_keep_bytes: c.feedback.keep_bytes,
            lease: Duration::from_secs(c.outbound.lease_secs),
        }
    }

    /// The wait after the `attempts`-th failed attempt (1-based); the last delay repeats.
    pub fn retry_after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.retry.len().saturating_sub(1));
        self.retry
            .get(i)
            .copied()
            .unwrap_or(Duration::from_secs(7200))
    }
}

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

pub struct QueueService {
    pub(super) store: Store,
    pub(super) audit: Arc<Audit>,
    pub(super) mailbox: Arc<MailboxService>,
    pub(super) identity: Arc<IdentityService>,
    pub(super) vault: Arc<VaultService>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: QueueSettings,
    pub(super) transport: Arc<dyn Transport>,
    /// The send policy: asked once per send, before anything is stored, and again inside
    /// the queueing transaction, where its counters are updated.
    pub(super) policy: Arc<PolicyService>,
    pub(super) nudge: Notify,
    /// Messages an attempt is running for; the scanner skips them.
    pub(super) inflight: Mutex<HashSet<String>>,
    pub(super) per_domain: Mutex<HashMap<String, Arc<Semaphore>>>,
    pub(super) all: Arc<Semaphore>,
    /// Delivery results share transactions (see `recorder`).
    pub(super) recorder: super::recorder::Recorder,
    /// Just-queued messages for their first attempt (see `fresh`).
    pub(super) fresh: super::fresh::Fresh,
    /// DKIM signers per domain (see `signing`).
    pub(super) signers: Mutex<HashMap<String, super::signing::CachedSigners>>,
}

/// The audit entry a send is recorded under: appended once the message is stored, and made
/// durable by the same commit as the message, so the reply waits for one commit, not two.
pub struct SendAudit<'a> {
    pub actor: &'a Actor,
    /// `mail.send`, `mail.reply`.
    pub action: &'a str,
    /// Detail fields besides `message_id` and `recipients` (an object, or null).
    pub extra: Value,
    /// A failure to append is logged rather than returned: for SMTP, where refusing a
    /// message already queued would make the client send it again.
    pub best_effort: bool,
}

impl SendAudit<'_> {
    /// `held`: the rule that holds the message; it is then recorded as `mail.hold`, and
    /// the `mail.send` entry is written when a human releases it.
    fn append(
        &self,
        audit: &Audit,
        id: &str,
        q: &QueuedMessage,
        held: Option<&str>,
    ) -> Result<(), AuditError> {
        let mut detail = json!({"message_id": q.message_id, "recipients": q.recipients.len()});
        if let (Value::Object(d), Value::Object(extra)) = (&mut detail, &self.extra) {
            d.extend(extra.clone());
        }
        let action = match held {
            Some(rule) => {
                detail["status"] = "held".into();
                detail["rule"] = rule.into();
                detail["held_action"] = self.action.into();
                "mail.hold"
            }
            None => self.action,
        };
        match self.actor.audit(audit, action, id, Outcome::Ok, detail) {
            Ok(_) => Ok(()),
            Err(e) if self.best_effort => {
                tracing::error!(error = %e, id, "could not audit a sent message");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// What the sender is told on acceptance.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub message: StoredMessage,
    pub queued: QueuedMessage,
    /// Held for a human's approval (`first_contact = hold`): the rule and why. Nothing is
    /// queued until an admin approves it (`queue::approvals`).
    pub held: Option<(String, String)>,
}

impl Accepted {
    /// The 202 body of `POST /v1/messages/send` and `/reply`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.message.id,
            "message_id": self.queued.message_id,
            "thread_id": self.message.thread_id,
            "folder": self.message.folder.name(),
            "status": if self.held.is_some() { "held" } else { "queued" },
            "recipients": self.queued.recipients.iter().map(Recipient::to_json).collect::<Vec<_>>(),
        });
        if let Some((rule, reason)) = &self.held {
            v["approval"] = json!({
                "id": self.message.id, "status": "pending", "rule": rule, "reason": reason,
            });
            if let Some(rs) = v["recipients"].as_array_mut() {
                for r in rs {
                    r["status"] = "held".into();
                    r["next_attempt_at"] = Value::Null;
                }
            }
        }
        v
    }
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        mailbox: Arc<MailboxService>,
        identity: Arc<IdentityService>,
        vault: Arc<VaultService>,
        metrics: Arc<Metrics>,
        settings: QueueSettings,
        transport: Arc<dyn Transport>,
        policy: Arc<PolicyService>,
    ) -> Self {
        let all = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
        Self {
            store,
            audit,
            mailbox,
            identity,
            vault,
            metrics,
            settings,
            transport,
            policy,
            nudge: Notify::new(),
            inflight: Mutex::new(HashSet::new()),
            per_domain: Mutex::new(HashMap::new()),
            all,
            recorder: Default::default(),
            fresh: Default::default(),
            signers: Mutex::new(HashMap::new()),
        }
    }

    /// `POST /v1/messages/send`: compose, sign, queue. Scope `mail:send`.
    pub async fn send(&self, actor: &Actor, req: &SendRequest) -> Result<Accepted, QueueError> {
        let agent_id = actor.require(&self.audit, Scope::MailSend, "mail.send", "")?;
        self.send_as(actor, agent_id, req, "mail.send").await
    }

    pub(super) async fn send_as(
        &self,
        actor: &Actor,
        agent_id: &str,
        req: &SendRequest,
        action: &str,
    ) -> Result<Accepted, QueueError> {
        let audit = SendAudit {
            actor,
            action,
            extra: Value::Null,
            best_effort: false,
        };
        // Accepted: audited with the message (see `SendAudit`). Refused: audited here.
        let r = self.compose_and_queue(agent_id, req, audit).await;
        // A policy refusal was audited as a denial where it was decided.
        if let Err(e) = r.as_ref().map(|_| ()).or_else(|e| match e {
            QueueError::Policy(_) => Ok(()),
            e => Err(e),
        }) {
            let detail = json!({"reason": e.to_string()});
            actor.audit(&self.audit, action, "", Outcome::Error, detail)?;
            self.audit.commit().await?;
        }
        r
    }

    async fn compose_and_queue(
        &self,
        agent_id: &str,
        req: &SendRequest,
        audit: SendAudit<'_>,
    ) -> Result<Accepted, QueueError> {
        let agent = self.active_agent(agent_id)?;
        if req.to.len() + req.cc.len() + req.bcc.len() == 0 {
            return Err(QueueError::Invalid(
                "a message needs at least one recipient (to, cc or bcc)".into(),
            ));
        }
        let from = agent.address();
        let started = Instant::now();
        let composed = compose(
            req,
            &from,
            &agent.name,
            &self.settings.hostname,
            crate::util::now_unix(),
        )?;
        self.enqueue_since(
            &agent,
            &composed.rcpts,
            composed.raw,
            Some(composed.message_id),
            audit,
            started,
        )
        .await
    }

    pub(super) fn active_agent(&self, agent_id: &str) -> Result<Agent, QueueError> {
        match self.identity.agent(agent_id)? {
            Some(a) if a.is_active() => Ok(a),
            _ => Err(QueueError::NotFound("agent")),
        }
    }

    /// Checks and routes each recipient; refuses the whole message on the first bad one, so
    /// nothing is queued for an address we would never deliver (or must never relay for).
    pub fn plan_recipients(
        &self,
        rcpts: &[String],
        due_ms: i64,
    ) -> Result<Vec<Recipient>, QueueError> {
        if rcpts.len() > self.settings.max_recipients {
            return Err(QueueError::Invalid(format!(
                "at most {} recipients per message",
                self.settings.max_recipients
            )));
        }
        // One delivery per destination (issue 15, 9): a local agent gets one copy however
        // its address is spelled (case, `+tag`), a remote address one attempt per
        // case-insensitive spelling.
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for addr in rcpts {
            let r = self.plan_recipient(addr, due_ms)?;
            let key = match &r.local_agent {
                Some(id) => format!("agent:{id}"),
                None => {
                    let (local, domain) = r.address.rsplit_once('@').unwrap_or((&r.address, ""));
                    format!(
                        "{}@{}",
                        local.to_lowercase(),
                        domain.trim_end_matches('.').to_ascii_lowercase()
                    )
                }
            };
            if seen.insert(key) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// One recipient: refused if it is a routing form or an unknown agent of ours.
    pub fn plan_recipient(&self, addr: &str, due_ms: i64) -> Result<Recipient, QueueError> {
        let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
        let (local, domain) = match check_rcpt(addr) {
            Checked::Address { local, domain, .. } => (local, domain),
            Checked::Refused(why) => {
                return Err(QueueError::Recipient(format!("\"{addr}\": {why}")))
            }
        };
        if crate::identity::address::normalize_domain(&domain).is_err() || addr.len() > 254 {
            return Err(QueueError::Recipient(format!(
                "\"{addr}\" is not a valid address"
            )));
        }
        if self.identity.is_local_domain(&domain) {
            let agent = self
                .identity
                .agent_by_address(&format!("{local}@{domain}"))?
                .filter(|a| a.is_active())
                .ok_or_else(|| QueueError::Recipient(format!("\"{addr}\": no such agent here")))?;
            return Ok(Recipient::new(
                addr.to_string(),
                domain,
                Some(agent.id),
                due_ms,
            ));
        }
        Ok(Recipient::new(addr.to_string(), domain, None, due_ms))
    }

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
    async fn enqueue_since(
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
        let policy = self.policy.effective(agent)?;
        let size = raw.len() as u64;
        let held = {
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
            if let Err(r) = self
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
        let stored = self
            .mailbox
            .deliver_parsed(
                &agent.id,
                Folder::Sent,
                signed.clone(),
                parsed,
                meta,
                Some(hook),
            )
            .await;
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

    /// The queue record of one of `agent`'s messages, if it was sent.
    pub fn queued(&self, agent_id: &str, id: &str) -> Result<Option<QueuedMessage>, QueueError> {
        let q: Option<QueuedMessage> = self.store.get_record(Tree::Queue, id.as_bytes())?;
        Ok(q.filter(|q| q.agent_id == agent_id))
    }

    /// `GET /v1/messages/{id}`: the full record and, for a sent message, each recipient's
    /// delivery status. Scope `mail:read` (checked and audited by the mailbox).
    pub async fn message_json(&self, actor: &Actor, id: &str) -> Result<Value, QueueError> {
        let m = self.mailbox.get(actor, id).await?;
        let mut v = m.to_json();
        if let Some(q) = self.queued(&m.meta.agent_id, id)? {
            v["delivery"] = Value::Array(q.recipients.iter().map(Recipient::to_json).collect());
        }
        self.add_feedback(&mut v, &m.meta.agent_id, id)?;
        if let Some(a) = self.approval_of(&m.meta.agent_id, id)? {
            v["approval"] = a.to_json();
            if v.get("delivery").is_none() {
                v["delivery"] = Value::Array(a.recipients_json());
            }
        }
        Ok(v)
    }

    /// Wakes the worker (new mail, or an operator's retry).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }
}
