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

mod hold;
mod release;

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
