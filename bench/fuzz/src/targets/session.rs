//! The SMTP session state machine itself (MX, or submission after TLS), over an in-memory
//! pipe instead of a socket: the whole input is the client's side of the conversation.
//! A leading `#submission` line selects the submission port; `@PLAIN@` is the fuzz agent's
//! AUTH PLAIN blob. Oracle: the session ends at the end of input (no hang), every reply line
//! is `NNN` + space or dash, and every 4xx/5xx carries an enhanced status code.

use super::server::Fixture;
use crate::{Target, Verdict};
use legate::smtp::inbound::Session;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct SmtpSession {
    fixture: Option<Fixture>,
    error: String,
}

impl SmtpSession {
    pub fn new() -> Self {
        match Fixture::new() {
            Ok(f) => Self {
                fixture: Some(f),
                error: String::new(),
            },
            Err(e) => Self {
                fixture: None,
                error: e,
            },
        }
    }
}

impl Default for SmtpSession {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for SmtpSession {
    fn name(&self) -> &'static str {
        "smtp_session"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        super::SMTP_DICT
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        let Some(f) = &self.fixture else {
            return Verdict::Bad(format!("fixture: {}", self.error));
        };
        let input = f.expand(input);
        let (submission, input) = match input.strip_prefix(b"#submission\n") {
            Some(rest) => (true, rest.to_vec()),
            None => (false, input),
        };
        let ctx = f.inbound.clone();
        let out = f.rt.block_on(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let peer = std::net::SocketAddr::from(([192, 0, 2, 1], 40000));
            let mut s = Session::new(server, ctx, peer, None);
            if submission {
                s = s.submission().secured();
            }
            let shutdown = tokio_util::sync::CancellationToken::new();
            let session = tokio::spawn(async move {
                let _ = s.run(shutdown, true).await;
            });
            let (mut rd, mut wr) = tokio::io::split(client);
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(&input).await;
                let _ = wr.shutdown().await;
                wr
            });
            let mut out = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut out)).await;
            let _ = writer.await;
            let ended = session.await;
            match (read, ended) {
                (Err(_), _) => Err("the session did not end at the end of input".to_string()),
                (_, Err(e)) if e.is_panic() => Err("the session task panicked".to_string()),
                _ => Ok(out),
            }
        });
        let out = match out {
            Ok(o) => o,
            Err(e) => return Verdict::Bad(e),
        };
        crate::trace(|| String::from_utf8_lossy(&out).into_owned());
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let l = String::from_utf8_lossy(line);
            let ok = line.len() >= 5
                && line.ends_with(b"\r")
                && line[..3].iter().all(u8::is_ascii_digit)
                && matches!(line[3], b' ' | b'-');
            if !ok {
                return Verdict::Bad(format!("malformed reply line {:?}", &l[..l.len().min(80)]));
            }
            if matches!(line[0], b'4' | b'5') && !enhanced(&l[4..]) {
                return Verdict::Bad(format!("reply without enhanced code: {:?}", l.trim_end()));
            }
        }
        Verdict::Ok
    }
}

/// `X.Y.Z ` at the start, with X the reply class.
fn enhanced(text: &str) -> bool {
    let Some(code) = text.split(' ').next() else {
        return false;
    };
    let parts: Vec<&str> = code.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}
