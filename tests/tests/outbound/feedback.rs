//! Issue 24 items 3 and 5: bounces and complaints come back to per-recipient VERP addresses
//! (or abuse@), are linked to their message and recipient, suppress the address and never
//! reach the agent's INBOX; forged, malformed or another org's reports link nothing and are
//! kept for an admin; a complaint trips the circuit breaker until an admin resumes.

use super::remote::{free_port, server_with, sink, Sink};
use legate::mailauth::StaticDns;
use legate_testdns::TestDns;
use legate_tests::{SmtpClient, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

struct World {
    _dns: TestDns,
    s: TestServer,
    sk: Sink,
    key: String,
    agent_id: String,
}

async fn world(tweak: impl FnOnce(&mut legate::config::Config)) -> World {
    world_with(vec!["250 2.1.5 ok"], tweak).await
}

/// The world, its receiver answering RCPT with `replies` in turn (the last repeats).
async fn world_with(
    replies: Vec<&'static str>,
    tweak: impl FnOnce(&mut legate::config::Config),
) -> World {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let sk = sink(replies).await;
    let s = server_with("a.test", free_port(), &dns, &[("x.test", sk.port)], tweak).await;
    let (agent, key) = s.agent("ops", &["mail:send", "mail:read"]).await;
    let agent_id = agent["id"].as_str().unwrap().to_string();
    World {
        _dns: dns,
        s,
        sk,
        key,
        agent_id,
    }
}

/// Sends to `to`, waits for delivery; returns (message id, the reverse-path used).
async fn sent(w: &World, to: &str) -> (String, String) {
    let before = w.sk.froms.lock().unwrap().len();
    let (st, v) =
        w.s.call(
            "POST",
            "/v1/messages/send",
            Some(&w.key),
            Some(json!({"to": [to], "subject": "Hello", "text": "hi"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    super::remote::delivery_of(&w.s, &w.key, &id, "delivered").await;
    let froms = w.sk.froms.lock().unwrap().clone();
    assert_eq!(froms.len(), before + 1, "{froms:?}");
    (id, froms[before].clone())
}

fn dsn(to: &str, rcpt: &str, status: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.x.test\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.x.test\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: {status}\r\n\
Diagnostic-Code: smtp; 550 {status} <{rcpt}>: User unknown\r\n\r\n\
--B--\r\n"
    )
}

fn arf(to: &str, mail_from: &str, rcpt: &str, message_id: &str) -> String {
    format!(
        "From: fbl@mail.x.test\r\nTo: {to}\r\nSubject: Complaint\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
--F\r\nContent-Type: message/feedback-report\r\n\r\n\
Feedback-Type: abuse\r\nUser-Agent: BigMail-FBL/2.0\r\nVersion: 1\r\n\
Original-Mail-From: <{mail_from}>\r\nOriginal-Rcpt-To: <{rcpt}>\r\n\r\n\
--F\r\nContent-Type: text/rfc822-headers\r\n\r\n\
From: ops@a.test\r\nTo: {rcpt}\r\nMessage-ID: <{message_id}>\r\nSubject: Hello\r\n\r\n\
--F--\r\n"
    )
}

/// One message over SMTP to `s`: the reply to the end of data.
async fn smtp(s: &TestServer, from: &str, to: &str, body: &str) -> String {
    let (mut c, greeting) = SmtpClient::connect(s.smtp_addr()).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    c.cmd("EHLO mx.x.test").await;
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert!(r.starts_with("250"), "MAIL: {r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
    assert!(r.starts_with("250"), "RCPT {to}: {r}");
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("354"), "{r}");
    c.write(format!("{body}.\r\n").as_bytes()).await;
    let r = c.read_reply().await;
    c.cmd("QUIT").await;
    r
}

async fn message(w: &World, id: &str) -> Value {
    w.s.call("GET", &format!("/v1/messages/{id}"), Some(&w.key), None)
        .await
        .1
}

async fn inbox_len(w: &World) -> usize {
    let (_, v) =
        w.s.call("GET", "/v1/messages?folder=INBOX", Some(&w.key), None)
            .await;
    v["items"].as_array().map_or(0, Vec::len)
}

async fn unlinked(w: &World) -> Vec<Value> {
    let (st, v) =
        w.s.call(
            "GET",
            "/v1/feedback?linked=false",
            Some(&w.s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_late_bounce_marks_the_recipient_bounced_suppresses_it_and_stays_out_of_the_inbox() {
    let w = world(|_| {}).await;
    let (id, verp) = sent(&w, "gone@x.test").await;
    assert!(verp.starts_with("ops+b."), "a VERP reverse-path: {verp}");
    assert!(verp.ends_with("@a.test"), "{verp}");

    let r = smtp(&w.s, "", &verp, &dsn(&verp, "gone@x.test", "5.1.1")).await;
    assert!(r.starts_with("250"), "{r}");
    let m = message(&w, &id).await;
    assert_eq!(m["delivery"][0]["status"], "bounced", "{m}");
    let fb = &m["feedback"][0];
    assert_eq!(fb["kind"], "dsn", "{m}");
    assert_eq!(fb["outcome"], "bounced", "{m}");
    assert_eq!(fb["recipient"], "gone@x.test", "{m}");
    assert!(fb["raw"].as_str().unwrap().contains("User unknown"), "{fb}");
    assert_eq!(inbox_len(&w).await, 0, "a bounce is not mail for the agent");

    // Suppressed: listed, and the next send to it is refused naming why.
    let (_, list) =
        w.s.call("GET", "/v1/suppressions", Some(&w.s.admin_token), None)
            .await;
    let e = &list["items"][0];
    assert_eq!(e["address"], "gone@x.test", "{list}");
    assert_eq!(e["source"], "bounce", "{list}");
    let (st, e) =
        w.s.call(
            "POST",
            "/v1/messages/send",
            Some(&w.key),
            Some(json!({"to": ["gone@x.test"], "subject": "Again", "text": "x"})),
        )
        .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "suppressed", "{e}");

    // A soft failure (mailbox full) is linked and marks the recipient, without suppressing.
    let (id2, verp2) = sent(&w, "full@x.test").await;
    let r = smtp(&w.s, "", &verp2, &dsn(&verp2, "full@x.test", "5.2.2")).await;
    assert!(r.starts_with("250"), "{r}");
    let m = message(&w, &id2).await;
    assert_eq!(m["delivery"][0]["status"], "bounced", "{m}");
    let (_, list) =
        w.s.call("GET", "/v1/suppressions", Some(&w.s.admin_token), None)
            .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(unlinked(&w).await.is_empty());
}

#[tokio::test]
async fn forged_malformed_and_foreign_reports_link_nothing_and_are_kept() {
    let w = world(|_| {}).await;
    let (id, verp) = sent(&w, "u@x.test").await;
    // A forged token: the same message and recipient, a made-up MAC.
    let (local, _) = verp.split_once('@').unwrap();
    let (head, _) = local.rsplit_once('.').unwrap();
    let forged = format!("{head}.aaaaaaaaaaaaaaaa@a.test");
    let (mut c, _) = SmtpClient::connect(w.s.smtp_addr()).await;
    c.cmd("EHLO mx.x.test").await;
    assert!(c.cmd("MAIL FROM:<>").await.starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{forged}>")).await;
    assert!(
        r.starts_with("550 5.1.1"),
        "a made-up bounce address is refused: {r}"
    );
    c.cmd("QUIT").await;
    // The right token, but a DSN about somebody else.
    let r = smtp(&w.s, "", &verp, &dsn(&verp, "other@x.test", "5.1.1")).await;
    assert!(r.starts_with("250"), "{r}");
    // The right token, and no report at all.
    let r = smtp(
        &w.s,
        "",
        &verp,
        "From: x@x.test\r\nSubject: hi\r\n\r\nnot a report\r\n",
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    // A valid token of a.test's message, arriving at another org's domain.
    let (st, org) =
        w.s.call(
            "POST",
            "/v1/orgs",
            Some(&w.s.admin_token),
            Some(json!({"name": "Other", "domain": "other.test"})),
        )
        .await;
    assert_eq!(st, 201, "{org}");
    let foreign = verp.replace("@a.test", "@other.test");
    let r = smtp(&w.s, "", &foreign, &dsn(&foreign, "u@x.test", "5.1.1")).await;
    assert!(r.starts_with("250"), "{r}");

    let kept = unlinked(&w).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    let reasons: Vec<&str> = kept.iter().filter_map(|k| k["reason"].as_str()).collect();
    for want in [
        "does not name the recipient",
        "not a DSN or ARF",
        "another org",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "{want}: {reasons:?}"
        );
    }
    // Nothing was linked: the recipient is still delivered, nothing suppressed, the agent's
    // INBOX untouched.
    let m = message(&w, &id).await;
    assert_eq!(m["delivery"][0]["status"], "delivered", "{m}");
    assert!(m.get("feedback").is_none(), "{m}");
    let (_, list) =
        w.s.call("GET", "/v1/suppressions", Some(&w.s.admin_token), None)
            .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    assert_eq!(inbox_len(&w).await, 0);
    // Agents cannot read the feedback list.
    let (st, _) = w.s.call("GET", "/v1/feedback", Some(&w.key), None).await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn a_complaint_to_abuse_is_linked_and_trips_the_breaker_until_an_admin_resumes() {
    let w = world(|_| {}).await;
    let (id, verp) = sent(&w, "angry@x.test").await;
    let (_, m) =
        w.s.call("GET", &format!("/v1/messages/{id}"), Some(&w.key), None)
            .await;
    let mid = m["message_id"]
        .as_str()
        .or(m["headers"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["name"] == "Message-ID"))
            .and_then(|h| h["value"].as_str()))
        .unwrap_or("")
        .trim_matches(['<', '>'])
        .to_string();
    assert!(!mid.is_empty(), "{m}");
    let r = smtp(
        &w.s,
        "fbl@mail.x.test",
        "abuse@a.test",
        &arf("abuse@a.test", &verp, "angry@x.test", &mid),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let m = message(&w, &id).await;
    assert_eq!(m["delivery"][0]["status"], "complained", "{m}");
    assert_eq!(m["feedback"][0]["kind"], "arf", "{m}");
    assert_eq!(m["feedback"][0]["feedback_type"], "abuse", "{m}");

    // One complaint trips the breaker (the default): sending is paused everywhere.
    let (st, e) =
        w.s.call(
            "POST",
            "/v1/messages/send",
            Some(&w.key),
            Some(json!({"to": ["new@x.test"], "subject": "x", "text": "x"})),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "sending_paused", "{e}");
    let r = super::mcp_tool(
        &w.s,
        &w.key,
        "mail_send",
        json!({"to": ["new@x.test"], "subject": "x", "text": "x"}),
    )
    .await;
    assert_eq!(
        r["structuredContent"]["error"]["code"], "sending_paused",
        "{r}"
    );
    // Reading still works.
    assert_eq!(inbox_len(&w).await, 0);
    let (_, b) =
        w.s.call(
            "GET",
            &format!("/v1/agents/{}/breaker", w.agent_id),
            Some(&w.s.admin_token),
            None,
        )
        .await;
    assert_eq!(b["paused"]["rule"], "complaints", "{b}");
    let (_, audit) =
        w.s.call(
            "GET",
            "/v1/audit?action=agent.sending_paused",
            Some(&w.s.admin_token),
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");
    // The owner was noticed: through the queue, or (the test's owner admin@a.test is no
    // deliverable address) filed with the postmaster mailbox.
    let mut noticed = false;
    for _ in 0..100 {
        let (_, a) =
            w.s.call(
                "GET",
                "/v1/audit?action=breaker.notice",
                Some(&w.s.admin_token),
                None,
            )
            .await;
        noticed = a["items"].as_array().is_some_and(|i| !i.is_empty());
        if noticed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(noticed, "no notice to the owner");

    // Only an admin resumes.
    let path = format!("/v1/agents/{}/resume", w.agent_id);
    let (st, _) = w.s.call("POST", &path, Some(&w.key), None).await;
    assert_eq!(st, 403);
    let (st, v) = w.s.call("POST", &path, Some(&w.s.admin_token), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["resumed"], true, "{v}");
    let (st, v) =
        w.s.call(
            "POST",
            "/v1/messages/send",
            Some(&w.key),
            Some(json!({"to": ["new@x.test"], "subject": "x", "text": "x"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    // The complained-about address stays suppressed.
    let (st, e) =
        w.s.call(
            "POST",
            "/v1/messages/send",
            Some(&w.key),
            Some(json!({"to": ["angry@x.test"], "subject": "x", "text": "x"})),
        )
        .await;
    assert_eq!(st, 422, "{e}");
}

#[tokio::test]
async fn the_hard_bounce_rate_trips_the_breaker_at_its_threshold() {
    let w = world(|c| {
        c.breaker.window = 4;
        c.breaker.min_sends = 4;
        c.breaker.max_hard_bounce_percent = 50;
        c.breaker.notify_owner = false;
    })
    .await;
    let (_, v1) = sent(&w, "a1@x.test").await;
    sent(&w, "a2@x.test").await;
    let (_, v3) = sent(&w, "a3@x.test").await;
    // One hard bounce in three outcomes: below the minimum of four.
    let r = smtp(&w.s, "", &v1, &dsn(&v1, "a1@x.test", "5.1.1")).await;
    assert!(r.starts_with("250"), "{r}");
    sent(&w, "a4@x.test").await;
    // Two of four: 50 %, tripped.
    let r = smtp(&w.s, "", &v3, &dsn(&v3, "a3@x.test", "5.1.1")).await;
    assert!(r.starts_with("250"), "{r}");
    let (st, e) =
        w.s.call(
            "POST",
            "/v1/messages/send",
            Some(&w.key),
            Some(json!({"to": ["a5@x.test"], "subject": "x", "text": "x"})),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "sending_paused", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("hard-bounced")),
        "{e}"
    );
}

/// Hard bounces at delivery (the receiver refuses RCPT with 5.1.1) are observed by the
/// breaker in the delivery recorder's own transaction: it trips at the threshold, not
/// before, and the trip is audited as when a late DSN trips it.
#[tokio::test]
async fn hard_bounces_at_delivery_trip_the_breaker_at_its_threshold() {
    let w = world_with(
        vec![
            "250 2.1.5 ok",
            "550 5.1.1 no such user",
            "250 2.1.5 ok",
            "550 5.1.1 no such user",
        ],
        |c| {
            c.breaker.window = 4;
            c.breaker.min_sends = 4;
            c.breaker.max_hard_bounce_percent = 50;
            c.breaker.notify_owner = false;
        },
    )
    .await;
    let send = |to: &'static str| {
        let w = &w;
        async move {
            w.s.call(
                "POST",
                "/v1/messages/send",
                Some(&w.key),
                Some(json!({"to": [to], "subject": "x", "text": "x"})),
            )
            .await
        }
    };
    for (to, want) in [
        ("b1@x.test", "delivered"),
        ("b2@x.test", "permanent_failure"),
        ("b3@x.test", "delivered"),
    ] {
        let (st, v) = send(to).await;
        // One hard bounce in at most three outcomes: below the minimum of four.
        assert_eq!(st, 202, "{to}: {v}");
        let id = v["id"].as_str().unwrap();
        super::remote::delivery_of(&w.s, &w.key, id, want).await;
    }
    let (st, v) = send("b4@x.test").await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    super::remote::delivery_of(&w.s, &w.key, id, "permanent_failure").await;
    // Two of four: 50 %, tripped by the recorded outcome itself.
    let (st, e) = send("b5@x.test").await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "sending_paused", "{e}");
    let (_, b) =
        w.s.call(
            "GET",
            &format!("/v1/agents/{}/breaker", w.agent_id),
            Some(&w.s.admin_token),
            None,
        )
        .await;
    assert_eq!(b["paused"]["rule"], "hard_bounce_rate", "{b}");
    assert_eq!(b["recent_outcomes"], 4, "{b}");
    assert_eq!(b["recent_hard_bounces"], 2, "{b}");
    assert_eq!(b["delivered_total"], 2, "{b}");
    let (_, audit) =
        w.s.call(
            "GET",
            "/v1/audit?action=agent.sending_paused",
            Some(&w.s.admin_token),
            None,
        )
        .await;
    let items = audit["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{audit}");
    assert_eq!(items[0]["detail"]["rule"], "hard_bounce_rate", "{audit}");
}
