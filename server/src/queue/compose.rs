//! Building an RFC 5322 message from a send request (mail-builder does the MIME work).
//!
//! The agent controls content, never identity: `From` is always its own address, and the
//! headers it may add cannot replace any header that names a sender, routes the message, or
//! carries authentication results.

use super::QueueError;
use data_encoding::BASE64;
use mail_builder::headers::address::Address;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
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
    /// Where answers should go (`Reply-To`); the sender stays the agent.
    #[serde(default, deserialize_with = "one_or_many")]
    pub reply_to: Vec<String>,
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

pub(super) fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

/// [`one_or_many`] for a field that may be absent (a PATCH).
pub(super) fn opt_one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    one_or_many(d).map(Some)
}

/// Headers an agent may not set: they name senders, route or trace the message, carry
/// authentication, or are built from the request's own fields.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "reply-to",
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
];

/// Prefixes of header families an agent may not set: MIME structure, trace and
/// authentication headers, and the `Resent-*` block (which names senders too).
const RESERVED_PREFIXES: &[&str] = &["content-", "resent-", "arc-", "dkim-"];

/// Attachments per message (the size limit applies to the whole message).
const MAX_ATTACHMENTS: usize = 100;

fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// A header-bound value must stay on its own line: CR, LF or NUL (or any other control
/// character but tab) would let a caller write header lines of its choosing (issue 15, 4).
fn single_line(field: &str, value: &str) -> Result<(), QueueError> {
    if let Some(c) = value.chars().find(|c| c.is_control() && *c != '\t') {
        let what = match c {
            '\r' | '\n' => "a line break",
            '\0' => "a NUL byte",
            _ => "a control character",
        };
        return Err(QueueError::InvalidHeader(format!(
            "{field} contains {what}"
        )));
    }
    Ok(())
}

/// A Message-ID as `in_reply_to` or `references` carry it: `<id-left@id-right>`, brackets
/// optional, printable ASCII without spaces (RFC 5322 §3.6.4).
fn msg_id(field: &str, value: &str) -> Result<String, QueueError> {
    single_line(field, value)?;
    let id = bare_id(value);
    let ok = !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b','));
    if !ok {
        return Err(QueueError::InvalidHeader(format!(
            "{field} is not a Message-ID (<id@host>)"
        )));
    }
    Ok(id)
}

/// True when `value` would pass as `in_reply_to` or a `references` entry. A reply takes
/// these from a received message, whose sender chose them: an unusable one is left out
/// rather than failing the reply.
pub fn is_msg_id(value: &str) -> bool {
    msg_id("", value).is_ok()
}

/// One checked mailbox of `to`, `cc`, `bcc` or `reply_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub email: String,
}

/// Parses `addr@domain`, `<addr@domain>` or `Name <addr@domain>` with mail-parser's RFC 5322
/// address parser, and accepts it only if it is exactly one mailbox whose addr-spec is a
/// plain `local@domain` (RFC 5321 dot-string, UTF-8 allowed per RFC 6531; no quoted local
/// parts, routes or groups). The header is rebuilt from the parsed parts, so nothing the
/// caller wrote reaches the message verbatim; a non-ASCII name is RFC 2047-encoded there.
pub fn parse_mailbox(field: &str, value: &str) -> Result<Mailbox, QueueError> {
    single_line(field, value)?;
    let bad = |why: &str| {
        QueueError::InvalidHeader(format!(
            "{field} \"{}\" is not a valid address: {why}",
            value.escape_default()
        ))
    };
    let line = format!("{}\r\n", value.trim());
    let parsed = mail_parser::parsers::MessageStream::new(line.as_bytes()).parse_address();
    let mail_parser::HeaderValue::Address(mail_parser::Address::List(list)) = parsed else {
        return Err(bad("expected one address, optionally with a name"));
    };
    let [one] = list.as_slice() else {
        return Err(bad("give one address per entry"));
    };
    let email = one.address().unwrap_or_default().trim();
    if let Some(why) = addr_spec_problem(email) {
        return Err(bad(why));
    }
    let name = one
        .name()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    if let Some(n) = &name {
        single_line(field, n)?;
    }
    Ok(Mailbox {
        name,
        email: email.to_string(),
    })
}

/// Why `email` is not an address we put in a header or an envelope, if it is not.
fn addr_spec_problem(email: &str) -> Option<&'static str> {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Some("an address needs @domain");
    };
    if email.len() > 254 || local.is_empty() || local.len() > 64 {
        return Some("wrong length");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Some("misplaced dot in the local part");
    }
    // RFC 5322 atext; `%`, `!` and `:` are routing forms we never relay.
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "#$&'*+-/=?^_`{|}~.".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    if !local.chars().all(atext) {
        return Some("the local part has characters that need quoting");
    }
    if crate::identity::address::normalize_domain(domain).is_err() {
        return Some("bad domain");
    }
    None
}

fn mailboxes(field: &str, values: &[String]) -> Result<Vec<Mailbox>, QueueError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| parse_mailbox(&format!("{field}[{i}]"), v))
        .collect()
}

fn to_address(m: &Mailbox) -> Address<'_> {
    Address::new_address(m.name.as_deref(), m.email.as_str())
}

fn check_header(name: &str, value: &str) -> Result<(), QueueError> {
    let token = !name.is_empty()
        && name.len() <= 76
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token {
        return Err(QueueError::InvalidHeader(format!(
            "header name \"{}\" must be letters, digits, '-' or '_'",
            name.escape_default()
        )));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Err(QueueError::InvalidHeader(format!(
            "header \"{name}\" is set by legate and cannot be given"
        )));
    }
    single_line(&format!("header \"{name}\""), value)?;
    if value.len() > MAX_HEADER_VALUE {
        return Err(QueueError::InvalidHeader(format!(
            "header \"{name}\" is longer than {MAX_HEADER_VALUE} bytes"
        )));
    }
    Ok(())
}

/// A custom header value's limit: it is folded, but a value without spaces cannot be, and
/// RFC 5322 §2.1.1 caps a line at 998 octets.
const MAX_HEADER_VALUE: usize = 900;

/// RFC 5322 §2.1.1: no line of a message may exceed 998 octets (plus CRLF).
pub const MAX_LINE_OCTETS: usize = 998;

/// What `compose` made: the unsigned message, the Message-ID it carries and the envelope
/// recipients (to, cc and bcc as parsed addresses, in that order).
pub struct Composed {
    pub raw: Vec<u8>,
    pub message_id: String,
    pub rcpts: Vec<String>,
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
    single_line("subject", &req.subject)?;
    if req.attachments.len() > MAX_ATTACHMENTS {
        return Err(QueueError::Invalid(format!(
            "at most {MAX_ATTACHMENTS} attachments"
        )));
    }
    for (k, v) in &req.headers {
        check_header(k, v)?;
    }
    let to = mailboxes("to", &req.to)?;
    let cc = mailboxes("cc", &req.cc)?;
    let bcc = mailboxes("bcc", &req.bcc)?;
    let reply_to = mailboxes("reply_to", &req.reply_to)?;
    let in_reply_to = req
        .in_reply_to
        .as_deref()
        .map(|v| msg_id("in_reply_to", v))
        .transpose()?;
    let mut refs = req
        .references
        .iter()
        .enumerate()
        .map(|(i, r)| msg_id(&format!("references[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;
    let message_id = format!(
        "{}@{}",
        crate::util::new_id("m").trim_start_matches("m_"),
        hostname
    );
    // The display name is the operator's, but it still must not break the header.
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let name = name.trim();
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
    if !to.is_empty() {
        b = b.to(Address::new_list(to.iter().map(to_address).collect()));
    }
    if !cc.is_empty() {
        b = b.cc(Address::new_list(cc.iter().map(to_address).collect()));
    }
    if !reply_to.is_empty() {
        b = b.reply_to(Address::new_list(reply_to.iter().map(to_address).collect()));
    }
    if let Some(irt) = in_reply_to {
        if !refs.contains(&irt) {
            refs.push(irt.clone());
        }
        b = b
            .in_reply_to(MessageId::new(irt))
            .references(MessageId::new_list(refs.into_iter()));
    } else if !refs.is_empty() {
        b = b.references(MessageId::new_list(refs.into_iter()));
    }
    for (k, v) in &req.headers {
        // Text folds long values and RFC 2047-encodes non-ASCII ones.
        b = b.header(k.clone(), Text::new(v.clone()));
    }
    if let Some(t) = &req.text {
        b = b.text_body(t.as_str());
    }
    if let Some(h) = &req.html {
        b = b.html_body(h.as_str());
    }
    for (i, a) in req.attachments.iter().enumerate() {
        let field = format!("attachments[{i}].filename");
        single_line(&field, &a.filename)?;
        if a.filename.trim().is_empty() || a.filename.contains(['/', '\\']) {
            return Err(QueueError::InvalidHeader(format!(
                "{field} \"{}\" is not allowed (empty or a path)",
                a.filename.escape_default()
            )));
        }
        let bytes = BASE64
            .decode(a.content.trim().as_bytes())
            .or_else(|_| data_encoding::BASE64_NOPAD.decode(a.content.trim().as_bytes()))
            .map_err(|_| {
                QueueError::Invalid(format!(
                    "attachment \"{}\" is not valid base64",
                    a.filename.escape_default()
                ))
            })?;
        let ct_ok = a.content_type.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && a.content_type
                    .bytes()
                    .all(|c| c.is_ascii_graphic() && c != b'"' && c != b';')
        });
        if !ct_ok {
            return Err(QueueError::InvalidHeader(format!(
                "attachments[{i}].content_type \"{}\" is not a MIME type (type/subtype)",
                a.content_type.escape_default()
            )));
        }
        b = b.attachment(a.content_type.clone(), a.filename.clone(), bytes);
    }
    let raw = b
        .write_to_vec()
        .map_err(|e| QueueError::Invalid(format!("cannot build the message: {e}")))?;
    // The builder encodes bodies and folds headers; this is the guard that it did.
    if super::longlines::longest_line(&raw) > MAX_LINE_OCTETS {
        return Err(QueueError::InvalidHeader(
            "a header would exceed 998 octets on one line".into(),
        ));
    }
    let rcpts = to
        .iter()
        .chain(&cc)
        .chain(&bcc)
        .map(|m| m.email.clone())
        .collect();
    Ok(Composed {
        raw,
        message_id,
        rcpts,
    })
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
            ("Reply-To", "evil@x"),
            ("Resent-From", "evil@x"),
            ("X-Nul", "a\0b"),
        ] {
            let mut r = req();
            r.headers.insert(k.into(), v.into());
            assert!(
                matches!(
                    compose(&r, "a@a.test", "", "h", 0),
                    Err(QueueError::InvalidHeader(_))
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

    /// Every caller-given field that reaches a header: CR, LF and NUL are refused with a
    /// message naming the field (issue 15, 4).
    #[test]
    fn no_field_can_add_header_lines() {
        let evil = [
            "x\r\nBcc: evil@x.test",
            "x\nFrom: evil@x.test",
            "x\0y",
            "x\rFrom: e@x",
        ];
        type Set = fn(&mut SendRequest, String);
        let fields: [(&str, Set); 9] = [
            ("subject", |r, v| r.subject = v),
            ("to[0]", |r, v| r.to = vec![format!("Bob {v} <bob@b.test>")]),
            ("cc[0]", |r, v| r.cc = vec![format!("c{v}@b.test")]),
            ("bcc[0]", |r, v| r.bcc = vec![format!("<d@b.test{v}>")]),
            ("reply_to[0]", |r, v| {
                r.reply_to = vec![format!("\"{v}\" <e@b.test>")]
            }),
            ("in_reply_to", |r, v| {
                r.in_reply_to = Some(format!("<a{v}@x>"))
            }),
            ("references[0]", |r, v| {
                r.references = vec![format!("<a{v}@x>")]
            }),
            ("attachments[0].filename", |r, v| {
                r.attachments = vec![AttachmentIn {
                    filename: format!("a{v}.txt"),
                    content_type: "text/plain".into(),
                    content: "aGk=".into(),
                }]
            }),
            ("header \"X-Custom\"", |r, v| {
                r.headers.insert("X-Custom".into(), v);
            }),
        ];
        for (field, set) in fields {
            for v in evil {
                let mut r = req();
                set(&mut r, v.to_string());
                match compose(&r, "a@a.test", "", "h", 0) {
                    Err(QueueError::InvalidHeader(m)) => assert!(m.starts_with(field), "{m}"),
                    Err(e) => panic!("{field} {v:?}: {e:?}"),
                    Ok(c) => panic!("{field} {v:?}: {}", String::from_utf8_lossy(&c.raw)),
                }
            }
        }
    }

    #[test]
    fn addresses_are_parsed_and_names_encoded() {
        let mut r = req();
        r.to = vec!["Zoë Müller <zoe@b.test>".into(), " <x@b.test> ".into()];
        r.cc = vec!["\"Doe, Jane\" <jane@c.test>".into()];
        r.reply_to = vec!["Help Desk <help@a.test>".into()];
        let c = compose(&r, "a@a.test", "Agent Ünï", "h", 0).unwrap();
        assert_eq!(c.rcpts, ["zoe@b.test", "x@b.test", "jane@c.test"]);
        assert!(c.raw.is_ascii(), "{}", String::from_utf8_lossy(&c.raw));
        let m = mail_parser::MessageParser::default().parse(&c.raw).unwrap();
        let to = m.to().unwrap();
        assert_eq!(to.first().unwrap().name(), Some("Zoë Müller"));
        assert_eq!(to.first().unwrap().address(), Some("zoe@b.test"));
        assert_eq!(m.cc().unwrap().first().unwrap().name(), Some("Doe, Jane"));
        assert_eq!(m.from().unwrap().first().unwrap().name(), Some("Agent Ünï"));
        assert_eq!(
            m.reply_to().unwrap().first().unwrap().address(),
            Some("help@a.test")
        );
        for bad in [
            "two@b.test, more@b.test",
            "nodomain",
            "\"quoted local\"@b.test",
            "a@b@c.test",
            "a@-bad-.test",
            "group: a@b.test;",
            "x%y@b.test",
            "",
        ] {
            let mut r = req();
            r.to = vec![bad.into()];
            assert!(
                matches!(
                    compose(&r, "a@a.test", "", "h", 0),
                    Err(QueueError::InvalidHeader(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_agents_name_cannot_break_its_from_line() {
        let c = compose(&req(), "a@a.test", "Ops\r\nBcc: evil@x.test", "h", 0).unwrap();
        let m = mail_parser::MessageParser::default().parse(&c.raw).unwrap();
        assert_eq!(m.header_values("Bcc").count(), 0);
        assert_eq!(
            m.from().unwrap().first().unwrap().address(),
            Some("a@a.test")
        );
    }

    #[test]
    fn long_text_and_headers_stay_within_998_octets() {
        let mut r = req();
        r.text = Some("z".repeat(20_000));
        r.html = Some(format!("<p>{}</p>", "w ".repeat(10_000)));
        r.subject = "s ".repeat(600);
        r.headers.insert("X-Long".into(), "v ".repeat(400));
        let c = compose(&r, "a@a.test", "", "h", 0).unwrap();
        assert!(super::super::longlines::longest_line(&c.raw) <= 998);
        let m = mail_parser::MessageParser::default().parse(&c.raw).unwrap();
        assert_eq!(m.body_text(0).unwrap(), "z".repeat(20_000));
        let mut r = req();
        r.headers.insert("X-Long".into(), "v".repeat(901));
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
