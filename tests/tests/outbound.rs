//! Outbound mail end to end: the send and reply API, the queue, local delivery, DSNs,
//! submission, and two servers delivering to each other over loopback SMTP.

use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

/// Polls `GET /v1/messages?folder=` until `n` messages are there.
async fn wait_for(s: &TestServer, key: &str, folder: &str, n: usize) -> Vec<Value> {
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
    let (_, got) = s
        .call(
            "GET",
            &format!("/v1/messages/{}", inbox[0]["id"].as_str().unwrap()),
            Some(&kb),
            None,
        )
        .await;
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
        let (_, v) = s
            .call("GET", &format!("/v1/messages/{id}"), Some(&ka), None)
            .await;
        status = v["delivery"][0]["status"].clone();
        if status == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "delivered");
    let sent = wait_for(&s, &ka, "Sent", 1).await;
    assert_eq!(sent[0]["id"], id.as_str());
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
    let (_, full) = s
        .call(
            "GET",
            &format!("/v1/messages/{}", back[0]["id"].as_str().unwrap()),
            Some(&ka),
            None,
        )
        .await;
    assert!(
        full["text"].as_str().unwrap().contains("> Shall we?"),
        "{full}"
    );
    assert_eq!(full["extracted_text"], "Yes.");
}
