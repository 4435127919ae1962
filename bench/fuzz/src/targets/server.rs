//! A legate for the front-end targets: the real services over a temporary data directory,
//! with no listener, no worker and no network (static DNS), so inputs are fed in-process.

use legate::app::Services;
use legate::mailauth::{MailAuth, StaticDns};
use legate::smtp::inbound::Inbound;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub services: Arc<Services>,
    pub router: axum::Router,
    pub inbound: Arc<Inbound>,
    pub admin: String,
    /// The agent `fuzz@agents.test`, holding every scope.
    pub agent_id: String,
    pub agent_key: String,
    /// A message in the agent's INBOX, for routes that take a message id.
    pub message_id: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Result<Fixture, String> {
        let rt = crate::runtime();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut c = legate::config::Config::default();
        c.server.domain = "agents.test".into();
        c.server.hostname = "mx.agents.test".into();
        c.storage.path = dir.path().to_path_buf();
        c.dns.nameservers = vec!["127.0.0.1:9".into()];
        c.dns.timeout_secs = 1;
        let did_host = legate::app::did_host(&c, Some(8080));
        let (services, admin) = rt.block_on(async {
            let s = Services::open(c, did_host).map_err(|e| e.to_string())?;
            let b = s.bootstrap(None).map_err(|e| e.to_string())?;
            let admin = b
                .and_then(|b| b.token.map(|t| t.as_str().to_string()))
                .ok_or("no admin token")?;
            Ok::<_, String>((Arc::new(s), admin))
        })?;
        let router = {
            let _guard = rt.enter();
            legate::api::router(services.clone()).nest_service(
                "/mcp",
                legate::mcp::router(services.clone(), tokio_util::sync::CancellationToken::new()),
            )
        };
        let dns = StaticDns::new();
        dns.add_txt("bank.test", "v=spf1 ip4:192.0.2.1 -all")
            .add_txt("_dmarc.bank.test", "v=DMARC1; p=reject")
            .add_a("mx.bank.test", Ipv4Addr::new(192, 0, 2, 1));
        // Fuzzed AUTH fails often; a lock-out would hide the rest of the session.
        let limiter = services.audit.denials().clone();
        limiter.configure(legate::audit::DenialSettings {
            max_failures_per_minute: 0,
            ..limiter.settings()
        });
        let inbound = Arc::new(Inbound {
            hostname: "mx.agents.test".into(),
            limits: (&services.config.smtp).into(),
            identity: services.identity.clone(),
            mailbox: services.mailbox.clone(),
            mailauth: MailAuth::with_static_records(dns).map_err(|e| e.to_string())?,
            audit: services.audit.clone(),
            metrics: services.metrics.clone(),
            queue: services.queue.clone(),
            reports: services.reports.clone(),
            auth_limiter: limiter,
            rejections: Default::default(),
        });
        let mut f = Fixture {
            rt,
            services,
            router,
            inbound,
            admin,
            agent_id: String::new(),
            agent_key: String::new(),
            message_id: String::new(),
            _dir: dir,
        };
        let body = serde_json::json!({"local": "fuzz", "scopes": [
            "mail:read", "mail:send", "mail:manage", "vault:read", "vault:write",
            "identity:sign", "identity:verify"]});
        let admin = f.admin.clone();
        let (st, v) = f.call(
            "POST",
            "/v1/agents",
            Some(&admin),
            body.to_string().as_bytes(),
            false,
        );
        if st != 201 {
            return Err(format!("create agent: {st} {v}"));
        }
        f.agent_id = v["id"].as_str().unwrap_or_default().to_string();
        f.agent_key = v["api_key"]["key"].as_str().unwrap_or_default().to_string();
        let raw = b"From: Bank <x@bank.test>\r\nTo: fuzz@agents.test\r\nSubject: Your code\r\n\
                    Message-ID: <1@bank.test>\r\n\r\nYour code is 123456.\r\n";
        let meta = legate::mailbox::DeliveryMeta {
            received_at_ms: legate::util::now_millis(),
            envelope_from: "x@bank.test".into(),
            envelope_to: vec!["fuzz@agents.test".into()],
            ..Default::default()
        };
        let m =
            f.rt.block_on(f.services.mailbox.deliver(
                &f.agent_id,
                legate::mailbox::Folder::Inbox,
                raw.to_vec(),
                meta,
            ))
            .map_err(|e| e.to_string())?;
        f.message_id = m.id.clone();
        Ok(f)
    }

    /// One HTTP request through the router; (status, body as JSON or the raw text as a string).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        mcp: bool,
    ) -> (u16, serde_json::Value) {
        match self.rt.block_on(self.request(
            method,
            path,
            token,
            body,
            mcp,
            Duration::from_secs(30),
        )) {
            Ok(Some((st, v))) => (st, v),
            Ok(None) => (0, serde_json::Value::Null),
            Err(e) => (0, serde_json::Value::String(e)),
        }
    }

    /// `Ok(None)`: no answer within `timeout`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        mcp: bool,
        timeout: Duration,
    ) -> Result<Option<(u16, serde_json::Value)>, String> {
        use axum::extract::ConnectInfo;
        use tower::ServiceExt;
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .extension(ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                40000,
            ))));
        if mcp {
            b = b
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-06-18");
        }
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b
            .body(axum::body::Body::from(body.to_vec()))
            .map_err(|e| format!("request: {e}"))?;
        let router = self.router.clone();
        let work = async move {
            let Ok(resp) = router.oneshot(req).await;
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .map_err(|e| format!("body: {e}"))?;
            let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            });
            Ok::<_, String>((status, v))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Placeholders seeds use: `@AGENT@`, `@MSG@`, `@KEY@`, `@PLAIN@` (AUTH PLAIN blob).
    pub fn expand(&self, input: &[u8]) -> Vec<u8> {
        if !input.contains(&b'@') {
            return input.to_vec();
        }
        let plain = data_encoding::BASE64
            .encode(format!("\0fuzz@agents.test\0{}", self.agent_key).as_bytes());
        let mut out = input.to_vec();
        for (from, to) in [
            ("@AGENT@", self.agent_id.as_str()),
            ("@MSG@", self.message_id.as_str()),
            ("@KEY@", self.agent_key.as_str()),
            ("@PLAIN@", plain.as_str()),
        ] {
            out = replace(&out, from.as_bytes(), to.as_bytes());
        }
        out
    }
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}
