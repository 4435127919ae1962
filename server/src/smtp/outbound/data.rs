//! The DATA payload: the stored message made safe for the wire (RFC 5321 §4.5.2).

/// Turns `raw` into what follows `354`: every line ends in CRLF, lines starting with `.` get
/// another `.`, and the terminating `.` line is appended.
///
/// Bare LF and bare CR both become CRLF. A bare line ending is not allowed on the wire
/// (RFC 5321 §2.3.8), and receivers disagree about where such a line ends, which is exactly
/// what SMTP smuggling (`\n.\r\n`) exploits; normalising before dot-stuffing means the only
/// end-of-data any receiver can see is ours.
pub(crate) fn encode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32 + 8);
    let mut line_start = true;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                // CRLF is one line ending, not two.
                if b == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                line_start = true;
            }
            _ => {
                if line_start && b == b'.' {
                    out.push(b'.');
                }
                out.push(b);
                line_start = false;
            }
        }
        i += 1;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Whether `BODY=8BITMIME` is called for (RFC 6152).
pub(crate) fn has_8bit(raw: &[u8]) -> bool {
    raw.iter().any(|&b| b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_and_line_endings() {
        assert_eq!(encode(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(encode(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(encode(b"a\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode(b"a\n.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(encode(b"a\r.\r\n"), b"a\r\n..\r\n.\r\n");
        assert_eq!(encode(b""), b".\r\n");
        assert_eq!(encode(b"x.y\r\n"), b"x.y\r\n.\r\n");
    }

    #[test]
    fn eight_bit() {
        assert!(!has_8bit(b"plain ascii\r\n"));
        assert!(has_8bit("café".as_bytes()));
    }
}
