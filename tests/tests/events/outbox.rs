//! The outbox: each change writes its event, in the same transaction; a refused change none.

use super::{message, server};
use legate::mailbox::Folder;
use serde_json::json;
use std::time::{Duration, Instant};

/// The kinds of the outbox's events about `agent` after `after`.
fn kinds(s: &legate_tests::TestServer, agent: &str, after: u64) -> Vec<String> {
    s.services()
        .store
        .events_after(after, 1000)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.agent == agent)
        .map(|(_, e)| e.kind)
        .collect()
}

#[tokio::test]
async fn each_change_writes_its_event_and_a_refused_one_none() {
    let s = server(|c| c.smtp.mailbox_quota_bytes = 4_000).await;
    let store = s.services().store.clone();
    let (a, key) = s
        .agent(
            "ops",
            &[
                "mail:read",
                "mail:send",
                "mail:manage",
                "vault:read",
                "vault:write",
            ],
        )
        .await;
    let (b, _) = s.agent("dev", &["mail:read"]).await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    assert_eq!(kinds(&s, aid, 0), ["agent.created"]);
    let start = store.last_event_seq().unwrap();

    // Vault: name and action, never a secret field.
    let put = json!({"kind": "login", "username": "bob", "password": "hunter2-secret"});
    assert_eq!(
        s.call("PUT", "/v1/vault/site", Some(&key), Some(put))
            .await
            .0,
        201
    );
    assert_eq!(
        s.call("GET", "/v1/vault/site", Some(&key), None).await.0,
        200
    );
    // Mail: received, then flagged.
    let m = s
        .deliver(aid, Folder::Inbox, message("hello", "x").as_bytes())
        .await;
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/messages/{}", m.id),
            Some(&key),
            Some(json!({"flags": {"add": ["\\Flagged"]}})),
        )
        .await;
    assert_eq!(st, 200);
    // Sent to a local agent: queued, then delivered (and received by the other agent).
    let (st, sent) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(&key),
            Some(json!({"to": ["dev@agents.test"], "subject": "Hi", "text": "hello"})),
        )
        .await;
    assert_eq!(st, 202, "{sent}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !kinds(&s, aid, start).contains(&"message.delivered".to_string()) {
        assert!(Instant::now() < deadline, "{:?}", kinds(&s, aid, start));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        kinds(&s, aid, start),
        [
            "vault.accessed",
            "vault.accessed",
            "message.received",
            "message.flagged",
            "message.sent",
            "message.delivered"
        ]
    );
    assert_eq!(kinds(&s, bid, start), ["message.received"]);
    let evs = store.events_after(start, 100).unwrap();
    let vault: Vec<_> = evs
        .iter()
        .filter(|(_, e)| e.kind == "vault.accessed")
        .collect();
    assert_eq!(
        vault[0].1.data_json(),
        json!({"name": "site", "action": "store"})
    );
    assert_eq!(
        vault[1].1.data_json(),
        json!({"name": "site", "action": "get"})
    );
    assert!(evs.iter().all(|(_, e)| !e.data.contains("hunter2")));

    // A delivery the quota refuses commits nothing, and so emits nothing.
    let before = store.last_event_seq().unwrap();
    let big = message("big", &"y".repeat(5_000));
    let meta = legate::mailbox::DeliveryMeta {
        received_at_ms: legate::util::now_millis(),
        ..Default::default()
    };
    let r = s
        .services()
        .mailbox
        .deliver(aid, Folder::Inbox, big.into_bytes(), meta)
        .await;
    assert!(r.is_err());
    assert_eq!(store.last_event_seq().unwrap(), before);

    // Key and agent revocation.
    let (_, keys) = s
        .call(
            "GET",
            &format!("/v1/agents/{aid}/keys"),
            Some(&s.admin_token),
            None,
        )
        .await;
    let kid = keys["items"][0]["id"].as_str().unwrap().to_string();
    s.call(
        "DELETE",
        &format!("/v1/agents/{aid}/keys/{kid}"),
        Some(&s.admin_token),
        None,
    )
    .await;
    s.call(
        "DELETE",
        &format!("/v1/agents/{aid}"),
        Some(&s.admin_token),
        None,
    )
    .await;
    let tail = kinds(&s, aid, before);
    assert_eq!(tail, ["key.revoked", "agent.revoked"]);
    s.stop().await;
}
