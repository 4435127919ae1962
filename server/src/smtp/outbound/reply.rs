//! Server replies on the wire: framing and parsing are smtp-proto's (`ResponseReceiver`,
//! `EhloResponse`); this file only feeds it bytes, bounds what a server may make us hold,
//! and turns a parsed reply into the one-line text the queue stores and DSNs quote.

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EhloResponse, Error as ProtoError, Response};

/// A reply longer than this many lines is hostile or broken; real EHLO replies have ~15.
pub(crate) const MAX_REPLY_LINES: usize = 128;

/// RFC 5321 §4.2.1: the first digit says everything the queue needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// 2xx.
    Positive,
    /// 3xx (354 after DATA).
    Intermediate,
    /// 4xx: try again later.
    Transient,
    /// 5xx: do not try again.
    Permanent,
}

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// `code [x.y.z] text`, all lines joined by a space, control characters removed, so it
    /// can go into a DSN or a log line as is.
    pub text: String,
    /// The bytes as received (for `EhloResponse::parse`, which wants the whole reply).
    raw: Vec<u8>,
}

impl Reply {
    fn new(response: Response<String>, raw: Vec<u8>) -> Self {
        let mut text = response.code.to_string();
        let [class, subject, detail] = response.esc;
        if class != 0 {
            text.push_str(&format!(" {class}.{subject}.{detail}"));
        }
        let message: String = response
            .message
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if !message.is_empty() {
            text.push(' ');
            text.push_str(&message);
        }
        Self {
            code: response.code,
            text,
            raw,
        }
    }

    /// `None` for a code outside 200..=599, which no conforming server sends.
    pub fn class(&self) -> Option<Class> {
        match self.code {
            200..=299 => Some(Class::Positive),
            300..=399 => Some(Class::Intermediate),
            400..=499 => Some(Class::Transient),
            500..=599 => Some(Class::Permanent),
            _ => None,
        }
    }

    /// The EHLO keywords; `None` when the reply is not a parseable 250 (then we assume no
    /// extensions, which is always safe: no PIPELINING, no STARTTLS, no SIZE).
    pub fn ehlo(&self) -> Option<EhloResponse<String>> {
        EhloResponse::parse(&mut self.raw.iter()).ok()
    }
}

/// Why bytes did not make a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("malformed reply: {0}")]
    Syntax(String),
    #[error("reply too long")]
    TooLong,
}

/// Incremental reply parser: feed it whatever the socket gave, take replies out. Keeps
/// the bytes that follow a reply (a pipelined server answers several commands at once).
#[derive(Default)]
pub(crate) struct ReplyParser {
    receiver: ResponseReceiver,
    /// Received and not yet consumed.
    pending: Vec<u8>,
    /// The current reply so far.
    raw: Vec<u8>,
}

impl ReplyParser {
    /// Bytes received and not yet part of a returned reply.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.raw.is_empty()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, WireError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let mut iter = self.pending.iter();
        let result = self.receiver.parse(&mut iter);
        let consumed = self.pending.len() - iter.len();
        self.raw.extend(self.pending.drain(..consumed));
        if self.raw.iter().filter(|&&b| b == b'\n').count() > MAX_REPLY_LINES {
            return Err(WireError::TooLong);
        }
        match result {
            Ok(response) => {
                self.receiver = ResponseReceiver::default();
                let raw = std::mem::take(&mut self.raw);
                Ok(Some(Reply::new(response, raw)))
            }
            Err(ProtoError::NeedsMoreData { .. }) => Ok(None),
            Err(ProtoError::ResponseTooLong) => Err(WireError::TooLong),
            Err(e) => Err(WireError::Syntax(format!("{e:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::{EXT_PIPELINING, EXT_SIZE, EXT_START_TLS};

    fn parse_all(chunks: &[&[u8]]) -> Vec<Result<Option<Reply>, WireError>> {
        let mut p = ReplyParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c);
            loop {
                let r = p.next_reply();
                let stop = !matches!(r, Ok(Some(_)));
                out.push(r);
                if stop {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn replies_split_and_pipelined() {
        let got = parse_all(&[b"250 2.1.0 O", b"k\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"]);
        let texts: Vec<_> = got
            .into_iter()
            .filter_map(|r| r.unwrap())
            .map(|r| (r.code, r.text))
            .collect();
        assert_eq!(
            texts,
            vec![
                (250, "250 2.1.0 Ok".to_string()),
                (250, "250 2.1.5 Ok".to_string()),
                (354, "354 go ahead".to_string()),
            ]
        );
    }

    #[test]
    fn multiline_is_joined_and_cleaned() {
        let mut p = ReplyParser::default();
        p.feed(b"550-5.1.1 No such\r\n550 5.1.1 user\x07 here\r\n");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.text, "550 5.1.1 No such user  here");
        assert_eq!(r.class(), Some(Class::Permanent));
    }

    #[test]
    fn ehlo_capabilities() {
        let mut p = ReplyParser::default();
        p.feed(b"250-mx.b.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n");
        let ehlo = p.next_reply().unwrap().unwrap().ehlo().unwrap();
        assert!(ehlo.has_capability(EXT_PIPELINING));
        assert!(ehlo.has_capability(EXT_START_TLS));
        assert!(ehlo.has_capability(EXT_SIZE));
        assert_eq!(ehlo.size, 1000);
    }

    #[test]
    fn garbage_and_floods_are_errors_not_panics() {
        let mut p = ReplyParser::default();
        p.feed(b"hello there\r\n");
        assert!(p.next_reply().is_err());

        let mut p = ReplyParser::default();
        p.feed(b"222");
        p.feed(b" ");
        p.feed(&vec![b'x'; 10_000]);
        assert_eq!(p.next_reply(), Err(WireError::TooLong));

        let mut p = ReplyParser::default();
        p.feed(&b"250-x\r\n".repeat(MAX_REPLY_LINES + 1));
        assert_eq!(p.next_reply(), Err(WireError::TooLong));

        for junk in [&b"\r\n"[..], b"999 x\r\n", b"2", b"\xff\xfe\r\n", b"25\n"] {
            let mut p = ReplyParser::default();
            p.feed(junk);
            let _ = p.next_reply();
        }
        let mut p = ReplyParser::default();
        p.feed(b"999 odd\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().class(), None);
    }

    /// Random bytes, biased towards the characters the parser branches on, never panic
    /// and never make the parser hold more than its caps.
    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"0123452 -.\r\n\r\nxX\xff";
        for _ in 0..2000 {
            let noise = crate::util::random_bytes::<64>();
            let bytes: Vec<u8> = noise
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
                .collect();
            let mut p = ReplyParser::default();
            for chunk in bytes.chunks(usize::from(noise[0] % 7) + 1) {
                p.feed(chunk);
                while let Ok(Some(r)) = p.next_reply() {
                    assert!(r.text.len() <= 4096 + 16);
                }
            }
        }
    }
}
