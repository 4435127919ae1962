//! The SSRF guard and who may do what with webhooks.

use super::receiver::{Answer, Receiver};
use super::{message, server, webhook};
use legate::mailbox::Folder;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn loopback_is_refused_without_an_allow_entry_and_redirects_are_not_followed() {
    // No allow_private entry: 127.0.0.1 is refused, by literal and by name.
    let s = server(|c| c.webhooks.allow_private.clear()).await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let mut r = Receiver::start().await;
    for url in [r.url(), format!("http://localhost:{}/hook", r.port)] {
        let (wh, _) = webhook(&s, &key, json!({"url": url})).await;
        let (st, t) = s
            .call("POST", &format!("/v1/webhooks/{wh}/test"), Some(&key), None)
            .await;
        assert_eq!(st, 200);
        assert_eq!(t["ok"], false, "{t}");
        assert!(t["error"].as_str().unwrap().contains("loopback"), "{t}");
        s.call("DELETE", &format!("/v1/webhooks/{wh}"), Some(&key), None)
            .await;
    }
    // An event is retried, never sent there.
    let (wh, _) = webhook(&s, &key, json!({"url": r.url()})).await;
    s.deliver(
        agent["id"].as_str().unwrap(),
        Folder::Inbox,
        message("x", "y").as_bytes(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, d) = s
        .call(
            "GET",
            &format!("/v1/webhooks/{wh}/deliveries"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(d["items"][0]["status"], "pending", "{d}");
    assert!(
        d["items"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("loopback"),
        "{d}"
    );
    assert!(r.next(1).await.is_none(), "the guard let a request through");
    // https:// only unless danger_allow_http.
    s.stop().await;
    let s = server(|c| c.webhooks.danger_allow_http = false).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key),
            Some(json!({"url": r.url()})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("https"),
        "{v}"
    );
    s.stop().await;

    // A redirect is an answer, not an instruction.
    let s = server(|_| {}).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let mut target = Receiver::start().await;
    r.set(Answer::Redirect(target.url()));
    let (wh, _) = webhook(&s, &key, json!({"url": r.url()})).await;
    let (_, t) = s
        .call("POST", &format!("/v1/webhooks/{wh}/test"), Some(&key), None)
        .await;
    assert_eq!(t["ok"], false, "{t}");
    assert_eq!(t["status"], 302, "{t}");
    assert!(r.next(2).await.is_some());
    assert!(target.next(1).await.is_none(), "the redirect was followed");
    s.stop().await;
}

#[tokio::test]
async fn an_agent_acts_on_its_own_webhooks_only() {
    let s = server(|_| {}).await;
    let (a, key_a) = s.agent("ops", &["mail:read"]).await;
    let (b, key_b) = s.agent("dev", &["mail:read"]).await;
    let (_, key_c) = s.agent("vaulty", &["vault:read"]).await;
    let r = Receiver::start().await;
    // Not for another agent.
    let (st, v) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key_a),
            Some(json!({"url": r.url(), "agent": b["id"]})),
        )
        .await;
    assert_eq!(st, 403, "{v}");
    // Message events need mail:read; other types do not.
    let (st, v) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key_c),
            Some(json!({"url": r.url(), "event_types": ["message.received"]})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["required_scope"].as_str()),
        (403, Some("mail:read")),
        "{v}"
    );
    let (st, _) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key_c),
            Some(json!({"url": r.url(), "event_types": ["vault.accessed"]})),
        )
        .await;
    assert_eq!(st, 201);
    // Another agent's webhook does not exist for b: read, deliveries, change, delete, test.
    let (wh, _) = webhook(&s, &key_a, json!({"url": r.url()})).await;
    for (m, p) in [
        ("GET", format!("/v1/webhooks/{wh}")),
        ("GET", format!("/v1/webhooks/{wh}/deliveries")),
        ("PATCH", format!("/v1/webhooks/{wh}")),
        ("DELETE", format!("/v1/webhooks/{wh}")),
        ("POST", format!("/v1/webhooks/{wh}/test")),
        ("POST", format!("/v1/webhooks/{wh}/rotate")),
    ] {
        let body = (m == "PATCH").then(|| json!({"enabled": false}));
        let (st, v) = s.call(m, &p, Some(&key_b), body).await;
        assert_eq!(st, 404, "{m} {p}: {v}");
    }
    let (_, list) = s.call("GET", "/v1/webhooks", Some(&key_b), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let (_, list) = s.call("GET", "/v1/webhooks", Some(&key_a), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // The refusals are audited.
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?outcome=denied",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook.deliveries"),
        "{audit}"
    );
    // An admin may register one for any agent, and sees them all.
    let (st, v) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&s.admin_token),
            Some(json!({"url": r.url(), "agent": a["id"]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["agent"], a["id"]);
    let (_, list) = s
        .call("GET", "/v1/webhooks", Some(&s.admin_token), None)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3, "{list}");
    // Unknown event types are refused.
    let (st, _) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key_a),
            Some(json!({"url": r.url(), "event_types": ["message.nope"]})),
        )
        .await;
    assert_eq!(st, 422);
    s.stop().await;
}

#[tokio::test]
async fn webhooks_per_owner_are_limited() {
    let s = server(|c| c.webhooks.max_per_owner = 1).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (_, other) = s.agent("dev", &["mail:read"]).await;
    let r = Receiver::start().await;
    webhook(&s, &key, json!({"url": r.url()})).await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/webhooks",
            Some(&key),
            Some(json!({"url": r.url()})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("limit_reached")),
        "{v}"
    );
    webhook(&s, &other, json!({"url": r.url()})).await;
    s.stop().await;
}
