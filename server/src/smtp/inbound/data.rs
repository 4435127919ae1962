//! The DATA body reader: un-dot-stuffing and the end-of-data mark (RFC 5321 §4.1.1.4,
//! §4.5.2), strict on purpose.
//!
//! SMTP smuggling (the 2023 reports) works when two servers disagree on where a message
//! ends: a relay passes `\n.\n` or `\r\n.\r\r\n` on as data, and the next hop takes it as the
//! end and reads the rest as a second, forged transaction. So here the ONLY end of data is
//! `<CR><LF>.<CR><LF>` (or `.<CR><LF>` as the very first line), and a dot is removed only at
//! the start of a line that follows a real CRLF. A bare LF or bare CR is message content,
//! never a line ending; it is counted so the session can refuse it where it matters
//! (submission, whose mail we relay on). smtp-proto's `DataReceiver` accepts
//! `<CRLF>.<CR>…<CR><LF>` as an end, hence this one.

/// Where the reader is relative to lines of the wire stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Just after CRLF (or at the start of DATA): a dot here is special.
    LineStart,
    /// Inside a line.
    Mid,
    /// Inside a line, just after a CR.
    Cr,
    /// At line start, after the dot (withheld: it is stuffing or part of the end mark).
    Dot,
    /// At line start, after `.` and CR (both withheld).
    DotCr,
}

/// Reads one DATA body; feed it the wire bytes as they arrive.
#[derive(Debug)]
pub(super) struct DataReader {
    at: At,
    /// Bare CR or bare LF seen in the body.
    bare: bool,
}

impl Default for DataReader {
    fn default() -> Self {
        Self {
            at: At::LineStart,
            bare: false,
        }
    }
}

impl DataReader {
    /// Consumes bytes from `input` up to and including the end-of-data mark, appending the
    /// un-stuffed message bytes to `out` (the mark is not part of the message: the CRLF
    /// before the dot is). Returns whether the end was reached; the bytes after it stay in
    /// `input` for the command parser.
    pub fn ingest(&mut self, input: &mut std::slice::Iter<'_, u8>, out: &mut Vec<u8>) -> bool {
        let bytes = input.as_slice();
        let mut i = 0;
        while i < bytes.len() {
            if self.at == At::Mid {
                // The fast path: copy up to the next CR or LF in one go.
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\r' || b == b'\n')
                    .unwrap_or(bytes.len() - i);
                out.extend_from_slice(&bytes[i..i + run]);
                i += run;
                if i == bytes.len() {
                    break;
                }
            }
            let b = bytes[i];
            i += 1;
            self.at = match (self.at, b) {
                (At::LineStart, b'.') => At::Dot,
                (At::DotCr, b'\n') => {
                    *input = bytes[i..].iter();
                    return true;
                }
                (At::DotCr, _) => {
                    // `.` CR then not LF: the dot was stuffing, the CR is bare.
                    out.push(b'\r');
                    self.bare = true;
                    self.after_cr_byte(b, out)
                }
                (At::Dot, b'\r') => At::DotCr,
                (At::Cr, _) => self.after_cr_byte(b, out),
                (_, b'\r') => {
                    out.push(b);
                    At::Cr
                }
                (_, b'\n') => {
                    // Bare LF: content, not a line end, so no dot after it is special.
                    out.push(b);
                    self.bare = true;
                    At::Mid
                }
                (_, _) => {
                    out.push(b);
                    At::Mid
                }
            };
        }
        *input = bytes[bytes.len()..].iter();
        false
    }

    /// The byte after a CR that was already written out.
    fn after_cr_byte(&mut self, b: u8, out: &mut Vec<u8>) -> At {
        out.push(b);
        match b {
            b'\n' => At::LineStart,
            b'\r' => {
                self.bare = true;
                At::Cr
            }
            _ => {
                self.bare = true;
                At::Mid
            }
        }
    }

    /// Whether a bare CR or LF was part of the message.
    pub fn saw_bare_newline(&self) -> bool {
        self.bare
    }
}

/// Whether `bytes` hold a CR not followed by LF or an LF not preceded by CR (for BDAT
/// chunks, which carry no dot-stuffing). `prev` is the last byte of the previous chunk and is
/// updated; a CR ending one chunk is judged by the next chunk's first byte.
pub(super) fn has_bare_newline(bytes: &[u8], prev: &mut u8) -> bool {
    let mut bare = false;
    for &b in bytes {
        if (b == b'\n' && *prev != b'\r') || (*prev == b'\r' && b != b'\n') {
            bare = true;
        }
        *prev = b;
    }
    bare
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; returns (message, rest after the end, ended).
    fn read(wire: &[u8], step: usize) -> (Vec<u8>, Vec<u8>, bool, bool) {
        let mut r = DataReader::default();
        let mut out = Vec::new();
        for (n, piece) in wire.chunks(step.max(1)).enumerate() {
            let mut it = piece.iter();
            if r.ingest(&mut it, &mut out) {
                let mut rest = it.as_slice().to_vec();
                for p in wire.chunks(step.max(1)).skip(n + 1) {
                    rest.extend_from_slice(p);
                }
                return (out, rest, true, r.saw_bare_newline());
            }
        }
        (out, Vec::new(), false, r.saw_bare_newline())
    }

    #[test]
    fn crlf_dot_crlf_ends_and_stuffing_is_removed_in_any_split() {
        let wire = b"a\r\n..b\r\n.\r\nQUIT\r\n";
        for step in 1..wire.len() {
            let (msg, rest, ended, bare) = read(wire, step);
            assert!(ended, "step {step}");
            assert_eq!(msg, b"a\r\n.b\r\n", "step {step}");
            assert_eq!(rest, b"QUIT\r\n", "step {step}");
            assert!(!bare);
        }
        // an empty message: the first line is the dot
        let (msg, rest, ended, _) = read(b".\r\nNOOP\r\n", 3);
        assert!(ended && msg.is_empty() && rest == b"NOOP\r\n");
    }

    #[test]
    fn smuggling_variants_never_end_data() {
        for v in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\r.\r\n",
            b"\r\n.\r\r\n",
            b"\r\n.\r\r\r\n",
            b"\n.\r\r\n",
            b"\r\r\n.\r\r\n",
        ] {
            let mut wire = b"Subject: x\r\n\r\nhello".to_vec();
            wire.extend_from_slice(v);
            wire.extend_from_slice(b"MAIL FROM:<evil@x.test>\r\n");
            for step in [1, 2, 3, wire.len()] {
                let (msg, _, ended, bare) = read(&wire, step);
                assert!(!ended, "{v:?} ended DATA (step {step})");
                assert!(bare, "{v:?} holds a bare CR or LF");
                assert!(msg.ends_with(b"MAIL FROM:<evil@x.test>\r\n"), "{v:?}");
            }
            // and the real end still works after it
            wire.extend_from_slice(b".\r\n");
            let (_, rest, ended, _) = read(&wire, 7);
            assert!(ended && rest.is_empty(), "{v:?}");
        }
    }

    #[test]
    fn bare_newlines_in_bdat_chunks() {
        let mut prev = 0;
        assert!(!has_bare_newline(b"a\r\nb\r", &mut prev));
        assert!(
            !has_bare_newline(b"\nc\r\n", &mut prev),
            "CR LF across chunks"
        );
        assert!(has_bare_newline(b"x\ny", &mut prev));
        let mut prev = 0;
        assert!(has_bare_newline(b"x\rz", &mut prev));
    }
}
