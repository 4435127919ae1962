//! The outbox events the mailbox writes, compact: ids and folder, never bodies (dispatchers
//! render the message summary from the id when they send).

use super::StoredMessage;
use crate::store::EventRecord;
use serde_json::json;

/// `message.received`: mail from someone else landed in an agent's folder.
pub(super) fn received(rec: &StoredMessage) -> EventRecord {
    EventRecord::new(
        "message.received",
        &rec.agent_id,
        json!({"message_id": rec.id, "folder": rec.folder.name(), "thread_id": rec.thread_id}),
    )
}

/// `message.flagged`: flags, labels or folder changed.
pub(super) fn flagged(rec: &StoredMessage) -> EventRecord {
    EventRecord::new(
        "message.flagged",
        &rec.agent_id,
        json!({
            "message_id": rec.id,
            "folder": rec.folder.name(),
            "flags": rec.flags,
            "labels": rec.labels,
        }),
    )
}

/// `message.rejected`: inbound mail refused for an agent (who sent it and why; no body).
pub(super) fn rejected(agent: &str, sender: &str, recipient: &str, reason: &str) -> EventRecord {
    EventRecord::new(
        "message.rejected",
        agent,
        json!({"sender": sender, "recipient": recipient, "reason": reason}),
    )
}

impl super::MailboxService {
    /// Records that mail for `agent` was refused. The refusal changes nothing else, so the
    /// event's insert is its own transaction; a failure to record it is logged, never turned
    /// into another answer to the sender.
    pub fn record_refusal(&self, agent: &str, sender: &str, recipient: &str, reason: &str) {
        let ev = rejected(agent, sender, recipient, reason);
        if let Err(e) = self.store.emit(&ev) {
            tracing::error!(error = %e, agent, "cannot record a refused message");
        }
    }
}
