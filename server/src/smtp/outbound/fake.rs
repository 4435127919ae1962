//! A scripted SMTP server on 127.0.0.1 for the client's tests: it answers from a `Script`
//! and records what it was sent, including which commands arrived together.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Clone)]
pub(super) struct Script {
    pub greeting: String,
    /// EHLO keywords after the host line (`PIPELINING`, `SIZE 1000`...).
    pub ehlo: Vec<String>,
    /// Answer EHLO with this instead (to force the HELO fallback).
    pub ehlo_reject: Option<String>,
    pub mail: String,
    /// Per-recipient replies; others get 250.
    pub rcpt: Vec<(String, String)>,
    pub data: String,
    pub end: String,
    /// Offer STARTTLS with this server config.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Say 220 to STARTTLS and then send junk instead of a handshake.
    pub tls_broken: bool,
    /// Send a reply right behind the 220 to STARTTLS, in the same write (an injection).
    pub tls_inject: bool,
    /// Drop the connection on the final `.` without replying.
    pub close_after_data: bool,
    /// Close the connection right after replying to the final `.` (a server that does not
    /// keep idle sessions).
    pub close_after_reply: bool,
    /// After this many messages on one connection, answer the next MAIL with `421` and
    /// close (a server's per-connection limit, or its idle timeout); 0 is never.
    pub refuse_after: usize,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            greeting: "220 fake.test ESMTP".into(),
            ehlo: Vec::new(),
            ehlo_reject: None,
            mail: "250 2.1.0 Ok".into(),
            rcpt: Vec::new(),
            data: "354 End data with <CR><LF>.<CR><LF>".into(),
            end: "250 2.0.0 Ok: queued".into(),
            tls: None,
            tls_broken: false,
            tls_inject: false,
            close_after_data: false,
            close_after_reply: false,
            refuse_after: 0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Log {
    /// Command lines without CRLF, in order.
    pub commands: Vec<String>,
    /// For each command: how many replies the server had sent when the read that carried
    /// it returned. Equal numbers mean the client did not wait between the commands.
    pub replies_before: Vec<usize>,
    /// For each command: whether it came over TLS.
    pub over_tls: Vec<bool>,
    /// The DATA payload as sent (still dot-stuffed), without the final `.` line.
    pub data: Vec<u8>,
    pub data_over_tls: bool,
    pub connections: usize,
}

pub(super) struct Fake {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    pub async fn start(script: Script) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn(serve(listener, script, log.clone()));
        Fake { addr, log, task }
    }

    pub fn log(&self) -> Log {
        self.log.lock().unwrap().clone()
    }
}

async fn serve(listener: TcpListener, script: Script, log: Arc<Mutex<Log>>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        log.lock().unwrap().connections += 1;
        let Some(mut tcp) = converse(tcp, &script, &log, false).await else {
            continue;
        };
        if script.tls_broken {
            // After the client has read the 220, so it is the handshake that fails.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tcp.write_all(b"this is not TLS\r\n").await;
            continue;
        }
        let Some(cfg) = script.tls.clone() else {
            continue;
        };
        if let Ok(tls) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
            converse(tls, &script, &log, true).await;
        }
    }
}

async fn reply<S: AsyncWrite + Unpin>(s: &mut S, text: &str, sent: &mut usize) -> bool {
    *sent += 1;
    s.write_all(format!("{text}\r\n").as_bytes()).await.is_ok()
}

/// One conversation; returns the stream when the client is owed a TLS handshake.
async fn converse<S>(mut s: S, script: &Script, log: &Mutex<Log>, tls: bool) -> Option<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut sent = 0usize;
    if !tls && !reply(&mut s, &script.greeting, &mut sent).await {
        return None;
    }
    let mut buf = Vec::new();
    let mut in_data = false;
    let mut messages = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        let sent_at_read = sent;
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..end + 2).collect();
            if in_data {
                if line == b".\r\n" {
                    in_data = false;
                    if script.close_after_data {
                        return None;
                    }
                    reply(&mut s, &script.end, &mut sent).await;
                    messages += 1;
                    if script.close_after_reply {
                        return None;
                    }
                } else {
                    let mut l = log.lock().unwrap();
                    l.data.extend_from_slice(&line);
                    l.data_over_tls = tls;
                }
                continue;
            }
            let text = String::from_utf8_lossy(&line[..end]).to_string();
            {
                let mut l = log.lock().unwrap();
                l.commands.push(text.clone());
                l.replies_before.push(sent_at_read);
                l.over_tls.push(tls);
            }
            let verb = text
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => {
                    if let Some(r) = &script.ehlo_reject {
                        reply(&mut s, r, &mut sent).await;
                        continue;
                    }
                    let mut lines = vec!["fake.test".to_string()];
                    lines.extend(script.ehlo.iter().cloned());
                    if !tls && (script.tls.is_some() || script.tls_broken || script.tls_inject) {
                        lines.push("STARTTLS".into());
                    }
                    let last = lines.len() - 1;
                    let mut out = String::new();
                    for (i, l) in lines.iter().enumerate() {
                        let sep = if i == last { ' ' } else { '-' };
                        out.push_str(&format!("250{sep}{l}\r\n"));
                    }
                    sent += 1;
                    s.write_all(out.as_bytes()).await.ok()?;
                }
                "HELO" => {
                    reply(&mut s, "250 fake.test", &mut sent).await;
                }
                "STARTTLS" => {
                    let ready = if script.tls_inject {
                        "220 2.0.0 Ready\r\n250 injected"
                    } else {
                        "220 2.0.0 Ready to start TLS"
                    };
                    reply(&mut s, ready, &mut sent).await;
                    return Some(s);
                }
                "MAIL" if script.refuse_after > 0 && messages >= script.refuse_after => {
                    reply(&mut s, "421 4.4.2 fake.test closing", &mut sent).await;
                    return None;
                }
                "MAIL" => {
                    reply(&mut s, &script.mail, &mut sent).await;
                }
                "RCPT" => {
                    let r = script
                        .rcpt
                        .iter()
                        .find(|(a, _)| text.contains(&format!("<{a}>")))
                        .map(|(_, r)| r.clone())
                        .unwrap_or_else(|| "250 2.1.5 Ok".into());
                    reply(&mut s, &r, &mut sent).await;
                }
                "DATA" => {
                    in_data = script.data.starts_with("354");
                    reply(&mut s, &script.data, &mut sent).await;
                }
                "QUIT" => {
                    reply(&mut s, "221 2.0.0 Bye", &mut sent).await;
                    return None;
                }
                _ => {
                    reply(&mut s, "502 5.5.2 Error: command not recognized", &mut sent).await;
                }
            }
        }
    }
}

/// A server that sends `bytes` on connect, keeps reading until the client goes away, and
/// never says anything else.
pub(super) async fn raw_server(bytes: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.write_all(bytes).await;
            let mut sink = vec![0u8; 4096];
            while let Ok(n) = tcp.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    });
    (addr, task)
}
