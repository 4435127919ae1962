//! `BODY[section]` (RFC 9051 §6.4.5). Every form returns the stored bytes unchanged (a
//! subset of header lines for HEADER.FIELDS), so what a client hashes or re-parses is
//! what was delivered.

use std::borrow::Cow;

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::fetch::{Part, Section};

use super::tree::{Node, Src};

pub(super) fn section<'a>(root: &Node<'_, 'a>, section: &Section<'_>) -> Cow<'a, [u8]> {
    let found = match section {
        Section::Part(Part(path)) => root.resolve(path.as_ref()).map(|n| n.body_bytes()),
        Section::Mime(Part(path)) => root.resolve(path.as_ref()).map(|n| n.header_bytes()),
        Section::Header(part) => message(root, part.as_ref()).map(|m| m.root.header_bytes()),
        Section::Text(part) => message(root, part.as_ref()).map(|m| m.text()),
        Section::HeaderFields(part, names) => {
            message(root, part.as_ref()).map(|m| header_fields(&m.root, names.as_ref(), true))
        }
        Section::HeaderFieldsNot(part, names) => {
            message(root, part.as_ref()).map(|m| header_fields(&m.root, names.as_ref(), false))
        }
    };
    found.unwrap_or(Cow::Borrowed(&[]))
}

/// A message that HEADER, TEXT and HEADER.FIELDS can address: the whole one, or one
/// encapsulated in a message/rfc822 part.
struct Msg<'v, 'a> {
    root: Node<'v, 'a>,
    /// The message/rfc822 part holding it, when not the top level.
    holder: Option<Node<'v, 'a>>,
}

impl<'a> Msg<'_, 'a> {
    /// The body after the header. An encapsulated message ends where its part ends: the
    /// two offsets should agree, and if a malformed message makes them differ, the part's
    /// end is the one BODYSTRUCTURE announced.
    fn text(&self) -> Cow<'a, [u8]> {
        let end = match (self.holder, self.root.src) {
            (Some(holder), Src::Stored(_)) => holder.part.offset_end,
            _ => self.root.part.offset_end,
        };
        self.root.src.slice(self.root.part.offset_body, end)
    }
}

/// `None` when the part number names nothing, or a part that is not a message/rfc822: RFC
/// 9051 defines HEADER and TEXT after a part number only for those.
fn message<'v, 'a>(root: &Node<'v, 'a>, part: Option<&Part>) -> Option<Msg<'v, 'a>> {
    match part {
        None => Some(Msg {
            root: *root,
            holder: None,
        }),
        Some(Part(path)) => {
            let holder = root.resolve(path.as_ref())?;
            Some(Msg {
                root: holder.encapsulated()?,
                holder: Some(holder),
            })
        }
    }
}

/// The header fields named (`keep`) or not named in `names`, matched without regard to
/// case, in their stored order and form, then the blank line that ends a header.
fn header_fields<'a>(root: &Node<'_, 'a>, names: &[AString<'_>], keep: bool) -> Cow<'a, [u8]> {
    let eol = line_end(&root.header_bytes());
    let mut out = Vec::new();
    for field in root.fields() {
        let listed = names
            .iter()
            .any(|n| field.name.eq_ignore_ascii_case(n.as_ref()));
        if listed == keep {
            out.extend_from_slice(field.raw);
            if !field.raw.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
        }
    }
    out.extend_from_slice(eol);
    Cow::Owned(out)
}

/// The line end the message itself uses (stored mail is CRLF, but bare LF is seen).
fn line_end(header: &[u8]) -> &'static [u8] {
    if header.ends_with(b"\n") && !header.ends_with(b"\r\n") {
        b"\n"
    } else {
        b"\r\n"
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use imap_codec::imap_types::core::{AString, Vec1};
    use imap_codec::imap_types::fetch::{Part, Section};

    use super::super::tests::{MIXED, NESTED};
    use super::super::{partial, MessageView};

    fn part(path: &[u32]) -> Part {
        let nums: Vec<NonZeroU32> = path.iter().filter_map(|&n| NonZeroU32::new(n)).collect();
        Part(Vec1::try_from(nums).expect("test paths are not empty"))
    }

    fn names(list: &[&'static str]) -> Vec1<AString<'static>> {
        let list: Vec<AString<'static>> = list
            .iter()
            .map(|n| AString::try_from(*n).expect("test names are atoms"))
            .collect();
        Vec1::try_from(list).expect("test lists are not empty")
    }

    fn get(raw: &[u8], section: Section<'_>) -> String {
        String::from_utf8_lossy(&MessageView::parse(raw).section(Some(&section))).into_owned()
    }

    #[test]
    fn whole_header_and_text() {
        let raw = b"Subject: hi\r\nFrom: a@b.example\r\n\r\nline one\r\nline two\r\n";
        let view = MessageView::parse(raw);
        assert_eq!(view.section(None).as_ref(), raw);
        assert_eq!(
            get(raw, Section::Header(None)),
            "Subject: hi\r\nFrom: a@b.example\r\n\r\n"
        );
        assert_eq!(get(raw, Section::Text(None)), "line one\r\nline two\r\n");
        // A non-multipart message has one part: its body.
        assert_eq!(
            get(raw, Section::Part(part(&[1]))),
            "line one\r\nline two\r\n"
        );
        assert_eq!(
            get(raw, Section::Mime(part(&[1]))),
            get(raw, Section::Header(None))
        );
        assert_eq!(get(raw, Section::Part(part(&[2]))), "");
        assert_eq!(get(raw, Section::Part(part(&[1, 1]))), "");
        // HEADER of a part that is not a message/rfc822 is nothing.
        assert_eq!(get(raw, Section::Header(Some(part(&[1])))), "");
    }

    #[test]
    fn header_fields_and_not() {
        let raw = b"Subject: hi\r\nX-Folded: a\r\n  b\r\nfrom: a@b.example\r\nTo: c@d.example\r\n\r\nbody\r\n";
        assert_eq!(
            get(
                raw,
                Section::HeaderFields(None, names(&["FROM", "x-folded", "Absent"]))
            ),
            "X-Folded: a\r\n  b\r\nfrom: a@b.example\r\n\r\n"
        );
        assert_eq!(
            get(
                raw,
                Section::HeaderFieldsNot(None, names(&["subject", "X-FOLDED"]))
            ),
            "from: a@b.example\r\nTo: c@d.example\r\n\r\n"
        );
        // Nothing matches: just the blank line.
        assert_eq!(
            get(raw, Section::HeaderFields(None, names(&["Cc"]))),
            "\r\n"
        );
        // Bare LF mail keeps its own line ends.
        let lf = b"Subject: hi\nTo: x@y.example\n\nbody\n";
        assert_eq!(
            get(lf, Section::HeaderFields(None, names(&["to"]))),
            "To: x@y.example\n\n"
        );
    }

    #[test]
    fn parts_and_mime_headers_of_a_multipart() {
        let text = get(MIXED, Section::Part(part(&[1, 1])));
        assert_eq!(text, "Hello world.\r\n");
        assert_eq!(
            get(MIXED, Section::Mime(part(&[1, 1]))),
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        );
        assert_eq!(
            get(MIXED, Section::Part(part(&[1, 2]))),
            "<p>Hello <b>world</b>.</p>\r\n"
        );
        assert_eq!(get(MIXED, Section::Part(part(&[2]))), "JVBERi0xLjQK");
        assert!(get(MIXED, Section::Part(part(&[1]))).starts_with("--alt\r\n"));
        assert!(get(MIXED, Section::Part(part(&[1]))).ends_with("--alt--\r\n"));
        assert_eq!(get(MIXED, Section::Part(part(&[3]))), "");
        assert_eq!(get(MIXED, Section::Part(part(&[1, 3]))), "");
        assert!(get(MIXED, Section::Text(None)).starts_with("This is a multi-part message"));
    }

    #[test]
    fn encapsulated_message_sections() {
        assert_eq!(
            get(NESTED, Section::Header(Some(part(&[2])))),
            "Subject: inner\r\nFrom: in@x.example\r\nContent-Type: text/plain\r\n\r\n"
        );
        assert_eq!(
            get(NESTED, Section::Text(Some(part(&[2])))),
            "Inner body.\r\n"
        );
        assert_eq!(get(NESTED, Section::Part(part(&[2, 1]))), "Inner body.\r\n");
        assert_eq!(
            get(NESTED, Section::Part(part(&[2]))),
            "Subject: inner\r\nFrom: in@x.example\r\nContent-Type: text/plain\r\n\r\nInner body.\r\n"
        );
        assert_eq!(
            get(NESTED, Section::Mime(part(&[2]))),
            "Content-Type: message/rfc822\r\n\r\n"
        );
        assert_eq!(
            get(
                NESTED,
                Section::HeaderFields(Some(part(&[2])), names(&["subject"]))
            ),
            "Subject: inner\r\n\r\n"
        );
    }

    #[test]
    fn partial_edges() {
        let b = b"0123456789";
        assert_eq!(partial(b, 0, None), b);
        assert_eq!(partial(b, 3, Some(4)), b"3456");
        assert_eq!(partial(b, 8, Some(10)), b"89");
        assert_eq!(partial(b, 10, Some(1)), b"");
        assert_eq!(partial(b, 11, None), b"");
        assert_eq!(partial(b, u32::MAX, Some(u32::MAX)), b"");
        assert_eq!(partial(b, 0, Some(0)), b"");
        assert_eq!(partial(b"", 0, Some(5)), b"");
    }
}
