//! What SEARCH matches against: decoded header values, the text of the body, the sent date.

use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, PartType};

use super::tree::Node;

/// Every value of the top-level fields called `name`, RFC 2047 decoded and unfolded.
pub(super) fn header_values(root: &Node<'_, '_>, name: &str) -> Vec<String> {
    root.fields()
        .filter(|f| f.is(name))
        .map(|f| decode(f.value))
        .collect()
}

/// mail-parser's unstructured-field decoder, the one it uses for Subject: it unfolds and
/// decodes encoded words, and works on any field's raw value.
fn decode(value: &[u8]) -> String {
    let mut line = value.to_vec();
    if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    match MessageStream::new(&line).parse_unstructured() {
        HeaderValue::Text(text) => text.into_owned(),
        _ => String::new(),
    }
}

pub(super) fn body_text(root: &Node<'_, '_>) -> String {
    let mut out = String::new();
    collect_text(root, &mut out);
    out
}

/// Depth-first through multiparts and encapsulated messages (both stop at MAX_DEPTH).
fn collect_text(node: &Node<'_, '_>, out: &mut String) {
    if node.is_multipart() {
        for child in node.children() {
            collect_text(&child, out);
        }
        return;
    }
    if let Some(root) = node.encapsulated() {
        collect_text(&root, out);
        return;
    }
    let text = match &node.part.body {
        PartType::Text(text) => text.to_string(),
        PartType::Html(html) => html_to_text(html),
        _ => return,
    };
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&text);
}

/// The first Date field, if mail-parser could read it as a valid date.
fn date_field<'x>(root: &'x Node<'_, '_>) -> Option<&'x mail_parser::DateTime> {
    root.part
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case("Date"))
        .and_then(|h| h.value.as_datetime())
        .filter(|d| d.is_valid())
}

/// The first Date field as unix seconds.
pub(super) fn sent_date(root: &Node<'_, '_>) -> Option<i64> {
    date_field(root).map(|d| d.to_timestamp())
}

/// The calendar date of the first Date field in its own time zone, as the unix seconds of
/// that date's midnight UTC. SENTBEFORE/SENTON/SENTSINCE compare dates "disregarding time
/// and timezone" (RFC 9051 §6.4.4): 23:30 -0800 on the 25th is the 25th, though it is the
/// 26th in UTC.
pub(super) fn sent_day(root: &Node<'_, '_>) -> Option<i64> {
    let d = date_field(root)?;
    chrono::NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        .and_then(|n| n.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MIXED, NESTED};
    use super::super::MessageView;

    #[test]
    fn header_values_are_decoded_and_unfolded() {
        let raw = b"Subject: =?UTF-8?Q?Caf=C3=A9?=\r\n =?UTF-8?B?IOKCrA==?= plain\r\n\
X-Tag: one\r\nx-tag: two\r\n\r\nbody\r\n";
        let view = MessageView::parse(raw);
        assert_eq!(
            view.header_values("subject"),
            vec!["Caf\u{e9} \u{20ac} plain"]
        );
        assert_eq!(view.header_values("X-TAG"), vec!["one", "two"]);
        assert!(view.header_values("Cc").is_empty());
        let from = MessageView::parse(MIXED).header_values("From");
        assert_eq!(from, vec!["Ann <ann@example.com>"]);
    }

    #[test]
    fn body_text_covers_text_parts_only() {
        let text = MessageView::parse(MIXED).body_text();
        assert!(text.contains("Hello world."));
        assert!(text.contains("Hello world."));
        assert!(!text.contains("<b>"));
        assert!(!text.contains("JVBER"));
        assert!(!text.contains("report"), "headers are not body text");
        let nested = MessageView::parse(NESTED).body_text();
        assert!(nested.contains("Outer body.") && nested.contains("Inner body."));
        let qp = b"Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n";
        assert_eq!(MessageView::parse(qp).body_text().trim_end(), "caf\u{e9}");
    }

    #[test]
    fn sent_date_reads_the_date_field() {
        let view = MessageView::parse(MIXED);
        assert_eq!(view.sent_date(), Some(1_704_103_200));
        let raw = b"Date: Tue, 2 Jan 2024 01:00:00 +0100\r\n\r\n";
        assert_eq!(MessageView::parse(raw).sent_date(), Some(1_704_153_600));
        assert_eq!(
            MessageView::parse(b"Date: whenever\r\n\r\n").sent_date(),
            None
        );
        assert_eq!(MessageView::parse(b"Subject: x\r\n\r\n").sent_date(), None);
    }

    #[test]
    fn sent_day_is_the_date_in_the_fields_own_zone() {
        // 2026-11-25 23:30 -0800 is the 26th in UTC; the day SEARCH compares is the 25th.
        let raw = b"Date: Wed, 25 Nov 2026 23:30:00 -0800\r\n\r\n";
        assert_eq!(MessageView::parse(raw).sent_day(), Some(1_795_564_800));
        let raw = b"Date: Thu, 26 Nov 2026 00:30:00 +0200\r\n\r\n";
        assert_eq!(MessageView::parse(raw).sent_day(), Some(1_795_651_200));
        assert_eq!(
            MessageView::parse(b"Date: whenever\r\n\r\n").sent_day(),
            None
        );
    }
}
