//! Allow and block lists (issue 18 item 7): an org's block list refuses at RCPT and after
//! DATA (550 5.7.1), an agent's block list files to Junk, an allow list admits only proven
//! listed senders; REST and MCP share the lists, agents only see their own, all audited.

use legate::mailauth::StaticDns;
use legate_tests::{SmtpClient, TestServer};
use serde_json::{json, Value};

fn dns() -> StaticDns {
    let d = StaticDns::new();
    d.add_txt("bank.test", "v=spf1 ip4:127.0.0.1 -all");
    d.add_txt("_dmarc.bank.test", "v=DMARC1; p=none");
    d.add_txt("spam.test", "v=spf1 ip4:127.0.0.1 -all");
    d
}

fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
Message-ID: <{subject}@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n"
    )
}

fn subjects(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect()
}

/// One SMTP transaction; returns the RCPT reply and, when RCPT was accepted, the DATA reply.
async fn send(s: &TestServer, from: &str, header_from: &str, to: &str, subject: &str) -> String {
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO client.test").await;
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
    if !r.starts_with("250") {
        return format!("RCPT {r}");
    }
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("354"), "{r}");
    c.write(format!("{}\r\n.\r\n", message(header_from, to, subject)).as_bytes())
        .await;
    format!("DATA {}", c.read_reply().await)
}

#[tokio::test]
async fn blocked_senders_are_refused_or_junked_and_allow_lists_admit_only_proven_senders() {
    let s = TestServer::start_smtp(dns()).await;
    let admin = Some(s.admin_token.as_str());
    let (ops, ops_key) = s
        .agent("ops", &["mail:read", "mail:manage", "mail:send"])
        .await;
    let (signup, signup_key) = s.agent("signup", &["mail:read", "mail:manage"]).await;
    let (_, reader_key) = s.agent("reader", &["mail:read"]).await;
    let org = ops["org_id"].as_str().expect("org_id").to_string();

    // Org block by an admin: refused at RCPT (envelope) and after DATA (header From).
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/orgs/{org}/senders"),
            admin,
            Some(json!({"list": "block", "entry": "Spam.Test", "note": "bulk"})),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    assert_eq!(e["entry"], "spam.test");
    let r = send(
        &s,
        "x@mx.spam.test",
        "x@mx.spam.test",
        "ops@agents.test",
        "s1",
    )
    .await;
    assert!(r.starts_with("RCPT 550 5.7.1"), "{r}");
    let r = send(
        &s,
        "ok@bank.test",
        "boss@spam.test",
        "ops@agents.test",
        "s2",
    )
    .await;
    assert!(r.starts_with("DATA 550 5.7.1"), "{r}");
    // An agent cannot touch the org's list, nor read it.
    let (st, _) = s
        .call(
            "GET",
            &format!("/v1/orgs/{org}/senders"),
            Some(&ops_key),
            None,
        )
        .await;
    assert_eq!(st, 403);

    // The agent's own block: filed to Junk, not refused.
    let (st, _) = s
        .call(
            "POST",
            "/v1/senders",
            Some(&ops_key),
            Some(json!({"list": "block", "entry": "pest@bank.test"})),
        )
        .await;
    assert_eq!(st, 201);
    let r = send(
        &s,
        "pest@bank.test",
        "pest@bank.test",
        "ops@agents.test",
        "junked",
    )
    .await;
    assert!(r.starts_with("DATA 250"), "{r}");
    let (_, junk) = s
        .call("GET", "/v1/messages?folder=Junk", Some(&ops_key), None)
        .await;
    assert_eq!(subjects(&junk), vec!["junked"]);
    // A bad entry is a 422 with a JSON body; another agent's list is not found; a key
    // without mail:manage is refused.
    let (st, v) = s
        .call(
            "POST",
            "/v1/senders",
            Some(&ops_key),
            Some(json!({"list": "block", "entry": "x\r\n@bank.test"})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let signup_id = signup["id"].as_str().unwrap();
    let (st, _) = s
        .call(
            "GET",
            &format!("/v1/agents/{signup_id}/senders"),
            Some(&ops_key),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s.call("GET", "/v1/senders", Some(&reader_key), None).await;
    assert_eq!(st, 403);

    // An allow list (set by the agent over MCP-equivalent REST): only a proven listed From.
    let (st, _) = s
        .call(
            "POST",
            "/v1/senders",
            Some(&signup_key),
            Some(json!({"list": "allow", "entry": "bank.test"})),
        )
        .await;
    assert_eq!(st, 201);
    // Listed and proven (SPF pass aligned with a DMARC domain): accepted.
    let r = send(
        &s,
        "alerts@bank.test",
        "alerts@bank.test",
        "signup@agents.test",
        "ok1",
    )
    .await;
    assert!(r.starts_with("DATA 250"), "{r}");
    // Not listed: refused.
    let r = send(
        &s,
        "a@spamless.test",
        "a@spamless.test",
        "signup@agents.test",
        "no1",
    )
    .await;
    assert!(r.starts_with("DATA 550 5.7.1"), "{r}");
    // Listed From, but typed by someone else (SPF for another domain): not proven, refused.
    let r = send(
        &s,
        "x@spam2.test",
        "alerts@bank.test",
        "signup@agents.test",
        "no2",
    )
    .await;
    assert!(r.starts_with("DATA 550 5.7.1"), "{r}");
    // Recipients whose lists could answer differently after DATA share no transaction:
    // the second is deferred (452 4.5.3), so no 250 ever covers a dropped copy.
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO client.test").await;
    assert!(c
        .cmd("MAIL FROM:<a@spamless.test>")
        .await
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<ops@agents.test>").await.starts_with("250"));
    let r = c.cmd("RCPT TO:<signup@agents.test>").await;
    assert!(r.starts_with("452 4.5.3"), "{r}");
    assert!(c.cmd("RCPT TO:<OPS@agents.test>").await.starts_with("250"));
    drop(c);

    // Another agent of this server is not on the list either: its mail bounces.
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&ops_key),
            Some(json!({"to": ["signup@agents.test"], "subject": "local", "text": "x"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let mut bounced = false;
    for _ in 0..100 {
        let (_, q) = s
            .call(
                "GET",
                &format!("/v1/messages/{}", v["id"].as_str().unwrap()),
                Some(&ops_key),
                None,
            )
            .await;
        if q["delivery"][0]["status"] == "permanent_failure" {
            assert!(
                q["delivery"][0]["last_reply"]
                    .as_str()
                    .unwrap_or("")
                    .contains("5.7.1"),
                "{q}"
            );
            bounced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(bounced, "local mail from an unlisted agent is refused");
    let (_, inbox) = s.call("GET", "/v1/messages", Some(&signup_key), None).await;
    assert_eq!(subjects(&inbox), vec!["ok1"]);

    // Lists read back, removal works once, and every change is audited.
    let (st, lists) = s.call("GET", "/v1/senders", Some(&signup_key), None).await;
    assert_eq!(st, 200);
    assert_eq!(lists["allow"][0]["entry"], "bank.test", "{lists}");
    assert_eq!(lists["block"], json!([]));
    let (st, _) = s
        .call(
            "DELETE",
            "/v1/senders/allow/bank.test",
            Some(&signup_key),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s
        .call(
            "DELETE",
            "/v1/senders/allow/bank.test",
            Some(&signup_key),
            None,
        )
        .await;
    assert_eq!(st, 404);
    let r = send(
        &s,
        "a@spamless.test",
        "a@spamless.test",
        "signup@agents.test",
        "ok2",
    )
    .await;
    assert!(r.starts_with("DATA 250"), "{r}");
    let (_, trail) = s
        .call("GET", "/v1/audit?action=senders.add", admin, None)
        .await;
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(3), "{trail}");
    let (_, refused) = s
        .call("GET", "/v1/audit?action=mail.refuse", admin, None)
        .await;
    assert_eq!(
        refused["items"].as_array().map(Vec::len),
        Some(3),
        "{refused}"
    );
    s.stop().await;
}
