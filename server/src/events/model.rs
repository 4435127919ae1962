//! Webhook and delivery records, and the event types there are.

use crate::store::keys;
use crate::util::rfc3339_millis;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Every event type the outbox carries (DESIGN §14; issue 18).
pub const EVENT_TYPES: [&str; 13] = [
    "message.received",
    "message.sent",
    "message.delivered",
    "message.delayed",
    "message.bounced",
    "message.rejected",
    "message.flagged",
    "agent.created",
    "agent.revoked",
    "key.revoked",
    "vault.accessed",
    "message.held",
    "message.complained",
];

/// Message events carry mail content: a subscriber needs `mail:read`.
pub fn is_message_event(kind: &str) -> bool {
    kind.starts_with("message.")
}

/// How much of a message a delivery carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Summary {
    /// The message as `GET /v1/messages/{id}` shows it (extracted text, codes, links).
    #[default]
    Full,
    /// Only the event's own fields (ids, folder, recipient, ...).
    Minimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    /// Only events about this agent.
    pub agent: Option<String>,
    /// Only events about agents of this org (admin webhooks).
    pub org: Option<String>,
    /// `agent:<id>` or `human:<id>`: who may see and change it.
    pub owner: String,
    pub enabled: bool,
    pub summary: Summary,
    pub description: String,
    pub created_at_ms: i64,
    /// Why it was turned off by the dispatcher (410, failures), until re-enabled.
    pub disabled_reason: Option<String>,
}

impl Webhook {
    pub fn owner_agent(&self) -> Option<&str> {
        self.owner.strip_prefix("agent:")
    }

    /// Whether an event of `kind` about `agent` (of `org`) goes to this webhook.
    pub fn wants(&self, kind: &str, agent: &str, org: Option<&str>) -> bool {
        (self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind))
            && self.agent.as_deref().is_none_or(|a| a == agent)
            && self.org.as_deref().is_none_or(|o| Some(o) == org)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "event_types": self.event_types,
            "agent": self.agent,
            "org": self.org,
            "enabled": self.enabled,
            "summary": self.summary,
            "description": self.description,
            "created_at": rfc3339_millis(self.created_at_ms),
            "disabled_reason": self.disabled_reason,
        })
    }
}

/// Per webhook: how far through the outbox it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The last event sequence dealt with (delivered, skipped, or given up on).
    pub cursor: u64,
    pub consecutive_failures: u32,
    /// Bumped whenever the cursor is moved from outside the worker (replay, re-enable): a
    /// worker that read an older generation does not write its own position over it.
    #[serde(default)]
    pub generation: u64,
}

pub fn progress_key(webhook: &str) -> Vec<u8> {
    keys::join(&["webhook_progress", webhook])
}

pub fn delivery_key(webhook: &str, seq: u64) -> Vec<u8> {
    keys::with_u64(&[webhook], seq)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up on (retried for `webhooks.retry_for_secs`, or the webhook was disabled).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub agent: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub first_attempt_ms: i64,
    pub last_attempt_ms: Option<i64>,
    pub next_attempt_ms: i64,
    /// The HTTP status of the last answer.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, when it did without an answer.
    pub last_error: Option<String>,
    pub delivered_at_ms: Option<i64>,
}

impl Delivery {
    pub fn to_json(&self) -> Value {
        json!({
            "event_id": self.event_id,
            "event_type": self.event_type,
            "agent": self.agent,
            "status": self.status,
            "attempts": self.attempts,
            "first_attempt_at": rfc3339_millis(self.first_attempt_ms),
            "last_attempt_at": self.last_attempt_ms.map(rfc3339_millis),
            "next_attempt_at": (self.status == DeliveryStatus::Pending)
                .then(|| rfc3339_millis(self.next_attempt_ms)),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at_ms.map(rfc3339_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_type_agent_and_org() {
        let mut w = Webhook {
            id: "wh_1".into(),
            url: "https://x.test/".into(),
            event_types: vec!["message.received".into()],
            agent: Some("ag_a".into()),
            org: None,
            owner: "agent:ag_a".into(),
            enabled: true,
            summary: Summary::Full,
            description: String::new(),
            created_at_ms: 0,
            disabled_reason: None,
        };
        assert!(w.wants("message.received", "ag_a", None));
        assert!(!w.wants("message.sent", "ag_a", None));
        assert!(!w.wants("message.received", "ag_b", None));
        assert_eq!(w.owner_agent(), Some("ag_a"));
        w.agent = None;
        w.org = Some("org_1".into());
        w.event_types.clear();
        assert!(w.wants("agent.created", "ag_b", Some("org_1")));
        assert!(!w.wants("agent.created", "ag_b", Some("org_2")));
    }
}
