//! Issue 15 on the send path: header injection through the send API (4), exactly one From
//! that is the agent (2), one delivery per recipient (9), no delivery into internal address
//! space chosen by a domain's DNS (11) and lines over 998 octets re-encoded (18).

use super::remote::{delivery_of, sink, Sink};
use super::{message, wait_for};
use legate::mailauth::StaticDns;
use legate_testdns::TestDns;
use legate_tests::{test_config, SmtpClient, TestServer};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// A server with submission, a static route for `x.test` to `sink` (if any) and DNS from
/// `dns` (if any); `edit` changes the config further.
async fn server(
    sink: Option<&Sink>,
    dns: Option<&TestDns>,
    edit: impl FnOnce(&mut legate::config::Config),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.listen.submission = "127.0.0.1:0".into();
    cfg.outbound.retry_secs = vec![1];
    cfg.outbound.scan_interval_secs = 1;
    cfg.outbound.timeout_secs = 10;
    // Long lines must reach the queue, whatever the inbound default is.
    cfg.smtp.max_line_length = 64 * 1024;
    if let Some(sk) = sink {
        cfg.outbound.route.push(legate::config::RouteConfig {
            domain: "x.test".into(),
            next_hop: format!("127.0.0.1:{}", sk.port),
            require_tls: false,
        });
    }
    if let Some(d) = dns {
        cfg.dns.nameservers = vec![d.addr().to_string()];
        cfg.dns.timeout_secs = 2;
    }
    edit(&mut cfg);
    TestServer::start_with(dir, cfg).await
}

async fn send(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    s.call("POST", "/v1/messages/send", Some(key), Some(body))
        .await
}

async fn queue_len(s: &TestServer) -> usize {
    let (st, q) = s
        .call("GET", "/v1/queue?all=true", Some(&s.admin_token), None)
        .await;
    assert_eq!(st, 200, "{q}");
    q["items"].as_array().map_or(0, Vec::len)
}

/// Logs in on submission as alice (STARTTLS, AUTH PLAIN) and submits `data` to `rcpts`;
/// returns the reply to the end of data.
async fn submit(s: &TestServer, key: &str, rcpts: &[&str], data: &str) -> String {
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut c, _) = SmtpClient::connect(s.submission_addr()).await;
    c.cmd("EHLO client.test").await;
    let mut c = c.starttls(&tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let plain = data_encoding::BASE64.encode(format!("\0alice@agents.test\0{key}").as_bytes());
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("235"), "{r}");
    let r = c.cmd("MAIL FROM:<alice@agents.test>").await;
    assert!(r.starts_with("250"), "{r}");
    for t in rcpts {
        let r = c.cmd(&format!("RCPT TO:<{t}>")).await;
        assert!(r.starts_with("250"), "{r}");
    }
    assert!(c.cmd("DATA").await.starts_with("354"));
    let body = data.replace("\r\n.", "\r\n..");
    c.write(format!("{body}\r\n.\r\n").as_bytes()).await;
    c.read_reply().await
}

#[tokio::test]
async fn fields_that_would_add_header_lines_are_refused_as_invalid_header() {
    let s = TestServer::start().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    let base = json!({"to": "bob@agents.test", "subject": "hi", "text": "x"});
    let inject = "x\r\nBcc: evil@x.test";
    let cases: Vec<(&str, Value)> = vec![
        ("subject", json!({"subject": inject})),
        ("subject", json!({"subject": "a\nX-Evil: 1"})),
        ("subject", json!({"subject": "a\u{0}b"})),
        (
            "to[0]",
            json!({"to": [format!("Bob {inject} <bob@agents.test>")]}),
        ),
        (
            "to[0]",
            json!({"to": "bob@agents.test\r\nBcc: evil@x.test"}),
        ),
        (
            "cc[0]",
            json!({"cc": [format!("\"{inject}\" <bob@agents.test>")]}),
        ),
        ("bcc[0]", json!({"bcc": ["evil@x.test\nX-Evil: 1"]})),
        (
            "reply_to[0]",
            json!({"reply_to": format!("Desk {inject} <d@b.test>")}),
        ),
        (
            "in_reply_to",
            json!({"in_reply_to": "<a@b>\r\nBcc: evil@x.test"}),
        ),
        (
            "references[0]",
            json!({"references": ["<a@b>\r\nBcc: evil@x.test"]}),
        ),
        (
            "references[1]",
            json!({"references": ["<a@b>", "<c@d>\u{0}"]}),
        ),
        (
            "attachments[0].filename",
            json!({"attachments": [{"filename": "a\r\nBcc: evil@x.test", "content": "aGk="}]}),
        ),
        ("header \"X-Note\"", json!({"headers": {"X-Note": inject}})),
        (
            "header \"X-Note\"",
            json!({"headers": {"X-Note": "a\u{0}"}}),
        ),
        // Headers that name the sender or must be unique cannot be given at all.
        (
            "header \"From\"",
            json!({"headers": {"From": "ceo@bank.test"}}),
        ),
        (
            "header \"sender\"",
            json!({"headers": {"sender": "ceo@bank.test"}}),
        ),
        (
            "header \"Reply-To\"",
            json!({"headers": {"Reply-To": "ceo@bank.test"}}),
        ),
        (
            "header \"Resent-From\"",
            json!({"headers": {"Resent-From": "ceo@bank.test"}}),
        ),
        (
            "header \"Message-ID\"",
            json!({"headers": {"Message-ID": "<x@y>"}}),
        ),
        (
            "header name",
            json!({"headers": {"X-A\r\nFrom": "ceo@bank.test"}}),
        ),
        // Addresses go through a real parser: one mailbox per entry, no routing forms.
        ("to[0]", json!({"to": "a@b.test, evil@x.test"})),
        ("cc[0]", json!({"cc": "list: a@b.test;"})),
        ("reply_to[0]", json!({"reply_to": "not an address"})),
    ];
    for (field, patch) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, v) = send(&s, &ka, body.clone()).await;
        assert_eq!(st, 422, "{body} -> {v}");
        assert_eq!(v["error"]["code"], "invalid_header", "{body} -> {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(field), "{field}: {msg}");
    }
    assert_eq!(queue_len(&s).await, 0);
    let (_, inbox) = s
        .call("GET", "/v1/messages?folder=INBOX", Some(&kb), None)
        .await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 0, "{inbox}");
}

#[tokio::test]
async fn names_are_encoded_reply_to_is_set_and_the_from_stays_the_agent() {
    let s = TestServer::start().await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    let (st, v) = send(
        &s,
        &ka,
        json!({"to": "Bøb Ünïcode <bob@agents.test>", "reply_to": "Help Desk <desk@b.test>",
               "subject": "Grüße", "text": "hello", "headers": {"X-Note": "naïve"}}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let inbox = wait_for(&s, &kb, "INBOX", 1).await;
    let id = inbox[0]["id"].as_str().unwrap();
    let (_, _, raw) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &kb).await;
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(
        raw[..head_end].is_ascii(),
        "RFC 2047 encoded headers: {}",
        String::from_utf8_lossy(&raw)
    );
    let got = message(&s, &kb, id).await;
    assert_eq!(got["subject"], "Grüße", "{got}");
    let text = got.to_string();
    assert!(text.contains("Bøb Ünïcode"), "{text}");
    assert!(text.contains("desk@b.test"), "{text}");
    assert!(
        got["from"].to_string().contains("alice@agents.test"),
        "{got}"
    );
    assert!(!got["from"].to_string().contains("desk"), "{got}");
}

#[tokio::test]
async fn overlapping_recipients_get_one_delivery_each() {
    let sk = sink(vec!["250 2.1.5 ok"]).await;
    let s = server(Some(&sk), None, |_| {}).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    let (st, v) = send(
        &s,
        &ka,
        json!({"to": ["bob@agents.test", "carol@x.test"],
               "cc": ["BOB@Agents.Test", "Carol <Carol@X.TEST>"],
               "bcc": ["bob+news@agents.test", "<carol@x.test>", "Bob <bob@agents.test>"],
               "subject": "once", "text": "x"}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let rcpts = v["recipients"].as_array().unwrap();
    assert_eq!(rcpts.len(), 2, "{v}");
    let id = v["id"].as_str().unwrap();
    // Wait for both recipients to be final, then count copies.
    for _ in 0..200 {
        let m = message(&s, &ka, id).await;
        if m["delivery"]
            .as_array()
            .is_some_and(|d| d.iter().all(|r| r["status"] == "delivered"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let inbox = wait_for(&s, &kb, "INBOX", 1).await;
    assert_eq!(inbox.len(), 1, "one copy for bob: {inbox:?}");
    assert_eq!(*sk.attempts.lock().unwrap(), 1, "one RCPT for carol");
    assert_eq!(sk.got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn submission_needs_exactly_one_from_and_it_is_the_agent() {
    let s = server(None, None, |_| {}).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    for data in [
        // Whichever From a reader shows, one of them is not the agent.
        "From: alice@agents.test\r\nFrom: ceo@bank.test\r\nSubject: a\r\n\r\nx",
        "From: ceo@bank.test\r\nFrom: alice@agents.test\r\nSubject: b\r\n\r\nx",
        "From: alice@agents.test, ceo@bank.test\r\nSubject: c\r\n\r\nx",
        "From: alice@agents.test\r\nSender: ceo@bank.test\r\nSubject: d\r\n\r\nx",
        "From: alice@agents.test\r\nSubject: e\r\nSubject: f\r\n\r\nx",
        "From: alice@agents.test\r\nReply-To: a@b.test\r\nReply-To: c@d.test\r\n\r\nx",
        "Subject: no from\r\n\r\nx",
    ] {
        let r = submit(&s, &ka, &["bob@agents.test"], data).await;
        assert!(r.starts_with("550"), "{data:?} -> {r}");
    }
    assert_eq!(queue_len(&s).await, 0);
    let ok =
        "From: Alice <alice@agents.test>\r\nSender: alice@agents.test\r\nSubject: fine\r\n\r\nx";
    let r = submit(&s, &ka, &["bob@agents.test"], ok).await;
    assert!(r.starts_with("250"), "{r}");
    let inbox = wait_for(&s, &kb, "INBOX", 1).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["subject"], "fine");
}

#[tokio::test]
async fn mx_answers_in_internal_space_bounce_unless_the_danger_flag_is_set() {
    let sk = sink(vec!["250 2.1.5 ok"]).await;
    let records = StaticDns::new();
    records
        .add_mx("c.test", 10, "mx.c.test")
        .add_a("mx.c.test", Ipv4Addr::LOCALHOST);
    let dns = TestDns::start(records).await.unwrap();
    let port = sk.port;
    // No route for c.test: its own DNS steers us to 127.0.0.1, where the sink listens.
    let s = server(None, Some(&dns), |c| c.outbound.mx_port = port).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (st, v) = send(
        &s,
        &ka,
        json!({"to": "u@c.test", "subject": "Inward", "text": "x"}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let d = delivery_of(&s, &ka, id, "permanent_failure").await;
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.contains("5.4.4") && reply.contains("loopback"), "{d}");
    let inbox = wait_for(&s, &ka, "INBOX", 1).await;
    let did = inbox[0]["id"].as_str().unwrap();
    let (_, _, raw) = s.get_bytes(&format!("/v1/messages/{did}/raw"), &ka).await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("Final-Recipient: rfc822; u@c.test"), "{raw}");
    assert!(
        raw.contains("mx.c.test [127.0.0.1] is a loopback address"),
        "{raw}"
    );
    assert_eq!(*sk.attempts.lock().unwrap(), 0, "nothing was sent inward");

    let s2 = server(None, Some(&dns), |c| {
        c.outbound.mx_port = port;
        c.outbound.danger_allow_private_destinations = true;
    })
    .await;
    let (_a, ka2) = s2.agent("alice", &["mail:send", "mail:read"]).await;
    let (st, v) = send(
        &s2,
        &ka2,
        json!({"to": "u@c.test", "subject": "Inward", "text": "x"}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    delivery_of(&s2, &ka2, v["id"].as_str().unwrap(), "delivered").await;
    assert_eq!(sk.got.lock().unwrap().len(), 1);
}

/// The longest line of a sink-received body.
fn longest(body: &str) -> usize {
    body.split("\r\n").map(str::len).max().unwrap_or(0)
}

#[tokio::test]
async fn lines_over_998_octets_are_reencoded_before_delivery() {
    let sk = sink(vec!["250 2.1.5 ok"]).await;
    let s = server(Some(&sk), None, |_| {}).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let long = "0123456789".repeat(600);
    // Submission: the client's own MIME, a 6,000-octet 8bit line.
    let data = format!(
        "From: alice@agents.test\r\nTo: u@x.test\r\nSubject: long\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         before\r\n{long}\r\nafter"
    );
    let r = submit(&s, &ka, &["u@x.test"], &data).await;
    assert!(r.starts_with("250"), "{r}");
    // The API: mail-builder encodes long text itself.
    let (st, v) = send(
        &s,
        &ka,
        json!({"to": "u@x.test", "subject": "long api", "text": long, "html": format!("<p>{long}</p>")}),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    for _ in 0..200 {
        if sk.got.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = sk.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for body in &got {
        assert!(longest(body) <= 998, "{} octets in {body}", longest(body));
        assert_eq!(body.matches("DKIM-Signature:").count(), 2);
        // Digits need no escaping: undoing the soft line breaks gives the line back.
        assert!(body.replace("=\r\n", "").contains(&long), "{body}");
    }
    assert!(got
        .iter()
        .any(|b| b.contains("Content-Transfer-Encoding: quoted-printable")));
}

/// The DKIM TXT values `legate init`, `legate dkim records` (the vault's `txt()`) and `legate
/// dns plan` print are the same strings, RSA keys in SubjectPublicKeyInfo form.
#[tokio::test]
async fn init_dkim_records_and_dns_plan_print_the_same_dkim_keys() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let init = legate_tests::cli_init(&dir.path().join("d"), "keys.test");
    let cfg = init["config"].as_str().unwrap().to_string();
    let run = |args: &[&str]| -> Value {
        let o = legate_tests::cli(&cfg, args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let from_init: BTreeMap<String, String> = init["dkim"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let from_records: BTreeMap<String, String> = run(&["dkim", "records", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["txt"].as_str().unwrap().into(),
            )
        })
        .collect();
    let from_plan: BTreeMap<String, String> = run(&["dns", "plan", "--format", "json"])["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().contains("._domainkey."))
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(from_init.len(), 2, "{from_init:?}");
    assert_eq!(from_init, from_records);
    assert_eq!(from_records, from_plan);
    let rsa: Vec<&String> = from_plan.values().filter(|v| v.contains("k=rsa")).collect();
    assert_eq!(rsa.len(), 1);
    // What `openssl rsa -pubout` prints for a 2048-bit key (not PKCS#1's `MIIBCgKCAQEA`).
    assert!(
        rsa[0].starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"),
        "{}",
        rsa[0]
    );
}

/// A reply takes its subject and threading headers from a received message, which its
/// sender wrote: a subject that decodes to a line break is made one line and a malformed
/// Message-ID is left out, so neither reaches the answer's header nor blocks the reply.
#[tokio::test]
async fn a_reply_to_a_hostile_original_neither_fails_nor_carries_its_header_lines() {
    let s = TestServer::start().await;
    let (a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;
    let (_b, kb) = s.agent("bob", &["mail:read"]).await;
    let aid = a["id"].as_str().unwrap();
    let original = "From: Bob <bob@agents.test>\r\nTo: alice@agents.test\r\n\
        Subject: =?utf-8?q?Hi=0D=0ABcc:_evil@x.test?=\r\nMessage-ID: <a b@c>\r\n\
        References: <ok@x.test> <bad\u{1}@x.test>\r\n\r\nhello\r\n";
    let m = s
        .deliver(aid, legate::mailbox::Folder::Inbox, original.as_bytes())
        .await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/messages/{}/reply", m.id),
            Some(&ka),
            Some(json!({"text": "thanks"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let inbox = wait_for(&s, &kb, "INBOX", 1).await;
    let id = inbox[0]["id"].as_str().unwrap();
    let (_, _, raw) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &kb).await;
    let raw = String::from_utf8_lossy(&raw);
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    assert!(!head.to_ascii_lowercase().contains("\nbcc:"), "{head}");
    assert!(head.contains("<ok@x.test>"), "{head}");
    assert!(!head.contains("bad"), "{head}");
    let got = message(&s, &kb, id).await;
    assert_eq!(got["subject"], "Re: Hi  Bcc: evil@x.test", "{got}");
}
