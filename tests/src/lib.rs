//! Harness for the end-to-end suites: boots a real legate in-process on 127.0.0.1:0 with a
//! temporary data directory, and speaks to it over real sockets.

pub mod imap;

use legate::app::{self, Running, StartOptions};
use legate::config::Config;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct TestServer {
    pub running: Option<Running>,
    /// Loopback DNS the server resolves through (never the internet).
    pub dns: Option<Arc<legate_testdns::TestDns>>,
    pub base: String,
    pub admin_token: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

/// A config for tests: every listener on an ephemeral loopback port, data in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.server.domain = "agents.test".into();
    c.server.hostname = "mx.agents.test".into();
    c.storage.path = dir.to_path_buf();
    c.listen.http = "127.0.0.1:0".into();
    c.listen.smtp = String::new();
    c.listen.submission = String::new();
    c.listen.imap = String::new();
    c.api.shutdown_grace_secs = 2;
    // Never the internet: DNS goes to a closed loopback port unless a test seeds a server.
    c.dns.nameservers = vec!["127.0.0.1:9".into()];
    c.dns.timeout_secs = 1;
    if let Ok(url) = std::env::var("LEGATE_TEST_PG_URL") {
        c.storage.backend = "postgres".into();
        c.storage.url = fresh_pg_database(&url);
        c.storage.sslmode = "disable".into();
    }
    c
}

/// Creates an empty database on the server `admin_url` names (a user that may create
/// databases) and returns its URL.
pub fn fresh_pg_database(admin_url: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "legate_e2e_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::SeqCst)
    );
    let admin = admin_url.to_string();
    let create = format!("CREATE DATABASE {name}");
    // The blocking client cannot run on a tokio thread: one of its own.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        c.batch_execute(&create).expect("create database");
    })
    .join()
    .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("URL with a database");
    format!("{base}/{name}")
}

/// The start failed because the data directory's lock is still held (`StoreError::Locked`
/// anywhere in the error's chain), the one refusal a restart in the same process may outwait.
fn store_locked(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|c| {
        matches!(
            c.downcast_ref::<legate::store::StoreError>(),
            Some(legate::store::StoreError::Locked)
        )
    })
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = test_config(dir.path());
        Self::start_with(dir, cfg).await
    }

    /// With the SMTP listener on an ephemeral port and DNS answered by a loopback server.
    pub async fn start_smtp(records: legate::mailauth::StaticDns) -> TestServer {
        let dns = Arc::new(legate_testdns::TestDns::start(records).await.expect("dns"));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = test_config(dir.path());
        cfg.listen.smtp = "127.0.0.1:0".into();
        cfg.dns.nameservers = vec![dns.addr().to_string()];
        cfg.dns.timeout_secs = 2;
        let mut s = Self::start_with(dir, cfg).await;
        s.dns = Some(dns);
        s
    }

    pub fn submission_addr(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.submission_addr)
            .expect("submission listener")
    }

    pub fn submissions_addr(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.submissions_addr)
            .expect("submissions listener")
    }

    pub fn imap_addr(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .and_then(|r| r.imap_addr)
            .expect("imap listener")
    }

    pub fn smtp_addr(&self) -> std::net::SocketAddr {
        self.running
            .as_ref()
            .expect("running")
            .smtp_addr
            .expect("smtp listener")
    }

    pub async fn start_with(dir: tempfile::TempDir, cfg: Config) -> TestServer {
        // A restart in the same process opens the store the stopped server's threads are
        // still letting go of; on a loaded test machine that took longer than the store's
        // own wait for the lock once. The product's wait (for a process still exiting) is
        // not what these tests are about.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let running = loop {
            match app::start(cfg.clone(), StartOptions::default()).await {
                Err(e) if store_locked(e.as_ref()) && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                r => break r.expect("start"),
            }
        };
        let admin_token = running
            .bootstrap
            .as_ref()
            .and_then(|b| b.token.as_ref())
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let base = format!("http://{}", running.http_addr.expect("http listener"));
        TestServer {
            running: Some(running),
            dns: None,
            base,
            admin_token,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server (graceful path) and starts a new one on the same data directory.
    pub async fn restart(mut self) -> TestServer {
        let cfg = self
            .running
            .as_ref()
            .expect("running")
            .services
            .config
            .clone();
        self.running
            .take()
            .expect("running")
            .stop()
            .await
            .expect("stop");
        let admin = self.admin_token.clone();
        let mut cfg = cfg;
        cfg.listen.http = "127.0.0.1:0".into();
        if !cfg.listen.smtp.is_empty() {
            cfg.listen.smtp = "127.0.0.1:0".into();
        }
        if !cfg.listen.imap.is_empty() {
            cfg.listen.imap = "127.0.0.1:0".into();
        }
        let dns = self.dns.take();
        let mut s = Self::start_with(self.dir, cfg).await;
        s.admin_token = admin;
        s.dns = dns;
        s
    }

    pub fn services(&self) -> &legate::app::Services {
        &self.running.as_ref().expect("running").services
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Sends a request; returns the status and the body as JSON (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A GET whose body is not JSON: status, headers and the raw bytes.
    pub async fn get_bytes(
        &self,
        path: &str,
        token: &str,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        (status, headers, body)
    }

    /// Stores a message in an agent's folder the way SMTP delivery will, durable on return.
    pub async fn deliver(
        &self,
        agent_id: &str,
        folder: legate::mailbox::Folder,
        raw: &[u8],
    ) -> legate::mailbox::StoredMessage {
        let meta = legate::mailbox::DeliveryMeta {
            received_at_ms: legate::util::now_millis(),
            envelope_from: "sender@remote.test".into(),
            envelope_to: vec![format!("{agent_id}@agents.test")],
            ..Default::default()
        };
        self.services()
            .mailbox
            .deliver(agent_id, folder, raw.to_vec(), meta)
            .await
            .expect("deliver")
    }

    /// Creates an agent as admin; returns (agent JSON, its first key).
    pub async fn agent(&self, local: &str, scopes: &[&str]) -> (Value, String) {
        let (st, v) = self
            .call(
                "POST",
                "/v1/agents",
                Some(&self.admin_token),
                Some(serde_json::json!({"local": local, "scopes": scopes})),
            )
            .await;
        assert_eq!(st, 201, "create agent: {v}");
        let key = v["api_key"]["key"].as_str().expect("key").to_string();
        (v, key)
    }

    /// Stops the server; returns the data directory so a test can inspect it afterwards.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("stop");
        }
        self.dir
    }
}

/// The `legate` binary of this workspace, built (once per test process) so a CLI test never
/// runs a stale binary.
pub fn legate_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(build_legate_bin).clone()
}

fn build_legate_bin() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join("legate");
    {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        // The variables cargo sets for this test binary are not the nested build's: build
        // scripts (ring's) that watch them would rerun and rebuild half the tree every time
        // the test binary and the plain binary are built in turn.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*k)
            {
                cmd.env_remove(&*k);
            }
        }
        let st = cmd
            .args(["build", "-p", "legate", "--bin", "legate"])
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(st.success(), "building the legate binary failed");
    }
    bin
}

/// `legate init --json` of a fresh data directory at `data` for `domain`, with every
/// listener on loopback port 0 (so nothing binds a fixed port); the JSON it printed.
pub fn cli_init(data: &Path, domain: &str) -> serde_json::Value {
    let out = std::process::Command::new(legate_bin())
        .args(["init", "--domain", domain, "--json", "--data"])
        .arg(data)
        .args([
            "--bind",
            "127.0.0.1",
            "--http-port",
            "0",
            "--https-port",
            "0",
        ])
        .output()
        .expect("run legate init");
    assert!(
        out.status.success(),
        "legate init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("legate init --json")
}

/// Runs `legate --config <config> ARGS…` and returns its output.
pub fn cli(config: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(legate_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run legate")
}

/// Any stream an SMTP test client can speak over (TCP, or TLS over TCP).
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A minimal SMTP client for tests: writes raw lines and reads whole (multi-line) replies.
pub struct SmtpClient {
    stream: tokio::io::BufReader<Box<dyn Io>>,
}

/// A TLS client that trusts the server's self-signed certificate from its data directory.
pub fn tls_connector(data_dir: &Path) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(data_dir.join("tls-cert.pem")).expect("tls-cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("cert")).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

impl SmtpClient {
    pub async fn connect(addr: std::net::SocketAddr) -> (SmtpClient, String) {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut c = SmtpClient {
            stream: tokio::io::BufReader::new(Box::new(s)),
        };
        let greeting = c.read_reply().await;
        (c, greeting)
    }

    /// Wraps a connected stream (for example one bound to a chosen source address); the
    /// caller reads the greeting.
    pub fn from_stream(s: tokio::net::TcpStream) -> SmtpClient {
        SmtpClient {
            stream: tokio::io::BufReader::new(Box::new(s)),
        }
    }

    /// Connects with TLS from the first byte (port 465 style).
    pub async fn connect_tls(
        addr: std::net::SocketAddr,
        tls: &tokio_rustls::TlsConnector,
        name: &str,
    ) -> (SmtpClient, String) {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let s = tls.connect(name, s).await.expect("tls handshake");
        let mut c = SmtpClient {
            stream: tokio::io::BufReader::new(Box::new(s)),
        };
        let greeting = c.read_reply().await;
        (c, greeting)
    }

    /// Sends STARTTLS and continues over TLS (the caller sends EHLO again).
    pub async fn starttls(mut self, tls: &tokio_rustls::TlsConnector, name: &str) -> SmtpClient {
        let r = self.cmd("STARTTLS").await;
        assert!(r.starts_with("220"), "STARTTLS: {r}");
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let s = tls
            .connect(name, self.stream.into_inner())
            .await
            .expect("tls handshake");
        SmtpClient {
            stream: tokio::io::BufReader::new(Box::new(s)),
        }
    }

    /// Reads one reply (all its lines); empty when the server closed the connection.
    pub async fn read_reply(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.stream.read_line(&mut line),
            )
            .await
            .expect("reply timeout")
            .expect("read");
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    pub async fn write(&mut self, data: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().write_all(data).await.expect("write");
    }

    /// Sends a command line and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.read_reply().await
    }

    /// Runs a whole transaction and returns the final reply to the data.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], message: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert!(r.starts_with("250"), "MAIL: {r}");
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>")).await;
            assert!(r.starts_with("250"), "RCPT {t}: {r}");
        }
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354"), "DATA: {r}");
        let body = message.replace("\r\n.", "\r\n..");
        self.write(format!("{body}\r\n.\r\n").as_bytes()).await;
        self.read_reply().await
    }
}

/// One `tools/call` over a fresh stateless MCP exchange: the tool result.
pub async fn mcp_tool(s: &TestServer, key: &str, name: &str, args: Value) -> Value {
    let mut result = Value::Null;
    for (id, method, params) in [
        (
            Some(1),
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "legate-tests", "version": "1"}}),
        ),
        (None, "notifications/initialized", serde_json::json!({})),
        (
            Some(2),
            "tools/call",
            serde_json::json!({"name": name, "arguments": args}),
        ),
    ] {
        let mut msg = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params});
        if let Some(id) = id {
            msg["id"] = id.into();
        }
        let resp = s
            .http
            .post(format!("{}/mcp", s.base))
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&msg)
            .send()
            .await
            .expect("mcp post");
        assert!(resp.status().is_success(), "{method}: {}", resp.status());
        let text = resp.text().await.unwrap_or_default();
        let body = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(text.as_str()))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("jsonrpc").is_some())
            .unwrap_or(Value::Null);
        if id == Some(2) {
            result = body["result"].clone();
        }
    }
    assert!(result.is_object(), "{name}: no result");
    result
}
