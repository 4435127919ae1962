//! What FETCH and SEARCH read out of a raw RFC 5322 message: ENVELOPE, BODYSTRUCTURE,
//! body sections and their decoded (BINARY) forms.
//!
//! mail-parser parses; this module maps its tree onto IMAP's part numbering and data items.
//! Everything here is pure and sees hostile bytes: no input may make it panic, and
//! recursion stops at [`tree::MAX_DEPTH`].

mod binary;
mod envelope;
mod search;
mod section;
mod strings;
mod structure;
mod tree;

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::imap_types::body::BodyStructure;
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::fetch::Section;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, PartType};

use tree::{Node, Src};

/// A message parsed once for a FETCH of several items.
pub struct MessageView<'a> {
    /// The stored bytes: sections borrow from them, so a large attachment is never copied.
    raw: &'a [u8],
    /// mail-parser's tree, never empty (see [`MessageView::parse`]).
    /// Parsed on first use: a FETCH of whole messages or of the top-level header (what a
    /// client syncing a mailbox asks most) never pays for a MIME parse.
    msg: std::cell::OnceCell<Message<'a>>,
}

impl<'a> MessageView<'a> {
    /// Never panics on any input. A message mail-parser cannot parse (or that makes it panic)
    /// reads as one headerless text/plain part: RFC 9051 §6.4.5 gives any non-MIME message
    /// a part 1, so every client request still has an answer.
    pub fn parse(raw: &'a [u8]) -> MessageView<'a> {
        MessageView {
            raw,
            msg: std::cell::OnceCell::new(),
        }
    }

    fn message(&self) -> &Message<'a> {
        self.msg.get_or_init(|| full_parse(self.raw))
    }

    /// RFC 9051 §7.5.2 ENVELOPE of the message.
    pub fn envelope(&self) -> Envelope<'static> {
        envelope::envelope(&self.root())
    }

    /// BODYSTRUCTURE (`extended`: with MD5, disposition, language and location) or BODY.
    pub fn body_structure(&self, extended: bool) -> BodyStructure<'static> {
        structure::body_structure(&self.root(), extended)
    }

    /// `BODY[section]` as RFC 9051 §6.4.5 defines each form; empty for a part that does not
    /// exist (the server answers with an empty string, as other servers do).
    pub fn section(&self, section: Option<&Section<'_>>) -> Cow<'a, [u8]> {
        match section {
            None => Cow::Borrowed(self.raw),
            // The top-level header is everything up to and with the first empty line, as
            // the parse would find it; a message without one is all header.
            Some(Section::Header(None)) if self.msg.get().is_none() => {
                Cow::Borrowed(&self.raw[..header_end(self.raw)])
            }
            Some(section) => section::section(&self.root(), section),
        }
    }

    /// RFC 3516 `BINARY[part]`: the part's content with its transfer encoding removed.
    pub fn binary(&self, part: &[NonZeroU32]) -> Result<Cow<'a, [u8]>, BinaryError> {
        if part.is_empty() {
            return Ok(Cow::Borrowed(self.raw));
        }
        binary::binary(&self.root(), part)
    }

    /// For SEARCH HEADER/FROM/TO/CC/BCC/SUBJECT: every value of a top-level header field,
    /// RFC 2047 decoded and unfolded.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        search::header_values(&self.root(), name)
    }

    /// For SEARCH BODY: the decoded text of the text/* parts, nested messages included, as
    /// UTF-8 (HTML reduced to its text). SEARCH TEXT is the headers and this.
    pub fn body_text(&self) -> String {
        search::body_text(&self.root())
    }

    /// The Date header as unix seconds.
    pub fn sent_date(&self) -> Option<i64> {
        search::sent_date(&self.root())
    }

    /// The Date header's calendar date in its own zone, as unix seconds of that date's
    /// midnight UTC (SEARCH SENTBEFORE/SENTON/SENTSINCE).
    pub fn sent_day(&self) -> Option<i64> {
        search::sent_day(&self.root())
    }

    fn root(&self) -> Node<'_, 'a> {
        // `parse` never keeps an empty tree, so the root exists; the fallback is the same
        // headerless text part `plain` makes, kept only so that no path can panic.
        let msg = self.message();
        Node::root(msg, Src::Stored(self.raw), 0).unwrap_or(Node {
            part: &EMPTY_PART,
            msg,
            index: 0,
            src: Src::Stored(self.raw),
            depth: 0,
        })
    }
}

/// mail-parser's tree of `raw`, never empty; see [`MessageView::parse`] for the fallbacks.
fn full_parse(raw: &[u8]) -> Message<'_> {
    if crate::extract::nesting_bomb(raw) {
        tracing::warn!("message nested too deep to parse; rendering its body as text");
        return header_and_text(raw);
    }
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw));
    match parsed {
        Ok(Some(msg)) if !msg.parts.is_empty() => msg,
        Ok(_) => plain(raw),
        Err(_) => {
            tracing::error!("the message parser panicked; rendering the message as text");
            plain(raw)
        }
    }
}

/// The length of the top-level header with its terminating empty line: the mailbox's
/// header cache keeps exactly these bytes, so both must agree.
fn header_end(raw: &[u8]) -> usize {
    crate::mailbox::header_len(raw)
}

static EMPTY_PART: MessagePart<'static> = MessagePart {
    headers: Vec::new(),
    is_encoding_problem: true,
    body: PartType::Text(Cow::Borrowed("")),
    encoding: Encoding::None,
    offset_header: 0,
    offset_body: 0,
    offset_end: 0,
};

/// The top-level header as mail-parser reads it, and everything after it as one text part.
fn header_and_text(raw: &[u8]) -> Message<'_> {
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse_headers(raw));
    let Ok(Some(mut msg)) = parsed else {
        return plain(raw);
    };
    let Some(root) = msg.parts.first_mut() else {
        return plain(raw);
    };
    let header_end = root.headers.last().map_or(0, |h| h.offset_end as usize);
    let rest = raw.get(header_end..).unwrap_or_default();
    let blank = if rest.starts_with(b"\r\n") {
        2
    } else {
        usize::from(rest.starts_with(b"\n"))
    };
    let body = u32::try_from(header_end + blank).unwrap_or(u32::MAX);
    root.offset_header = 0;
    root.offset_body = body;
    root.offset_end = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    root.body = PartType::Text(String::from_utf8_lossy(
        raw.get(body as usize..).unwrap_or_default(),
    ));
    msg.text_body = vec![0];
    msg
}

/// The whole input as one headerless text/plain part.
fn plain(raw: &[u8]) -> Message<'_> {
    let end = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    Message {
        parts: vec![MessagePart {
            headers: Vec::new(),
            is_encoding_problem: true,
            body: PartType::Text(String::from_utf8_lossy(raw)),
            encoding: Encoding::None,
            offset_header: 0,
            offset_body: 0,
            offset_end: end,
        }],
        text_body: vec![0],
        raw_message: Cow::Borrowed(raw),
        ..Default::default()
    }
}

/// RFC 9051 §6.4.5 `<origin.length>`: an origin past the end gives the empty string, a
/// length past the end gives what there is.
pub fn partial(bytes: &[u8], origin: u32, length: Option<u32>) -> &[u8] {
    let start = (origin as usize).min(bytes.len());
    let rest = &bytes[start..];
    match length {
        Some(len) => &rest[..(len as usize).min(rest.len())],
        None => rest,
    }
}

/// Why `BINARY[part]` has no content to give.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryError {
    /// The part's transfer encoding is not one we decode (RFC 3516: `NO [UNKNOWN-CTE]`).
    #[error("unknown content transfer encoding")]
    UnknownCte,
    /// The part number names no part.
    #[error("no such part")]
    NoPart,
}

#[cfg(test)]
pub(super) mod tests {
    use std::num::NonZeroU32;

    use imap_codec::imap_types::core::{AString, Vec1};
    use imap_codec::imap_types::fetch::{Part, Section};

    use super::*;

    /// multipart/mixed of a multipart/alternative (text and HTML) and a PDF attachment.
    #[test]
    fn the_unparsed_header_fast_path_matches_the_parse() {
        let header = imap_codec::imap_types::fetch::Section::Header(None);
        let mut samples: Vec<Vec<u8>> = vec![
            MIXED.to_vec(),
            NESTED.to_vec(),
            b"Subject: no body".to_vec(),
            b"\r\nbody only".to_vec(),
            b"Subject: lf\nTo: x@y\n\nbody\n".to_vec(),
            b"Subject: x\r\nnot a header line\r\nTo: y\r\n\r\nbody".to_vec(),
            b"Subject: x\r\n \r\n\r\nbody".to_vec(),
        ];
        for n in (0..MIXED.len()).step_by(7) {
            samples.push(MIXED[..n].to_vec());
        }
        for raw in &samples {
            let fast = MessageView::parse(raw).section(Some(&header)).into_owned();
            let view = MessageView::parse(raw);
            view.envelope();
            let parsed = view.section(Some(&header)).into_owned();
            assert_eq!(fast, parsed, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    pub(crate) const MIXED: &[u8] = b"From: Ann <ann@example.com>\r\n\
To: bob@example.com\r\n\
Subject: report\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <m1@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"mix\"\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--mix\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello world.\r\n\
\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello <b>world</b>.</p>\r\n\
\r\n\
--alt--\r\n\
\r\n\
--mix\r\n\
Content-Type: application/pdf; name=\"a.pdf\"\r\n\
Content-Disposition: attachment; filename=\"a.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--mix--\r\n";

    /// multipart/mixed of a text part and a message/rfc822.
    pub(crate) const NESTED: &[u8] = b"From: out@x.example\r\n\
Subject: outer\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
Outer body.\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
From: in@x.example\r\n\
Content-Type: text/plain\r\n\
\r\n\
Inner body.\r\n\
\r\n\
--b1--\r\n";

    /// Every way of reading a message, for inputs that must merely not panic.
    fn read_everything(raw: &[u8]) {
        let view = MessageView::parse(raw);
        let _ = view.envelope();
        let _ = view.body_structure(true);
        let _ = view.body_structure(false);
        let _ = view.body_text();
        let _ = view.sent_date();
        let _ = view.sent_day();
        let _ = view.header_values("subject");
        let names = Vec1::from(AString::try_from("subject").expect("an atom"));
        for path in [&[1][..], &[1, 1], &[1, 2], &[2], &[2, 1], &[2, 1, 1], &[3]] {
            let nums: Vec<NonZeroU32> = path.iter().filter_map(|&n| NonZeroU32::new(n)).collect();
            let _ = view.binary(&nums);
            let Ok(nums) = Vec1::try_from(nums) else {
                continue;
            };
            let part = Part(nums);
            for section in [
                Section::Part(part.clone()),
                Section::Mime(part.clone()),
                Section::Header(Some(part.clone())),
                Section::Text(Some(part.clone())),
                Section::HeaderFields(Some(part.clone()), names.clone()),
                Section::HeaderFieldsNot(Some(part.clone()), names.clone()),
            ] {
                let _ = view.section(Some(&section));
            }
        }
        let _ = view.section(Some(&Section::Header(None)));
        let _ = view.section(Some(&Section::Text(None)));
    }

    #[test]
    fn truncated_and_mangled_messages_never_panic() {
        for source in [MIXED, NESTED] {
            for end in 0..=source.len() {
                read_everything(&source[..end]);
            }
            let lf: Vec<u8> = source.iter().copied().filter(|&b| b != b'\r').collect();
            for end in 0..=lf.len() {
                read_everything(&lf[..end]);
            }
            let cr: Vec<u8> = lf
                .iter()
                .map(|&b| if b == b'\n' { b'\r' } else { b })
                .collect();
            read_everything(&cr);
        }
    }

    #[test]
    fn odd_inputs_never_panic() {
        let deep_multipart: Vec<u8> = (0..200)
            .flat_map(|i| {
                format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                    .into_bytes()
            })
            .collect();
        let deep_message: Vec<u8> = b"Content-Type: message/rfc822\r\n\r\n".repeat(200);
        let many_headers: Vec<u8> = b"X-A: b\r\n".repeat(50_000);
        for raw in [
            &b""[..],
            b"\r\n",
            b"\n\n\n",
            b"no colon and no newline",
            b"\0\0\0:\0\r\n\r\n\0",
            b"Content-Type: multipart/mixed\r\n\r\n--\r\n--\r\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n----\r\n----\r\n",
            b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x\r\n--x--",
            b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKYm9keQo=\r\n",
            b"From: <>, @, \"\" <@>, :;, a@\r\nTo: ;;;\r\n\r\n",
            &deep_multipart,
            &deep_message,
            &many_headers,
        ] {
            read_everything(raw);
        }
    }

    #[test]
    fn nesting_bombs_read_as_header_and_text() {
        let mut raw = b"Subject: deep\r\nContent-Type: message/rfc822\r\n\r\n".to_vec();
        raw.extend(b"Content-Type: message/rfc822\r\n\r\n".repeat(100_000));
        let view = MessageView::parse(&raw);
        let BodyStructure::Single { body, .. } = view.body_structure(true) else {
            panic!("a single part");
        };
        assert_eq!(body.basic.size as usize, raw.len() - 47);
        assert_eq!(view.header_values("subject"), vec!["deep"]);
        let part1 = Section::Part(Part(Vec1::from(NonZeroU32::MIN)));
        assert_eq!(view.section(Some(&part1)).len(), raw.len() - 47);
        // Message-ID and friends are not counted: a long digest is no bomb.
        assert!(!crate::extract::nesting_bomb(
            &b"Message-ID: <a@b>\r\n".repeat(10_000)
        ));
        assert!(crate::extract::nesting_bomb(
            &b"MESSAGE/rfc822 digest ".repeat(3_000)
        ));
    }

    #[test]
    fn headerless_or_bodyless_input_still_has_part_one() {
        let part1 = Section::Part(Part(Vec1::from(NonZeroU32::MIN)));
        // Text without a blank line reads as (malformed) header, with an empty body.
        let raw = b"no colon and no newline";
        let view = MessageView::parse(raw);
        assert_eq!(view.section(Some(&Section::Header(None))).as_ref(), raw);
        assert_eq!(view.section(Some(&part1)).as_ref(), b"");
        // A leading blank line: no header, all body.
        let raw = b"\r\njust text\r\n";
        let view = MessageView::parse(raw);
        assert_eq!(view.section(Some(&part1)).as_ref(), b"just text\r\n");
        // Nothing at all (mail-parser finds no message): one empty text part.
        let view = MessageView::parse(b"");
        assert_eq!(view.section(Some(&part1)).as_ref(), b"");
        let BodyStructure::Single { body, .. } = view.body_structure(false) else {
            panic!("a single part");
        };
        assert_eq!(body.basic.size, 0);
    }
}
