//! What an agent reads can be trusted (issue 15, item 1): the `from` filter matches the
//! sender's address, never its display name, and `authenticated=true` selects mail whose From
//! domain passed DMARC. Mail arrives over real SMTP and is authenticated against a loopback
//! DNS server.

use legate::mailauth::StaticDns;
use legate_tests::{SmtpClient, TestServer};
use serde_json::Value;

fn dns() -> StaticDns {
    let d = StaticDns::new();
    // Both domains authorise the test client (127.0.0.1); only bank.test publishes DMARC.
    d.add_txt("bank.test", "v=spf1 ip4:127.0.0.1 -all");
    d.add_txt("_dmarc.bank.test", "v=DMARC1; p=none");
    d.add_txt("attacker.test", "v=spf1 ip4:127.0.0.1 -all");
    d
}

fn message(from: &str, subject: &str, code: &str) -> String {
    format!(
        "From: {from}\r\nTo: ops@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{code}@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n\
Your verification code is {code}.\r\n"
    )
}

fn subjects(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["subject"].as_str().expect("subject").to_string())
        .collect()
}

#[tokio::test]
async fn from_matches_the_address_and_authenticated_means_dmarc_aligned() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let k = Some(key.as_str());

    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO client.test").await;
    // The attacker's own domain passes SPF, and its display name says "bank.test".
    let r = c
        .send_mail(
            "x@attacker.test",
            &["ops@agents.test"],
            &message("\"bank.test\" <alerts@attacker.test>", "spoofed", "111111"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    // The bank itself: SPF passes for bank.test, aligned with the From: DMARC pass.
    let r = c
        .send_mail(
            "alerts@bank.test",
            &["ops@agents.test"],
            &message("Bank <alerts@bank.test>", "genuine", "222222"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    // The bank's address in From, sent through the attacker's domain: not aligned (DMARC
    // fails, and p=none lets it in).
    let r = c
        .send_mail(
            "bounce@attacker.test",
            &["ops@agents.test"],
            &message("Bank <alerts@bank.test>", "unaligned", "333333"),
        )
        .await;
    assert!(r.starts_with("250"), "{r}");
    c.cmd("QUIT").await;

    let srv = &s;
    let list = |q: &'static str| async move {
        let (st, l) = srv.call("GET", &format!("/v1/messages?{q}"), k, None).await;
        assert_eq!(st, 200, "{q}: {l}");
        l
    };
    // The display name never matches: only the addresses at bank.test.
    assert_eq!(
        subjects(&list("from=bank.test").await),
        ["unaligned", "genuine"]
    );
    assert_eq!(
        subjects(&list("from=alerts%40bank.test").await),
        ["unaligned", "genuine"]
    );
    assert_eq!(subjects(&list("from=attacker.test").await), ["spoofed"]);
    // Only the DMARC-aligned one is authenticated.
    assert_eq!(
        subjects(&list("from=bank.test&authenticated=true").await),
        ["genuine"]
    );
    assert_eq!(
        subjects(&list("authenticated=false").await),
        ["unaligned", "spoofed"]
    );
    let all = list("").await;
    for item in all["items"].as_array().expect("items") {
        let genuine = item["subject"] == "genuine";
        assert_eq!(item["auth"]["sender_authenticated"], genuine, "{item}");
    }
    assert_eq!(all["items"][0]["auth"]["from_domain"], "bank.test");
    assert_eq!(all["items"][2]["auth"]["from_domain"], "attacker.test");
    // A display name is not a filter: refused with a reason instead of matching nothing.
    let (st, e) = s
        .call("GET", "/v1/messages?from=Bank%20of%20Test", k, None)
        .await;
    assert_eq!(st, 422, "{e}");

    // wait: the code comes from the authenticated message, with the verdict on it.
    let (st, m) = s
        .call(
            "GET",
            "/v1/messages/wait?from=bank.test&authenticated=true&since=1000&timeout=5",
            k,
            None,
        )
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["subject"], "genuine");
    assert_eq!(m["codes"][0]["code"], "222222", "{m}");
    assert_eq!(m["auth"]["sender_authenticated"], true);
    assert_eq!(m["auth"]["dmarc"]["result"], "pass", "{}", m["auth"]);
    assert_eq!(m["auth"]["dmarc"]["from_domain"], "bank.test");
    // Nothing authenticated from the attacker's domain ever arrives.
    let (st, _) = s
        .call(
            "GET",
            "/v1/messages/wait?from=attacker.test&authenticated=true&since=1000&timeout=1",
            k,
            None,
        )
        .await;
    assert_eq!(st, 204);
    s.stop().await;
}

/// A long-poll is a request in flight across a revocation: when its key is revoked while it
/// waits, the message that then arrives is not handed over (issue 15, item 3).
#[tokio::test]
async fn a_wait_outliving_its_key_is_refused() {
    let s = TestServer::start().await;
    let (agent, _) = s.agent("ops", &["mail:read"]).await;
    let id = agent["id"].as_str().expect("id").to_string();
    let admin = Some(s.admin_token.as_str());
    let (st, k) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/keys"),
            admin,
            Some(serde_json::json!({"name": "waiter"})),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    let (key, key_id) = (
        k["key"].as_str().expect("key"),
        k["id"].as_str().expect("id"),
    );
    let waiting = s.call(
        "GET",
        "/v1/messages/wait?subject=code&timeout=30",
        Some(key),
        None,
    );
    let revoke = async {
        // Give the wait time to start (it may only start later, never earlier).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let path = format!("/v1/agents/{id}/keys/{key_id}");
        let (st, v) = s.call("DELETE", &path, admin, None).await;
        assert_eq!(st, 200, "{v}");
        let raw = message("Shop <no-reply@shop.test>", "Your code", "246802");
        s.deliver(&id, legate::mailbox::Folder::Inbox, raw.as_bytes())
            .await;
    };
    let ((st, v), ()) = tokio::join!(waiting, revoke);
    assert_eq!(st, 401, "a revoked key's wait returned: {v}");
    assert_eq!(v["error"]["code"], "key_revoked", "{v}");
    assert!(!v.to_string().contains("246802"), "{v}");
    s.stop().await;
}

/// Mail from another agent of this server is delivered locally, without DMARC: its sender is
/// the agent the server authenticated, so it counts as authenticated too.
#[tokio::test]
async fn mail_from_a_local_agent_is_authenticated() {
    let s = TestServer::start().await;
    let (_, alice) = s.agent("alice", &["mail:send"]).await;
    let (_, bob) = s.agent("bob", &["mail:read"]).await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&alice),
            Some(serde_json::json!({"to": "bob@agents.test", "subject": "Your code", "text": "Code 975310"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let (st, m) = s
        .call(
            "GET",
            "/v1/messages/wait?from=alice%40agents.test&authenticated=true&since=1000&timeout=20",
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["subject"], "Your code");
    assert_eq!(m["auth"]["sender_authenticated"], true, "{}", m["auth"]);
    assert_eq!(m["auth"]["from_domain"], "agents.test");
    s.stop().await;
}

/// One key cannot pin connections and tasks with long-polls: past `api.max_waits_per_agent`
/// a further wait is refused at once (429), over REST and MCP alike, and a slot frees when
/// a wait ends.
#[tokio::test]
async fn concurrent_waits_per_agent_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.api.max_waits_per_agent = 2;
    let s = std::sync::Arc::new(TestServer::start_with(dir, cfg).await);
    let (_, key) = s.agent("waiter", &["mail:read"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let (s, key) = (s.clone(), key.clone());
        held.push(tokio::spawn(async move {
            s.call("GET", "/v1/messages/wait?timeout=3", Some(&key), None)
                .await
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (st, v) = s
        .call("GET", "/v1/messages/wait?timeout=1", Some(&key), None)
        .await;
    assert_eq!(st, 429, "{v}");
    assert_eq!(v["error"]["code"], "too_many_waits", "{v}");
    // Another agent is not affected.
    let (_, other) = s.agent("other", &["mail:read"]).await;
    let (st, _) = s
        .call("GET", "/v1/messages/wait?timeout=1", Some(&other), None)
        .await;
    assert_eq!(st, 204);
    for h in held {
        let (st, _) = h.await.expect("join");
        assert_eq!(st, 204, "the held waits time out normally");
    }
    let (st, _) = s
        .call("GET", "/v1/messages/wait?timeout=1", Some(&key), None)
        .await;
    assert_eq!(st, 204, "slots are freed when waits end");
}

/// Only send and reply take large bodies (attachments); any other route refuses a body over
/// `api.max_json_body_bytes` with 413 and a JSON error.
#[tokio::test]
async fn small_routes_refuse_large_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.api.max_json_body_bytes = 4096;
    let s = TestServer::start_with(dir, cfg).await;
    let (_, key) = s.agent("big", &["mail:send", "vault:write"]).await;
    let big = "x".repeat(8192);
    let (st, v) = s
        .call(
            "PUT",
            "/v1/vault/site",
            Some(&key),
            Some(serde_json::json!({"username": "u", "password": big})),
        )
        .await;
    assert_eq!(st, 413, "{v}");
    assert!(v["error"]["code"].is_string(), "{v}");
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&key),
            Some(serde_json::json!({"to": "someone@agents.test", "subject": "big", "text": big})),
        )
        .await;
    assert_ne!(st, 413, "send takes api.max_body_bytes: {v}");
    s.stop().await;
}

/// Issue 24 item 7: every summary carries `trust: {authenticated, first_contact,
/// allowlisted}`, list and wait filter on them, and `hold_first_contact` files mail from
/// strangers in `Screened`.
#[tokio::test]
async fn trust_labels_filters_and_screening_of_first_contacts() {
    let s = TestServer::start_smtp(dns()).await;
    let (_, key) = s.agent("ops", &["mail:read", "mail:manage"]).await;
    let (screen, skey) = s.agent("screen", &["mail:read", "mail:manage"]).await;
    let screen_id = screen["id"].as_str().unwrap().to_string();
    let k = Some(key.as_str());
    let (st, v) = s
        .call(
            "POST",
            "/v1/senders",
            k,
            Some(serde_json::json!({"list": "allow", "entry": "bank.test"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    // Only the agent itself (or an admin) sets its screening.
    let path = format!("/v1/agents/{screen_id}/screening");
    let on = serde_json::json!({"hold_first_contact": true});
    let (st, _) = s.call("PUT", &path, k, Some(on.clone())).await;
    assert_eq!(st, 404, "another agent's settings do not exist for ops");
    let (st, v) = s.call("PUT", &path, Some(&skey), Some(on)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["hold_first_contact"], true);

    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO client.test").await;
    for (code, subject) in [("1", "first"), ("2", "second")] {
        let r = c
            .send_mail(
                "alerts@bank.test",
                &["ops@agents.test"],
                &message("Bank <alerts@bank.test>", subject, code),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
    }
    for (code, subject) in [("3", "stranger one"), ("4", "stranger two")] {
        let r = c
            .send_mail(
                "x@attacker.test",
                &["screen@agents.test"],
                &message("Stranger <x@attacker.test>", subject, code),
            )
            .await;
        assert!(r.starts_with("250"), "{r}");
    }
    c.cmd("QUIT").await;

    let (_, l) = s.call("GET", "/v1/messages", k, None).await;
    assert_eq!(subjects(&l), ["second", "first"]);
    let trust = |i: usize| l["items"][i]["trust"].clone();
    assert_eq!(
        trust(1),
        serde_json::json!({"authenticated": true, "first_contact": true, "allowlisted": true})
    );
    assert_eq!(
        trust(0)["first_contact"],
        false,
        "proven mail made a contact"
    );
    for (q, want) in [
        ("first_contact=true", vec!["first"]),
        ("first_contact=false", vec!["second"]),
        ("allowlisted=true", vec!["second", "first"]),
        ("allowlisted=false", vec![]),
    ] {
        let (st, l) = s.call("GET", &format!("/v1/messages?{q}"), k, None).await;
        assert_eq!(st, 200, "{q}: {l}");
        assert_eq!(subjects(&l), want, "{q}");
    }
    let (st, m) = s
        .call(
            "GET",
            "/v1/messages/wait?first_contact=false&since=1000&timeout=1",
            k,
            None,
        )
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["subject"], "second");

    // Strangers' mail waits in Screened, never in INBOX; unproven mail makes no contact.
    let sk = Some(skey.as_str());
    let (_, inbox) = s.call("GET", "/v1/messages?folder=INBOX", sk, None).await;
    assert!(subjects(&inbox).is_empty(), "{inbox}");
    let (st, scr) = s
        .call("GET", "/v1/messages?folder=Screened", sk, None)
        .await;
    assert_eq!(st, 200, "{scr}");
    assert_eq!(subjects(&scr), ["stranger two", "stranger one"]);
    assert_eq!(
        scr["items"][0]["trust"],
        serde_json::json!({"authenticated": false, "first_contact": true, "allowlisted": false})
    );
    s.stop().await;
}
