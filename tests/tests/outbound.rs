//! Outbound mail end to end: the send and reply API, the queue, local delivery, DSNs,
//! submission, and two servers delivering to each other over loopback SMTP.

#[path = "outbound/remote.rs"]
mod remote;

#[path = "outbound/hardening.rs"]
mod hardening;

#[path = "outbound/mta_sts.rs"]
mod mta_sts;

#[path = "outbound/dane.rs"]
mod dane;

#[path = "outbound/approvals.rs"]
mod approvals;

#[path = "outbound/feedback.rs"]
mod feedback;

pub(crate) use legate_tests::mcp_tool;
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

/// Polls `GET /v1/messages?folder=` until `n` messages are there.
pub(crate) async fn wait_for(s: &TestServer, key: &str, folder: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let (st, v) = s
            .call(
                "GET",
                &format!("/v1/messages?folder={folder}"),
                Some(key),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{folder} never reached {n} messages");
}

/// `GET /v1/messages/{id}`: the full record as `key` sees it.
pub(crate) async fn message(s: &TestServer, key: &str, id: &str) -> Value {
    s.call("GET", &format!("/v1/messages/{id}"), Some(key), None)
        .await
        .1
}

#[tokio::test]
async fn send_to_a_local_agent_is_signed_delivered_copied_and_tracked() {
    let s = TestServer::start().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&ka),
            Some(json!({"to": "bob@agents.test", "subject": "Hello Bob", "text": "Your code is 481516"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["recipients"][0]["status"], "scheduled");
    let inbox = wait_for(&s, &kb, "INBOX", 1).await;
    assert_eq!(inbox[0]["subject"], "Hello Bob");
    let got = message(&s, &kb, inbox[0]["id"].as_str().unwrap()).await;
    assert_eq!(got["codes"][0]["code"], "481516", "{got}");
    let from = got["from"].to_string();
    assert!(from.contains("alice@agents.test"), "{from}");
    // The Sent copy carries both signatures and, once delivered, the recipient's status.
    let (_, headers, raw) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &ka).await;
    assert!(headers.get("content-type").is_some());
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("a=ed25519-sha256"), "{raw}");
    assert!(raw.contains("a=rsa-sha256"), "{raw}");
    let mut status = Value::Null;
    for _ in 0..100 {
        let v = message(&s, &ka, &id).await;
        status = v["delivery"][0]["status"].clone();
        if status == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "delivered");
    let sent = wait_for(&s, &ka, "Sent", 1).await;
    assert_eq!(sent[0]["id"], id.as_str());
    // The Sent copy is stored raw only; reading it derives the same content a received copy
    // has, signatures among its headers.
    let mine = message(&s, &ka, &id).await;
    assert_eq!(mine["extracted_text"], "Your code is 481516", "{mine}");
    assert_eq!(mine["codes"], got["codes"]);
    assert_eq!(mine["text"], got["text"]);
    let names: Vec<&str> = mine["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "DKIM-Signature").count(),
        2,
        "{names:?}"
    );
}

#[tokio::test]
async fn send_refuses_bad_requests_with_clear_errors_and_queues_nothing() {
    let s = TestServer::start().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_r, kr) = s.agent("reader", &["mail:read"]).await;
    let cases = [
        (json!({"to": [], "subject": "x", "text": "y"}), 422),
        (
            json!({"to": "nobody@agents.test", "subject": "x", "text": "y"}),
            422,
        ),
        (
            json!({"to": "x%b.test@agents.test", "subject": "x", "text": "y"}),
            422,
        ),
        (
            json!({"to": "@a.test:x@b.test", "subject": "x", "text": "y"}),
            422,
        ),
        (
            json!({"to": "b.test!x@agents.test", "subject": "x", "text": "y"}),
            422,
        ),
        (
            json!({"to": "\"x@b.test\"@agents.test", "subject": "x", "text": "y"}),
            422,
        ),
        (json!({"to": "bob@b.test", "subject": "x"}), 422),
        (
            json!({"to": "bob@b.test", "subject": "x", "text": "y", "headers": {"From": "ceo@bank.test"}}),
            422,
        ),
        (
            json!({"to": "bob@b.test", "subject": "x", "text": "y", "nope": 1}),
            422,
        ),
    ];
    for (body, want) in cases {
        let (st, v) = s
            .call("POST", "/v1/messages/send", Some(&ka), Some(body.clone()))
            .await;
        assert_eq!(st, want, "{body} -> {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&kr),
            Some(json!({"to": "bob@b.test", "subject": "x", "text": "y"})),
        )
        .await;
    assert_eq!(st, 403);
    assert_eq!(v["error"]["required_scope"], "mail:send");
    let (st, q) = s
        .call("GET", "/v1/queue?all=true", Some(&s.admin_token), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(q["items"].as_array().unwrap().len(), 0, "{q}");
}

#[tokio::test]
async fn a_reply_threads_with_the_original() {
    let s = TestServer::start().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:send", "mail:read"]).await;
    let (st, _) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&ka),
            Some(json!({"to": ["bob@agents.test"], "subject": "Plan", "text": "Shall we?"})),
        )
        .await;
    assert_eq!(st, 202);
    let got = wait_for(&s, &kb, "INBOX", 1).await;
    let orig = got[0]["id"].as_str().unwrap();
    let (st, r) = s
        .call(
            "POST",
            &format!("/v1/messages/{orig}/reply"),
            Some(&kb),
            Some(json!({"text": "Yes.", "quote": true})),
        )
        .await;
    assert_eq!(st, 202, "{r}");
    let back = wait_for(&s, &ka, "INBOX", 1).await;
    assert_eq!(back[0]["subject"], "Re: Plan");
    let sent = wait_for(&s, &ka, "Sent", 1).await;
    assert_eq!(
        back[0]["thread_id"], sent[0]["thread_id"],
        "reply joins the thread"
    );
    let full = message(&s, &ka, back[0]["id"].as_str().unwrap()).await;
    assert!(
        full["text"].as_str().unwrap().contains("> Shall we?"),
        "{full}"
    );
    assert_eq!(full["extracted_text"], "Yes.");
    // Following up on one's own Sent message: it goes to its recipients, quotes it (content
    // derived from the raw Sent copy) and threads with it.
    let mine = sent[0]["id"].as_str().unwrap();
    let (st, r) = s
        .call(
            "POST",
            &format!("/v1/messages/{mine}/reply"),
            Some(&ka),
            Some(json!({"text": "Any news?", "quote": true})),
        )
        .await;
    assert_eq!(st, 202, "{r}");
    let inbox = wait_for(&s, &kb, "INBOX", 2).await;
    let nudge = inbox.iter().find(|m| m["id"] != orig).unwrap();
    let nudge = message(&s, &kb, nudge["id"].as_str().unwrap()).await;
    assert!(
        nudge["text"].as_str().unwrap().contains("> Shall we?"),
        "{nudge}"
    );
    assert_eq!(nudge["thread_id"], got[0]["thread_id"], "{nudge}");
    assert!(
        !nudge["references"].as_array().unwrap().is_empty(),
        "{nudge}"
    );
}

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

const SUBMITTED: &str = "From: alice@agents.test\r\nTo: bob@agents.test\r\nSubject: via 587\r\n\r\nSubmitted over STARTTLS.\r\n";

#[tokio::test]
async fn submission_needs_tls_then_auth_and_sends_only_as_the_agent() {
    let s = with_submission().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    let (_r, kr) = s.agent("reader", &["mail:read"]).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut c, greeting) = legate_tests::SmtpClient::connect(s.submission_addr()).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    let plain = b64(&format!("\0alice@agents.test\0{ka}"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {plain}"))
        .await
        .starts_with("530 5.7.0"));
    assert!(c
        .cmd("MAIL FROM:<alice@agents.test>")
        .await
        .starts_with("530 5.7.0"));
    let mut c = c.starttls(&tls, "mx.agents.test").await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(c
        .cmd("MAIL FROM:<alice@agents.test>")
        .await
        .starts_with("530 5.7.0"));
    // A key without mail:send, and a key for another agent, are both refused.
    let bad = b64(&format!("\0reader@agents.test\0{kr}"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {bad}"))
        .await
        .starts_with("535 5.7.8"));
    let other = b64(&format!("\0alice@agents.test\0{kb}"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {other}"))
        .await
        .starts_with("535 5.7.8"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {plain}"))
        .await
        .starts_with("235 2.7.0"));
    assert!(c
        .cmd("MAIL FROM:<bob@agents.test>")
        .await
        .starts_with("553 5.7.1"));
    assert!(c
        .cmd("MAIL FROM:<alice@agents.test>")
        .await
        .starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<nobody@agents.test>")
        .await
        .starts_with("550 5.1.1"));
    assert!(c
        .cmd("RCPT TO:<x%b.test@agents.test>")
        .await
        .starts_with("554 5.7.1"));
    assert!(c.cmd("RCPT TO:<bob@agents.test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.write(format!("{SUBMITTED}.\r\n").as_bytes()).await;
    let r = c.read_reply().await;
    assert!(r.starts_with("250 2.0.0 OK queued as msg_"), "{r}");
    // A From header that is not the agent's is refused at the end of data.
    assert!(c
        .cmd("MAIL FROM:<alice@agents.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@agents.test>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    c.write(b"From: ceo@bank.test\r\nSubject: spoof\r\n\r\nx\r\n.\r\n")
        .await;
    let r = c.read_reply().await;
    assert!(r.starts_with("550 5.7.1"), "{r}");
    let inbox = wait_for(&s, &kb, "INBOX", 1).await;
    assert_eq!(inbox[0]["subject"], "via 587");
    assert_eq!(inbox.len(), 1);
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=smtp.auth",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(
        audit["items"].as_array().is_some_and(|a| !a.is_empty()),
        "{audit}"
    );
}

#[tokio::test]
async fn implicit_tls_login_and_failed_logins_are_rate_limited() {
    let s = with_submission().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut c, greeting) =
        legate_tests::SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    assert!(greeting.starts_with("220"), "{greeting}");
    assert!(c.cmd("EHLO client.test").await.contains("AUTH PLAIN LOGIN"));
    assert!(c.cmd("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
    assert!(c
        .cmd(&b64("alice@agents.test"))
        .await
        .starts_with("334 UGFzc3dvcmQ6"));
    assert!(c.cmd(&b64(&ka)).await.starts_with("235"));
    // limits.auth_failures_per_minute (10) failures from one address: the tenth answer is
    // 421 and the line closes.
    let (mut c, _) =
        legate_tests::SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let wrong = b64("\0alice@agents.test\0lg_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut last = String::new();
    for _ in 0..10 {
        last = c.cmd(&format!("AUTH PLAIN {wrong}")).await;
        if last.starts_with("421") {
            break;
        }
        assert!(last.starts_with("535"), "{last}");
    }
    assert!(last.starts_with("421 4.7.0"), "{last}");
    // Even the right key is now refused from this address until the window passes.
    let (mut c, _) =
        legate_tests::SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let right = b64(&format!("\0alice@agents.test\0{ka}"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {right}"))
        .await
        .starts_with("421 4.7.0"));
}
