//! `[smtp]` limits over real sockets: line length (RFC 5321 §4.5.3.1.4–6) and the command and
//! data timeouts (§4.5.3.2), with the limits set small so the test is quick.

use super::{dns, MSG};
use legate_tests::{SmtpClient, TestServer};
use std::time::{Duration, Instant};

pub(super) async fn server(tune: impl FnOnce(&mut legate::config::SmtpConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let dns_server = std::sync::Arc::new(legate_testdns::TestDns::start(dns()).await.unwrap());
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.smtp = "127.0.0.1:0".into();
    cfg.dns.nameservers = vec![dns_server.addr().to_string()];
    tune(&mut cfg.smtp);
    let mut s = TestServer::start_with(dir, cfg).await;
    s.dns = Some(dns_server);
    s
}

#[tokio::test]
async fn an_overlong_command_line_is_one_500_and_the_transaction_survives() {
    let s = server(|c| c.max_line_length = 1000).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    assert!(c
        .cmd("MAIL FROM:<alice@sender.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<ops@agents.test>").await.starts_with("250"));
    // 999 bytes + CRLF: one over the limit, sent in pieces
    let long = format!("RCPT TO:<{}@agents.test>", "x".repeat(999 - 22));
    assert_eq!(long.len(), 999);
    c.write(&long.as_bytes()[..500]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.write(&long.as_bytes()[500..]).await;
    c.write(b"\r\nNOOP\r\n").await;
    let r = c.read_reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    let r = c.read_reply().await;
    assert!(
        r.starts_with("250"),
        "one reply for the long line, then NOOP: {r}"
    );
    // far past smtp-proto's own 4096 cap, in one write: still exactly one error
    c.write(format!("NOOP {}\r\nNOOP\r\n", "y".repeat(20_000)).as_bytes())
        .await;
    assert!(c.read_reply().await.starts_with("500 5.5.2"));
    assert!(c.read_reply().await.starts_with("250"));
    // a line exactly at the limit is a command like any other
    let at_limit = format!("NOOP {}", "z".repeat(1000 - 7));
    assert!(c.cmd(&at_limit).await.starts_with("250"));
    // the transaction begun before the errors is intact
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.write(format!("{MSG}.\r\n").as_bytes()).await;
    let r = c.read_reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn an_overlong_data_line_is_refused_at_the_end_of_data() {
    let s = server(|c| c.max_line_length = 1000).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    let long = format!("{MSG}{}\r\n", "w".repeat(1000));
    let r = c
        .send_mail("alice@sender.test", &["ops@agents.test"], &long)
        .await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    // the same through BDAT
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<ops@agents.test>").await;
    c.write(format!("BDAT {} LAST\r\n", long.len()).as_bytes())
        .await;
    c.write(long.as_bytes()).await;
    let r = c.read_reply().await;
    assert!(r.starts_with("500 5.5.2"), "{r}");
    // 998 characters + CRLF is legal (RFC 5321 §4.5.3.1.6) and the session still works
    let ok = format!("{MSG}{}\r\n", "v".repeat(998));
    let r = c
        .send_mail("alice@sender.test", &["ops@agents.test"], &ok)
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn an_idle_client_gets_421_and_is_disconnected() {
    let s = server(|c| {
        c.command_timeout_secs = 1;
        c.data_timeout_secs = 2;
    })
    .await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    // command timeout
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    let t = Instant::now();
    let r = c.read_reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(c.read_reply().await, "", "closed after the 421");
    // data timeout: a stalled body is not delivered
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    c.cmd("MAIL FROM:<alice@sender.test>").await;
    c.cmd("RCPT TO:<ops@agents.test>").await;
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.write(b"Subject: half\r\n\r\nthe rest never").await;
    let t = Instant::now();
    let r = c.read_reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(
        t.elapsed() >= Duration::from_millis(1800),
        "data timeout, not the command one: {:?}",
        t.elapsed()
    );
    assert_eq!(c.read_reply().await, "");
    // a client that keeps talking is never timed out
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(c.cmd("NOOP").await.starts_with("250"));
    }
    let (_, list) = s.call("GET", "/v1/messages", Some(&key), None).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    s.stop().await;
}
