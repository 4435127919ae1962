//! BODYSTRUCTURE and BODY (RFC 9051 §7.5.2).
//!
//! The shape comes from what mail-parser made of each part, not from what its Content-Type
//! claims: a "multipart" without a usable boundary, or a message/rfc822 that would not
//! parse, was read as a leaf, and describing it as a container would announce parts that
//! no section can return. Sizes and line counts are those of the bytes on the wire, so that
//! `BODY[n]` is exactly as long as announced.

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_codec::imap_types::core::{IString, Vec1};
use mail_parser::{ContentType, GetHeader, HeaderName, HeaderValue, PartType};

use super::envelope::envelope;
use super::strings::{encoded_word, istring, nstring, upper};
use super::tree::Node;

/// The structure of `node` and everything below it.
pub(super) fn body_structure(node: &Node<'_, '_>, extended: bool) -> BodyStructure<'static> {
    let ct = content_type(node);
    if node.is_multipart() {
        let bodies: Vec<_> = node
            .children()
            .iter()
            .map(|child| body_structure(child, extended))
            .collect();
        // A multipart whose parts were all lost (or cut at MAX_DEPTH) still needs one body
        // to be grammatical: an empty text part, which is also what its sections return.
        let bodies = Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_text(extended)));
        return BodyStructure::Multi {
            bodies,
            subtype: upper(ct.and_then(|c| c.subtype()).unwrap_or("mixed")),
            extension_data: extended.then(|| MultiPartExtensionData {
                parameter_list: params(ct),
                tail: Some(disposition(node)),
            }),
        };
    }
    let body = node.body_ref();
    let lines = count_lines(body);
    let specific = match (&node.part.body, node.encapsulated()) {
        (PartType::Message(_), Some(root)) => SpecificFields::Message {
            envelope: Box::new(envelope(&root)),
            body_structure: Box::new(body_structure(&root, extended)),
            number_of_lines: lines,
        },
        (PartType::Text(_) | PartType::Html(_), _) => leaf(ct, true, lines),
        _ => leaf(ct, false, lines),
    };
    let mut parameter_list = params(ct);
    if parameter_list.is_empty() && matches!(specific, SpecificFields::Text { .. }) {
        // RFC 2045 §5.2: text without a charset is US-ASCII; RFC 9051's examples and
        // Dovecot spell that default out.
        parameter_list.push((upper("charset"), upper("us-ascii")));
    }
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list,
                id: nstring(node.mime_value("Content-ID").as_deref()),
                description: nstring(node.mime_value("Content-Description").as_deref()),
                content_transfer_encoding: transfer_encoding(node),
                size: u32::try_from(body.len()).unwrap_or(u32::MAX),
            },
            specific,
        },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: nstring(node.mime_value("Content-MD5").as_deref()),
            tail: Some(disposition(node)),
        }),
    }
}

/// A non-container part. `read_as_text` says mail-parser decoded it as text.
fn leaf(ct: Option<&ContentType<'_>>, read_as_text: bool, lines: u32) -> SpecificFields<'static> {
    let declared = ct.map(|c| (c.ctype(), c.subtype()));
    match declared {
        None if read_as_text => text("plain", lines),
        Some(("text", subtype)) => text(subtype.unwrap_or("plain"), lines),
        // A container mail-parser could not open. Naming it "MESSAGE" "RFC822" or
        // "MULTIPART" without the envelope or the parts would break the client's parser: a
        // multipart without a boundary is shown as the text it is, an
        // unreadable message as text if it was read as text, else as opaque bytes.
        Some(("multipart", _)) => text("plain", lines),
        Some(("message", Some("rfc822" | "global"))) | None => {
            if read_as_text {
                text("plain", lines)
            } else {
                basic("application", "octet-stream")
            }
        }
        Some((ctype, subtype)) => basic(ctype, subtype.unwrap_or("octet-stream")),
    }
}

fn text(subtype: &str, lines: u32) -> SpecificFields<'static> {
    SpecificFields::Text {
        subtype: upper(subtype),
        number_of_lines: lines,
    }
}

fn basic(ctype: &str, subtype: &str) -> SpecificFields<'static> {
    SpecificFields::Basic {
        r#type: upper(ctype),
        subtype: upper(subtype),
    }
}

fn empty_text(extended: bool) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(upper("charset"), upper("us-ascii"))],
                id: nstring(None),
                description: nstring(None),
                content_transfer_encoding: upper("7bit"),
                size: 0,
            },
            specific: text("plain", 0),
        },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: nstring(None),
            tail: None,
        }),
    }
}

/// The Content-Type mail-parser obeyed (the last one).
fn content_type<'v>(node: &Node<'v, '_>) -> Option<&'v ContentType<'v>> {
    node.part
        .headers
        .header_value(&HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
}

/// Parameters as RFC 9051 lists them: name in capitals, value as given (non-ASCII values,
/// which mail-parser decoded from RFC 2231, re-encoded as one RFC 2047 word).
fn params(ct: Option<&ContentType<'_>>) -> Vec<(IString<'static>, IString<'static>)> {
    ct.and_then(|c| c.attributes())
        .unwrap_or_default()
        .iter()
        .map(|a| (upper(&a.name), istring(&encoded_word(&a.value))))
        .collect()
}

/// The extension fields after MD5 (or after a multipart's parameters): disposition,
/// language, location — all always present, as Dovecot writes them.
fn disposition(node: &Node<'_, '_>) -> Disposition<'static> {
    let headers = &node.part.headers;
    let disposition = headers
        .header_value(&HeaderName::ContentDisposition)
        .and_then(HeaderValue::as_content_type)
        .map(|d| (upper(d.ctype()), params(Some(d))));
    let language = match headers.header_value(&HeaderName::ContentLanguage) {
        Some(HeaderValue::TextList(list)) => list.iter().map(|l| istring(l.as_bytes())).collect(),
        Some(HeaderValue::Text(one)) => vec![istring(one.as_bytes())],
        _ => Vec::new(),
    };
    Disposition {
        disposition,
        tail: Some(Language {
            language,
            tail: Some(Location {
                location: nstring(node.mime_value("Content-Location").as_deref()),
                extensions: Vec::new(),
            }),
        }),
    }
}

/// RFC 9051's "size of the body in text lines": the line feeds in the part's wire bytes
/// (the line end before a boundary belongs to the boundary, so it is not counted).
fn count_lines(body: &[u8]) -> u32 {
    let n = body.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// As declared, in capitals; an absent one is 7BIT (RFC 2045 §6.1).
fn transfer_encoding(node: &Node<'_, '_>) -> IString<'static> {
    match node.mime_value("Content-Transfer-Encoding") {
        Some(cte) if !cte.is_empty() => istring(&cte.to_ascii_uppercase()),
        _ => upper("7bit"),
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use imap_codec::encode::Encoder;
    use imap_codec::imap_types::core::Vec1;
    use imap_codec::imap_types::fetch::{MessageDataItem, Part, Section};
    use imap_codec::imap_types::response::{Data, Response};
    use imap_codec::ResponseCodec;

    use super::super::tests::{MIXED, NESTED};
    use super::super::MessageView;
    use super::{BodyStructure, SpecificFields};

    /// The FETCH response line imap-codec writes for the item, as a client reads it.
    fn wire(item: MessageDataItem<'static>) -> String {
        let response = Response::Data(Data::Fetch {
            seq: NonZeroU32::MIN,
            items: Vec1::from(item),
        });
        String::from_utf8_lossy(&ResponseCodec::default().encode(&response).dump()).into_owned()
    }

    fn bodystructure(raw: &[u8]) -> String {
        wire(MessageDataItem::BodyStructure(
            MessageView::parse(raw).body_structure(true),
        ))
    }

    fn body(raw: &[u8]) -> String {
        wire(MessageDataItem::Body(
            MessageView::parse(raw).body_structure(false),
        ))
    }

    #[test]
    fn multipart_alternative_with_attachment() {
        assert_eq!(
            bodystructure(MIXED),
            "* 1 FETCH (BODYSTRUCTURE (\
((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 14 1 NIL NIL NIL NIL)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 28 1 NIL NIL NIL NIL) \
\"ALTERNATIVE\" (\"BOUNDARY\" \"alt\") NIL NIL NIL)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"a.pdf\") NIL NIL \"BASE64\" 12 NIL \
(\"ATTACHMENT\" (\"FILENAME\" \"a.pdf\")) NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"mix\") NIL NIL NIL))\r\n"
        );
        assert_eq!(
            body(MIXED),
            "* 1 FETCH (BODY (\
((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 14 1)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 28 1) \"ALTERNATIVE\")\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"a.pdf\") NIL NIL \"BASE64\" 12) \"MIXED\"))\r\n"
        );
    }

    #[test]
    fn encapsulated_message() {
        assert_eq!(
            bodystructure(NESTED),
            "* 1 FETCH (BODYSTRUCTURE (\
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 11 0 NIL NIL NIL NIL)\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 77 \
(NIL \"inner\" ((NIL NIL \"in\" \"x.example\")) ((NIL NIL \"in\" \"x.example\")) \
((NIL NIL \"in\" \"x.example\")) NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 13 1 NIL NIL NIL NIL) 5 \
NIL NIL NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"b1\") NIL NIL NIL))\r\n"
        );
    }

    #[test]
    fn simple_text_and_mime_fields() {
        assert_eq!(
            body(b"Subject: x\r\n\r\nhi\r\n"),
            "* 1 FETCH (BODY (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 4 1))\r\n"
        );
        let raw = b"Content-Type: text/plain; charset=iso-8859-1; format=flowed\r\n\
Content-ID: <id1@x.example>\r\nContent-Description: a\r\n  note\r\n\
Content-Transfer-Encoding: Quoted-Printable\r\nContent-Disposition: inline\r\n\
Content-Language: en, fr\r\nContent-Location: http://x.example/n\r\n\
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\ncaf=E9\r\nline 2";
        assert_eq!(
            bodystructure(raw),
            "* 1 FETCH (BODYSTRUCTURE (\"TEXT\" \"PLAIN\" \
(\"CHARSET\" \"iso-8859-1\" \"FORMAT\" \"flowed\") \"<id1@x.example>\" \"a  note\" \
\"QUOTED-PRINTABLE\" 14 1 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"INLINE\" NIL) (\"en\" \"fr\") \
\"http://x.example/n\"))\r\n"
        );
    }

    #[test]
    fn non_ascii_filename_is_an_encoded_word() {
        let raw = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n\r\nx\r\n--z--\r\n";
        let wire = bodystructure(raw);
        assert!(
            wire.contains("(\"FILENAME\" \"=?UTF-8?B?csOpc3Vtw6kucGRm?=\")"),
            "{wire}"
        );
    }

    #[test]
    fn base64_encapsulated_message_is_described_from_its_decoded_form() {
        // "Subject: x\r\n\r\nbody\r\n" in base64.
        let raw = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\
Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
U3ViamVjdDogeA0KDQpib2R5DQo=\r\n--z--\r\n";
        assert_eq!(
            body(raw),
            "* 1 FETCH (BODY ((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"BASE64\" 28 \
(NIL \"x\" NIL NIL NIL NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 6 1) 0) \"MIXED\"))\r\n"
        );
        let view = MessageView::parse(raw);
        let inner = Section::Part(Part(Vec1::try_from(vec![NonZeroU32::MIN; 2]).expect("two")));
        assert_eq!(view.section(Some(&inner)).as_ref(), b"body\r\n");
        let header = Section::Header(Some(Part(Vec1::from(NonZeroU32::MIN))));
        assert_eq!(view.section(Some(&header)).as_ref(), b"Subject: x\r\n\r\n");
    }

    #[test]
    fn digest_parts_default_to_messages() {
        let raw = b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n\
Subject: one\r\n\r\nfirst\r\n--d\r\n\r\nSubject: two\r\n\r\nsecond\r\n--d--\r\n";
        assert_eq!(
            body(raw),
            "* 1 FETCH (BODY (\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 21 (NIL \"one\" NIL NIL NIL NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 5 0) 2)\
(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 22 (NIL \"two\" NIL NIL NIL NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 6 0) 2) \
\"DIGEST\"))\r\n"
        );
        let view = MessageView::parse(raw);
        check_sizes(&view, &view.body_structure(false), Vec::new(), true);
    }

    #[test]
    fn top_level_message_rfc822() {
        let raw = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\n\r\ninner body\r\n";
        let view = MessageView::parse(raw);
        check_sizes(&view, &view.body_structure(true), Vec::new(), true);
        let one = Part(Vec1::from(NonZeroU32::MIN));
        let one_one = Part(Vec1::try_from(vec![NonZeroU32::MIN; 2]).expect("two"));
        let get = |s: Section<'_>| view.section(Some(&s)).into_owned();
        assert_eq!(
            get(Section::Part(one.clone())),
            b"Subject: inner\r\n\r\ninner body\r\n"
        );
        assert_eq!(get(Section::Part(one_one)), b"inner body\r\n");
        assert_eq!(get(Section::Header(Some(one))), b"Subject: inner\r\n\r\n");
    }

    #[test]
    fn broken_containers_are_leaves() {
        // No boundary: mail-parser reads the body as text, and so do we.
        let raw = b"Content-Type: multipart/mixed\r\n\r\n--x\r\nhello\r\n";
        assert!(
            body(raw).starts_with("* 1 FETCH (BODY (\"TEXT\" \"PLAIN\""),
            "{}",
            body(raw)
        );
        // A boundary that never comes: still a multipart, its text read to the end.
        let raw = b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nopen\r\n";
        assert!(
            body(raw).starts_with("* 1 FETCH (BODY ((\"TEXT\""),
            "{}",
            body(raw)
        );
    }

    /// Walks a structure and checks every part's announced size and line count against
    /// the bytes `BODY[part]` returns: clients fetch by the sizes they were told. `path`
    /// numbers a message (the top level or an encapsulated one) when `as_message`.
    fn check_sizes(
        view: &MessageView<'_>,
        s: &BodyStructure<'_>,
        path: Vec<NonZeroU32>,
        as_message: bool,
    ) {
        match s {
            BodyStructure::Multi { bodies, .. } => {
                for (i, b) in bodies.as_ref().iter().enumerate() {
                    let mut p = path.clone();
                    p.extend(NonZeroU32::new(i as u32 + 1));
                    check_sizes(view, b, p, false);
                }
            }
            BodyStructure::Single { body, .. } => {
                let mut p = path;
                if as_message {
                    p.push(NonZeroU32::MIN);
                }
                let section = Section::Part(Part(Vec1::try_from(p.clone()).expect("not empty")));
                let bytes = view.section(Some(&section));
                assert_eq!(body.basic.size as usize, bytes.len(), "size of {p:?}");
                let lf = bytes.iter().filter(|&&b| b == b'\n').count() as u32;
                match &body.specific {
                    SpecificFields::Text {
                        number_of_lines, ..
                    } => {
                        assert_eq!(*number_of_lines, lf, "lines of {p:?}")
                    }
                    SpecificFields::Message {
                        body_structure,
                        number_of_lines,
                        ..
                    } => {
                        assert_eq!(*number_of_lines, lf, "lines of {p:?}");
                        check_sizes(view, body_structure, p, true);
                    }
                    SpecificFields::Basic { .. } => {}
                }
            }
        }
    }

    /// Sizes must hold for malformed mail too: every prefix, and deterministic random
    /// mutations (bytes dropped, line ends and boundaries spliced in).
    #[test]
    fn announced_sizes_match_sections_under_mutation() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let splices: [&[u8]; 6] = [
            b"\r\n",
            b"\n",
            b"--mix",
            b"--alt--",
            b"\r\n\r\n",
            b"--b1\r\n",
        ];
        for source in [MIXED, NESTED] {
            for end in 0..=source.len() {
                let view = MessageView::parse(&source[..end]);
                check_sizes(&view, &view.body_structure(true), Vec::new(), true);
            }
            for _ in 0..500 {
                let mut raw = source.to_vec();
                for _ in 0..1 + next(4) {
                    let at = next(raw.len());
                    if next(2) == 0 {
                        let len = next(8).min(raw.len() - at);
                        raw.drain(at..at + len);
                    } else {
                        let splice = splices[next(splices.len())];
                        raw.splice(at..at, splice.iter().copied());
                    }
                }
                let view = MessageView::parse(&raw);
                check_sizes(&view, &view.body_structure(true), Vec::new(), true);
            }
        }
    }

    #[test]
    fn announced_sizes_match_sections() {
        let deep = b"Content-Type: multipart/mixed; boundary=o\r\n\r\npre\r\n--o\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\
Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\none\r\n--i\r\n\
Content-Type: text/html\r\n\r\n<b>two</b>\r\n--i--\r\n\r\n--o\r\n\
Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--o--\r\nepilogue\r\n";
        let lf_only: Vec<u8> = deep.iter().copied().filter(|&b| b != b'\r').collect();
        for raw in [MIXED, NESTED, &deep[..], &lf_only] {
            let view = MessageView::parse(raw);
            check_sizes(&view, &view.body_structure(false), Vec::new(), true);
        }
    }
}
