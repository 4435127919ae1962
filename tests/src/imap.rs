//! A minimal IMAP client for tests: sends raw command lines, reads untagged responses
//! (literals included) up to the tagged one. It parses nothing beyond line framing, so a
//! test sees exactly what the server wrote.

use super::Io;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub struct ImapClient {
    stream: BufReader<Box<dyn Io>>,
    next: u32,
}

/// One command's answer: every untagged line (literal bytes inline) and the tagged one.
#[derive(Debug, Default)]
pub struct Answer {
    pub untagged: Vec<String>,
    pub tagged: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }

    /// The untagged lines starting `* WORD` (case-insensitive), e.g. `"FETCH"` finds
    /// `* 3 FETCH ...` too.
    pub fn lines(&self, word: &str) -> Vec<&str> {
        let w = word.to_ascii_uppercase();
        self.untagged
            .iter()
            .filter(|l| {
                let mut it = l.split(' ').skip(1);
                let first = it.next().unwrap_or("").to_ascii_uppercase();
                first == w || it.next().is_some_and(|s| s.eq_ignore_ascii_case(&w))
            })
            .map(|s| s.as_str())
            .collect()
    }

    pub fn all(&self) -> String {
        let mut s = self.untagged.join("");
        s.push_str(&self.tagged);
        s
    }
}

impl ImapClient {
    pub async fn connect(addr: std::net::SocketAddr) -> (ImapClient, String) {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut c = ImapClient {
            stream: BufReader::new(Box::new(s)),
            next: 1,
        };
        let greeting = c.read_line().await;
        (c, greeting)
    }

    pub async fn connect_tls(
        addr: std::net::SocketAddr,
        tls: &tokio_rustls::TlsConnector,
    ) -> (ImapClient, String) {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("mx.agents.test").expect("name");
        let s = tls.connect(name, s).await.expect("tls handshake");
        let mut c = ImapClient {
            stream: BufReader::new(Box::new(s)),
            next: 1,
        };
        let greeting = c.read_line().await;
        (c, greeting)
    }

    /// STARTTLS, then the same client over TLS.
    pub async fn starttls(mut self, tls: &tokio_rustls::TlsConnector) -> ImapClient {
        let a = self.cmd("STARTTLS").await;
        assert!(a.ok(), "STARTTLS: {a:?}");
        let name = rustls::pki_types::ServerName::try_from("mx.agents.test").expect("name");
        let s = tls
            .connect(name, self.stream.into_inner())
            .await
            .expect("tls handshake");
        ImapClient {
            stream: BufReader::new(Box::new(s)),
            next: self.next,
        }
    }

    /// Connects, runs STARTTLS and logs in; panics unless all succeed.
    pub async fn login(
        addr: std::net::SocketAddr,
        tls: &tokio_rustls::TlsConnector,
        user: &str,
        key: &str,
    ) -> ImapClient {
        let (c, g) = ImapClient::connect(addr).await;
        assert!(g.starts_with("* OK"), "{g}");
        let mut c = c.starttls(tls).await;
        let a = c.cmd(&format!("LOGIN {user} {key}")).await;
        assert!(a.ok(), "LOGIN: {a:?}");
        c
    }

    /// One line, with any literal it announces read into it; empty at end of stream.
    pub async fn read_line(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(
                Duration::from_secs(10),
                self.stream.read_until(b'\n', &mut line),
            )
            .await
            .expect("read timeout")
            .expect("read");
            if n == 0 {
                return out;
            }
            out.push_str(&String::from_utf8_lossy(&line));
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            let lit = trimmed
                .strip_suffix(b"}")
                .and_then(|t| t.iter().rposition(|b| *b == b'{').map(|i| &t[i + 1..]))
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.trim_end_matches('+').parse::<usize>().ok());
            match lit {
                Some(len) => {
                    let mut buf = vec![0; len];
                    self.stream.read_exact(&mut buf).await.expect("literal");
                    out.push_str(&String::from_utf8_lossy(&buf));
                }
                None => return out,
            }
        }
    }

    /// Like [`read_line`](Self::read_line), but None when nothing arrives within `wait`.
    pub async fn read_line_within(&mut self, wait: Duration) -> Option<String> {
        tokio::time::timeout(wait, self.read_line()).await.ok()
    }

    pub async fn write(&mut self, data: &[u8]) {
        self.stream.get_mut().write_all(data).await.expect("write");
    }

    /// Sends `TAG line` and reads to the tagged answer.
    pub async fn cmd(&mut self, line: &str) -> Answer {
        let tag = format!("t{}", self.next);
        self.next += 1;
        self.write(format!("{tag} {line}\r\n").as_bytes()).await;
        self.read_answer(&tag).await
    }

    /// Reads untagged lines up to the line tagged `tag` (or the end of the stream).
    pub async fn read_answer(&mut self, tag: &str) -> Answer {
        let mut a = Answer::default();
        loop {
            let l = self.read_line().await;
            if l.is_empty() {
                return a;
            }
            if l.starts_with(&format!("{tag} ")) {
                a.tagged = l;
                return a;
            }
            a.untagged.push(l);
        }
    }

    /// Sends raw bytes for a command whose tag the test chose, then reads its answer.
    pub async fn raw(&mut self, tag: &str, bytes: &[u8]) -> Answer {
        self.write(bytes).await;
        self.read_answer(tag).await
    }
}
