//! Human approval of held sends (issue 24, item 2). The policy decides that a send waits
//! (`first_contact = hold`, [`Refusal::Hold`]); the queue keeps it here, because releasing
//! it writes queue records, which only the queue may.
//!
//! A held message is composed and DKIM-signed when the agent sends it, stored as its Sent
//! copy (as every sent message is) with a hold on its bytes, and recorded as a pending
//! [`Approval`] carrying the queue record it will become. Approving it queues **those same
//! signed bytes**, unchanged: what the human approved is byte for byte what leaves, and the
//! agent's Sent copy is what was delivered. (Signing at release would let the bytes differ
//! from what was reviewed, for nothing: a DKIM signature has no expiry here, and its `t=`
//! only says when it was made.) Release judges the send policy again (every rule but the
//! hold) and counts it then, once; the policy's counters never see a held message twice.
//!
//! Rejection and expiry (`send_policy.approval_ttl_secs`) release the bytes' hold and tell
//! the agent: a `message.rejected` event, the status on `GET /v1/messages/{id}`
//! (`approval`), and `mail_list_approvals`. Decisions are transactions that find the
//! approval still pending, so two admins (or an admin and the expiry sweep, on two nodes)
//! cannot both decide one message.

use super::model::{schedule_key, QueuedMessage, Recipient};
use super::service::QueueService;
use super::QueueError;
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::identity::{Actor, Agent, Scope};
use crate::mailbox::holds;
use crate::policy::{Effective, Rcpt, Refusal};
use crate::store::{keys, EventRecord, Tree, Tx, TxFail, TxStoreError};
use crate::util::{now_millis, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ops::Bound;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<ApprovalStatus> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }
}

/// One held send. Its id is the message id (the agent's Sent copy).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub agent_id: String,
    pub org_id: String,
    pub status: ApprovalStatus,
    /// The rule that held it (`first_contact`) and why.
    pub rule: String,
    pub reason: String,
    /// The size the policy judges (as submitted, before signing).
    pub size: u64,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub decided_ms: Option<i64>,
    /// `human:<email>` of the deciding admin; `system` for an expiry.
    pub decided_by: Option<String>,
    pub note: Option<String>,
    /// The queue record it becomes when approved (recipients, signed size, chain).
    pub queued: QueuedMessage,
}

impl Approval {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "agent_id": self.agent_id,
            "status": self.status.as_str(),
            "rule": self.rule,
            "reason": self.reason,
            "subject": self.queued.subject,
            "message_id": self.queued.message_id,
            "from": self.queued.mail_from,
            "recipients": self.queued.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
            "size": self.queued.size,
            "created_at": rfc3339(self.created_ms / 1000),
            "expires_at": rfc3339(self.expires_ms / 1000),
            "decided_at": self.decided_ms.map(|t| rfc3339(t / 1000)),
            "decided_by": self.decided_by,
            "note": self.note,
        })
    }

    /// The delivery view of a message that never reached the queue (held, rejected,
    /// expired): one entry per recipient with the approval's status.
    pub fn recipients_json(&self) -> Vec<Value> {
        self.queued
            .recipients
            .iter()
            .map(|r| {
                let mut v = r.to_json();
                v["status"] = match self.status {
                    ApprovalStatus::Pending => "held",
                    ApprovalStatus::Approved => "scheduled",
                    ApprovalStatus::Rejected => "rejected",
                    ApprovalStatus::Expired => "expired",
                }
                .into();
                v["next_attempt_at"] = Value::Null;
                v
            })
            .collect()
    }
}

/// What the queueing transaction knows about a send it holds.
pub(super) struct NewHold<'a> {
    pub agent: &'a Agent,
    pub eff: &'a Effective,
    pub rcpts: &'a [Rcpt<'a>],
    pub size: u64,
    pub now: i64,
    pub rule: &'a str,
    pub reason: &'a str,
}

/// `GET /v1/approvals` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// `pending` (default), `approved`, `rejected`, `expired` or `all`.
    pub status: Option<String>,
    /// Admins: only this agent's (id or address).
    pub agent: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

fn pending_key(agent: &str, id: &str) -> Vec<u8> {
    keys::join(&[agent, id])
}

/// The count of an agent's pending approvals sits in the pending index under the bare
/// agent id (entries are `agent \0 id`, so it is no entry): a transaction cannot scan.
fn pending_count(tx: &Tx<'_>, agent: &str) -> Result<u64, TxStoreError> {
    Ok(tx
        .get(Tree::ApprovalsPending, agent.as_bytes())?
        .as_deref()
        .and_then(keys::read_u64)
        .unwrap_or(0))
}

fn set_pending_count(tx: &Tx<'_>, agent: &str, n: u64) -> Result<(), TxStoreError> {
    if n == 0 {
        tx.remove(Tree::ApprovalsPending, agent.as_bytes())
    } else {
        tx.put(Tree::ApprovalsPending, agent.as_bytes(), &keys::u64_key(n))
    }
}

fn expiry_key(at_ms: i64, id: &str) -> Vec<u8> {
    let mut k = keys::u64_key(at_ms.max(0) as u64).to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Trees a decision transaction writes.
const DECIDE_TREES: [Tree; 7] = [
    Tree::Approvals,
    Tree::ApprovalsPending,
    Tree::ApprovalExpiry,
    Tree::Events,
    Tree::Meta,
    Tree::BlobHolds,
    Tree::Messages,
];

impl QueueService {
    /// Inside the queueing transaction of a held send: judged again (nothing counted),
    /// bounded by `send_policy.max_pending_approvals`, then recorded as pending with a hold
    /// on the message's bytes.
    pub(super) fn hold_in(
        &self,
        tx: &Tx<'_>,
        h: &NewHold<'_>,
        queued: QueuedMessage,
    ) -> Result<Result<(), Refusal>, TxStoreError> {
        if let Err(r) = self
            .policy
            .hold_in(tx, h.agent, h.eff, h.rcpts, h.size, h.now)?
        {
            return Ok(Err(r));
        }
        let max = self.policy.max_pending_approvals;
        let pending = pending_count(tx, &h.agent.id)?;
        if pending >= max {
            return Ok(Err(Refusal::Limit {
                rule: "max_pending_approvals",
                limit: max,
                retry_after_secs: 300,
            }));
        }
        set_pending_count(tx, &h.agent.id, pending + 1)?;
        let id = queued.id.clone();
        let a = Approval {
            id: id.clone(),
            agent_id: h.agent.id.clone(),
            org_id: h.agent.org_id.clone(),
            status: ApprovalStatus::Pending,
            rule: h.rule.to_string(),
            reason: h.reason.to_string(),
            size: h.size,
            created_ms: h.now,
            expires_ms: h.now.saturating_add(self.policy.approval_ttl_ms),
            decided_ms: None,
            decided_by: None,
            note: None,
            queued,
        };
        tx.put_record(Tree::Approvals, id.as_bytes(), &a)?;
        tx.put(Tree::ApprovalsPending, &pending_key(&a.agent_id, &id), &[])?;
        tx.put(Tree::ApprovalExpiry, &expiry_key(a.expires_ms, &id), &[])?;
        holds::hold(tx, &id)?;
        tx.emit(&EventRecord::new(
            "message.held",
            &a.agent_id,
            json!({
                "message_id": id,
                "rule": a.rule,
                "reason": a.reason,
                "recipients": a.queued.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                "expires_at": rfc3339(a.expires_ms / 1000),
            }),
        ))?;
        Ok(Ok(()))
    }

    /// The approval record of one of `agent`'s messages, if it was ever held.
    pub fn approval_of(&self, agent_id: &str, id: &str) -> Result<Option<Approval>, QueueError> {
        let a: Option<Approval> = self.store.get_record(Tree::Approvals, id.as_bytes())?;
        Ok(a.filter(|a| a.agent_id == agent_id))
    }

    /// `GET /v1/approvals`: an admin sees every agent's (or `agent`'s), an agent with
    /// `mail:send` its own. Newest ids are not ordered by time; pages follow id order.
    pub fn approvals(&self, actor: &Actor, q: &ApprovalQuery) -> Result<Value, QueueError> {
        let action = "approval.list";
        let only_agent = if actor.is_admin() {
            match &q.agent {
                Some(a) => Some(
                    self.identity
                        .find_agent(a)?
                        .ok_or(QueueError::NotFound("agent"))?
                        .id,
                ),
                None => None,
            }
        } else {
            let me = actor.require(&self.audit, Scope::MailSend, action, "")?;
            if q.agent.as_deref().is_some_and(|a| a != me) {
                return Err(QueueError::NotFound("agent"));
            }
            Some(me.to_string())
        };
        let status = match q.status.as_deref().unwrap_or("pending") {
            "all" => None,
            s => Some(ApprovalStatus::parse(s).ok_or_else(|| {
                QueueError::Invalid(
                    "status: pending, approved, rejected, expired or all".to_string(),
                )
            })?),
        };
        if let Some(c) = &q.cursor {
            if !crate::util::is_id_of(c, "msg") {
                return Err(QueueError::Invalid("invalid cursor".into()));
            }
        }
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let mut items = Vec::new();
        let mut next = None;
        let mut take = |a: Approval| -> bool {
            if status.is_some_and(|s| s != a.status)
                || only_agent.as_deref().is_some_and(|ag| ag != a.agent_id)
            {
                return true;
            }
            if items.len() == limit {
                next = items
                    .last()
                    .and_then(|v: &Value| v["id"].as_str())
                    .map(str::to_string);
                return false;
            }
            items.push(a.to_json());
            true
        };
        let cursor = q.cursor.clone().unwrap_or_default();
        match (&only_agent, status) {
            // An agent's pending ones: its own index, not the whole table.
            (Some(agent), Some(ApprovalStatus::Pending)) => {
                let prefix = keys::prefix(&[agent]);
                let from = if cursor.is_empty() {
                    Bound::Included(prefix.clone())
                } else {
                    Bound::Excluded(pending_key(agent, &cursor))
                };
                for item in self
                    .store
                    .range(Tree::ApprovalsPending, from, Bound::Unbounded, false)
                {
                    let (k, _) = item?;
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    let id = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
                    let Some(a) = self
                        .store
                        .get_record::<Approval>(Tree::Approvals, id.as_bytes())?
                    else {
                        continue;
                    };
                    if !take(a) {
                        break;
                    }
                }
            }
            _ => {
                let from = if cursor.is_empty() {
                    Bound::Unbounded
                } else {
                    Bound::Excluded(cursor.into_bytes())
                };
                for item in self
                    .store
                    .range(Tree::Approvals, from, Bound::Unbounded, false)
                {
                    let (_, v) = item?;
                    if !take(crate::store::decode::<Approval>(&v)?) {
                        break;
                    }
                }
            }
        }
        Ok(json!({"items": items, "next_cursor": next}))
    }

    /// `POST /v1/approvals/{id}/approve` (admins): queues the held message's signed bytes
    /// as they are. The send policy is judged again (every rule but the hold) and the send
    /// counted now; a refusal leaves the approval pending (for example until the hourly
    /// cap's window ends).
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &str,
        note: Option<&str>,
    ) -> Result<Value, QueueError> {
        let action = "approval.approve";
        actor.require_admin(&self.audit, action, id)?;
        let note = check_note(note)?;
        let a = self.pending(id)?;
        let Some(agent) = self.identity.agent(&a.agent_id)?.filter(|g| g.is_active()) else {
            return Err(QueueError::Conflict(
                "the sending agent is no longer active; reject the message instead".into(),
            ));
        };
        let eff = self.policy.effective(&agent)?;
        let rcpts: Vec<Rcpt<'_>> = a
            .queued
            .recipients
            .iter()
            .map(|r| Rcpt {
                address: &r.address,
                domain: &r.domain,
            })
            .collect();
        let now = now_millis();
        if let Err(r) = self
            .policy
            .precheck(&agent, &eff, true, &rcpts, a.size, now)?
        {
            return Err(self.refused_release(actor, id, r).await);
        }
        let approver = actor.chain.first().cloned().unwrap_or_default();
        let mut trees = DECIDE_TREES.to_vec();
        trees.extend([Tree::Queue, Tree::QueueSchedule, Tree::ReputationTally]);
        trees.extend(crate::policy::TX_TREES);
        let r = self.store.transact(&trees, |tx| {
            let Some(mut cur) = tx.get_record::<Approval>(Tree::Approvals, id.as_bytes())? else {
                return Err(TxFail::Abort(QueueError::NotFound("approval")));
            };
            if cur.status != ApprovalStatus::Pending {
                return Err(TxFail::Abort(already(cur.status)));
            }
            if let Err(r) = self
                .policy
                .admit_in(tx, &agent, &eff, true, &rcpts, cur.size, now)?
            {
                return Err(TxFail::Abort(QueueError::Policy(r)));
            }
            let mut q = cur.queued.clone();
            for r in &mut q.recipients {
                *r = Recipient::new(
                    r.address.clone(),
                    r.domain.clone(),
                    r.local_agent.clone(),
                    now,
                );
            }
            crate::reputation::tally::record_change(tx, None, Some(&q))?;
            tx.put_record(Tree::Queue, id.as_bytes(), &q)?;
            tx.put(Tree::QueueSchedule, &schedule_key(now, id), &[])?;
            tx.emit(&EventRecord::new(
                "message.sent",
                &q.agent_id,
                json!({
                    "message_id": id,
                    "recipients": q.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                    "approved_by": approver,
                }),
            ))?;
            decide(tx, &mut cur, ApprovalStatus::Approved, &approver, note, now)?;
            Ok(cur)
        });
        let decided = match r {
            Ok(a) => a,
            Err(crate::store::TxError::Abort(QueueError::Policy(r))) => {
                return Err(self.refused_release(actor, id, r).await)
            }
            Err(e) => return Err(e.into()),
        };
        actor.audit_on_agent(
            &self.audit,
            action,
            &decided.agent_id,
            Outcome::Ok,
            json!({"message_id": id, "note": note}),
        )?;
        // The send itself, as the agent's, with the approving human in its chain.
        let mut chain = decided.queued.chain.clone();
        chain.push(format!("approved-by:{approver}"));
        self.audit.append(NewEntry {
            actor: ActorRef::agent(&decided.agent_id),
            chain,
            action: "mail.send".into(),
            target: id.to_string(),
            outcome: Outcome::Ok,
            detail: json!({
                "message_id": decided.queued.message_id,
                "recipients": decided.queued.recipients.len(),
                "approved_by": approver,
                (crate::audit::SUBJECT_AGENT): decided.agent_id,
            }),
        })?;
        self.audit.commit().await?;
        self.metrics
            .queue_events
            .with_label_values(&["queued"])
            .inc_by(decided.queued.recipients.len() as u64);
        self.nudge();
        Ok(decided.to_json())
    }

    /// `POST /v1/approvals/{id}/reject` (admins): the message is never sent; the agent is
    /// told.
    pub async fn reject(
        &self,
        actor: &Actor,
        id: &str,
        note: Option<&str>,
    ) -> Result<Value, QueueError> {
        let action = "approval.reject";
        actor.require_admin(&self.audit, action, id)?;
        let note = check_note(note)?;
        self.pending(id)?;
        let by = actor.chain.first().cloned().unwrap_or_default();
        let a = self.close(id, ApprovalStatus::Rejected, &by, note, now_millis())?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &a.agent_id,
            Outcome::Ok,
            json!({"message_id": id, "note": note}),
        )?;
        self.audit.commit().await?;
        Ok(a.to_json())
    }

    /// Expires every pending approval whose time is up (the queue worker calls this on its
    /// rounds). Returns how many expired.
    pub fn expire_approvals(&self, now: i64) -> Result<usize, QueueError> {
        let mut due = Vec::new();
        for item in self.store.range(
            Tree::ApprovalExpiry,
            Bound::Unbounded,
            Bound::Excluded(expiry_key(now + 1, "")),
            false,
        ) {
            let (k, _) = item?;
            match k.get(9..).map(|id| String::from_utf8_lossy(id).to_string()) {
                Some(id) => due.push((k, id)),
                None => {
                    let _ = self.store.remove(Tree::ApprovalExpiry, &k);
                }
            }
            if due.len() >= 256 {
                break;
            }
        }
        let mut n = 0;
        for (k, id) in due {
            match self.close(&id, ApprovalStatus::Expired, "system", None, now) {
                Ok(a) => {
                    n += 1;
                    let _ = self.audit.append(NewEntry {
                        actor: ActorRef::system(),
                        chain: a.queued.chain.clone(),
                        action: "approval.expire".into(),
                        target: id.clone(),
                        outcome: Outcome::Ok,
                        detail: json!({"message_id": id, (crate::audit::SUBJECT_AGENT): a.agent_id}),
                    });
                }
                // Decided meanwhile (another node, an admin): only the stale key goes.
                Err(QueueError::Conflict(_)) | Err(QueueError::NotFound(_)) => {
                    self.store.remove(Tree::ApprovalExpiry, &k)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn pending(&self, id: &str) -> Result<Approval, QueueError> {
        if !crate::util::is_id_of(id, "msg") {
            return Err(QueueError::NotFound("approval"));
        }
        let a: Approval = self
            .store
            .get_record(Tree::Approvals, id.as_bytes())?
            .ok_or(QueueError::NotFound("approval"))?;
        if a.status != ApprovalStatus::Pending {
            return Err(already(a.status));
        }
        Ok(a)
    }

    /// Rejects or expires `id` in one transaction that finds it pending: the bytes' hold is
    /// released and the agent told (`message.rejected`).
    fn close(
        &self,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<Approval, QueueError> {
        let a = self.store.transact(&DECIDE_TREES, |tx| {
            let Some(mut cur) = tx.get_record::<Approval>(Tree::Approvals, id.as_bytes())? else {
                return Err(TxFail::Abort(QueueError::NotFound("approval")));
            };
            if cur.status != ApprovalStatus::Pending {
                return Err(TxFail::Abort(already(cur.status)));
            }
            decide(tx, &mut cur, status, by, note, now)?;
            holds::release(tx, id)?;
            tx.emit(&EventRecord::new(
                "message.rejected",
                &cur.agent_id,
                json!({
                    "message_id": id,
                    "approval": status.as_str(),
                    "reason": match status {
                        ApprovalStatus::Expired => "no human approved the message in time".to_string(),
                        _ => format!("a human rejected the message{}", note.map(|n| format!(": {n}")).unwrap_or_default()),
                    },
                    "recipients": cur.queued.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                }),
            ))?;
            Ok(cur)
        })?;
        Ok(a)
    }

    /// A release the policy refused: audited as a denied approval naming the rule.
    async fn refused_release(&self, actor: &Actor, id: &str, r: Refusal) -> QueueError {
        let detail = json!({"message_id": id, "rule": r.rule(), "reason": r.to_string()});
        if let Err(e) = actor.audit(&self.audit, "approval.approve", id, Outcome::Denied, detail) {
            tracing::error!(error = %e, "could not audit a refused release");
        }
        let _ = self.audit.commit().await;
        QueueError::Policy(r)
    }
}

/// Marks `cur` decided and drops it from the pending and expiry indexes.
fn decide(
    tx: &Tx<'_>,
    cur: &mut Approval,
    status: ApprovalStatus,
    by: &str,
    note: Option<&str>,
    now: i64,
) -> Result<(), TxStoreError> {
    if cur.status == ApprovalStatus::Pending {
        let n = pending_count(tx, &cur.agent_id)?;
        set_pending_count(tx, &cur.agent_id, n.saturating_sub(1))?;
    }
    tx.remove(Tree::ApprovalsPending, &pending_key(&cur.agent_id, &cur.id))?;
    tx.remove(Tree::ApprovalExpiry, &expiry_key(cur.expires_ms, &cur.id))?;
    cur.status = status;
    cur.decided_ms = Some(now);
    cur.decided_by = Some(by.to_string());
    cur.note = note.map(str::to_string);
    tx.put_record(Tree::Approvals, cur.id.as_bytes(), cur)
}

fn already(s: ApprovalStatus) -> QueueError {
    QueueError::Conflict(format!("the message was already {}", s.as_str()))
}

fn check_note(note: Option<&str>) -> Result<Option<&str>, QueueError> {
    match note {
        Some(n) if n.len() > 500 || n.chars().any(|c| c.is_control()) => Err(QueueError::Invalid(
            "note: at most 500 characters, no control characters".into(),
        )),
        Some(n) if n.trim().is_empty() => Ok(None),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_keys_sort_by_time() {
        assert!(expiry_key(5, "msg_b") < expiry_key(6, "msg_a"));
        assert!(expiry_key(6, "msg_a") < expiry_key(7, ""));
        assert_eq!(&expiry_key(5, "msg_b")[9..], b"msg_b");
    }

    #[test]
    fn notes_are_bounded() {
        assert!(check_note(Some("x\r\ny")).is_err());
        assert!(check_note(Some(&"x".repeat(501))).is_err());
        assert_eq!(check_note(Some("  ")).unwrap(), None);
        assert_eq!(check_note(Some("ok")).unwrap(), Some("ok"));
    }
}
