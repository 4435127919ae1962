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
}

impl HeaderProblem {
    /// Short machine-readable reason (metrics label, audit detail).
    pub fn reason(&self) -> String {
        match self {
            HeaderProblem::Count { field, count: 0 } => format!("no_{field}"),
            HeaderProblem::Count { field, .. } => format!("duplicate_{field}"),
            HeaderProblem::BareCr => "bare_cr_in_headers".into(),
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
        }
    }
}

/// The field name of a header line: text before the colon, trailing blanks removed; `None`
/// for a continuation line or a line without a colon.
fn field_name(line: &[u8]) -> Option<&[u8]> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return None;
    }
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let end = name
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    Some(&name[..end])
}

/// Checks the header block of `raw` (up to the first empty line).
pub(super) fn check(raw: &[u8]) -> Result<(), HeaderProblem> {
    let mut counts = [0usize; 6];
    let fields: Vec<&'static str> = EXACTLY_ONCE.iter().chain(AT_MOST_ONCE).copied().collect();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.contains(&b'\r') {
            return Err(HeaderProblem::BareCr);
        }
        let Some(name) = field_name(line) else {
            continue;
        };
        if let Some(i) = fields
            .iter()
            .position(|f| name.eq_ignore_ascii_case(f.as_bytes()))
        {
            counts[i] += 1;
        }
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
    fn from_addresses_lists_every_mailbox() {
        let raw = b"From: A <A@X.test>, b@y.test\r\n\r\n";
        assert_eq!(from_addresses(raw), vec!["a@x.test", "b@y.test"]);
    }
}
