//! Issue 24 item 1: the send policy of each agent, enforced once in the queue for REST, MCP
//! and SMTP submission alike (`429 send_limit` + `Retry-After` / `403 policy_denied`;
//! `452 4.5.3` / `550 5.7.1`), counted in the store (a restart keeps the counts), and never
//! looser for a sub-agent than for its parent. Window expiry is a unit test of
//! `policy::admit` with an injected clock.

use legate_tests::{mcp_tool, SmtpClient, TestServer};
use serde_json::{json, Value};

async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.submissions = "127.0.0.1:0".into();
    TestServer::start_with(dir, cfg).await
}

fn id_of(agent: &Value) -> String {
    agent["id"].as_str().expect("agent id").to_string()
}

async fn put_policy(s: &TestServer, token: &str, agent: &str, p: Value) -> (u16, Value) {
    s.call(
        "PUT",
        &format!("/v1/agents/{agent}/send-policy"),
        Some(token),
        Some(p),
    )
    .await
}

async fn send(s: &TestServer, key: &str, to: &[&str], text: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/messages/send",
        Some(key),
        Some(json!({"to": to, "subject": "Policy", "text": text})),
    )
    .await
}

async fn submission(s: &TestServer, local: &str, key: &str) -> SmtpClient {
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut c, _) = SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    c.cmd("EHLO client.test").await;
    let plain = data_encoding::BASE64.encode(format!("\0{local}@agents.test\0{key}").as_bytes());
    let r = c.cmd(&format!("AUTH PLAIN {plain}")).await;
    assert!(r.starts_with("235"), "{r}");
    c
}

/// One message over submission; the reply to its end of data (or to the refused command).
async fn submit(c: &mut SmtpClient, from: &str, to: &str) -> String {
    let r = c.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert!(r.starts_with("250"), "MAIL: {r}");
    let r = c.cmd(&format!("RCPT TO:<{to}>")).await;
    assert!(r.starts_with("250"), "RCPT: {r}");
    let r = c.cmd("DATA").await;
    assert!(r.starts_with("354"), "DATA: {r}");
    c.write(format!("From: {from}\r\nTo: {to}\r\nSubject: Sub\r\n\r\nhello\r\n.\r\n").as_bytes())
        .await;
    c.read_reply().await
}

#[tokio::test]
async fn a_burst_past_the_hourly_cap_is_refused_on_rest_mcp_and_submission() {
    let s = start().await;
    let admin = s.admin_token.clone();
    let (ops, key) = s.agent("ops", &["mail:send", "mail:read"]).await;
    let ops_id = id_of(&ops);
    let (st, v) = put_policy(&s, &admin, &ops_id, json!({"max_per_hour": 3})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["max_per_hour"], 3, "{v}");
    assert_eq!(v["max_per_day"], Value::Null, "inherited: {v}");
    assert_eq!(v["effective"]["max_per_hour"], 3, "{v}");
    assert_eq!(v["effective"]["max_per_day"], 500, "the org default: {v}");

    // Three sends, one per way in, are within the cap.
    let (st, v) = send(&s, &key, &["x@remote.test"], "one").await;
    assert_eq!(st, 202, "{v}");
    let r = mcp_tool(
        &s,
        &key,
        "mail_send",
        json!({"to": ["x@remote.test"], "subject": "MCP", "text": "two"}),
    )
    .await;
    assert_ne!(r["isError"], true, "{r}");
    let mut sub = submission(&s, "ops", &key).await;
    let r = submit(&mut sub, "ops@agents.test", "x@remote.test").await;
    assert!(r.starts_with("250"), "{r}");

    // The fourth is refused on every way in, naming the rule.
    let resp = s
        .http
        .post(format!("{}/v1/messages/send", s.base))
        .bearer_auth(&key)
        .json(&json!({"to": ["x@remote.test"], "subject": "Four", "text": "four"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=3600).contains(&retry), "{retry}");
    let e: Value = resp.json().await.expect("json");
    assert_eq!(e["error"]["code"], "send_limit", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_per_hour")),
        "{e}"
    );
    let r = mcp_tool(
        &s,
        &key,
        "mail_send",
        json!({"to": ["x@remote.test"], "subject": "MCP", "text": "four"}),
    )
    .await;
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["error"]["code"], "send_limit", "{r}");
    let r = submit(&mut sub, "ops@agents.test", "x@remote.test").await;
    assert!(r.starts_with("452 4.5.3 "), "{r}");
    assert!(r.contains("max_per_hour"), "{r}");
    sub.cmd("QUIT").await;

    // Refusals are audited as denials naming the rule; nothing refused was queued.
    let (st, audit) = s
        .call(
            "GET",
            "/v1/audit?action=mail.send&outcome=denied",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{audit}");
    let denied = audit["items"].as_array().expect("items");
    assert_eq!(denied.len(), 3, "{audit}");
    assert!(
        denied.iter().all(|e| e["detail"]["rule"] == "max_per_hour"),
        "{audit}"
    );
    let (_, sent) = s
        .call("GET", "/v1/messages?folder=Sent", Some(&key), None)
        .await;
    assert_eq!(sent["items"].as_array().map(Vec::len), Some(3), "{sent}");

    s.stop().await;
}

#[tokio::test]
async fn the_counts_are_in_the_store_and_a_restart_keeps_them() {
    let s = TestServer::start().await;
    let (ops, key) = s.agent("ops", &["mail:send", "mail:read"]).await;
    let ops_id = id_of(&ops);
    // A local recipient: no outbound attempt (and its DNS lookups) outlives the stop.
    s.agent("bob", &["mail:read"]).await;
    let (st, _) = put_policy(&s, &s.admin_token, &ops_id, json!({"max_per_hour": 2})).await;
    assert_eq!(st, 200);
    for text in ["one", "two"] {
        let (st, v) = send(&s, &key, &["bob@agents.test"], text).await;
        assert_eq!(st, 202, "{v}");
    }
    let (st, e) = send(&s, &key, &["bob@agents.test"], "three").await;
    assert_eq!(st, 429, "{e}");
    let s = s.restart().await;
    let (st, e) = send(&s, &key, &["bob@agents.test"], "after restart").await;
    assert_eq!(st, 429, "{e}");
    assert_eq!(e["error"]["code"], "send_limit", "{e}");
    // Raising the cap lets the agent send again at once.
    let (st, _) = put_policy(&s, &s.admin_token, &ops_id, json!({"max_per_hour": 3})).await;
    assert_eq!(st, 200);
    let (st, v) = send(&s, &key, &["bob@agents.test"], "three").await;
    assert_eq!(st, 202, "{v}");
    let (st, e) = send(&s, &key, &["bob@agents.test"], "four").await;
    assert_eq!(st, 429, "{e}");
    s.stop().await;
}

fn assert_denied(st: u16, e: &Value, rule: &str) {
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["code"], "policy_denied", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(rule)),
        "{rule}: {e}"
    );
}

#[tokio::test]
async fn domains_size_recipients_and_first_contact_are_refused_naming_the_rule() {
    let s = start().await;
    let admin = s.admin_token.clone();
    let (ops, key) = s.agent("ops", &["mail:send", "mail:read"]).await;
    let ops_id = id_of(&ops);
    let (st, v) = put_policy(
        &s,
        &admin,
        &ops_id,
        json!({
            "allow_domains": ["Remote.test", "*.partner.test"],
            "block_domains": ["bad.remote.test"],
            "max_message_bytes": 2000,
            "max_recipients_per_message": 2,
        }),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["allow_domains"], json!(["remote.test", "*.partner.test"]));

    let (st, v) = send(&s, &key, &["a@remote.test", "b@mx.partner.test"], "ok").await;
    assert_eq!(st, 202, "{v}");
    let (st, e) = send(&s, &key, &["c@bad.remote.test"], "x").await;
    assert_denied(st, &e, "block_domains");
    let (st, e) = send(&s, &key, &["d@partner.test"], "x").await;
    assert_denied(st, &e, "allow_domains");
    let (st, e) = send(&s, &key, &["e@elsewhere.test"], "x").await;
    assert_denied(st, &e, "allow_domains");
    let (st, e) = send(&s, &key, &["a@remote.test"], &"y".repeat(3000)).await;
    assert_denied(st, &e, "max_message_bytes");
    let (st, e) = send(
        &s,
        &key,
        &["a@remote.test", "b@remote.test", "c@remote.test"],
        "x",
    )
    .await;
    assert_denied(st, &e, "max_recipients_per_message");
    // Submission: 550 5.7.1 with the same reason.
    let mut sub = submission(&s, "ops", &key).await;
    let r = submit(&mut sub, "ops@agents.test", "c@bad.remote.test").await;
    assert!(r.starts_with("550 5.7.1 "), "{r}");
    assert!(r.contains("block_domains"), "{r}");
    sub.cmd("QUIT").await;

    // First contact: a@remote.test was written to before, f@remote.test never.
    let (st, v) = put_policy(&s, &admin, &ops_id, json!({"first_contact": "deny"})).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = send(&s, &key, &["A@Remote.test"], "again").await;
    assert_eq!(st, 202, "a known correspondent: {v}");
    let (st, e) = send(&s, &key, &["f@remote.test"], "hello stranger").await;
    assert_denied(st, &e, "first_contact");
    let r = mcp_tool(
        &s,
        &key,
        "mail_send",
        json!({"to": ["f@remote.test"], "subject": "MCP", "text": "x"}),
    )
    .await;
    assert_eq!(
        r["structuredContent"]["error"]["code"], "policy_denied",
        "{r}"
    );
    // `hold` waits for a human (see outbound/approvals.rs): 202, held.
    let (st, v) = put_policy(&s, &admin, &ops_id, json!({"first_contact": "hold"})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["effective"]["first_contact"], "hold", "{v}");
    let (st, v) = send(&s, &key, &["f@remote.test"], "hello stranger").await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "held", "{v}");
    // Submission: accepted (250), held, saying so.
    let mut sub = submission(&s, "ops", &key).await;
    let r = submit(&mut sub, "ops@agents.test", "g@remote.test").await;
    assert!(r.starts_with("250 2.0.0 OK held for approval"), "{r}");
    sub.cmd("QUIT").await;
    s.stop().await;
}

#[tokio::test]
async fn a_sub_agent_is_never_given_or_left_with_a_looser_policy_than_its_parent() {
    let s = start().await;
    let admin = s.admin_token.clone();
    let (lead, lead_key) = s
        .agent("lead", &["mail:send", "mail:read", "identity:sign"])
        .await;
    let lead_id = id_of(&lead);
    let (_, other_key) = s.agent("other", &["mail:send", "identity:sign"]).await;
    let (st, v) = put_policy(
        &s,
        &admin,
        &lead_id,
        json!({"max_per_hour": 5, "block_domains": ["bad.test"], "first_contact": "deny"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, kid) = s
        .call(
            "POST",
            &format!("/v1/agents/{lead_id}/subagents"),
            Some(&lead_key),
            Some(json!({"local": "helper", "scopes": ["mail:send"]})),
        )
        .await;
    assert_eq!(st, 201, "{kid}");
    let kid_id = id_of(&kid);
    let kid_key = kid["api_key"]["key"].as_str().expect("key").to_string();

    // Looser than the parent: refused to the parent and to an admin alike, and audited.
    for token in [&lead_key, &admin] {
        for p in [
            json!({"max_per_hour": 6}),
            json!({"first_contact": "allow"}),
            json!({"block_domains": []}),
        ] {
            let (st, e) = put_policy(&s, token, &kid_id, p.clone()).await;
            assert_eq!(st, 403, "{p}: {e}");
            assert!(
                e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("looser")),
                "{e}"
            );
        }
    }
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=agent.send_policy.set&outcome=denied",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(6), "{audit}");
    // Not the sub-agent itself, nor another agent.
    let (st, e) = put_policy(&s, &kid_key, &kid_id, json!({"max_per_hour": 1})).await;
    assert_eq!(st, 403, "{e}");
    let (st, e) = put_policy(&s, &other_key, &kid_id, json!({"max_per_hour": 1})).await;
    assert_eq!(st, 403, "{e}");
    let (st, e) = s
        .call(
            "GET",
            &format!("/v1/agents/{kid_id}/send-policy"),
            Some(&other_key),
            None,
        )
        .await;
    assert_eq!(st, 403, "{e}");

    // Tighter: accepted from the parent; the inherited rules are the parent's.
    let (st, v) = put_policy(&s, &lead_key, &kid_id, json!({"max_per_hour": 2})).await;
    assert_eq!(st, 200, "{v}");
    let eff = &v["effective"];
    assert_eq!(eff["max_per_hour"], 2, "{v}");
    assert_eq!(eff["first_contact"], "deny", "{v}");
    assert_eq!(eff["block_domains"], json!(["bad.test"]), "{v}");
    // The parent tightened later (PUT replaces the whole policy): the sub-agent's effective
    // policy follows at once.
    let (st, _) = put_policy(
        &s,
        &admin,
        &lead_id,
        json!({"max_per_hour": 1, "block_domains": ["bad.test"], "first_contact": "deny"}),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/agents/{kid_id}/send-policy"),
            Some(&kid_key),
            None,
        )
        .await;
    assert_eq!(st, 200, "the agent reads its own: {v}");
    assert_eq!(v["max_per_hour"], 2, "{v}");
    assert_eq!(v["effective"]["max_per_hour"], 1, "{v}");
    // And it is enforced: first contact is denied for the sub-agent as for its parent.
    let (st, e) = send(&s, &kid_key, &["new@remote.test"], "x").await;
    assert_denied(st, &e, "first_contact");
    s.stop().await;
}

#[tokio::test]
async fn malformed_send_policies_are_a_400_with_a_json_error() {
    let s = start().await;
    let admin = s.admin_token.clone();
    let (ops, key) = s.agent("ops", &["mail:send"]).await;
    let ops_id = id_of(&ops);
    for bad in [
        json!({"max_per_hours": 3}),
        json!({"max_per_hour": -1}),
        json!({"max_per_day": "ten"}),
        json!({"block_domains": ["bad.test\r\nX-Evil: 1"]}),
        json!({"allow_domains": ["exa mple.test"]}),
        json!({"first_contact": "sometimes"}),
        json!({"allow_domains": ["*"]}),
    ] {
        let (st, e) = put_policy(&s, &admin, &ops_id, bad.clone()).await;
        assert_eq!(st, 400, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "bad_request", "{bad}: {e}");
        assert!(e["error"]["message"].is_string(), "{e}");
    }
    let (st, e) = put_policy(&s, &admin, "ag_nosuch", json!({})).await;
    assert_eq!(st, 404, "{e}");
    // Nothing was stored, and the org default is readable by any authenticated caller.
    let (_, v) = s
        .call(
            "GET",
            &format!("/v1/agents/{ops_id}/send-policy"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(v["block_domains"], Value::Null, "{v}");
    let (st, d) = s
        .call("GET", "/v1/send-policy/default", Some(&key), None)
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["max_per_day"], 500, "{d}");
    assert_eq!(d["first_contact"], "allow", "{d}");
    let (st, _) = s.call("GET", "/v1/send-policy/default", None, None).await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn a_suppressed_address_is_refused_with_when_and_why_until_an_admin_removes_it() {
    let s = start().await;
    let admin = s.admin_token.clone();
    let (_, key) = s.agent("ops", &["mail:send", "mail:read"]).await;

    // Admins only; a malformed address is a 400.
    let (st, e) = s
        .call(
            "POST",
            "/v1/suppressions",
            Some(&key),
            Some(json!({"address": "gone@remote.test"})),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    for bad in ["no-at-sign", "a@b@", "x@remote.test\r\nBcc: y@z.test", ""] {
        let (st, e) = s
            .call(
                "POST",
                "/v1/suppressions",
                Some(&admin),
                Some(json!({"address": bad})),
            )
            .await;
        assert_eq!(st, 400, "{bad:?}: {e}");
        assert_eq!(e["error"]["code"], "bad_request", "{e}");
    }
    let (st, v) = s
        .call(
            "POST",
            "/v1/suppressions",
            Some(&admin),
            Some(json!({"address": "Gone@Remote.test", "reason": "mailbox closed"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["address"], "gone@remote.test", "{v}");
    assert_eq!(v["source"], "manual", "{v}");
    let (st, list) = s.call("GET", "/v1/suppressions", Some(&admin), None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    let (st, _) = s.call("GET", "/v1/suppressions", Some(&key), None).await;
    assert_eq!(st, 403);

    // Every way in refuses it, saying since when and why; other recipients are unaffected.
    let (st, e) = send(&s, &key, &["ok@remote.test", "GONE@remote.test"], "x").await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "suppressed", "{e}");
    let m = e["error"]["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("since 20") && m.contains("mailbox closed"),
        "{m}"
    );
    let r = mcp_tool(
        &s,
        &key,
        "mail_send",
        json!({"to": ["gone@remote.test"], "subject": "MCP", "text": "x"}),
    )
    .await;
    assert_eq!(r["structuredContent"]["error"]["code"], "suppressed", "{r}");
    let mut sub = submission(&s, "ops", &key).await;
    let r = submit(&mut sub, "ops@agents.test", "gone@remote.test").await;
    assert!(r.starts_with("550 5.7.1 "), "{r}");
    assert!(r.contains("suppression list"), "{r}");
    sub.cmd("QUIT").await;
    let (st, v) = send(&s, &key, &["ok@remote.test"], "fine").await;
    assert_eq!(st, 202, "{v}");

    // Removed: sendable again; removing it twice is a 404.
    let (st, _) = s
        .call(
            "DELETE",
            "/v1/suppressions/gone@remote.test",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, e) = s
        .call(
            "DELETE",
            "/v1/suppressions/gone@remote.test",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 404, "{e}");
    let (st, v) = send(&s, &key, &["gone@remote.test"], "back").await;
    assert_eq!(st, 202, "{v}");
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=suppression.&outcome=ok",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(2), "{audit}");
    s.stop().await;
}
