//! The list item of a message, serialised straight from its record.
//!
//! Listings return 50 to 500 of these per request, so their cost is the listing's cost: a
//! profile of `GET /v1/messages?limit=50` spent three quarters of its CPU building a
//! `serde_json::Value` tree per item (a sorted map per object, every string copied), parsing
//! the stored verdict twice per item, then serialising the tree. [`Summary`] borrows the
//! record and serialises in one pass, and the verdict is read once, into only the fields
//! the decision needs. The fields and values are those the `Value` tree had; top-level
//! field order is alphabetical as it was (nested records such as addresses now keep their
//! declaration order, which JSON leaves free).

use super::StoredMessage;
use crate::extract::{Addr, AttachmentInfo};
use crate::util::{rfc3339, rfc3339_millis};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One list item: everything of a message but bodies and headers. `A` is its `auth`: the
/// two summary fields in a list, the whole verdict under them in the full view
/// ([`super::full::Full`]).
#[derive(Serialize)]
pub struct Summary<'a, A = AuthSummary> {
    attachments: &'a [AttachmentInfo],
    auth: A,
    cc: &'a [Addr],
    date: Option<String>,
    external_content: bool,
    flags: &'a [String],
    folder: &'static str,
    from: Option<&'a Addr>,
    id: &'a str,
    labels: &'a [String],
    message_id: Option<&'a str>,
    preview: &'a str,
    received_at: String,
    reply_to: &'a [Addr],
    size: u64,
    subject: &'a str,
    thread_id: &'a str,
    to: &'a [Addr],
    trust: TrustSummary,
    uid: u32,
    unread: bool,
}

/// `auth` of a list item: whether the sender is proven, and for which domain.
#[derive(Serialize)]
pub struct AuthSummary {
    pub(super) from_domain: Option<String>,
    pub(super) sender_authenticated: bool,
}

/// `trust` of a message: `{authenticated, first_contact, allowlisted}`, and `agent` when it
/// carried an Agent-Signature.
#[derive(Serialize)]
pub(super) struct TrustSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<Value>,
    allowlisted: bool,
    authenticated: bool,
    first_contact: bool,
}

/// The fields of a stored verdict the sender decision reads; the rest (SPF, DKIM, ARC
/// results...) is skipped without being built. A verdict that is not an object reads as
/// empty, which decides "not authenticated", the safe reading.
#[derive(Deserialize, Default)]
struct Proof {
    #[serde(default)]
    dmarc: Value,
    #[serde(default)]
    internal: Value,
    #[serde(default)]
    sender: Value,
}

impl StoredMessage {
    /// The list item, borrowing this record.
    pub fn summary(&self) -> Summary<'_> {
        let auth = self.auth_summary_parts();
        let proven = auth.sender_authenticated;
        self.summary_with(auth, proven)
    }

    /// The list item with `auth` as given; `proven`: whether the sender is authenticated.
    pub(super) fn summary_with<A>(&self, auth: A, proven: bool) -> Summary<'_, A> {
        let t = self.trust.unwrap_or_default();
        Summary {
            attachments: &self.attachments,
            cc: &self.cc,
            date: self.date.map(rfc3339),
            external_content: self.external,
            flags: &self.flags,
            folder: self.folder.name(),
            from: self.from.as_ref(),
            id: &self.id,
            labels: &self.labels,
            message_id: self.message_id.as_deref(),
            preview: &self.preview,
            received_at: rfc3339_millis(self.received_at_ms),
            reply_to: &self.reply_to,
            size: self.size,
            subject: &self.subject,
            thread_id: &self.thread_id,
            to: &self.to,
            trust: TrustSummary {
                agent: self.agent_trust_given(proven),
                allowlisted: t.allowlisted,
                authenticated: proven,
                first_contact: t.first_contact,
            },
            uid: self.uid,
            unread: self.is_unread(),
            auth,
        }
    }

    /// `auth` of a list item, with the verdict read once.
    pub(super) fn auth_summary_parts(&self) -> AuthSummary {
        let from_domain = self.from_domain();
        AuthSummary {
            sender_authenticated: self.proven_for(from_domain.as_deref()),
            from_domain,
        }
    }

    /// [`StoredMessage::sender_authenticated`] with the From domain already computed.
    pub(super) fn proven_for(&self, domain: Option<&str>) -> bool {
        let (Some(email), Some(domain)) = (self.from.as_ref(), domain) else {
            return false;
        };
        let proof: Proof = self
            .auth_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        if proof.dmarc["result"] == "pass" {
            let evaluated = proof.dmarc["from_domain"].as_str().unwrap_or("");
            return evaluated.trim_end_matches('.').eq_ignore_ascii_case(domain);
        }
        proof.internal == true
            && proof
                .sender
                .as_str()
                .is_some_and(|s| !s.is_empty() && s.eq_ignore_ascii_case(&email.email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Folder;
    use serde_json::json;

    fn record(auth: Option<Value>) -> StoredMessage {
        StoredMessage {
            id: "msg_a".into(),
            agent_id: "ag_a".into(),
            folder: Folder::Inbox,
            uid: 7,
            thread_id: "th_a".into(),
            modseq: 3,
            flags: vec!["\\Flagged".into()],
            labels: vec!["work".into()],
            received_at_ms: 1_700_000_000_123,
            size: 1234,
            from: Some(Addr {
                name: Some("Bank".into()),
                email: "a@Bank.test".into(),
            }),
            to: vec![Addr {
                name: None,
                email: "ops@agents.test".into(),
            }],
            cc: vec![],
            reply_to: vec![],
            subject: "Your \"code\"".into(),
            date: Some(1_700_000_000),
            message_id: Some("<m@bank.test>".into()),
            preview: "line\nnext".into(),
            attachments: vec![],
            auth_json: auth.map(|a| a.to_string()),
            envelope_from: "a@bank.test".into(),
            envelope_to: vec!["ops@agents.test".into()],
            external: true,
            trust: Some(crate::mailbox::Trust {
                first_contact: true,
                allowlisted: false,
            }),
        }
    }

    /// The summary as the old `serde_json::json!` tree built it: the typed one must give the
    /// same JSON.
    fn reference(m: &StoredMessage) -> Value {
        let mut v = json!({
            "id": m.id, "thread_id": m.thread_id, "folder": m.folder.name(), "uid": m.uid,
            "labels": m.labels, "flags": m.flags, "unread": m.is_unread(), "from": m.from,
            "to": m.to, "cc": m.cc, "reply_to": m.reply_to, "subject": m.subject,
            "date": m.date.map(rfc3339), "received_at": rfc3339_millis(m.received_at_ms),
            "size": m.size, "preview": m.preview, "attachments": m.attachments,
            "message_id": m.message_id, "external_content": m.external,
            "auth": {"sender_authenticated": m.sender_authenticated(),
                     "from_domain": m.from_domain()},
            "trust": {"authenticated": m.sender_authenticated(),
                      "first_contact": m.is_first_contact(),
                      "allowlisted": m.is_allowlisted()},
        });
        if let Some(agent) = m.agent_trust() {
            v["trust"]["agent"] = agent;
        }
        v
    }

    #[test]
    fn typed_summary_gives_the_json_of_the_tree() {
        let verdicts = [
            None,
            Some(json!({"dmarc": {"result": "pass", "from_domain": "bank.test."}})),
            Some(json!({"dmarc": {"result": "pass", "from_domain": "attacker.test"}})),
            Some(json!({"dmarc": "pass"})),
            Some(json!({"internal": true, "sender": "A@bank.test"})),
            Some(json!({"internal": "true", "sender": "a@bank.test"})),
            Some(json!({"spf": {"result": "pass"}, "dkim": [{"d": "x"}],
                        "agent": {"verified": true, "did": "did:web:x"}})),
            Some(
                json!({"dmarc": {"result": "pass", "from_domain": "bank.test"},
                        "agent": {"verified": true, "did": "did:web:x"}}),
            ),
            Some(json!(["not", "an", "object"])),
        ];
        for auth in verdicts {
            let m = record(auth.clone());
            let typed: Value =
                serde_json::from_slice(&serde_json::to_vec(&m.summary()).unwrap()).unwrap();
            assert_eq!(typed, reference(&m), "{auth:?}");
            assert_eq!(m.summary_json(), reference(&m));
        }
        let mut m = record(None);
        m.from = None;
        m.date = None;
        m.flags = vec![crate::mailbox::flags::SEEN.into()];
        assert_eq!(m.summary_json(), reference(&m));
        let typed = serde_json::to_string(&m.summary()).unwrap();
        assert!(
            typed.starts_with("{\"attachments\":[],\"auth\":"),
            "{typed}"
        );
    }
}
