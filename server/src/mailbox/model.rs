//! The stored records and the JSON every front-end returns for them (REST and MCP share it,
//! so they cannot drift).

use super::flags::SEEN;
use super::Folder;
use crate::extract::{Addr, AttachmentInfo, Code, Link};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What the caller of [`super::MailboxService::deliver`] knows that the message does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryMeta {
    /// Unix milliseconds the message was accepted (IMAP INTERNALDATE; listing order).
    pub received_at_ms: i64,
    pub labels: Vec<String>,
    /// The mailauth verdict (SPF, DKIM, DMARC, ARC) as JSON; None for our own copies.
    pub auth: Option<Value>,
    /// SMTP MAIL FROM; empty for the null sender `<>`.
    pub envelope_from: String,
    /// SMTP RCPT TO addresses this copy was delivered for.
    pub envelope_to: Vec<String>,
    /// Initial flags, e.g. `\Seen` for a Sent copy.
    pub flags: Vec<String>,
}

/// The compact per-message record (`Messages` tree): what listings read and what changes.
/// Large derived content lives apart in [`MessageContent`] so listing never decodes bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub agent_id: String,
    pub folder: Folder,
    /// UID within `folder`; a move gives a new one.
    pub uid: u32,
    pub thread_id: String,
    /// The agent's modseq of the last change to this message (CONDSTORE MODSEQ).
    pub modseq: u64,
    pub flags: Vec<String>,
    pub labels: Vec<String>,
    pub received_at_ms: i64,
    /// Raw RFC 5322 size in bytes.
    pub size: u64,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    pub subject: String,
    /// The Date header, unix seconds.
    pub date: Option<i64>,
    /// The Message-ID header.
    pub message_id: Option<String>,
    pub preview: String,
    pub attachments: Vec<AttachmentInfo>,
    /// The mailauth verdict as JSON text (kept as text so the record encoding never has to
    /// round-trip arbitrary JSON).
    pub auth_json: Option<String>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    /// Written by someone other than this agent (everything but its Sent and Drafts copies):
    /// its text is data, not instructions.
    pub external: bool,
    /// What delivery knew of the sender (issue 24, item 7); absent on the agent's own copies
    /// and on mail stored before: neither a first contact nor allowlisted.
    #[serde(default)]
    pub trust: Option<Trust>,
}

/// Inbound trust labels decided at delivery: whether the sender was new to this agent, and
/// whether its proven address is on the agent's or the org's allow list. `authenticated`
/// is read from the stored verdict ([`StoredMessage::sender_authenticated`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    #[serde(default)]
    pub first_contact: bool,
    #[serde(default)]
    pub allowlisted: bool,
}

/// Derived content (`MessageContent` tree): computed once at delivery for mail from others;
/// the agent's own messages (Sent, Drafts) derive it from the raw bytes when read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageContent {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub extracted_text: String,
    #[serde(default)]
    pub codes: Vec<Code>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub in_reply_to: Vec<String>,
    #[serde(default)]
    pub references: Vec<String>,
}

impl MessageContent {
    /// About what this takes on the heap (capacities, not lengths: a parse leaves slack).
    pub(super) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let s = |x: &String| x.capacity();
        let o = |x: &Option<String>| x.as_ref().map_or(0, String::capacity);
        let strings =
            |v: &Vec<String>| v.capacity() * size_of::<String>() + v.iter().map(s).sum::<usize>();
        o(&self.text)
            + o(&self.html)
            + s(&self.extracted_text)
            + self.codes.capacity() * size_of::<crate::extract::Code>()
            + self
                .codes
                .iter()
                .map(|c| s(&c.code) + s(&c.context))
                .sum::<usize>()
            + self.links.capacity() * size_of::<crate::extract::Link>()
            + self
                .links
                .iter()
                .map(|l| s(&l.url) + o(&l.text))
                .sum::<usize>()
            + self.headers.capacity() * size_of::<(String, String)>()
            + self.headers.iter().map(|(k, v)| s(k) + s(v)).sum::<usize>()
            + strings(&self.in_reply_to)
            + strings(&self.references)
    }

    /// Moves the derived content out of a parse, leaving the envelope fields for the record.
    pub(super) fn take(ex: &mut crate::extract::Extracted) -> Self {
        use std::mem::take;
        MessageContent {
            text: ex.text.take(),
            html: ex.html.take(),
            extracted_text: take(&mut ex.extracted_text),
            codes: take(&mut ex.codes),
            links: take(&mut ex.links),
            headers: take(&mut ex.headers),
            in_reply_to: take(&mut ex.in_reply_to),
            references: take(&mut ex.references),
        }
    }

    /// Derives the content from the raw bytes, as delivery would have. A message that does
    /// not parse reads as empty content, as it would have been stored; if the full parse
    /// panics, the record-only one (which made the record) still gives the bodies.
    pub(super) fn derive(raw: &[u8]) -> Self {
        use crate::extract::{parse, parse_own};
        let full = std::panic::catch_unwind(|| parse(raw));
        let parsed = match full {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("the message parser panicked; reading the bodies only");
                std::panic::catch_unwind(|| parse_own(raw)).unwrap_or(Ok(Default::default()))
            }
        };
        match parsed {
            Ok(mut ex) => MessageContent::take(&mut ex),
            Err(_) => MessageContent::default(),
        }
    }
}

/// The numbers and flags of a [`StoredMessage`], decoded without its text fields (serde
/// skips what a struct does not name, without allocating it).
#[derive(Debug, Deserialize)]
pub(super) struct LightRecord {
    pub id: String,
    pub agent_id: String,
    pub folder: Folder,
    pub uid: u32,
    pub modseq: u64,
    pub flags: Vec<String>,
    pub received_at_ms: i64,
    pub size: u64,
    #[serde(default)]
    pub date: Option<i64>,
}

impl LightRecord {
    pub(super) fn into_stored(self) -> StoredMessage {
        StoredMessage {
            id: self.id,
            agent_id: self.agent_id,
            folder: self.folder,
            uid: self.uid,
            thread_id: String::new(),
            modseq: self.modseq,
            flags: self.flags,
            labels: Vec::new(),
            received_at_ms: self.received_at_ms,
            size: self.size,
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            reply_to: Vec::new(),
            subject: String::new(),
            date: self.date,
            message_id: None,
            preview: String::new(),
            attachments: Vec::new(),
            auth_json: None,
            envelope_from: String::new(),
            envelope_to: Vec::new(),
            external: false,
            trust: None,
        }
    }
}

/// A whole message as `get` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub meta: StoredMessage,
    pub content: MessageContent,
}

/// One entry of an agent's change feed (`MailChanges`), for IMAP CONDSTORE/QRESYNC and
/// webhooks. A move is `moved_out` of the old folder/UID then `added` to the new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub modseq: u64,
    pub at_ms: i64,
    pub kind: ChangeKind,
    pub message_id: String,
    pub folder: Folder,
    pub uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    /// Flags or labels changed in place.
    Updated,
    /// Left the folder for another one (IMAP sees an expunge).
    MovedOut,
    /// Gone for good.
    Purged,
}

impl StoredMessage {
    pub fn is_unread(&self) -> bool {
        !self.flags.iter().any(|f| f == SEEN)
    }

    pub fn auth(&self) -> Value {
        self.auth_json
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    }

    /// The domain of the recorded From address, lower-case; None without a From address.
    pub fn from_domain(&self) -> Option<String> {
        let email = &self.from.as_ref()?.email;
        let (_, domain) = email.rsplit_once('@')?;
        let domain = domain.trim_end_matches('.').to_lowercase();
        (!domain.is_empty()).then_some(domain)
    }

    /// Whether the sender in `from` is proven, so a code in the message can be trusted to come
    /// from that domain. True when
    /// - inbound DMARC passed (an SPF or DKIM pass aligned with the header From) *and* the
    ///   domain DMARC evaluated is the domain of the From address this record shows (a
    ///   message whose From is not the one DMARC looked at is not authenticated), or
    /// - the message was delivered locally from one of our own agents, whose envelope sender
    ///   the server authenticated, and the From address is that sender.
    ///
    /// Anything else, including records stored before the verdict was kept in this form, is
    /// false: unauthenticated is the safe reading.
    pub fn sender_authenticated(&self) -> bool {
        self.proven_for(self.from_domain().as_deref())
    }

    /// `trust.agent`: the verdict on the message's Agent-Signature (identity::mailsig), kept
    /// with the mailauth verdict at delivery; `None` when it carried none.
    pub fn agent_trust(&self) -> Option<Value> {
        self.agent_trust_with(|| self.sender_authenticated())
    }

    /// [`StoredMessage::agent_trust`] for a caller that already knows whether the sender is
    /// proven.
    pub(super) fn agent_trust_given(&self, sender_authenticated: bool) -> Option<Value> {
        self.agent_trust_with(|| sender_authenticated)
    }

    fn agent_trust_with(&self, proven: impl FnOnce() -> bool) -> Option<Value> {
        // Most mail carries none: skip the parse for it (listings call this per item).
        if !self.auth_json.as_deref()?.contains("\"agent\"") {
            return None;
        }
        let mut a = self.auth().get("agent")?.clone();
        // A DID document may list any address, so the signature alone cannot vouch for the
        // From domain: that takes the From domain's own proof (DMARC, or our own sender).
        // Without it, `did:web:evil.example` listing `ceo@bank.example` would verify.
        if a["verified"] == true && !proven() {
            a["verified"] = false.into();
            a["reason"] = "the From domain is not authenticated (no aligned DMARC pass)".into();
        }
        a.is_object().then_some(a)
    }

    /// The list item: everything but bodies and headers ([`super::summary::Summary`], which
    /// REST listings serialise directly).
    pub fn summary_json(&self) -> Value {
        serde_json::to_value(self.summary()).unwrap_or(Value::Null)
    }

    /// `trust` of a message: `{authenticated, first_contact, allowlisted}`.
    pub fn trust_json(&self) -> Value {
        let t = self.trust.unwrap_or_default();
        json!({
            "authenticated": self.sender_authenticated(),
            "first_contact": t.first_contact,
            "allowlisted": t.allowlisted,
        })
    }

    pub fn is_first_contact(&self) -> bool {
        self.trust.is_some_and(|t| t.first_contact)
    }

    pub fn is_allowlisted(&self) -> bool {
        self.trust.is_some_and(|t| t.allowlisted)
    }

    pub(super) fn change(&self, kind: ChangeKind, modseq: u64, at_ms: i64) -> Change {
        Change {
            modseq,
            at_ms,
            kind,
            message_id: self.id.clone(),
            folder: self.folder,
            uid: self.uid,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn sample() -> StoredMessage {
        StoredMessage {
            id: "msg_a".into(),
            agent_id: "ag_a".into(),
            folder: Folder::Inbox,
            uid: 3,
            thread_id: "th_x".into(),
            modseq: 9,
            flags: vec![],
            labels: vec!["l".into()],
            received_at_ms: 1_700_000_000_123,
            size: 42,
            from: Some(Addr {
                name: Some("Bob".into()),
                email: "bob@b.test".into(),
            }),
            to: vec![],
            cc: vec![],
            reply_to: vec![],
            subject: "hi".into(),
            date: Some(1_700_000_000),
            message_id: Some("m@b.test".into()),
            preview: "p".into(),
            attachments: vec![],
            auth_json: Some(r#"{"dmarc":"pass"}"#.into()),
            envelope_from: "bob@b.test".into(),
            envelope_to: vec!["a@agents.test".into()],
            external: true,
            trust: None,
        }
    }

    #[test]
    fn json_has_the_documented_fields_and_survives_the_codec() {
        let m = Message {
            meta: sample(),
            content: MessageContent {
                text: Some("t".into()),
                headers: vec![("Subject".into(), "hi".into())],
                ..Default::default()
            },
        };
        let v = m.to_json();
        for k in [
            "id",
            "thread_id",
            "folder",
            "uid",
            "labels",
            "flags",
            "unread",
            "from",
            "to",
            "cc",
            "subject",
            "date",
            "received_at",
            "size",
            "preview",
            "text",
            "html",
            "extracted_text",
            "codes",
            "links",
            "auth",
            "attachments",
            "headers",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["folder"], "INBOX");
        assert_eq!(v["unread"], true);
        assert_eq!(v["auth"]["dmarc"], "pass");
        assert_eq!(v["from"]["email"], "bob@b.test");
        assert_eq!(v["received_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["external_content"], true);
        assert_eq!(v["headers"][0]["name"], "Subject");
        assert!(m.meta.summary_json().get("text").is_none());
        let bytes = crate::store::encode(&m.meta).unwrap();
        assert_eq!(
            crate::store::decode::<StoredMessage>(&bytes).unwrap(),
            m.meta
        );
        let bytes = crate::store::encode(&m.content).unwrap();
        assert_eq!(
            crate::store::decode::<MessageContent>(&bytes).unwrap(),
            m.content
        );
    }

    /// An Agent-Signature copied onto mail whose From domain did not pass DMARC: the whole
    /// message's `auth.agent` says unverified, as `trust.agent` does.
    #[test]
    fn a_signature_on_unauthenticated_mail_is_unverified_in_the_full_view_too() {
        let mut meta = sample();
        meta.auth_json = Some(
            r#"{"dmarc":{"result":"fail"},"agent":{"did":"did:web:agents.test:agents:ops","verified":true,"reason":"ok"}}"#
                .into(),
        );
        assert!(!meta.sender_authenticated());
        let m = Message {
            meta,
            content: MessageContent::default(),
        };
        let v = m.to_json();
        assert_eq!(v["auth"]["agent"]["verified"], false, "{v}");
        assert_eq!(v["trust"]["agent"]["verified"], false, "{v}");
    }

    #[test]
    fn a_light_read_keeps_the_numbers_and_flags() {
        let m = sample();
        let bytes = crate::store::encode(&m).unwrap();
        let l: LightRecord = crate::store::decode(&bytes).unwrap();
        let back = l.into_stored();
        assert_eq!(
            (
                back.id.as_str(),
                back.agent_id.as_str(),
                back.folder,
                back.uid
            ),
            (m.id.as_str(), m.agent_id.as_str(), m.folder, m.uid)
        );
        assert_eq!(
            (back.modseq, &back.flags, back.size),
            (m.modseq, &m.flags, m.size)
        );
        assert_eq!((back.received_at_ms, back.date), (m.received_at_ms, m.date));
        assert!(back.subject.is_empty() && back.from.is_none());
    }
}
