//! Revocation reaches an open MCP session (issue 15, item 3): a client that connected with a
//! key keeps sending requests on its session; once the key, the agent or a scope is withdrawn
//! over REST, the very next request is judged by what holds now — including a
//! `mail_wait_for_message` call that was already waiting when the revocation happened.

use super::Mcp;
use legate::mailbox::Folder;
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn code_mail() -> Vec<u8> {
    b"From: Shop <noreply@shop.test>\r\nTo: ops@agents.test\r\nSubject: Your code\r\n\
Message-ID: <code@shop.test>\r\n\r\nYour code is 135791.\r\n"
        .to_vec()
}

#[tokio::test]
async fn key_scope_and_agent_revocation_reach_an_open_session() {
    let s = TestServer::start().await;
    let (agent, first_key) = s
        .agent("ops", &["mail:read", "identity:sign", "identity:verify"])
        .await;
    let id = agent["id"].as_str().expect("id").to_string();
    let admin = Some(s.admin_token.as_str());
    let (st, k) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/keys"),
            admin,
            Some(json!({"name": "session"})),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    let (key, key_id) = (
        k["key"].as_str().expect("key"),
        k["id"].as_str().expect("id"),
    );

    let mut c = Mcp::connect(&s, key).await;
    assert!(c.tool_names().await.contains(&"identity_sign".to_string()));
    c.ok("identity_sign", json!({"data_b64": "aGk="})).await;

    // identity:sign withdrawn from the agent mid-session: gone from the list, refused by name.
    let (st, v) = s
        .call(
            "PATCH",
            &format!("/v1/agents/{id}"),
            admin,
            Some(json!({"scopes": ["mail:read", "identity:verify"]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let names = c.tool_names().await;
    assert!(!names.contains(&"identity_sign".to_string()), "{names:?}");
    assert!(!names.contains(&"identity_token".to_string()), "{names:?}");
    assert!(names.contains(&"identity_verify".to_string()), "{names:?}");
    let (err, v, whole) = c.call("identity_sign", json!({"data_b64": "aGk="})).await;
    assert!(err, "{whole}");
    assert_eq!(v["error"]["required_scope"], "identity:sign", "{v}");

    // The session's key revoked: its next request of any kind is refused.
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}/keys/{key_id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    for (n, (method, params)) in [
        (
            "tools/call",
            json!({"name": "identity_whoami", "arguments": {}}),
        ),
        ("tools/list", json!({})),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, v) = c.post(rpc(100 + n as u64, method, params), None).await;
        assert_eq!(st, 401, "{method}: {v}");
        assert_eq!(v["error"]["code"], "key_revoked", "{method}: {v}");
    }

    // The agent's other key, in a session of its own, is waiting for a code when the agent
    // is revoked; the code then arrives. The wait must not hand it over.
    let mut w = Mcp::connect(&s, &first_key).await;
    let waiting = w.call(
        "mail_wait_for_message",
        json!({"subject": "your code", "timeout": 30}),
    );
    let revoke = async {
        // Give the call time to start waiting (it may only be later, never earlier).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (st, v) = s
            .call("DELETE", &format!("/v1/agents/{id}"), admin, None)
            .await;
        assert_eq!(st, 200, "{v}");
        s.deliver(&id, Folder::Inbox, &code_mail()).await;
    };
    let ((err, v, whole), ()) = tokio::join!(waiting, revoke);
    assert!(err, "a revoked agent's wait returned mail: {whole}");
    assert_eq!(v["error"]["code"], "agent_revoked", "{v}");
    assert!(!whole.to_string().contains("135791"), "{whole}");
    let (st, v) = w.post(rpc(200, "tools/list", json!({})), None).await;
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["error"]["code"], "agent_revoked", "{v}");
    s.stop().await;
}

/// The reading filters of issue 15, item 1, through the tools: `from` is the sender's address
/// or domain (never the display name) and `authenticated` selects DMARC-aligned mail.
#[tokio::test]
async fn tools_filter_by_sender_address_and_authentication() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let id = agent["id"].as_str().expect("id").to_string();
    let put = |from: &'static str, subject: &'static str, dmarc: Option<&'static str>| {
        let (s, id) = (&s, id.clone());
        async move {
            let raw =
                format!("From: {from}\r\nTo: ops@agents.test\r\nSubject: {subject}\r\n\r\nx\r\n");
            let meta = legate::mailbox::DeliveryMeta {
                received_at_ms: legate::util::now_millis(),
                auth: dmarc.map(|d| json!({"dmarc": {"result": "pass", "from_domain": d}})),
                ..Default::default()
            };
            s.services()
                .mailbox
                .deliver(&id, Folder::Inbox, raw.into_bytes(), meta)
                .await
                .expect("deliver");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    put("\"bank.test\" <bank.test@attacker.test>", "spoofed", None).await;
    put("Bank <alerts@bank.test>", "genuine", Some("bank.test")).await;
    put(
        "Bank <alerts@bank.test>",
        "unaligned",
        Some("attacker.test"),
    )
    .await;

    let mut c = Mcp::connect(&s, &key).await;
    let subjects = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["subject"].as_str().expect("subject").to_string())
            .collect()
    };
    let v = c
        .ok("mail_list_messages", json!({"from": "bank.test"}))
        .await;
    assert_eq!(subjects(&v), ["unaligned", "genuine"]);
    let v = c
        .ok(
            "mail_list_messages",
            json!({"from": "bank.test", "authenticated": true}),
        )
        .await;
    assert_eq!(subjects(&v), ["genuine"]);
    assert_eq!(v["items"][0]["auth"]["sender_authenticated"], true);
    assert_eq!(v["items"][0]["auth"]["from_domain"], "bank.test");
    let (err, v, _) = c
        .call("mail_list_messages", json!({"from": "Bank of Test"}))
        .await;
    assert!(err);
    assert_eq!(v["error"]["code"], "invalid_request", "{v}");
    let m = c
        .ok(
            "mail_wait_for_message",
            json!({"from": "bank.test", "authenticated": true, "since": "1000", "timeout": 5}),
        )
        .await;
    assert_eq!(m["subject"], "genuine");
    assert_eq!(m["auth"]["sender_authenticated"], true);
    s.stop().await;
}

/// Item 3 in one test: a single key has an authenticated SMTP submission session, an MCP
/// session and a REST long-poll open at once; one revocation is seen by all three on their
/// very next step.
#[tokio::test]
async fn one_revocation_reaches_every_open_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.submissions = "127.0.0.1:0".into();
    let s = TestServer::start_with(dir, cfg).await;
    let (agent, key) = s.agent("all", &["mail:read", "mail:send"]).await;
    let (id, key_id) = (
        agent["id"].as_str().expect("id").to_string(),
        agent["api_key"]["id"].as_str().expect("key id").to_string(),
    );
    // SMTP submission, logged in.
    let tls = legate_tests::tls_connector(&s.data_dir());
    let (mut smtp, _) =
        legate_tests::SmtpClient::connect_tls(s.submissions_addr(), &tls, "mx.agents.test").await;
    smtp.cmd("EHLO client.test").await;
    let plain = data_encoding::BASE64.encode(format!("\0all@agents.test\0{key}").as_bytes());
    assert!(smtp
        .cmd(&format!("AUTH PLAIN {plain}"))
        .await
        .starts_with("235"));
    // MCP, initialised and used.
    let mut mcp = Mcp::connect(&s, &key).await;
    mcp.ok("identity_whoami", json!({})).await;
    // REST, waiting.
    let waiting = s.call(
        "GET",
        "/v1/messages/wait?subject=code&timeout=30",
        Some(&key),
        None,
    );
    let revoke = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let path = format!("/v1/agents/{id}/keys/{key_id}");
        let (st, v) = s.call("DELETE", &path, Some(&s.admin_token), None).await;
        assert_eq!(st, 200, "{v}");
        s.deliver(&id, Folder::Inbox, &code_mail()).await;
    };
    let ((st, v), ()) = tokio::join!(waiting, revoke);
    assert_eq!(st, 401, "REST wait: {v}");
    assert_eq!(v["error"]["code"], "key_revoked", "{v}");
    let (st, v) = mcp
        .post(
            rpc(
                9,
                "tools/call",
                json!({"name": "identity_whoami", "arguments": {}}),
            ),
            None,
        )
        .await;
    assert_eq!(st, 401, "MCP: {v}");
    assert_eq!(v["error"]["code"], "key_revoked", "{v}");
    let r = smtp.cmd("MAIL FROM:<all@agents.test>").await;
    assert!(r.starts_with("535 5.7.8"), "SMTP: {r}");
    assert_eq!(smtp.read_reply().await, "", "the SMTP session ended");
    s.stop().await;
}
