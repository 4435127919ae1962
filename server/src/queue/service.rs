//! The queue service: every way a message enters the queue (REST/MCP send and reply, SMTP
//! submission) goes through [`QueueService::enqueue`], which writes the sender's Sent copy
//! (the signed message), the queue record, a hold on the Sent copy's bytes and the schedule
//! entry in ONE store transaction and returns only once that is durable.

use super::compose::{compose, SendRequest};
use super::model::{QueuedMessage, Recipient};
use super::{QueueError, QueueSettings, Transport};
use crate::audit::{Audit, AuditError, Outcome};
use crate::identity::envelope::{check_rcpt, Checked};
use crate::identity::{Actor, Agent, IdentityService, Scope};
use crate::mailbox::{MailboxService, StoredMessage};
use crate::metrics::Metrics;
use crate::policy::PolicyService;
use crate::store::{Store, Tree};
use crate::vault::VaultService;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, Semaphore};

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
    /// Whether the sender's Sent folder keeps a copy. False only for mail carrying a secret
    /// meant for the recipient alone (an owner invite): the queue still holds the bytes
    /// until it is done, but no surface of the sender's mailbox shows them.
    pub sent_copy: bool,
}

impl SendAudit<'_> {
    /// `held`: the rule that holds the message; it is then recorded as `mail.hold`, and
    /// the `mail.send` entry is written when a human releases it.
    pub(super) fn append(
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
            sent_copy: true,
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
