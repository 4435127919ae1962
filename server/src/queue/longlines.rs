//! Lines over 998 octets (issue 15, 18). RFC 5321 §4.5.3.1.6 and RFC 5322 §2.1.1 cap a line
//! at 998 octets plus CRLF, and a receiver may refuse or truncate anything longer. Inbound we
//! accept long lines (real clients send them), so a submitted message can carry them; before
//! it is DKIM-signed and queued, each offending body part is re-encoded: a 7bit/8bit/binary
//! part becomes quoted-printable (its bytes unchanged once decoded), a base64 part is
//! re-wrapped at 76 characters and a quoted-printable part gets soft line breaks. Whatever
//! still exceeds the limit after that (a header, a MIME preamble, a nested message) is
//! refused at submission rather than sent for a peer to reject.

use super::compose::MAX_LINE_OCTETS;
use mail_builder::encoders::quoted_printable::QuotedPrintableEncoder;
use mail_parser::{Encoding, HeaderName, MessageParser, PartType};

/// The length of the longest line of `raw`, without its line ending (CRLF or bare LF).
pub fn longest_line(raw: &[u8]) -> usize {
    raw.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
        .max()
        .unwrap_or(0)
}

/// Why a message could not be made fit.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong;

/// `raw` with every over-long body part re-encoded; `raw` itself when no line is too long.
/// Fails when a line over the limit remains that re-encoding cannot reach.
pub fn fit(raw: Vec<u8>) -> Result<Vec<u8>, TooLong> {
    if longest_line(&raw) <= MAX_LINE_OCTETS {
        return Ok(raw);
    }
    let out = rewrite(&raw).unwrap_or_else(|| raw.clone());
    if longest_line(&out) > MAX_LINE_OCTETS {
        return Err(TooLong);
    }
    Ok(out)
}

/// One replacement of `raw[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    with: Vec<u8>,
}

fn rewrite(raw: &[u8]) -> Option<Vec<u8>> {
    // mail-parser has panicked on hostile input before; a panic here must not take the
    // submission session down with it.
    let edits = std::panic::catch_unwind(|| plan(raw)).ok()??;
    let mut out = raw.to_vec();
    // Edits never overlap; applying from the end keeps the earlier offsets valid.
    for e in edits.into_iter().rev() {
        out.splice(e.start..e.end, e.with);
    }
    Some(out)
}

fn plan(raw: &[u8]) -> Option<Vec<Edit>> {
    if crate::extract::nesting_bomb(raw) {
        return None;
    }
    let msg = MessageParser::default().parse(raw)?;
    let mut edits = Vec::new();
    let has_mime_version = msg.parts.first().is_some_and(|p| {
        p.headers
            .iter()
            .any(|h| matches!(h.name, HeaderName::MimeVersion))
    });
    for (i, part) in msg.parts.iter().enumerate() {
        if !matches!(
            part.body,
            PartType::Text(_) | PartType::Html(_) | PartType::Binary(_) | PartType::InlineBinary(_)
        ) {
            continue;
        }
        let (hs, bs, be) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        let body = raw.get(bs..be)?;
        if longest_line(body) <= MAX_LINE_OCTETS {
            continue;
        }
        // The line break before a boundary belongs to the boundary (RFC 2046 §5.1.1): keep
        // whatever ending the slice has as it is.
        let (content, ending) = split_ending(body);
        let mut with = match part.encoding {
            Encoding::None => QuotedPrintableEncoder::new()
                .preserve_line_breaks()
                .encode(content)
                .ok()?,
            Encoding::Base64 => rewrap_base64(content),
            Encoding::QuotedPrintable => soft_break_qp(content),
        };
        with.extend_from_slice(ending);
        if part.encoding == Encoding::None {
            let cte = part
                .headers
                .iter()
                .find(|h| matches!(h.name, HeaderName::ContentTransferEncoding));
            let line: &[u8] = b"Content-Transfer-Encoding: quoted-printable\r\n";
            match cte {
                Some(h) => {
                    let start = h.offset_field as usize;
                    let end = field_end(raw, h.offset_start as usize, bs);
                    edits.push(Edit {
                        start,
                        end,
                        with: line.to_vec(),
                    });
                }
                None => {
                    let mut add = Vec::new();
                    if i == 0 && !has_mime_version {
                        add.extend_from_slice(b"MIME-Version: 1.0\r\n");
                    }
                    add.extend_from_slice(line);
                    edits.push(Edit {
                        start: hs,
                        end: hs,
                        with: add,
                    });
                }
            }
        }
        edits.push(Edit {
            start: bs,
            end: be,
            with,
        });
    }
    edits.sort_by_key(|e| (e.start, e.end));
    // Reversed, out-of-range or overlapping edits would mean the parser's offsets are not
    // what we think: change nothing.
    if edits.iter().any(|e| e.start > e.end || e.end > raw.len())
        || edits.windows(2).any(|w| w[0].end > w[1].start)
    {
        return None;
    }
    Some(edits)
}

/// The end of a header field whose value starts at `from`: after the line break that is not
/// followed by folding white space, and never past `limit` (the body's start).
fn field_end(raw: &[u8], from: usize, limit: usize) -> usize {
    let mut i = from;
    while i < limit {
        if raw[i] == b'\n' && !matches!(raw.get(i + 1), Some(b' ' | b'\t')) {
            return i + 1;
        }
        i += 1;
    }
    limit
}

fn split_ending(body: &[u8]) -> (&[u8], &[u8]) {
    if let Some(c) = body.strip_suffix(b"\r\n") {
        (c, &body[c.len()..])
    } else if let Some(c) = body.strip_suffix(b"\n") {
        (c, &body[c.len()..])
    } else {
        (body, &[])
    }
}

/// Base64 text re-wrapped at 76 characters (RFC 2045 §6.8); its content does not change.
fn rewrap_base64(content: &[u8]) -> Vec<u8> {
    let chars: Vec<u8> = content
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 38);
    for (i, chunk) in chars.chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(chunk);
    }
    out
}

/// Quoted-printable text with soft line breaks (`=` CRLF, RFC 2045 §6.7 rule 5) so that no
/// line exceeds 76 characters; never splits an `=XX` escape, so it decodes to the same bytes.
fn soft_break_qp(content: &[u8]) -> Vec<u8> {
    const WIDTH: usize = 75;
    let mut out = Vec::with_capacity(content.len() + content.len() / 37);
    for (n, line) in content.split(|b| *b == b'\n').enumerate() {
        if n > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        let mut i = 0;
        while i < line.len() {
            let step = if line[i] == b'=' {
                3.min(line.len() - i)
            } else {
                1
            };
            if col + step > WIDTH && i + step < line.len() {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            out.extend_from_slice(&line[i..i + step]);
            col += step;
            i += step;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded_text(raw: &[u8], n: usize) -> String {
        let m = MessageParser::default().parse(raw).unwrap();
        m.body_text(n).unwrap().into_owned()
    }

    #[test]
    fn short_lines_are_left_alone() {
        let raw = b"From: a@a.test\r\nSubject: x\r\n\r\nhello\r\n".to_vec();
        assert_eq!(fit(raw.clone()).unwrap(), raw);
    }

    #[test]
    fn a_plain_message_becomes_quoted_printable() {
        let long = "word ".repeat(1000) + "caf\u{e9}";
        let raw = format!("From: a@a.test\r\nSubject: x\r\n\r\nfirst\r\n{long}\r\nlast\r\n");
        let out = fit(raw.into_bytes()).unwrap();
        assert!(longest_line(&out) <= 78, "{}", longest_line(&out));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("MIME-Version: 1.0\r\n"), "{text}");
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        let body = decoded_text(&out, 0);
        assert!(body.contains(&long), "{body:?}");
        assert!(body.starts_with("first"), "{body:?}");
    }

    #[test]
    fn only_the_long_part_of_a_multipart_is_rewritten() {
        let long = "x".repeat(5000);
        let raw = format!(
            "From: a@a.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; \
             boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{long}\r\n--b1\r\n\
             Content-Type: text/html\r\n\r\n<p>short</p>\r\n--b1--\r\n"
        );
        let out = fit(raw.into_bytes()).unwrap();
        assert!(longest_line(&out) <= 78);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("8bit"), "{text}");
        assert_eq!(text.matches("quoted-printable").count(), 1, "{text}");
        assert_eq!(text.matches("MIME-Version").count(), 1, "{text}");
        assert_eq!(decoded_text(&out, 0), long);
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.body_html(0).unwrap().trim(), "<p>short</p>");
    }

    #[test]
    fn base64_and_quoted_printable_parts_are_rewrapped() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let b64 = data_encoding::BASE64.encode(&data);
        let qp = "=C3=A9".repeat(400);
        let raw = format!(
            "From: a@a.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; \
             boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n--b\r\n\
             Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
             \r\n{b64}\r\n--b--\r\n"
        );
        let out = fit(raw.into_bytes()).unwrap();
        assert!(longest_line(&out) <= 78);
        let m = MessageParser::default().parse(&out).unwrap();
        assert_eq!(m.body_text(0).unwrap(), "\u{e9}".repeat(400));
        assert_eq!(m.attachment(0).unwrap().contents(), data.as_slice());
    }

    #[test]
    fn malformed_messages_never_panic() {
        let long = "q".repeat(3000);
        for raw in [
            format!("From: a@a.test\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\n{long}"),
            format!("From: a@a.test\r\nContent-Transfer-Encoding: base64\r\n\r\n{long}!!"),
            format!("From: a@a.test\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{long}="),
            format!("{long}\n\n{long}"),
            format!("From: a@a.test\n\n\0{long}\0\r"),
            format!("From: a@a.test\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\n{long}"),
        ] {
            // Either refused (TooLong) or made fit; never a panic.
            if let Ok(out) = fit(raw.into_bytes()) {
                assert!(longest_line(&out) <= MAX_LINE_OCTETS);
            }
        }
    }

    #[test]
    fn a_long_header_line_is_refused() {
        let raw = format!(
            "From: a@a.test\r\nX-Long: {}\r\n\r\nhi\r\n",
            "y".repeat(2000)
        );
        assert_eq!(fit(raw.into_bytes()), Err(TooLong));
    }
}
