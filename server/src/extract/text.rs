//! Whitespace normalisation and the one-line preview.

use regex::Regex;

/// Compiles one of this module's own patterns. They are constants checked by the unit
/// tests (every `LazyLock` is forced there), so failure is a bug in this crate, never
/// something a message can cause.
pub(crate) fn re(pattern: &'static str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

/// Preview length in characters (not bytes), before the ellipsis.
pub(crate) const PREVIEW_CHARS: usize = 200;

/// Invisible characters mail templates use as padding (preheader tricks) or that editors
/// leave behind; they carry no meaning for a reader and would break word matching.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2060}'..='\u{2064}'
            | '\u{feff}'
    )
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{0b}' || c == '\u{0c}' || c.is_whitespace() && c != '\n'
}

/// Unifies line endings, drops invisible characters, collapses runs of spaces inside a
/// line, trims every line, keeps at most one blank line in a row, trims the whole.
pub(crate) fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0usize;
    for line in s.split('\n') {
        let line = collapse_line(line);
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
            if blank_run > 0 {
                out.push('\n');
            }
        }
        blank_run = 0;
        out.push_str(&line);
    }
    out
}

/// One line with invisible characters removed, spaces collapsed and ends trimmed.
pub(crate) fn collapse_line(line: &str) -> String {
    // Most lines are plain ASCII already in shape: a byte scan is far cheaper than the
    // char-by-char rebuild below, and this runs on every line several times per message.
    if already_collapsed(line) {
        return line.to_string();
    }
    let mut out = String::with_capacity(line.len());
    let mut pending_space = false;
    for c in line.chars() {
        if is_invisible(c) {
            continue;
        }
        if is_space(c) || c == '\r' {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    out
}

/// Printable ASCII with single inner spaces and none at the ends: `collapse_line` would
/// return it unchanged.
fn already_collapsed(line: &str) -> bool {
    let b = line.as_bytes();
    if b.first() == Some(&b' ') || b.last() == Some(&b' ') {
        return false;
    }
    let mut prev_space = false;
    for &c in b {
        match c {
            b' ' if prev_space => return false,
            b' ' => prev_space = true,
            0x21..=0x7e => prev_space = false,
            _ => return false,
        }
    }
    true
}

/// The first `max` characters of `s` on one line, cut at a word boundary when one is not
/// too far back, with "…" when anything was cut.
pub(crate) fn preview(s: &str, max: usize) -> String {
    let flat = collapse_line(&s.replace('\n', " "));
    if flat.chars().count() <= max {
        return flat;
    }
    let cut = flat
        .char_indices()
        .nth(max)
        .map(|(i, _)| i)
        .unwrap_or(flat.len());
    let head = &flat[..cut];
    // Cut at the last space unless that would throw away more than half the preview
    // (a very long URL or a language written without spaces).
    let head = match head.rfind(' ') {
        Some(sp) if sp >= cut / 2 => &head[..sp],
        _ => head,
    };
    format!("{}…", head.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_slow_one() {
        for line in [
            "",
            "plain words here",
            " lead",
            "trail ",
            "two  spaces",
            "tab\there",
            "cr\r",
            "caf\u{e9}",
            "zero\u{200b}width",
            "a",
            "  ",
        ] {
            let fast = already_collapsed(line);
            let mut slow = String::new();
            let mut pending = false;
            for c in line.chars() {
                if is_invisible(c) {
                    continue;
                }
                if is_space(c) || c == '\r' {
                    pending = !slow.is_empty();
                    continue;
                }
                if pending {
                    slow.push(' ');
                    pending = false;
                }
                slow.push(c);
            }
            assert_eq!(collapse_line(line), slow, "{line:?}");
            if fast {
                assert_eq!(line, slow, "fast path taken wrongly for {line:?}");
            }
        }
        assert!(already_collapsed("plain words here"));
        assert!(!already_collapsed("two  spaces"));
    }

    #[test]
    fn normalise_collapses() {
        let s = "  Hello\u{a0}\u{a0} world \r\n\r\n\r\n\t line\u{200b} two  \n\n";
        assert_eq!(normalise(s), "Hello world\n\nline two");
        assert_eq!(normalise("\n\n \n"), "");
        assert_eq!(normalise("a\nb"), "a\nb");
    }

    #[test]
    fn preview_short_is_whole() {
        assert_eq!(preview("Hi there\n\nBye", 200), "Hi there Bye");
    }

    #[test]
    fn preview_cuts_at_word() {
        let s = "word ".repeat(60);
        let p = preview(&s, 200);
        assert!(p.ends_with("word…"), "{p}");
        assert!(p.chars().count() <= 201);
    }

    #[test]
    fn preview_without_spaces_cuts_hard() {
        let s = "日本語".repeat(100);
        let p = preview(&s, 200);
        assert_eq!(p.chars().count(), 201);
        assert!(p.ends_with('…'));
    }
}
