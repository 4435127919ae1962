//! Input buffering and line framing for a session.
//!
//! smtp-proto's `RequestReceiver` frames lines too, but with a fixed 4096-byte cap; framing here
//! makes `max_line_length` configurable, keeps the raw line for the relay-form checks, and
//! bounds memory: a line over the cap is dropped as it arrives, never buffered whole.

/// Bytes received and not yet consumed. Pipelined commands and message content that arrived
/// with a command stay here until their state consumes them.
#[derive(Default)]
pub(crate) struct Input {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes; compacted before each read.
    pos: usize,
    /// Inside a line that already exceeded the cap: drop bytes up to its LF.
    discarding: bool,
}

/// The outcome of asking for the next command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line, LF (and CR) included.
    Complete(Vec<u8>),
    /// A line longer than the cap ended; it was discarded.
    TooLong,
    /// No complete line buffered: read more.
    Incomplete,
}

/// Read size per call; also the most a capped buffer can overshoot by.
pub(crate) const READ_CHUNK: usize = 8192;

impl Input {
    /// The unconsumed bytes.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Drops everything buffered: after STARTTLS, nothing sent in the clear may be read as a
    /// command of the TLS session (RFC 3207 §4.2, the command-injection defence).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.discarding = false;
    }

    /// Space to read into, after moving unconsumed bytes to the front.
    pub(crate) fn prepare_read(&mut self) -> &mut Vec<u8> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.reserve(READ_CHUNK);
        &mut self.buf
    }

    /// The next command line of at most `max` bytes (LF included).
    pub(crate) fn next_line(&mut self, max: usize) -> Line {
        let pending = self.pending();
        match pending.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let end = self.pos + lf + 1;
                let line = if self.discarding || lf + 1 > max {
                    Line::TooLong
                } else {
                    Line::Complete(self.buf[self.pos..end].to_vec())
                };
                self.pos = end;
                self.discarding = false;
                line
            }
            None => {
                if self.discarding || pending.len() > max {
                    self.discarding = true;
                    self.clear_keep_discarding();
                }
                Line::Incomplete
            }
        }
    }

    fn clear_keep_discarding(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(input: &mut Input, bytes: &[u8]) {
        input.prepare_read().extend_from_slice(bytes);
    }

    #[test]
    fn pipelined_lines_come_out_in_order() {
        let mut i = Input::default();
        feed(&mut i, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDA");
        assert_eq!(
            i.next_line(512),
            Line::Complete(b"MAIL FROM:<a@b>\r\n".to_vec())
        );
        assert_eq!(
            i.next_line(512),
            Line::Complete(b"RCPT TO:<c@d>\r\n".to_vec())
        );
        assert_eq!(i.next_line(512), Line::Incomplete);
        feed(&mut i, b"TA\r\n");
        assert_eq!(i.next_line(512), Line::Complete(b"DATA\r\n".to_vec()));
        assert!(i.pending().is_empty());
    }

    #[test]
    fn long_lines_are_dropped_without_buffering() {
        let mut i = Input::default();
        feed(&mut i, &[b'x'; 100]);
        assert_eq!(i.next_line(16), Line::Incomplete);
        assert!(i.pending().is_empty(), "the overlong prefix is not kept");
        feed(&mut i, b"yyy\r\nNOOP\r\n");
        assert_eq!(i.next_line(16), Line::TooLong);
        assert_eq!(i.next_line(16), Line::Complete(b"NOOP\r\n".to_vec()));
        feed(&mut i, b"0123456789abcdefgh\r\n");
        assert_eq!(i.next_line(16), Line::TooLong, "complete but over the cap");
    }

    #[test]
    fn clear_drops_pipelined_bytes() {
        let mut i = Input::default();
        feed(&mut i, b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
        assert!(matches!(i.next_line(512), Line::Complete(_)));
        i.clear();
        assert_eq!(i.next_line(512), Line::Incomplete);
    }
}
