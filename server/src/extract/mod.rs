//! Turns one raw RFC 5322 message into the fields a reader needs (DESIGN §5): envelope
//! fields, the decoded bodies, the *new* content of the message (`extracted_text`), a one-line
//! `preview`, one-time `codes` and classified `links`, and the attachment list.
//!
//! Pure: bytes in, values out; no store, no network. Inbound SMTP calls [`parse`] once per
//! message, so every regex is compiled once (`LazyLock`) and nothing here may panic on what
//! a sender wrote.
//!
//! Pipeline (each step is one file):
//! 1. `parse`: mail-parser does MIME, transfer encodings and charsets; we pick the bodies.
//! 2. `html`: HTML -> text with html2text, after pruning the DOM of hidden preheaders,
//!    quoted history (Gmail, Outlook, Apple, Thunderbird, Yahoo) and signature blocks; anchors
//!    are collected with their text on the way.
//! 3. `body`: chooses the source text (text/plain unless it is a stub) and runs `quotes`
//!    (reply headers, `>` quotes, Outlook header blocks, forwards) then `signature`
//!    (`-- `, "Sent from my iPhone", footers, disclaimers) and `text` (whitespace).
//! 4. `codes` and `links` read the quote-free text *before* footer removal, so that a code or
//!    an unsubscribe link in a footer is still seen, but nothing from quoted history is.
//!
//! Forwarded messages keep the forwarded content: the forward *is* the message (a person
//! forwards a verification mail to an agent, say), so its header block and body stay in
//! `extracted_text`, and codes and links inside it are found. Quoted history *inside* the
//! forwarded message is still removed. An inline forward is recognised by its marker
//! ("---------- Forwarded message ---------", "Begin forwarded message:", translations), or,
//! when the subject says "Fwd:"/"FW:"/"WG:"/"TR:"..., by an Outlook header block. A message
//! forwarded *as an attachment* (message/rfc822) is listed in `attachments` only.
//!
//! Limits that keep a hostile sender from stalling delivery: HTML over 1 MiB is rendered
//! only up to that size, and HTML nested deeper than html5ever handles quickly is reduced
//! to its text without parsing (see `html`).

mod body;
mod codes;
mod html;
mod links;
mod nesting;
mod parse;
mod quotes;
mod signature;
mod text;

pub use nesting::nesting_bomb;

#[cfg(test)]
mod corpus_tests;

use serde::{Deserialize, Serialize};

/// Why a message could not be read at all. Anything mail-parser can make sense of, however
/// odd, is returned as an [`Extracted`] instead, so a peer cannot make delivery fail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("message is empty")]
    Empty,
    #[error("message could not be parsed as RFC 5322")]
    Unparseable,
}

/// Everything the mailbox and API layers store and serve about one message.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Extracted {
    pub subject: String,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    /// Unix seconds from the Date header; `None` when absent or unparseable.
    pub date: Option<i64>,
    /// Without the angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The text/plain body as decoded (several inline text parts are joined by a blank line).
    pub text: Option<String>,
    /// The text/html body as decoded.
    pub html: Option<String>,
    /// New content only: no quoted history, reply headers, signatures or footers.
    pub extracted_text: String,
    /// About 200 characters of `extracted_text` on one line, cut at a word, "…" if cut.
    pub preview: String,
    pub codes: Vec<Code>,
    pub links: Vec<Link>,
    pub attachments: Vec<AttachmentInfo>,
    /// Top-level header fields in order: name as written, value unfolded and trimmed.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Addr {
    pub name: Option<String>,
    pub email: String,
}

/// A one-time or verification code, as the user would type it (group separators removed:
/// "123 456" and "123-456" become "123456", Google's "G-123456" becomes "123456").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Code {
    pub code: String,
    /// The sentence or line around the code, so a reader can tell what it is for.
    pub context: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    pub kind: LinkKind,
    /// Anchor text for HTML links; `None` for bare URLs in plain text.
    pub text: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Verification,
    SignIn,
    PasswordReset,
    Unsubscribe,
    Other,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// Position in the message's attachment list; stable for the same raw bytes.
    pub id: u32,
    pub filename: Option<String>,
    /// `type/subtype`, lower case.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// Parses one raw message. Errors only when there is nothing mail-parser can read.
pub fn parse(raw: &[u8]) -> Result<Extracted, ExtractError> {
    parse_as(raw, Depth::Full)
}

/// What the record of an agent's own message needs: envelope, attachments, bodies and the
/// preview. Its content is derived again when read (see `mailbox`), so the codes, links and
/// header list, which would be thrown away, are left empty.
pub fn parse_own(raw: &[u8]) -> Result<Extracted, ExtractError> {
    parse_as(raw, Depth::Record)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Full,
    Record,
}

fn parse_as(raw: &[u8], depth: Depth) -> Result<Extracted, ExtractError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ExtractError::Empty);
    }
    if nesting::nesting_bomb(raw) {
        tracing::warn!("message nested too deep to parse; extracting its headers only");
        let message = mail_parser::MessageParser::default()
            .parse_headers(raw)
            .ok_or(ExtractError::Unparseable)?;
        return Ok(parse::envelope(&message, depth == Depth::Full));
    }
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or(ExtractError::Unparseable)?;
    let mut out = parse::envelope(&message, depth == Depth::Full);
    let bodies = parse::bodies(&message);
    out.attachments = parse::attachments(&message);

    let is_forward = quotes::is_forward_subject(&out.subject);
    let rendered = bodies.html.as_deref().map(|h| {
        html::render(
            h,
            html::Prune {
                quotes: !is_forward,
            },
        )
    });
    let cleaned = body::clean(
        bodies.text_unflowed.as_deref(),
        rendered.as_ref(),
        is_forward,
    );

    if depth == Depth::Full {
        out.codes = codes::find(&out.subject, &cleaned.content);
        out.links = links::collect(
            &cleaned.content,
            rendered
                .as_ref()
                .map(|r| r.links.as_slice())
                .unwrap_or_default(),
            &parse::list_unsubscribe_urls(&message),
        );
    }
    out.preview = text::preview(&cleaned.extracted, text::PREVIEW_CHARS);
    out.extracted_text = cleaned.extracted;
    out.text = bodies.text;
    out.html = bodies.html;
    Ok(out)
}

/// The decoded bytes of attachment `id` (as numbered in [`Extracted::attachments`]).
pub fn attachment(raw: &[u8], id: u32) -> Option<(AttachmentInfo, Vec<u8>)> {
    if nesting::nesting_bomb(raw) {
        return None;
    }
    let message = mail_parser::MessageParser::default().parse(raw)?;
    parse::attachment(&message, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_an_error() {
        assert_eq!(parse(b""), Err(ExtractError::Empty));
        assert_eq!(parse(b"\r\n \t\n"), Err(ExtractError::Empty));
    }

    #[test]
    fn anything_mail_parser_reads_is_ok() {
        for raw in [&b"x"[..], b"\xff\xfe", b"no headers at all\r\n\r\nbody"] {
            match parse(raw) {
                Ok(_) | Err(ExtractError::Unparseable) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        let e = parse(b"Subject: only a subject\r\n\r\n").unwrap();
        assert_eq!(e.subject, "only a subject");
        assert_eq!(e.extracted_text, "");
        assert!(e.codes.is_empty() && e.links.is_empty());
    }

    #[test]
    fn own_parse_has_the_record_fields_of_a_full_one() {
        let raw = b"From: A <a@example.com>\r\nTo: b@example.com\r\nSubject: Hi\r\n\
                    Message-ID: <m1@example.com>\r\nReferences: <m0@example.com>\r\n\r\n\
                    Your code is 482913, see https://example.com/x\r\n";
        let full = parse(raw).unwrap();
        let own = parse_own(raw).unwrap();
        assert!(own.codes.is_empty() && own.links.is_empty() && own.headers.is_empty());
        assert!(!full.codes.is_empty() && !full.links.is_empty() && !full.headers.is_empty());
        let record = |e: &Extracted| {
            (
                e.subject.clone(),
                e.from.clone(),
                e.to.clone(),
                e.message_id.clone(),
                e.references.clone(),
                e.preview.clone(),
                e.extracted_text.clone(),
                e.text.clone(),
            )
        };
        assert_eq!(record(&own), record(&full));
    }

    #[test]
    fn link_kind_serialises_snake_case() {
        let json = serde_json::to_string(&LinkKind::PasswordReset).unwrap();
        assert_eq!(json, "\"password_reset\"");
        let back: LinkKind = serde_json::from_str("\"sign_in\"").unwrap();
        assert_eq!(back, LinkKind::SignIn);
    }

    #[test]
    fn extracted_round_trips_through_json() {
        let raw = b"From: A <a@example.com>\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nYour verification code is 482913.\r\n";
        let e = parse(raw).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        let back: Extracted = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.codes[0].code, "482913");
    }

    #[test]
    fn attachment_out_of_range_is_none() {
        let raw = b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n";
        assert!(attachment(raw, 0).is_none());
        assert!(attachment(b"", 3).is_none());
    }
}
