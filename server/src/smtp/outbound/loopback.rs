//! Our client against our own inbound server (a whole `app::start`, self-signed TLS):
//! the two halves must agree on STARTTLS, PIPELINING and dot-stuffing.

use super::*;
use crate::app::{self, StartOptions};
use crate::config::Config;
use crate::mailauth::ResolverConfig;
use legate_testdns::{StaticDns, TestDns};
use serde_json::{json, Value};

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn delivers_to_our_own_inbound_server_over_starttls() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.server.domain = "agents.test".into();
    c.server.hostname = "mx.agents.test".into();
    c.storage.path = dir.path().to_path_buf();
    // A certificate for the route's address, trusted below: the route requires (verified) TLS.
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) =
        crate::tls::self_signed(certs.path(), &["127.0.0.1".into(), "mx.agents.test".into()])
            .unwrap();
    c.tls.cert = cert.display().to_string();
    c.tls.key = key.display().to_string();
    c.listen.http = "127.0.0.1:0".into();
    c.listen.smtp = "127.0.0.1:0".into();
    c.listen.submission = String::new();
    c.listen.imap = String::new();
    c.api.shutdown_grace_secs = 2;
    c.dns.nameservers = vec![dns.addr().to_string()];
    c.dns.timeout_secs = 2;
    let running = app::start(c, StartOptions::default()).await.unwrap();
    let admin = running
        .bootstrap
        .as_ref()
        .and_then(|b| b.token.as_ref())
        .map(|t| t.as_str().to_string())
        .unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let agent = call(
        &base,
        reqwest::Method::POST,
        "/v1/agents",
        &admin,
        Some(json!({"local": "ops", "scopes": ["mail:read"]})),
    )
    .await;
    let key = agent["api_key"]["key"].as_str().unwrap().to_string();

    let route = RouteConfig {
        domain: "agents.test".into(),
        next_hop: running.smtp_addr.unwrap().to_string(),
        require_tls: true,
    };
    let mut settings = OutboundSettings::new(
        "mx.sender.test",
        vec![route],
        ResolverConfig::test_server(dns.addr()),
    );
    settings.extra_roots = crate::tls::read_certs(&cert).unwrap();
    let t = SmtpTransport::new(settings).unwrap();
    let env = Envelope {
        mail_from: "alice@sender.test".into(),
        rcpts: vec!["ops@agents.test".into(), "nobody@agents.test".into()],
        domain: "agents.test".into(),
    };
    let msg =
        b"From: alice@sender.test\nTo: ops@agents.test\nSubject: Loopback\n\n.leading dot\nbye\n";
    let report = t.deliver(&env, msg).await;
    assert_eq!(
        report.tls,
        Some(crate::queue::TlsLevel::Verified),
        "{report:?}"
    );
    assert!(
        matches!(&report.outcomes[0], RcptOutcome::Delivered { reply } if reply.starts_with("250 2.0.0")),
        "{report:?}"
    );
    assert!(
        matches!(&report.outcomes[1], RcptOutcome::Permanent { reply } if reply.starts_with("550 5.1.1")),
        "{report:?}"
    );

    let list = call(&base, reqwest::Method::GET, "/v1/messages", &key, None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let m = call(
        &base,
        reqwest::Method::GET,
        &format!("/v1/messages/{id}"),
        &key,
        None,
    )
    .await;
    assert_eq!(m["subject"], "Loopback");
    let raw = reqwest::Client::new()
        .get(format!("{base}/v1/messages/{id}/raw"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("\r\n.leading dot\r\nbye\r\n"), "{raw}");
    running.stop().await.unwrap();
}
