//! Line-length limits (`smtp.max_line_length`, RFC 5321 §4.5.3.1.4–6), kept apart from the
//! session so the rule is one place and testable without sockets.
//!
//! smtp-proto's `RequestReceiver` has its own fixed cap (4096 bytes) and, past it, resumes
//! parsing in the middle of the long line, so the tail of one over-long line became a second
//! bogus command (and a second error). Here whole lines are cut first and only whole lines go
//! to the parser: one over-long command line gets exactly one `500 5.5.2`, its bytes up to the
//! LF are dropped, and the transaction in progress is left as it was.

/// What the next command line is.
pub(super) enum Line<'a> {
    /// A whole line, LF included, within the limit.
    Whole(&'a [u8]),
    /// A line longer than the limit ended; it was discarded.
    TooLong,
    /// The input ran out mid-line; feed more.
    Partial,
}

/// Cuts command lines out of the input, buffering at most `max` bytes of a partial line.
pub(super) struct CommandLines {
    buf: Vec<u8>,
    max: usize,
    /// The current line already passed `max`: drop the rest of it.
    overlong: bool,
    /// `buf` holds a line already returned: clear it before the next.
    returned: bool,
}

impl CommandLines {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::with_capacity(256),
            max,
            overlong: false,
            returned: false,
        }
    }

    /// Takes bytes up to and including the next LF (or all of them) from `bytes`.
    pub fn next(&mut self, bytes: &mut std::slice::Iter<'_, u8>) -> Line<'_> {
        if std::mem::take(&mut self.returned) {
            self.buf.clear();
        }
        let rest = bytes.as_slice();
        let (chunk, tail, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => (&rest[..=p], &rest[p + 1..], true),
            None => (rest, &rest[rest.len()..], false),
        };
        *bytes = tail.iter();
        if !self.overlong {
            if self.buf.len() + chunk.len() > self.max {
                self.overlong = true;
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(chunk);
            }
        }
        if !complete {
            return Line::Partial;
        }
        self.returned = true;
        if std::mem::take(&mut self.overlong) {
            return Line::TooLong;
        }
        Line::Whole(&self.buf)
    }
}

/// Watches the lines of a message body as they stream past; the body is refused at its end
/// (like an oversize one) rather than mid-stream, so the session stays in step with the client.
#[derive(Debug, Default)]
pub(super) struct BodyLines {
    current: usize,
    overlong: bool,
}

impl BodyLines {
    /// Accounts for `chunk` (wire bytes, CRLF counted as RFC 5321 does); returns whether any
    /// line so far was longer than `max`.
    pub fn feed(&mut self, mut chunk: &[u8], max: usize) -> bool {
        while let Some(p) = chunk.iter().position(|&b| b == b'\n') {
            if self.current + p + 1 > max {
                self.overlong = true;
            }
            self.current = 0;
            chunk = &chunk[p + 1..];
        }
        self.current += chunk.len();
        if self.current > max {
            self.overlong = true;
        }
        self.overlong
    }

    pub fn overlong(&self) -> bool {
        self.overlong
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(max: usize, parts: &[&[u8]]) -> Vec<String> {
        let mut c = CommandLines::new(max);
        let mut out = Vec::new();
        for p in parts {
            let mut it = p.iter();
            while !it.as_slice().is_empty() {
                match c.next(&mut it) {
                    Line::Whole(l) => out.push(String::from_utf8_lossy(l).into_owned()),
                    Line::TooLong => out.push("TOO LONG".into()),
                    Line::Partial => {}
                }
            }
        }
        out
    }

    #[test]
    fn whole_lines_pass_across_reads() {
        assert_eq!(
            lines(20, &[b"NOOP\r\nMAIL FR", b"OM:<a@b>\r\n"]),
            vec!["NOOP\r\n", "MAIL FROM:<a@b>\r\n"]
        );
    }

    #[test]
    fn an_overlong_line_is_one_error_even_across_reads() {
        let long = [b'x'; 50];
        assert_eq!(
            lines(20, &[b"NOOP ", &long, &long, b"\r\nQUIT\r\n"]),
            vec!["TOO LONG", "QUIT\r\n"]
        );
        // exactly at the limit, CRLF included, is fine; one more byte is not
        assert_eq!(lines(8, &[b"NOOP 1\r\n"]), vec!["NOOP 1\r\n"]);
        assert_eq!(lines(8, &[b"NOOP 12\r\n"]), vec!["TOO LONG"]);
    }

    #[test]
    fn body_lines_count_across_chunks() {
        let mut b = BodyLines::default();
        assert!(!b.feed(b"abc\r\nabcd", 8));
        assert!(!b.feed(b"ef\r\n", 8), "abcdef + CRLF is exactly 8");
        assert!(!b.feed(b"abcdefg", 8));
        assert!(b.feed(b"\r\n", 8), "abcdefg + CRLF is 9");
        assert!(b.overlong());
        let mut b = BodyLines::default();
        assert!(b.feed(&[b'y'; 9], 8), "no LF yet, already too long");
    }
}
