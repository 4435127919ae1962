//! Submission (587/465) trust rules from issue 15: a revocation reaches an open session at
//! its next transaction, logins and submitted messages are audited, the From header is one
//! and the agent's own, repeated recipients go once, and bare line endings are refused.

use legate_tests::{SmtpClient, TestServer};
use serde_json::Value;

async fn with_submission() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.submission = "127.0.0.1:0".into();
    cfg.listen.submissions = "127.0.0.1:0".into();
    TestServer::start_with(dir, cfg).await
}

fn b64(s: &str) -> String {
    data_encoding::BASE64.encode(s.as_bytes())
}

fn message(from: &str, subject: &str) -> String {
    format!("From: {from}\r\nTo: bob@agents.test\r\nSubject: {subject}\r\n\r\nhello\r\n")
}

/// An authenticated implicit-TLS session as `local`.
async fn login(s: &TestServer, local: &str, key: &str) -> SmtpClient {
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut c, _) = SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let plain = b64(&format!("\0{local}@agents.test\0{key}"));
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("235"), "{r}");
    c
}

async fn audit(s: &TestServer, action: &str) -> Vec<Value> {
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/audit?action={action}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn inbox(s: &TestServer, key: &str) -> Vec<Value> {
    // local delivery goes through the queue worker: wait for it
    let mut items = Vec::new();
    for _ in 0..100 {
        let (_, v) = s
            .call("GET", "/v1/messages?folder=INBOX", Some(key), None)
            .await;
        items = v["items"].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let (_, v) = s
                .call("GET", "/v1/messages?folder=INBOX", Some(key), None)
                .await;
            return v["items"].as_array().cloned().unwrap_or_default();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    items
}

#[tokio::test]
async fn revoking_a_key_or_agent_ends_an_open_submission_session() {
    let s = with_submission().await;
    let (alice, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_, kb) = s.agent("bob", &["mail:read"]).await;
    let (carol, kc) = s.agent("carol", &["mail:send"]).await;

    // the key is revoked between two transactions on one connection
    let mut c = login(&s, "alice", &ka).await;
    let r = c
        .send_mail(
            "alice@agents.test",
            &["bob@agents.test"],
            &message("alice@agents.test", "before"),
        )
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let (aid, kid) = (
        alice["id"].as_str().unwrap(),
        alice["api_key"]["id"].as_str().unwrap(),
    );
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{aid}/keys/{kid}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(st < 300, "{st} {v}");
    let r = c.cmd("MAIL FROM:<alice@agents.test>").await;
    assert!(r.starts_with("535 5.7.8"), "{r}");
    assert_eq!(c.read_reply().await, "", "the session ended");

    // the agent is revoked between two transactions on one connection
    let mut c = login(&s, "carol", &kc).await;
    assert!(c
        .cmd("MAIL FROM:<carol@agents.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RSET").await.starts_with("250"));
    let cid = carol["id"].as_str().unwrap();
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{cid}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(st < 300, "{st} {v}");
    let r = c.cmd("MAIL FROM:<carol@agents.test>").await;
    assert!(r.starts_with("535 5.7.8"), "{r}");
    assert_eq!(c.read_reply().await, "", "the session ended");

    // the key is revoked while the message is being transferred (after MAIL and RCPT)
    let (dave, kd) = s.agent("dave", &["mail:send"]).await;
    let mut c = login(&s, "dave", &kd).await;
    assert!(c
        .cmd("MAIL FROM:<dave@agents.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@agents.test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    let (did, dkid) = (
        dave["id"].as_str().unwrap(),
        dave["api_key"]["id"].as_str().unwrap(),
    );
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{did}/keys/{dkid}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(st < 300, "{st} {v}");
    let r = c
        .cmd(&format!("{}.", message("dave@agents.test", "during data")))
        .await;
    assert!(r.starts_with("535 5.7.8"), "{r}");
    assert_eq!(c.read_reply().await, "", "the session ended");

    let got = inbox(&s, &kb).await;
    assert_eq!(got.len(), 1, "only the message sent before the revocation");
    assert_eq!(got[0]["subject"], "before");
    s.stop().await;
}

#[tokio::test]
async fn logins_and_submitted_messages_are_audited() {
    let s = with_submission().await;
    let (alice, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_, kb) = s.agent("bob", &["mail:read"]).await;
    let kid = alice["api_key"]["id"].as_str().unwrap();
    let mut c = login(&s, "alice", &ka).await;
    let r = c
        .send_mail(
            "alice@agents.test",
            &["bob@agents.test", "BOB@agents.test", "bob@AGENTS.test"],
            &format!(
                "Message-ID: <audited@agents.test>\r\n{}",
                message("alice@agents.test", "audited")
            ),
        )
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let logins = audit(&s, "smtp.auth").await;
    let ok = logins
        .iter()
        .find(|e| e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no successful login entry: {logins:?}"));
    assert_eq!(ok["actor"]["id"], alice["id"], "{ok}");
    assert_eq!(ok["detail"]["key_id"], kid, "{ok}");
    let sends = audit(&s, "mail.send").await;
    assert_eq!(sends.len(), 1, "{sends:?}");
    let e = &sends[0];
    assert_eq!(e["outcome"], "ok");
    assert_eq!(e["actor"]["id"], alice["id"]);
    assert_eq!(e["detail"]["key_id"], kid, "{e}");
    assert_eq!(e["detail"]["via"], "smtp", "{e}");
    assert_eq!(
        e["detail"]["recipients"], 1,
        "repeated RCPTs count once: {e}"
    );
    assert_eq!(e["detail"]["message_id"], "audited@agents.test", "{e}");
    assert!(e["target"].as_str().unwrap().starts_with("msg_"), "{e}");
    // a failed login is audited by the identity layer's login door
    let before = audit(&s, "auth.denied").await.len();
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut c, _) = SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let wrong = b64(&format!("\0alice@agents.test\0{kb}"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {wrong}"))
        .await
        .starts_with("535"));
    assert!(audit(&s, "auth.denied").await.len() > before);
    let got = inbox(&s, &kb).await;
    assert_eq!(got.len(), 1, "one copy for three RCPTs of one address");
    s.stop().await;
}

#[tokio::test]
async fn a_submitted_message_has_exactly_one_from_the_agent() {
    let s = with_submission().await;
    let (_, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_, kb) = s.agent("bob", &["mail:read"]).await;
    let mut c = login(&s, "alice", &ka).await;
    let rest = "To: bob@agents.test\r\nSubject: s\r\n\r\nx\r\n";
    for (bad, code) in [
        // the agent's From first, a forged one last (the old check read only one of them)
        (
            format!("From: alice@agents.test\r\nFrom: ceo@bank.test\r\n{rest}"),
            "550 5.6.0",
        ),
        (
            format!("From: ceo@bank.test\r\nFrom: alice@agents.test\r\n{rest}"),
            "550 5.6.0",
        ),
        (rest.to_string(), "550 5.6.0"),
        (
            format!(
                "From: alice@agents.test, ceo@bank.test\r\nSender: alice@agents.test\r\n{rest}"
            ),
            "550 5.7.1",
        ),
        (format!("From: ceo@bank.test\r\n{rest}"), "550 5.7.1"),
    ] {
        let r = c
            .send_mail("alice@agents.test", &["bob@agents.test"], &bad)
            .await;
        assert!(r.starts_with(code), "{bad:?}: {r}");
    }
    let ok = format!("From: Alice <ALICE@agents.test>\r\n{rest}");
    let r = c
        .send_mail("alice@agents.test", &["bob@agents.test"], &ok)
        .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(inbox(&s, &kb).await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn bare_line_endings_are_refused_on_submission() {
    let s = with_submission().await;
    let (_, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_, kb) = s.agent("bob", &["mail:read"]).await;
    let mut c = login(&s, "alice", &ka).await;
    let head = message("alice@agents.test", "smuggle");
    for v in [
        "\n.\n",
        "\r.\r",
        "\n.\r\n",
        "\r\n.\n",
        "\r.\r\n",
        "\r\n.\r\r\n",
        "bare\nLF",
    ] {
        let r = c
            .send_mail(
                "alice@agents.test",
                &["bob@agents.test"],
                &format!("{head}{v}MAIL FROM:<alice@agents.test>\r\n"),
            )
            .await;
        assert!(r.starts_with("550 5.6.0"), "{v:?}: {r}");
    }
    // BDAT too, with a CR LF split across chunks still fine
    c.cmd("MAIL FROM:<alice@agents.test>").await;
    c.cmd("RCPT TO:<bob@agents.test>").await;
    let body = format!("{head}bare\nLF\r\n");
    c.write(format!("BDAT {} LAST\r\n{body}", body.len()).as_bytes())
        .await;
    assert!(c.read_reply().await.starts_with("550 5.6.0"));
    c.cmd("MAIL FROM:<alice@agents.test>").await;
    c.cmd("RCPT TO:<bob@agents.test>").await;
    let (a, b) = head.split_at(head.find('\n').unwrap());
    c.write(format!("BDAT {}\r\n{a}", a.len()).as_bytes()).await;
    assert!(c.read_reply().await.starts_with("250"));
    c.write(format!("BDAT {} LAST\r\n{b}", b.len()).as_bytes())
        .await;
    let r = c.read_reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(inbox(&s, &kb).await.len(), 1);
    s.stop().await;
}
