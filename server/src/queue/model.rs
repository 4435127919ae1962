//! The queue's records: one per message, holding every recipient's state, so a delivery
//! attempt reads and rewrites one value and the status API needs no join.

use super::transport::TlsLevel;
use crate::store::keys;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where one recipient stands (issue 5: scheduled, delivered, temporary / permanent failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcptStatus {
    /// Waiting for its first attempt.
    Scheduled,
    /// The last attempt failed temporarily; another is scheduled.
    TemporaryFailure,
    Delivered,
    /// Refused for good, or expired; the sender got a DSN.
    PermanentFailure,
    /// Withdrawn by an operator before delivery.
    Cancelled,
    /// Accepted by the next hop, then bounced: a DSN came back to its VERP address
    /// (`queue::feedback`). Final; the report is kept under the message.
    Bounced,
    /// A complaint (ARF) about it came back. Final.
    Complained,
}

impl RcptStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RcptStatus::Delivered
                | RcptStatus::PermanentFailure
                | RcptStatus::Cancelled
                | RcptStatus::Bounced
                | RcptStatus::Complained
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RcptStatus::Scheduled => "scheduled",
            RcptStatus::TemporaryFailure => "temporary_failure",
            RcptStatus::Delivered => "delivered",
            RcptStatus::PermanentFailure => "permanent_failure",
            RcptStatus::Cancelled => "cancelled",
            RcptStatus::Bounced => "bounced",
            RcptStatus::Complained => "complained",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recipient {
    /// As given by the sender (local parts of other domains are case-sensitive).
    pub address: String,
    /// Lower case, the routing key.
    pub domain: String,
    /// Set when the address belongs to an agent we host: delivered straight to its mailbox.
    pub local_agent: Option<String>,
    pub status: RcptStatus,
    pub attempts: u32,
    /// Unix milliseconds of the next attempt, while not final.
    pub next_attempt_ms: i64,
    pub last_attempt_ms: Option<i64>,
    /// The last reply (ours or the remote server's), e.g. `250 2.0.0 OK` or `550 5.1.1 ...`.
    pub last_reply: Option<String>,
    pub remote_host: Option<String>,
    /// The TLS level of the last attempt's session (absent in records written before
    /// issue 19, and when no session was reached).
    #[serde(default)]
    pub tls: Option<TlsLevel>,
    /// A delay notice was sent for this recipient (once, DESIGN §5).
    pub delay_notified: bool,
}

impl Recipient {
    pub fn new(address: String, domain: String, local_agent: Option<String>, due_ms: i64) -> Self {
        Self {
            address,
            domain,
            local_agent,
            status: RcptStatus::Scheduled,
            attempts: 0,
            next_attempt_ms: due_ms,
            last_attempt_ms: None,
            last_reply: None,
            remote_host: None,
            tls: None,
            delay_notified: false,
        }
    }

    pub fn is_due(&self, now_ms: i64) -> bool {
        !self.status.is_final() && self.next_attempt_ms <= now_ms
    }

    pub fn to_json(&self) -> Value {
        json!({
            "address": self.address,
            "status": self.status.as_str(),
            "attempts": self.attempts,
            "next_attempt_at": (!self.status.is_final()).then(|| crate::util::rfc3339(self.next_attempt_ms / 1000)),
            "last_attempt_at": self.last_attempt_ms.map(|t| crate::util::rfc3339(t / 1000)),
            "last_reply": self.last_reply,
            "remote_host": self.remote_host,
            "tls": self.tls.map(TlsLevel::as_str),
        })
    }
}

/// One queued message. Its id is the id of the sender's Sent copy, so
/// `GET /v1/messages/{id}` can show the delivery status beside the message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedMessage {
    pub id: String,
    /// The sending agent (owner of the Sent copy, receiver of DSNs).
    pub agent_id: String,
    /// Envelope sender: the agent's address, or empty for our own DSNs (never bounced).
    pub mail_from: String,
    /// The sender's delegation chain, for the audit entries the worker writes.
    pub chain: Vec<String>,
    pub created_ms: i64,
    pub size: u64,
    pub message_id: Option<String>,
    pub subject: String,
    pub recipients: Vec<Recipient>,
}

impl QueuedMessage {
    /// The earliest attempt any non-final recipient waits for.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.recipients
            .iter()
            .filter(|r| !r.status.is_final())
            .map(|r| r.next_attempt_ms)
            .min()
    }

    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.status.is_final())
    }

    /// The queue view (admin `GET /v1/queue`).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "agent_id": self.agent_id,
            "mail_from": self.mail_from,
            "created_at": crate::util::rfc3339(self.created_ms / 1000),
            "size": self.size,
            "subject": self.subject,
            "message_id": self.message_id,
            "recipients": self.recipients.iter().map(Recipient::to_json).collect::<Vec<_>>(),
        })
    }
}

/// `QueueSchedule` key: due time first, so a range scan up to "now" finds what is due.
pub fn schedule_key(due_ms: i64, id: &str) -> Vec<u8> {
    let mut k = keys::u64_key(due_ms.max(0) as u64).to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits a schedule key back into (due, id).
pub fn parse_schedule_key(k: &[u8]) -> Option<(i64, String)> {
    let due = keys::read_u64(k.get(..8)?)? as i64;
    let id = std::str::from_utf8(k.get(9..)?).ok()?;
    Some((due, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recipient as records before issue 19 stored it: no `tls` field.
    #[derive(Serialize)]
    struct OldRecipient {
        address: String,
        domain: String,
        local_agent: Option<String>,
        status: RcptStatus,
        attempts: u32,
        next_attempt_ms: i64,
        last_attempt_ms: Option<i64>,
        last_reply: Option<String>,
        remote_host: Option<String>,
        delay_notified: bool,
    }

    #[test]
    fn records_from_before_tls_levels_still_decode() {
        let old = OldRecipient {
            address: "x@b.test".into(),
            domain: "b.test".into(),
            local_agent: None,
            status: RcptStatus::Delivered,
            attempts: 1,
            next_attempt_ms: 5,
            last_attempt_ms: Some(5),
            last_reply: Some("250 ok".into()),
            remote_host: Some("mx.b.test".into()),
            delay_notified: false,
        };
        let bytes = crate::store::codec::encode(&old).unwrap();
        let r: Recipient = crate::store::codec::decode(&bytes).unwrap();
        assert_eq!(r.tls, None);
        assert_eq!(r.to_json()["tls"], Value::Null);
        let mut new = r.clone();
        new.tls = Some(TlsLevel::Dane);
        let back: Recipient =
            crate::store::codec::decode(&crate::store::codec::encode(&new).unwrap()).unwrap();
        assert_eq!(back.tls, Some(TlsLevel::Dane));
        assert_eq!(back.to_json()["tls"], "dane");
    }

    #[test]
    fn schedule_keys_sort_by_time_and_round_trip() {
        let a = schedule_key(1_000, "msg_b");
        let b = schedule_key(2_000, "msg_a");
        assert!(a < b);
        assert_eq!(parse_schedule_key(&b), Some((2_000, "msg_a".into())));
        assert_eq!(parse_schedule_key(b"short"), None);
    }

    #[test]
    fn next_due_ignores_final_recipients() {
        let mut m = QueuedMessage {
            id: "msg_x".into(),
            agent_id: "ag_a".into(),
            mail_from: "a@x.test".into(),
            chain: vec![],
            created_ms: 0,
            size: 1,
            message_id: None,
            subject: String::new(),
            recipients: vec![
                Recipient::new("a@b.test".into(), "b.test".into(), None, 50),
                Recipient::new("c@d.test".into(), "d.test".into(), None, 10),
            ],
        };
        assert_eq!(m.next_due_ms(), Some(10));
        m.recipients[1].status = RcptStatus::Delivered;
        assert_eq!(m.next_due_ms(), Some(50));
        assert!(!m.is_done());
        m.recipients[0].status = RcptStatus::PermanentFailure;
        assert_eq!(m.next_due_ms(), None);
        assert!(m.is_done());
    }
}
