//! Test harness: a fake backend that records deliveries, session options, and a client that
//! speaks SMTP as a conversation (`c.cmd("EHLO x", "250")`) over an in-memory pipe, TCP or TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use data_encoding::BASE64;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::backend::*;
use super::session::{Conn, Session};
use super::starttls::drive;
use super::{Context, Mode, SessionConfig};

/// How long a test waits for any reply before failing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A delivery as the fake backend saw it.
#[derive(Clone, Debug)]
pub(crate) struct Delivered {
    pub(crate) mail_from: String,
    pub(crate) mail_data: String,
    pub(crate) rcpts: Vec<Recipient>,
    pub(crate) tls: bool,
    pub(crate) chunked: bool,
    pub(crate) authenticated: Option<AuthedUser>,
    pub(crate) body: Vec<u8>,
}

/// Domain `a.test` with agents alice, bob, carol and `full` (always over quota); `revoked`
/// and everything else there is unknown. Login: `alice@a.test` with key `lg_good`.
#[derive(Default)]
pub(crate) struct FakeBackend {
    delivered: Mutex<Vec<Delivered>>,
    lookups: Mutex<Vec<String>>,
}

impl FakeBackend {
    pub(crate) fn deliveries(&self) -> Vec<Delivered> {
        self.delivered.lock().unwrap().clone()
    }

    /// Every address `check_rcpt` was asked about.
    pub(crate) fn rcpt_lookups(&self) -> Vec<String> {
        self.lookups.lock().unwrap().clone()
    }
}

impl Backend for FakeBackend {
    type MailData = String;

    async fn check_rcpt(&self, rcpt: &RcptAddress, _auth: Option<&AuthedUser>) -> RcptVerdict {
        self.lookups.lock().unwrap().push(rcpt.address.clone());
        let local = rcpt.local.to_lowercase();
        match rcpt.domain.as_str() {
            "" if local == "postmaster" => RcptVerdict::Local {
                agent_id: "ag_postmaster".into(),
                label: None,
            },
            "a.test" => match local.as_str() {
                "alice" | "bob" | "carol" | "full" => RcptVerdict::Local {
                    agent_id: format!("ag_{local}"),
                    label: rcpt.tag.clone(),
                },
                _ => RcptVerdict::Refuse(Reply::unknown_user()),
            },
            _ => RcptVerdict::Remote,
        }
    }

    async fn check_mail_from(&self, ctx: &MailCtx<'_>) -> MailVerdict<String> {
        if ctx.mail_from == "spf-fail@bad.test" {
            return MailVerdict::Refuse(Reply::new(550, (5, 7, 23), "SPF validation failed"));
        }
        MailVerdict::Accept("spf=pass".into())
    }

    async fn authenticate(
        &self,
        user: &str,
        secret: &str,
        _peer: std::net::IpAddr,
    ) -> Option<AuthedUser> {
        (user.eq_ignore_ascii_case("alice@a.test") && secret == "lg_good").then(|| AuthedUser {
            agent_id: "ag_alice".into(),
            address: "alice@a.test".into(),
            key_id: "key_1".into(),
        })
    }

    async fn deliver(&self, env: Envelope<String>, message: Vec<u8>) -> Reply {
        let full = env.rcpts.iter().any(
            |r| matches!(&r.target, RcptTarget::Local { agent_id, .. } if agent_id == "ag_full"),
        );
        if full {
            return Reply::mailbox_full();
        }
        self.delivered.lock().unwrap().push(Delivered {
            mail_from: env.mail_from,
            mail_data: env.mail_data,
            rcpts: env.rcpts,
            tls: env.tls,
            chunked: env.chunked,
            authenticated: env.authenticated,
            body: message,
        });
        Reply::ok("Message accepted")
    }
}

/// Session options for one test.
#[derive(Clone)]
pub(crate) struct Opts {
    pub(crate) cfg: SessionConfig,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Pretend the in-memory pipe is already TLS (for AUTH tests without a handshake).
    pub(crate) tls_active: bool,
    pub(crate) shutdown: CancellationToken,
    cert: Option<PathBuf>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl Opts {
    fn new(mode: Mode) -> Self {
        let mut cfg = SessionConfig::new("mx.a.test", mode);
        cfg.limits.max_message_size = 1024 * 1024;
        Self {
            cfg,
            tls: None,
            tls_active: false,
            shutdown: CancellationToken::new(),
            cert: None,
            _dir: None,
        }
    }

    pub(crate) fn mx() -> Self {
        Self::new(Mode::Mx)
    }

    pub(crate) fn submission() -> Self {
        Self::new(Mode::Submission)
    }

    pub(crate) fn submission_tls() -> Self {
        Self {
            tls_active: true,
            ..Self::new(Mode::Submission)
        }
    }

    pub(crate) fn implicit_tls() -> Self {
        Self::new(Mode::ImplicitTls).with_tls_available()
    }

    /// A fresh self-signed certificate for `localhost`, made with the production code path.
    pub(crate) fn with_tls_available(mut self) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::self_signed(dir.path(), &["localhost".into()]).unwrap();
        self.tls = Some(crate::tls::server_config(&cert, &key).unwrap());
        self.cert = Some(cert);
        self._dir = Some(Arc::new(dir));
        self
    }

    pub(crate) fn context(&self) -> Arc<Context<FakeBackend>> {
        let backend = Arc::new(FakeBackend::default());
        Arc::new(Context::new(
            Arc::new(self.cfg.clone()),
            backend,
            self.tls.clone(),
        ))
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        let cert = self.cert.as_ref().expect("opts without TLS");
        tokio_rustls::TlsConnector::from(crate::tls::tests::client_config_trusting(cert))
    }
}

/// Starts a session over an in-memory pipe and reads its greeting.
pub(crate) async fn start(opts: Opts) -> (Client, Arc<FakeBackend>) {
    let ctx = opts.context();
    let backend = ctx.backend.clone();
    (start_with(opts, ctx).await, backend)
}

/// Like [`start`], sharing a context (and so the failed-login counts) between sessions.
pub(crate) async fn start_with(opts: Opts, ctx: Arc<Context<FakeBackend>>) -> Client {
    let (client, server) = tokio::io::duplex(1 << 16);
    let conn = Conn {
        peer: "192.0.2.1:40000".parse().unwrap(),
        id: crate::util::new_id("smtp"),
        tls: opts.tls_active,
    };
    let session = Session::new(server, ctx, conn, opts.shutdown.clone());
    let task = tokio::spawn(drive(session));
    let mut c = Client::new(Box::new(client), opts);
    c.task = Some(task);
    c.expect("220 mx.a.test").await;
    c
}

pub(crate) fn b64(s: &str) -> String {
    BASE64.encode(s.as_bytes())
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client side of a conversation.
pub(crate) struct Client {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    opts: Opts,
    task: Option<JoinHandle<()>>,
}

impl Client {
    fn new(stream: Box<dyn Io>, opts: Opts) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            opts,
            task: None,
        }
    }

    pub(crate) async fn tcp(addr: SocketAddr) -> Self {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        Self::new(Box::new(s), Opts::mx())
    }

    pub(crate) async fn tls_tcp(addr: SocketAddr, opts: &Opts) -> Self {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = opts.connector().connect(name, s).await.unwrap();
        Self::new(Box::new(tls), opts.clone())
    }

    /// Performs the client TLS handshake after a `220` to STARTTLS.
    pub(crate) async fn upgrade(self) -> Client {
        assert!(self.buf.is_empty(), "unread bytes before the handshake");
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self
            .opts
            .connector()
            .connect(name, self.stream)
            .await
            .unwrap();
        Client {
            stream: Box::new(tls),
            buf: Vec::new(),
            opts: self.opts,
            task: self.task,
        }
    }

    /// Writes raw text; errors are ignored (the server may have closed), reads will tell.
    pub(crate) async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// One complete reply, lines joined with `\n`, CRLF removed.
    pub(crate) async fn read_reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line().await;
            let done = line.len() < 4 || line.as_bytes()[3] == b' ';
            lines.push(line);
            if done {
                return lines.join("\n");
            }
        }
    }

    async fn read_line(&mut self) -> String {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=lf).collect();
                let line = String::from_utf8(line).unwrap();
                return line.trim_end_matches(['\r', '\n']).to_string();
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .expect("timed out waiting for a reply")
                .expect("read failed");
            assert!(n > 0, "connection closed while waiting for a reply");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub(crate) async fn expect(&mut self, prefix: &str) -> String {
        let reply = self.read_reply().await;
        assert!(
            reply.starts_with(prefix),
            "expected {prefix:?}, got {reply:?}"
        );
        reply
    }

    pub(crate) async fn cmd(&mut self, line: &str, prefix: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.expect(prefix).await
    }

    pub(crate) async fn auth_plain(&mut self, user: &str, pass: &str, prefix: &str) -> String {
        let token = b64(&format!("\0{user}\0{pass}"));
        self.cmd(&format!("AUTH PLAIN {token}"), prefix).await
    }

    /// The server closed the connection and sent nothing more.
    pub(crate) async fn expect_closed(&mut self) {
        assert!(self.buf.is_empty(), "unexpected bytes: {:?}", self.buf);
        let mut chunk = [0u8; 256];
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut chunk))
            .await
            .expect("connection still open");
        if let Ok(n) = read {
            assert_eq!(n, 0, "unexpected bytes: {:?}", &chunk[..n]);
        }
    }

    /// Reads whatever comes until the server closes.
    pub(crate) async fn drain_until_closed(&mut self) {
        let mut chunk = [0u8; 4096];
        loop {
            let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read(&mut chunk))
                .await
                .expect("session did not end");
            if !matches!(read, Ok(n) if n > 0) {
                return;
            }
        }
    }

    /// The session task ended without panicking.
    pub(crate) async fn assert_task_ok(&mut self) {
        if let Some(task) = self.task.take() {
            task.await.expect("session task panicked");
        }
    }
}
