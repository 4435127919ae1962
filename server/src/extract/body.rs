//! From the decoded bodies to the new content of the message.
//!
//! The text/plain body is the source when there is one worth reading: senders write it
//! line by line, and its `>` quoting is the most reliable history marker there is. The
//! rendered HTML is used when there is no plain part or the plain part is a stub ("this
//! message needs an HTML mail client").

use super::html::Rendered;
use super::{quotes, signature, text};

/// The two texts the rest of the module reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cleaned {
    /// New content with quoted history removed, signatures and footers still in: codes and
    /// links are looked for here.
    pub content: String,
    /// `content` without signatures, footers and boilerplate: the `extracted_text`.
    pub extracted: String,
}

/// A plain part this short while the HTML says much more is a placeholder.
const STUB_MAX_CHARS: usize = 300;

pub(crate) fn clean(
    plain: Option<&str>,
    html: Option<&Rendered>,
    forward_subject: bool,
) -> Cleaned {
    let source = choose(plain, html.map(|r| r.text.as_str()));
    let lines: Vec<String> = source
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .map(prepare_line)
        .collect();
    let (content, extracted) = clean_lines(&lines, forward_subject, 0);
    Cleaned {
        content: text::normalise(&content.join("\n")),
        extracted: text::normalise(&extracted.join("\n")),
    }
}

fn choose<'a>(plain: Option<&'a str>, html: Option<&'a str>) -> &'a str {
    let plain = plain.map(str::trim).filter(|p| !p.is_empty());
    match (plain, html) {
        (Some(p), Some(h)) if is_stub(p, h) => h,
        (Some(p), _) => p,
        (None, Some(h)) => h,
        (None, None) => "",
    }
}

fn is_stub(plain: &str, html_text: &str) -> bool {
    let p = plain.chars().count();
    let h = html_text.trim().chars().count();
    let lower = plain.to_lowercase();
    p <= STUB_MAX_CHARS
        && h > 2 * p
        && (lower.contains("html") || lower.contains("browser") || lower.contains("mail client"))
}

/// Keeps a line's shape (quote marks, the `-- ` delimiter) but drops invisible characters
/// and runs of spaces.
fn prepare_line(line: &str) -> String {
    let collapsed = text::collapse_line(line);
    if line.trim_end_matches(['\r', '\n']) == "-- " {
        "-- ".to_string()
    } else {
        collapsed
    }
}

/// (content, extracted) lines: a forward splits the text into the note above it and the
/// forwarded message, which is cleaned on its own.
fn clean_lines(
    lines: &[String],
    forward_subject: bool,
    depth: usize,
) -> (Vec<String>, Vec<String>) {
    let forward = if depth < quotes::MAX_FORWARD_DEPTH {
        quotes::find_forward(lines, forward_subject)
    } else {
        None
    };
    let Some(at) = forward else {
        let content = quotes::cut_reply(lines);
        let extracted = signature::strip(&content);
        return (content, extracted);
    };
    let note = quotes::cut_reply(&lines[..at]);
    let note_extracted = signature::strip(&note);
    let header_end = quotes::forward_header_end(lines, at);
    let header: Vec<String> = lines[at..header_end].iter().map(|l| unquote(l)).collect();
    let rest = unquote_all(&lines[header_end..]);
    let (inner_content, inner_extracted) = clean_lines(&rest, false, depth + 1);

    let join = |top: Vec<String>, inner: Vec<String>| {
        let mut v = top;
        if !v.is_empty() {
            v.push(String::new());
        }
        v.extend(header.iter().cloned());
        v.push(String::new());
        v.extend(inner);
        v
    };
    (
        join(note, inner_content),
        join(note_extracted, inner_extracted),
    )
}

/// A forwarded message rendered from a blockquote arrives with every line quoted; that
/// quoting is the forward's, not history, so one level is removed.
fn unquote_all(lines: &[String]) -> Vec<String> {
    let all_quoted = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .all(|l| quotes::is_quoted(l));
    if all_quoted {
        lines.iter().map(|l| unquote(l)).collect()
    } else {
        lines.to_vec()
    }
}

fn unquote(line: &str) -> String {
    let t = line.trim_start();
    match t.strip_prefix('>') {
        Some(rest) => rest.strip_prefix(' ').unwrap_or(rest).to_string(),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Cleaned {
        clean(Some(s), None, false)
    }

    #[test]
    fn reply_with_signature() {
        let c = plain("Works for me.\n\n-- \nJane\n\nOn Mon, Jan 8, 2024 at 9:00 AM Sam <s@x.example> wrote:\n> Tuesday?");
        assert_eq!(c.extracted, "Works for me.");
        assert!(c.content.contains("Jane"));
        assert!(!c.content.contains("Tuesday"));
    }

    #[test]
    fn forward_keeps_forwarded_message() {
        let c = plain("FYI\n-- \nSam\n\n---------- Forwarded message ---------\nFrom: Acme <no-reply@acme.example>\nDate: Mon, Jan 8, 2024\nSubject: Code\nTo: <sam@x.example>\n\nYour code is 123456.\n\n-- \nAcme");
        assert_eq!(
            c.extracted,
            "FYI\n\n---------- Forwarded message ---------\nFrom: Acme <no-reply@acme.example>\nDate: Mon, Jan 8, 2024\nSubject: Code\nTo: <sam@x.example>\n\nYour code is 123456."
        );
    }

    #[test]
    fn quoted_forward_is_unquoted() {
        let c = plain("Begin forwarded message:\n\n> From: A <a@x.example>\n> Subject: S\n> Date: Mon\n>\n> Body line");
        assert_eq!(
            c.extracted,
            "Begin forwarded message:\n\nFrom: A <a@x.example>\nSubject: S\nDate: Mon\n\nBody line"
        );
    }

    #[test]
    fn stub_plain_part_falls_back_to_html() {
        let r = Rendered {
            text: "A long and useful HTML body with the actual message in it.".repeat(3),
            links: Vec::new(),
        };
        let c = clean(
            Some("Please view this message in an HTML mail client."),
            Some(&r),
            false,
        );
        assert!(c.extracted.starts_with("A long and useful"));
        let c = clean(Some("Short real text."), Some(&r), false);
        assert_eq!(c.extracted, "Short real text.");
    }

    #[test]
    fn nothing_at_all() {
        assert_eq!(clean(None, None, false), Cleaned::default());
    }
}
