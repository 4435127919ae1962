//! Issue 23 item 6: below the disk reserve (`storage.min_free_mb`) new mail is refused with
//! a temporary error on every way in (SMTP `452 4.3.1`, REST and MCP `507`
//! `insufficient_storage`) while reads keep working, and everything resumes by itself once
//! space returns. A reserve larger than any disk stands in for a full one; the guard's
//! run-time setter stands in for an operator freeing space.

use super::{id_of, plain};
use legate::mailauth::StaticDns;
use legate::mailbox::Folder;
use legate_tests::{mcp_tool, SmtpClient, TestServer};
use serde_json::json;
use std::sync::Arc;

/// 1 PiB in MiB: more than any test machine has free.
const HUGE_MB: u64 = 1 << 30;

async fn start_full() -> TestServer {
    let records = StaticDns::new();
    records.add_txt("remote.test", "v=spf1 ip4:127.0.0.1 -all");
    let dns = Arc::new(legate_testdns::TestDns::start(records).await.expect("dns"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.listen.submissions = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns.addr().to_string()];
    cfg.dns.timeout_secs = 2;
    cfg.storage.min_free_mb = HUGE_MB;
    let mut s = TestServer::start_with(dir, cfg).await;
    s.dns = Some(dns);
    s
}

/// The disk "fills" (`true`) or space returns (`false`), effective at the next check.
fn disk_full(s: &TestServer, full: bool) {
    let bytes = if full { HUGE_MB << 20 } else { 0 };
    s.services().storage.set_reserve_bytes(bytes);
}

fn is_452(r: &str) -> bool {
    r.starts_with("452 4.3.1 ")
}

async fn mx(s: &TestServer) -> SmtpClient {
    let (mut c, greeting) = SmtpClient::connect(s.smtp_addr()).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    let r = c.cmd("EHLO client.remote.test").await;
    assert!(r.starts_with("250"), "{r}");
    c
}

async fn submission(s: &TestServer, key: &str) -> SmtpClient {
    let tls = legate_tests::tls_connector(&s.data_dir());
    let addr = s.submissions_addr();
    let (mut c, _) = SmtpClient::connect_tls(addr, &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let plain = data_encoding::BASE64.encode(format!("\0ops@agents.test\0{key}").as_bytes());
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("235"), "{r}");
    c
}

fn submitted(subject: &str) -> String {
    format!("From: ops@agents.test\r\nTo: bob@agents.test\r\nSubject: {subject}\r\n\r\nhello\r\n")
}

/// MAIL, RCPT and DATA accepted: the next write is the body.
async fn begin(c: &mut SmtpClient, from: &str, to: &str) {
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert!(r.starts_with("250"), "MAIL: {r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
    assert!(r.starts_with("250"), "RCPT: {r}");
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("354"), "DATA: {r}");
}

async fn end(c: &mut SmtpClient, body: &str) -> String {
    c.write(format!("{body}\r\n.\r\n").as_bytes()).await;
    c.read_reply().await
}

/// The subjects in an agent's INBOX, waiting a little for queued local deliveries.
async fn inbox_subjects(s: &TestServer, key: &str, want: usize) -> Vec<String> {
    let mut subjects = Vec::new();
    for _ in 0..100 {
        let (st, v) = s
            .call("GET", "/v1/messages?folder=INBOX", Some(key), None)
            .await;
        assert_eq!(st, 200, "{v}");
        subjects = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
            .collect();
        if subjects.len() >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    subjects.sort();
    subjects
}

#[tokio::test]
async fn below_the_disk_reserve_new_mail_waits_reads_work_and_space_returning_resumes() {
    let s = start_full().await;
    let (ops, ops_key) = s.agent("ops", &["mail:read", "mail:send"]).await;
    let (_, bob_key) = s.agent("bob", &["mail:read"]).await;
    // Mail already accepted (here stored directly, as the queue stores local deliveries
    // and DSNs) still goes in: the reserve exists to make room for it.
    let old = s
        .deliver(
            &id_of(&ops),
            Folder::Inbox,
            &plain("x@remote.test", "Before", "old mail"),
        )
        .await;

    // The probes say so.
    let (st, ready) = s.call("GET", "/readyz", None, None).await;
    assert_eq!(st, 200, "the store is readable: {ready}");
    assert_eq!(ready["accepting_mail"], false, "{ready}");
    assert_eq!(ready["disk_reserve_bytes"], HUGE_MB << 20, "{ready}");
    assert!(
        ready["disk_free_bytes"].as_u64().is_some_and(|f| f > 0),
        "{ready}"
    );
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("legate_storage_accepting_mail 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("legate_storage_reserve_bytes {}", HUGE_MB << 20)),
        "{metrics}"
    );
    assert!(metrics.contains("legate_storage_free_bytes "), "{metrics}");

    // Inbound SMTP and submission: 452 4.3.1 at MAIL.
    let mut c = mx(&s).await;
    let r = c.cmd("MAIL FROM:<x@remote.test>").await;
    assert!(is_452(&r), "inbound MAIL: {r}");
    let mut sub = submission(&s, &ops_key).await;
    let r = sub.cmd("MAIL FROM:<ops@agents.test>").await;
    assert!(is_452(&r), "submission MAIL: {r}");

    // REST send and reply, MCP mail_send: 507 insufficient_storage.
    let send = json!({"to": ["bob@agents.test"], "subject": "Via REST", "text": "hi"});
    let (st, e) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&ops_key),
            Some(send.clone()),
        )
        .await;
    assert_eq!(st, 507, "{e}");
    assert_eq!(e["error"]["code"], "insufficient_storage", "{e}");
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/messages/{}/reply", old.id),
            Some(&ops_key),
            Some(json!({"text": "thanks"})),
        )
        .await;
    assert_eq!(st, 507, "{e}");
    assert_eq!(e["error"]["code"], "insufficient_storage", "{e}");
    let mcp_send = json!({"to": ["bob@agents.test"], "subject": "Via MCP", "text": "hi"});
    let r = mcp_tool(&s, &ops_key, "mail_send", mcp_send.clone()).await;
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        r["structuredContent"]["error"]["code"], "insufficient_storage",
        "{r}"
    );

    // Reads keep working, over REST and MCP.
    let (st, m) = s
        .call(
            "GET",
            &format!("/v1/messages/{}", old.id),
            Some(&ops_key),
            None,
        )
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["subject"], "Before");
    let (st, _, raw) = s
        .get_bytes(&format!("/v1/messages/{}/raw", old.id), &ops_key)
        .await;
    assert_eq!(st, 200);
    assert_eq!(raw, plain("x@remote.test", "Before", "old mail"));
    let r = mcp_tool(&s, &ops_key, "mail_get_message", json!({"id": old.id})).await;
    assert_ne!(r["isError"], true, "{r}");
    // Nothing refused was half stored: no Sent copy, nothing queued.
    let (_, sent) = s
        .call("GET", "/v1/messages?folder=Sent", Some(&ops_key), None)
        .await;
    assert_eq!(sent["items"], json!([]), "{sent}");

    // Space returns: everything resumes, without a restart.
    disk_full(&s, false);
    let (_, ready) = s.call("GET", "/readyz", None, None).await;
    assert_eq!(ready["accepting_mail"], true, "{ready}");

    // A message whose body arrives as the disk fills is answered 452, not dropped: the
    // client still holds it, and the same transaction succeeds once space is back.
    let inbound = plain("x@remote.test", "Inbound", "hello");
    let inbound = String::from_utf8(inbound).expect("ascii");
    begin(&mut c, "x@remote.test", "ops@agents.test").await;
    begin(&mut sub, "ops@agents.test", "bob@agents.test").await;
    disk_full(&s, true);
    let r = end(&mut c, &inbound).await;
    assert!(is_452(&r), "inbound end of data: {r}");
    let r = end(&mut sub, &submitted("Via submission")).await;
    assert!(is_452(&r), "submission end of data: {r}");
    disk_full(&s, false);
    let r = c
        .send_mail("x@remote.test", &["ops@agents.test"], &inbound)
        .await;
    assert!(r.starts_with("250"), "inbound retried: {r}");
    let r = sub
        .send_mail(
            "ops@agents.test",
            &["bob@agents.test"],
            &submitted("Via submission"),
        )
        .await;
    assert!(r.starts_with("250"), "submission retried: {r}");
    c.cmd("QUIT").await;
    sub.cmd("QUIT").await;
    let (st, v) = s
        .call("POST", "/v1/messages/send", Some(&ops_key), Some(send))
        .await;
    assert_eq!(st, 202, "{v}");
    let r = mcp_tool(&s, &ops_key, "mail_send", mcp_send).await;
    assert_ne!(r["isError"], true, "{r}");

    assert_eq!(
        inbox_subjects(&s, &ops_key, 2).await,
        vec!["Before", "Inbound"]
    );
    assert_eq!(
        inbox_subjects(&s, &bob_key, 3).await,
        vec!["Via MCP", "Via REST", "Via submission"]
    );
    s.stop().await;
}
