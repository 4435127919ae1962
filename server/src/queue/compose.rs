//! Building an RFC 5322 message from a send request (mail-builder does the MIME work).
//!
//! The agent controls content, never identity: `From` is always its own address, and the
//! headers it may add cannot replace any header that names a sender, routes the message, or
//! carries authentication results.

use super::QueueError;
use data_encoding::BASE64;
use mail_builder::headers::address::Address;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `POST /v1/messages/send` (DESIGN §6). `to`, `cc` and `bcc` take a string or a list.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default, deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A Message-ID (with or without `<>`) this message answers.
    pub in_reply_to: Option<String>,
    /// Full `References` chain; `reply` fills it from the original.
    #[serde(default)]
    pub references: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    pub filename: String,
    #[serde(default = "octet_stream")]
    pub content_type: String,
    /// Base64 (standard alphabet, padding optional).
    pub content: String,
}

fn octet_stream() -> String {
    "application/octet-stream".into()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Headers an agent may not set: they name senders, route or trace the message, carry
/// authentication, or are built from the request's own fields.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "return-path",
    "received",
    "dkim-signature",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "authentication-results",
    "received-spf",
    "delivered-to",
    "resent-from",
    "resent-sender",
    "resent-to",
];

/// Attachments per message (the size limit applies to the whole message).
const MAX_ATTACHMENTS: usize = 100;

fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn check_header(name: &str, value: &str) -> Result<(), QueueError> {
    let token = !name.is_empty()
        && name.len() <= 76
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token {
        return Err(QueueError::Invalid(format!(
            "header name \"{name}\" must be letters, digits, '-' or '_'"
        )));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("content-") {
        return Err(QueueError::Invalid(format!(
            "header \"{name}\" is set by legate and cannot be given"
        )));
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(QueueError::Invalid(format!(
            "header \"{name}\" contains a line break"
        )));
    }
    Ok(())
}

/// What `compose` made: the unsigned message and the Message-ID it carries.
pub struct Composed {
    pub raw: Vec<u8>,
    pub message_id: String,
}

/// Builds the message. `from` is the agent's address, `name` its display name.
pub fn compose(
    req: &SendRequest,
    from: &str,
    name: &str,
    hostname: &str,
    date_unix: i64,
) -> Result<Composed, QueueError> {
    if req.text.is_none() && req.html.is_none() && req.attachments.is_empty() {
        return Err(QueueError::Invalid(
            "a message needs text, html or an attachment".into(),
        ));
    }
    if req.subject.contains(['\r', '\n']) {
        return Err(QueueError::Invalid("subject contains a line break".into()));
    }
    if req.attachments.len() > MAX_ATTACHMENTS {
        return Err(QueueError::Invalid(format!(
            "at most {MAX_ATTACHMENTS} attachments"
        )));
    }
    for (k, v) in &req.headers {
        check_header(k, v)?;
    }
    let message_id = format!(
        "{}@{}",
        crate::util::new_id("m").trim_start_matches("m_"),
        hostname
    );
    let sender: Address<'_> = if name.is_empty() {
        Address::new_address(None::<&str>, from)
    } else {
        Address::new_address(Some(name), from)
    };
    let mut b = MessageBuilder::new()
        .from(sender)
        .subject(req.subject.as_str())
        .date(date_unix)
        .message_id(message_id.clone());
    if !req.to.is_empty() {
        b = b.to(req.to.iter().map(|a| a.as_str()).collect::<Vec<_>>());
    }
    if !req.cc.is_empty() {
        b = b.cc(req.cc.iter().map(|a| a.as_str()).collect::<Vec<_>>());
    }
    if let Some(irt) = &req.in_reply_to {
        let irt = bare_id(irt);
        if irt.is_empty() || irt.contains(['\r', '\n', ' ', '<', '>']) {
            return Err(QueueError::Invalid(
                "in_reply_to is not a Message-ID".into(),
            ));
        }
        let mut refs: Vec<String> = req.references.iter().map(|r| bare_id(r)).collect();
        if !refs.contains(&irt) {
            refs.push(irt.clone());
        }
        b = b
            .in_reply_to(MessageId::new(irt))
            .references(MessageId::new_list(refs.into_iter()));
    }
    for (k, v) in &req.headers {
        b = b.header(k.clone(), Raw::new(v.clone()));
    }
    if let Some(t) = &req.text {
        b = b.text_body(t.as_str());
    }
    if let Some(h) = &req.html {
        b = b.html_body(h.as_str());
    }
    for a in &req.attachments {
        let bytes = BASE64
            .decode(a.content.trim().as_bytes())
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(a.content.trim().as_bytes()))
            .map_err(|_| {
                QueueError::Invalid(format!("attachment \"{}\" is not valid base64", a.filename))
            })?;
        let ct_ok = a.content_type.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && a.content_type
                    .bytes()
                    .all(|c| c.is_ascii_graphic() && c != b'"' && c != b';')
        });
        if !ct_ok {
            return Err(QueueError::Invalid(format!(
                "attachment \"{}\" has an invalid content_type",
                a.filename
            )));
        }
        if a.filename.contains(['\r', '\n', '\0', '/', '\\']) || a.filename.is_empty() {
            return Err(QueueError::Invalid(format!(
                "attachment filename \"{}\" is not allowed",
                a.filename.escape_default()
            )));
        }
        b = b.attachment(a.content_type.clone(), a.filename.clone(), bytes);
    }
    let raw = b
        .write_to_vec()
        .map_err(|e| QueueError::Invalid(format!("cannot build the message: {e}")))?;
    Ok(Composed { raw, message_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> SendRequest {
        SendRequest {
            to: vec!["bob@b.test".into()],
            subject: "Hello".into(),
            text: Some("Hi Bob".into()),
            ..Default::default()
        }
    }

    #[test]
    fn builds_from_with_the_agents_address_and_no_bcc_header() {
        let mut r = req();
        r.bcc = vec!["hidden@c.test".into()];
        r.headers.insert("X-Trace".into(), "abc".into());
        let c = compose(&r, "ops@a.test", "Ops bot", "mx.a.test", 1_700_000_000).unwrap();
        let text = String::from_utf8(c.raw).unwrap();
        assert!(text.contains("From: \"Ops bot\" <ops@a.test>"), "{text}");
        assert!(text.contains("To: <bob@b.test>"));
        assert!(text.contains("X-Trace: abc"));
        assert!(!text.to_lowercase().contains("hidden@c.test"));
        assert!(text.contains(&format!("Message-ID: <{}>", c.message_id)));
        assert!(c.message_id.ends_with("@mx.a.test"));
    }

    #[test]
    fn reply_headers_carry_the_chain() {
        let mut r = req();
        r.in_reply_to = Some("<b@x>".into());
        r.references = vec!["<a@x>".into()];
        let c = compose(&r, "ops@a.test", "", "h", 0).unwrap();
        let text = String::from_utf8(c.raw).unwrap();
        assert!(text.contains("In-Reply-To: <b@x>"), "{text}");
        assert!(text.contains("References: <a@x> <b@x>"), "{text}");
    }

    #[test]
    fn refuses_identity_headers_injection_and_bad_attachments() {
        for (k, v) in [
            ("From", "evil@x"),
            ("DKIM-Signature", "x"),
            ("Content-Type", "text/plain"),
            ("X-Ok", "a\r\nBcc: x"),
            ("Bad Name", "x"),
        ] {
            let mut r = req();
            r.headers.insert(k.into(), v.into());
            assert!(
                matches!(
                    compose(&r, "a@a.test", "", "h", 0),
                    Err(QueueError::Invalid(_))
                ),
                "{k}"
            );
        }
        let mut r = req();
        r.attachments.push(AttachmentIn {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            content: "!!!not base64".into(),
        });
        assert!(compose(&r, "a@a.test", "", "h", 0).is_err());
        let mut r = req();
        r.text = None;
        assert!(compose(&r, "a@a.test", "", "h", 0).is_err());
        let mut r = req();
        r.subject = "a\r\nBcc: x".into();
        assert!(compose(&r, "a@a.test", "", "h", 0).is_err());
    }

    #[test]
    fn attachments_are_encoded() {
        let mut r = req();
        r.attachments.push(AttachmentIn {
            filename: "report.pdf".into(),
            content_type: "application/pdf".into(),
            content: BASE64.encode(b"%PDF-1.4 hello"),
        });
        let c = compose(&r, "a@a.test", "", "h", 0).unwrap();
        let parsed = mail_parser::MessageParser::default().parse(&c.raw).unwrap();
        assert_eq!(parsed.attachment_count(), 1);
        assert_eq!(parsed.attachment(0).unwrap().contents(), b"%PDF-1.4 hello");
    }
}
