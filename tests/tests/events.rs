//! Events suite (issue 18): the outbox and signed webhooks over real sockets. A loopback HTTP
//! receiver plays the endpoint (plain HTTP with `webhooks.danger_allow_http` and
//! `allow_private = ["127.0.0.1/32"]`); mail arrives over SMTP or the mailbox service.

#[path = "events/delivery.rs"]
mod delivery;
#[path = "events/guard.rs"]
mod guard;
#[path = "events/outbox.rs"]
mod outbox;
#[path = "events/receiver.rs"]
mod receiver;
#[path = "events/stream.rs"]
mod stream;

use hmac::{Hmac, KeyInit, Mac};
use legate::mailauth::StaticDns;
use legate_tests::{test_config, TestServer};
use serde_json::Value;

/// A server with SMTP, loopback DNS, and webhooks allowed to reach 127.0.0.1 over plain
/// HTTP, retrying fast. `tune` adjusts the config further.
pub async fn server(tune: impl FnOnce(&mut legate::config::Config)) -> TestServer {
    let d = StaticDns::new();
    d.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    let dns = std::sync::Arc::new(legate_testdns::TestDns::start(d).await.expect("dns"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns.addr().to_string()];
    cfg.dns.timeout_secs = 2;
    cfg.webhooks.danger_allow_http = true;
    cfg.webhooks.allow_private = vec!["127.0.0.1/32".into()];
    cfg.webhooks.retry_initial_ms = 100;
    cfg.webhooks.retry_max_secs = 1;
    cfg.webhooks.timeout_secs = 2;
    cfg.webhooks.rescan_secs = 1;
    tune(&mut cfg);
    let mut s = TestServer::start_with(dir, cfg).await;
    s.dns = Some(dns);
    s
}

/// Registers a webhook with `token`; returns (id, secret).
pub async fn webhook(s: &TestServer, token: &str, body: Value) -> (String, String) {
    let (st, v) = s
        .call("POST", "/v1/webhooks", Some(token), Some(body))
        .await;
    assert_eq!(st, 201, "create webhook: {v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

/// Checks a delivery the way a Standard Webhooks receiver does (independently of the
/// server's code): one of the space-separated `v1,` signatures must be the HMAC-SHA256 of
/// `id.timestamp.body` under the secret's key, and the timestamp recent.
pub fn verify(secret: &str, hit: &receiver::Hit) -> bool {
    let key = data_encoding::BASE64
        .decode(secret.trim_start_matches("whsec_").as_bytes())
        .expect("secret is base64");
    let id = &hit.headers["webhook-id"];
    let ts = &hit.headers["webhook-timestamp"];
    let now = legate::util::now_unix();
    if ts.parse::<i64>().map_or(true, |t| (now - t).abs() > 300) {
        return false;
    }
    let mut m = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    m.update(format!("{id}.{ts}.").as_bytes());
    m.update(&hit.body);
    let want = format!(
        "v1,{}",
        data_encoding::BASE64.encode(&m.finalize().into_bytes())
    );
    hit.headers["webhook-signature"]
        .split(' ')
        .any(|s| s == want)
}

pub fn message(subject: &str, body: &str) -> String {
    format!(
        "From: alice@sender.test\r\nTo: ops@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
}

/// The retention task drops old events from the outbox; recent ones stay.
#[tokio::test]
async fn retention_prunes_old_events() {
    let s = server(|c| {
        c.events.retention = "2s".into();
        c.events.prune_interval_secs = 1;
    })
    .await;
    let (a, _) = s.agent("ops", &["mail:read"]).await;
    let store = &s.services().store;
    let first = store.last_event_seq().unwrap();
    assert!(first >= 1, "agent.created is in the outbox");
    let evs = store.events_after(0, 100).unwrap();
    assert!(evs
        .iter()
        .any(|(_, e)| e.kind == "agent.created" && e.agent == a["id"].as_str().unwrap()));
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let agent_id = a["id"].as_str().unwrap().to_string();
    s.deliver(
        &agent_id,
        legate::mailbox::Folder::Inbox,
        message("new", "x").as_bytes(),
    )
    .await;
    let left = store.events_after(0, 100).unwrap();
    assert!(
        left.iter().all(|(seq, _)| *seq > first),
        "old events pruned: {left:?}"
    );
    assert!(left.iter().any(|(_, e)| e.kind == "message.received"));
    // The sequence carries on after pruning: ids never repeat.
    assert_eq!(store.last_event_seq().unwrap(), left.last().unwrap().0);
    s.stop().await;
}
