//! Issue 24 item 2: a first contact under `first_contact = hold` waits for a human. Approved,
//! the same signed message reaches the other server with its DKIM signatures passing, the
//! send is counted once, and the audit entry of the send names the approving human;
//! rejected or expired, nothing leaves and the agent is told.

use super::remote::{free_port, publish, server, server_with};
use super::wait_for;
use legate::mailauth::StaticDns;
use legate_testdns::TestDns;
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

async fn hold_first_contact(s: &TestServer, agent_id: &str) {
    let (st, v) = s
        .call(
            "PUT",
            &format!("/v1/agents/{agent_id}/send-policy"),
            Some(&s.admin_token),
            Some(json!({"first_contact": "hold", "max_per_hour": 2})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

async fn send(s: &TestServer, key: &str, to: &str, subject: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/messages/send",
        Some(key),
        Some(json!({"to": [to], "subject": subject, "text": "Hello there"})),
    )
    .await
}

async fn approvals(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let (st, v) = s
        .call("GET", &format!("/v1/approvals{query}"), Some(token), None)
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

fn ar_header(raw: &str) -> String {
    raw.split("\r\n")
        .skip_while(|l| !l.starts_with("Authentication-Results:"))
        .take_while(|l| l.starts_with("Authentication-Results:") || l.starts_with([' ', '\t']))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn a_held_first_contact_is_sent_unchanged_once_a_human_approves_it() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let (pa, pb) = (free_port(), free_port());
    let a = server("a.test", pa, &dns, &[("b.test", pb)]).await;
    let b = server("b.test", pb, &dns, &[("a.test", pa)]).await;
    publish(dns.records(), &a, "a.test");
    publish(dns.records(), &b, "b.test");
    let (alice, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let (_, kb) = b.agent("bob", &["mail:read"]).await;
    hold_first_contact(&a, &alice_id).await;

    // Held: 202 with status held, nothing queued, visible to the agent and to admins.
    let (st, v) = send(&a, &ka, "bob@b.test", "First contact").await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "held", "{v}");
    assert_eq!(v["approval"]["rule"], "first_contact", "{v}");
    assert_eq!(v["recipients"][0]["status"], "held", "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (_, m) = a
        .call("GET", &format!("/v1/messages/{id}"), Some(&ka), None)
        .await;
    assert_eq!(m["approval"]["status"], "pending", "{m}");
    assert_eq!(m["delivery"][0]["status"], "held", "{m}");
    let (_, q) = a
        .call("GET", "/v1/queue?all=true", Some(&a.admin_token), None)
        .await;
    assert_eq!(q["items"].as_array().map(Vec::len), Some(0), "{q}");
    let pending = approvals(&a, &a.admin_token, "").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["id"], id.as_str());
    assert_eq!(pending[0]["recipients"], json!(["bob@b.test"]));
    let mine = approvals(&a, &ka, "").await;
    assert_eq!(mine.len(), 1);
    // The MCP tool shows the agent the same.
    let r = super::mcp_tool(&a, &ka, "mail_list_approvals", json!({})).await;
    assert_eq!(r["structuredContent"]["items"][0]["id"], id.as_str(), "{r}");
    // An agent cannot approve its own send.
    let (st, e) = a
        .call(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&ka),
            None,
        )
        .await;
    assert_eq!(st, 403, "{e}");
    // The bytes that will leave, as held.
    let (_, _, held_raw) = a.get_bytes(&format!("/v1/messages/{id}/raw"), &ka).await;

    // Approved: queued, delivered, DKIM passing at the receiver.
    let (st, v) = a
        .call(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&a.admin_token),
            Some(json!({"note": "known partner"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    let got = wait_for(&b, &kb, "INBOX", 1).await;
    let rid = got[0]["id"].as_str().unwrap();
    let (_, _, raw) = b.get_bytes(&format!("/v1/messages/{rid}/raw"), &kb).await;
    let raw = String::from_utf8_lossy(&raw).to_string();
    let ar = ar_header(&raw);
    assert_eq!(ar.matches("dkim=pass").count(), 2, "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");
    // Unchanged: the held bytes are the tail of what arrived (after B's trace headers).
    let held_raw = String::from_utf8_lossy(&held_raw).to_string();
    let sigs = |m: &str| -> Vec<String> {
        m.split("\r\n")
            .filter(|l| l.starts_with("DKIM-Signature:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(sigs(&held_raw).len(), 2, "{held_raw}");
    assert_eq!(
        sigs(&raw),
        sigs(&held_raw),
        "the approved message was changed"
    );
    let body = |m: &str| {
        m.split_once("\r\n\r\n")
            .map(|(_, b)| b.trim_end().to_string())
    };
    assert_eq!(body(&raw), body(&held_raw));
    super::remote::delivery_of(&a, &ka, &id, "delivered").await;

    // Approving twice is a conflict; the send was audited with the approver in its chain.
    let (st, _) = a
        .call(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&a.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 409);
    let (_, audit) = a
        .call(
            "GET",
            "/v1/audit?action=mail.send",
            Some(&a.admin_token),
            None,
        )
        .await;
    let sends = audit["items"].as_array().unwrap();
    assert_eq!(sends.len(), 1, "{audit}");
    let chain = sends[0]["chain"].to_string();
    assert!(chain.contains("approved-by:human:"), "{chain}");
    let (_, holds) = a
        .call(
            "GET",
            "/v1/audit?action=mail.hold",
            Some(&a.admin_token),
            None,
        )
        .await;
    assert_eq!(holds["items"].as_array().map(Vec::len), Some(1), "{holds}");

    // Counted once, at release: the cap of 2 per hour leaves room for exactly one more
    // (bob is a contact now, so it is not held).
    let (st, v) = send(&a, &ka, "bob@b.test", "Second").await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["status"], "queued", "{v}");
    let (st, e) = send(&a, &ka, "bob@b.test", "Third").await;
    assert_eq!(st, 429, "{e}");
}

#[tokio::test]
async fn a_rejected_or_expired_hold_is_never_sent_and_the_agent_is_told() {
    let dns = TestDns::start(StaticDns::new()).await.unwrap();
    let sk = super::remote::sink(vec!["250 2.1.5 ok"]).await;
    let a = server_with("a.test", free_port(), &dns, &[("x.test", sk.port)], |c| {
        c.send_policy.approval_ttl_secs = 2;
        c.send_policy.max_pending_approvals = 2;
    })
    .await;
    let (alice, ka) = a.agent("alice", &["mail:send", "mail:read"]).await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    hold_first_contact(&a, &alice_id).await;

    let (st, v) = send(&a, &ka, "one@x.test", "Reject me").await;
    assert_eq!(st, 202, "{v}");
    let rejected = v["id"].as_str().unwrap().to_string();
    let (st, v) = send(&a, &ka, "two@x.test", "Let me expire").await;
    assert_eq!(st, 202, "{v}");
    let expiring = v["id"].as_str().unwrap().to_string();
    // At most two waiting.
    let (st, e) = send(&a, &ka, "three@x.test", "Too many").await;
    assert_eq!(st, 429, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("max_pending_approvals")),
        "{e}"
    );

    let (st, v) = a
        .call(
            "POST",
            &format!("/v1/approvals/{rejected}/reject"),
            Some(&a.admin_token),
            Some(json!({"note": "not this one"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "rejected");
    let (_, m) = a
        .call("GET", &format!("/v1/messages/{rejected}"), Some(&ka), None)
        .await;
    assert_eq!(m["approval"]["status"], "rejected", "{m}");
    assert_eq!(m["approval"]["note"], "not this one", "{m}");
    assert_eq!(m["delivery"][0]["status"], "rejected", "{m}");
    let (st, _) = a
        .call(
            "POST",
            &format!("/v1/approvals/{rejected}/approve"),
            Some(&a.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 409, "a rejected send cannot be approved later");

    // The other one expires on the worker's round.
    let mut status = Value::Null;
    for _ in 0..100 {
        let (_, m) = a
            .call("GET", &format!("/v1/messages/{expiring}"), Some(&ka), None)
            .await;
        status = m["approval"]["status"].clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired");
    let mine = approvals(&a, &ka, "?status=all").await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(approvals(&a, &ka, "").await.is_empty());

    // The agent was told: a message.rejected event for each, in the outbox.
    let events = a.services().store.events_after(0, 1000).unwrap();
    let told: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.kind == "message.rejected" && e.agent == alice_id)
        .collect();
    assert_eq!(told.len(), 2, "{told:?}");
    assert!(told.iter().any(|(_, e)| e.data.contains("\"expired\"")));
    // Nothing left: the sink never saw a message.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sk.got.lock().unwrap().is_empty());
    assert!(sk.froms.lock().unwrap().is_empty());
}
