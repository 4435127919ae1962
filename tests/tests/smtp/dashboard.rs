//! The Grafana dashboard (`deploy/grafana/legate.json`) queries only metrics that `/metrics`
//! exports: a panel over a misspelt or removed name would show "No data" forever, silently.
//! The server is driven through every path that creates a series (inbound mail, a refused
//! connection, an outbound send, a vault write, a failed login), since a labelled family with
//! no series yet is not exported at all.

use super::{dns, MSG};
use legate_tests::{SmtpClient, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// Every `legate_*` name in every query of the dashboard.
fn queried_metrics(dash: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(exprs.len() > 20, "the dashboard lost its queries");
    for e in exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("legate_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names
}

/// Sample names in a Prometheus text exposition (`name{labels} value` or `name value`).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/legate.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dash["uid"], "legate-overview");
    let wanted = queried_metrics(&dash);

    let dir = tempfile::tempdir().unwrap();
    let dns_server = std::sync::Arc::new(legate_testdns::TestDns::start(dns()).await.unwrap());
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns_server.addr().to_string()];
    cfg.smtp.max_connections_per_ip = 1;
    // Outbound mail for remote.test goes to a closed loopback port: one deferred attempt.
    cfg.outbound.route.push(legate::config::RouteConfig {
        domain: "remote.test".into(),
        next_hop: "127.0.0.1:9".into(),
        require_tls: false,
    });
    let mut s = TestServer::start_with(dir, cfg).await;
    s.dns = Some(dns_server);
    let (_, key) = s
        .agent("ops", &["mail:read", "mail:send", "vault:write"])
        .await;

    // Inbound: a session, an accepted message, its SPF/DKIM/DMARC results; a second
    // connection from the same address while the first is open is refused.
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO client.sender.test").await;
    let (_, refused) = SmtpClient::connect(s.smtp_addr()).await;
    assert!(refused.starts_with("421"), "{refused}");
    let r = c
        .send_mail("alice@sender.test", &["ops@agents.test"], MSG)
        .await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT").await;

    // Outbound: queued, signed, one attempt.
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&key),
            Some(json!({"to": "bob@remote.test", "subject": "out", "text": "hi"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    // The vault, and a failed login.
    let (st, v) = s
        .call(
            "PUT",
            "/v1/vault/site",
            Some(&key),
            Some(json!({"kind": "login", "username": "u", "password": "p"})),
        )
        .await;
    assert!(st < 300, "{v}");
    assert_eq!(
        s.call("GET", "/v1/whoami", Some("lg_bad"), None).await.0,
        401
    );

    let mut missing = wanted.clone();
    for _ in 0..100 {
        let text = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let have = exported(&text);
        missing = wanted.difference(&have).cloned().collect();
        if missing.is_empty() {
            break;
        }
        // The delivery attempt happens in the queue worker, shortly after the send.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not export: {missing:?}"
    );
    // The failed login above is counted (the counter every front-end reports to).
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("legate_auth_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("legate_auth_failures_total");
    assert!(failures >= 1.0, "{text}");
    s.stop().await;
}
