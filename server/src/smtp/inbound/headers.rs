//! The RFC 5322 §3.6 header counts a message must respect before we store or relay it.
//!
//! A message with two `From:` headers let DMARC judge one sender while the mailbox showed
//! the other, so an attacker's "code from the bank" read as the bank's. The fix is to refuse
//! the ambiguity: exactly one From, at most one Sender, Reply-To, Subject, Date and
//! Message-ID. Names are matched case-insensitively, and the obsolete form with blanks
//! before the colon (`From :`, RFC 5322 §4.5.x obs-fields, which mail parsers accept) counts
//! as the same field, so no spelling slips a second From past this check while a parser
//! still reads it as one.

/// Fields that must appear exactly once.
const EXACTLY_ONCE: &[&str] = &["from"];
/// Fields that may appear at most once.
const AT_MOST_ONCE: &[&str] = &["sender", "reply-to", "subject", "date", "message-id"];

/// Why a message's header block is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeaderProblem {
    /// `field` appears `count` times where once is required or the most allowed.
    Count { field: &'static str, count: usize },
    /// A CR not followed by LF inside the header section. Parsers disagree on it: mail-parser
    /// reads `From: a@x\rFrom: b@y` as one From of `b@y`, another reader may see `a@x`, and
    /// that disagreement is exactly the two-sender problem this module exists to refuse.
    BareCr,
    /// A header line whose field name is not RFC 5322 `ftext` (printable ASCII but colon),
    /// or a line in the header section that is neither a field nor a continuation. Parsers
    /// repair such lines differently (`From\x0c:`, `:From:`, `Fr om:`), so one could read
    /// a second From there while this check read none.
    BadFieldName,
}

impl HeaderProblem {
    /// Short machine-readable reason (metrics label, audit detail).
    pub fn reason(&self) -> String {
        match self {
            HeaderProblem::Count { field, count: 0 } => format!("no_{field}"),
            HeaderProblem::Count { field, .. } => format!("duplicate_{field}"),
            HeaderProblem::BareCr => "bare_cr_in_headers".into(),
            HeaderProblem::BadFieldName => "bad_header_field_name".into(),
        }
    }
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderProblem::Count { field, count: 0 } => {
                write!(f, "the message has no {field} header (RFC 5322 section 3.6)")
            }
            HeaderProblem::Count { field, count } => write!(
                f,
                "the message has {count} {field} headers; at most one is allowed (RFC 5322 section 3.6)"
            ),
            HeaderProblem::BareCr => write!(
                f,
                "the header section holds a bare CR; header lines must end with CRLF"
            ),
            HeaderProblem::BadFieldName => write!(
                f,
                "the header section holds a line that is not a valid header field (RFC 5322 section 2.2)"
            ),
        }
    }
}

/// What a line of the header section is.
enum Line<'a> {
    /// A field: its name, trailing blanks (the obsolete `From :` form) removed.
    Field(&'a [u8]),
    /// A folded continuation of the previous field.
    Continuation,
    /// Anything else: refused.
    Malformed,
}

fn classify(line: &[u8]) -> Line<'_> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Line::Continuation;
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Line::Malformed;
    };
    let name = &line[..colon];
    let end = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    let name = &name[..end];
    // ftext: %d33-57 / %d59-126 (the colon is excluded by construction).
    if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
        return Line::Malformed;
    }
    Line::Field(name)
}

/// Checks the header block of `raw` (up to the first empty line): every line is a field
/// with a valid name or a continuation, and the counted fields appear as RFC 5322 §3.6
/// requires, both as read line by line here and as the mail parser that later files the
/// message reads them. Where the two readings could differ, the larger count is used.
pub(super) fn check(raw: &[u8]) -> Result<(), HeaderProblem> {
    let fields: Vec<&'static str> = EXACTLY_ONCE.iter().chain(AT_MOST_ONCE).copied().collect();
    let mut counts = vec![0usize; fields.len()];
    let mut first = true;
    // After a line without a colon, RFC-following parsers are in the body (a mailer that
    // forgot the blank line): names are no longer judged, but the fields below still count,
    // in case some reader carries on with headers there.
    let mut in_headers = true;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.contains(&b'\r') {
            return Err(HeaderProblem::BareCr);
        }
        let was_first = std::mem::replace(&mut first, false);
        let name = match classify(line) {
            Line::Field(name) => name,
            Line::Continuation if !was_first => continue,
            // The mbox envelope line some clients leave on a message; mail parsers skip it
            // (and if one read it as a From, the parsed count below refuses the message).
            Line::Malformed if was_first && line.starts_with(b"From ") => continue,
            Line::Malformed if !line.contains(&b':') && !was_first => {
                in_headers = false;
                continue;
            }
            Line::Malformed if !in_headers => continue,
            // A continuation with nothing before it is not a field of anything, and a name
            // outside ftext is one parsers repair differently.
            Line::Continuation | Line::Malformed => return Err(HeaderProblem::BadFieldName),
        };
        if let Some(i) = fields
            .iter()
            .position(|f| name.eq_ignore_ascii_case(f.as_bytes()))
        {
            counts[i] += 1;
        }
    }
    for (i, n) in parsed_counts(raw, &fields).into_iter().enumerate() {
        counts[i] = counts[i].max(n);
    }
    for (i, field) in fields.iter().enumerate() {
        let once = i < EXACTLY_ONCE.len();
        if (once && counts[i] != 1) || counts[i] > 1 {
            return Err(HeaderProblem::Count {
                field: display(field),
                count: counts[i],
            });
        }
    }
    Ok(())
}

/// How often mail-parser (what the mailbox and DMARC read) sees each of `fields`.
fn parsed_counts(raw: &[u8], fields: &[&str]) -> Vec<usize> {
    let mut counts = vec![0usize; fields.len()];
    let Some(msg) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return counts;
    };
    for h in msg.headers() {
        let name = h.name.as_str();
        if let Some(i) = fields.iter().position(|f| name.eq_ignore_ascii_case(f)) {
            counts[i] += 1;
        }
    }
    counts
}

fn display(field: &str) -> &'static str {
    match field {
        "from" => "From",
        "sender" => "Sender",
        "reply-to" => "Reply-To",
        "subject" => "Subject",
        "date" => "Date",
        _ => "Message-ID",
    }
}

/// The addresses of the (single) From header, lower-cased, as a mail parser reads them.
pub(super) fn from_addresses(raw: &[u8]) -> Vec<String> {
    let Some(msg) = mail_parser::MessageParser::default().parse_headers(raw) else {
        return Vec::new();
    };
    msg.from()
        .map(|a| {
            a.iter()
                .map(|addr| addr.address().unwrap_or_default().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(raw: &str) -> Option<String> {
        check(raw.as_bytes()).err().map(|p| p.reason())
    }

    #[test]
    fn one_from_and_unique_fields_pass() {
        let ok = "From: a@x.test\r\nTo: b@y.test\r\nTo: c@y.test\r\nSubject: hi\r\n\r\nFrom: body@x.test\r\n";
        assert_eq!(problem(ok), None, "To may repeat; the body is not headers");
    }

    #[test]
    fn missing_or_repeated_fields_are_refused_whatever_the_spelling() {
        assert_eq!(problem("To: b@y.test\r\n\r\n").as_deref(), Some("no_From"));
        for second in [
            "From: evil@x.test",
            "FROM: evil@x.test",
            "from:evil@x.test",
            "From : evil@x.test",
            "From\t: evil@x.test",
        ] {
            let raw = format!("From: a@bank.test\r\n{second}\r\nSubject: s\r\n\r\nbody\r\n");
            assert_eq!(problem(&raw).as_deref(), Some("duplicate_From"), "{second}");
        }
        // folding does not hide a field; a folded line is not a field
        let folded =
            "From: a@bank.test\r\nSubject: one\r\n two\r\nX-Note: x\r\n From: not-a-field\r\n\r\n";
        assert_eq!(problem(folded), None);
        for f in ["Sender", "Reply-To", "Subject", "Date", "Message-ID"] {
            let raw = format!(
                "From: a@x.test\r\n{f}: 1\r\n{}: 2\r\n\r\n",
                f.to_uppercase()
            );
            assert_eq!(
                problem(&raw),
                Some(format!("duplicate_{f}")),
                "{f} repeated"
            );
        }
        // a bare CR would let parsers disagree on where a From line ends
        assert_eq!(
            problem("From: a@x.test\rFrom: b@y.test\r\nSubject: s\r\n\r\nbody").as_deref(),
            Some("bare_cr_in_headers")
        );
        assert_eq!(problem("From: a@x.test\r\n\r\nbody\rwith CR\r\n"), None);
        // bare-LF header blocks are read the same way
        assert_eq!(
            problem("From: a@x.test\nFrom: b@x.test\n\nbody").as_deref(),
            Some("duplicate_From")
        );
    }

    #[test]
    fn field_names_that_parsers_repair_differently_are_refused() {
        for second in [
            "From\x0c: evil@x.test",
            ":From: evil@x.test",
            "Fr om: evil@x.test",
            "From\x00: evil@x.test",
            "Fr\u{e9}m: evil@x.test",
        ] {
            let raw = format!("From: a@bank.test\r\n{second}\r\nSubject: s\r\n\r\nbody\r\n");
            assert_eq!(
                problem(&raw).as_deref(),
                Some("bad_header_field_name"),
                "{second:?}"
            );
        }
        assert_eq!(
            problem(" From: evil@x.test\r\nFrom: a@bank.test\r\n\r\n").as_deref(),
            Some("bad_header_field_name"),
            "a continuation before any field"
        );
    }

    #[test]
    fn an_mbox_line_and_a_missing_blank_line_are_tolerated() {
        let mbox = "From MAILER-DAEMON Fri Apr 06 16:46:09 2001\r\nFrom: a@x.test\r\n\r\nb";
        assert_eq!(problem(mbox), None);
        let no_blank = "From: a@x.test\r\nSubject: s\r\nbody text, no blank line\r\nsee: this\r\n";
        assert_eq!(problem(no_blank), None);
        // ...but a From after such a line still counts.
        let hidden = "From: a@x.test\r\nbody text\r\nFrom: evil@y.test\r\n";
        assert_eq!(problem(hidden).as_deref(), Some("duplicate_From"));
        assert_eq!(
            problem("no colon at all\r\nFrom: a@x.test\r\n\r\n").as_deref(),
            Some("bad_header_field_name"),
            "the first line must be a field"
        );
    }

    #[test]
    fn from_addresses_lists_every_mailbox() {
        let raw = b"From: A <A@X.test>, b@y.test\r\n\r\n";
        assert_eq!(from_addresses(raw), vec!["a@x.test", "b@y.test"]);
    }
}
