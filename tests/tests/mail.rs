//! Mail suite: messages stored by the mailbox service (as SMTP delivery will store them),
//! read and changed over the REST API.

use legate::mailbox::{DeliveryMeta, Folder};
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn plain(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: agent@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@remote.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

const WITH_ATTACHMENT: &[u8] = b"From: Bob Builder <bob@remote.test>\r\n\
To: agent@agents.test\r\n\
Subject: Your invoice\r\n\
Message-ID: <inv@remote.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"zz\"\r\n\
\r\n\
--zz\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
The invoice is attached.\r\n\
--zz\r\n\
Content-Type: application/pdf; name=\"../inv\\\"oice.pdf\"\r\n\
Content-Disposition: attachment; filename=\"../inv\\\"oice.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJSBpbnZvaWNlCg==\r\n\
--zz--\r\n";

fn id_of(agent: &Value) -> String {
    agent["id"].as_str().expect("agent id").to_string()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

/// Deliveries a few milliseconds apart, so "newest first" has one answer.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[tokio::test]
async fn list_get_raw_attachment() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("reader", &["mail:read", "mail:manage"]).await;
    let a = id_of(&agent);
    let k = Some(key.as_str());

    let m1 = s
        .deliver(
            &a,
            Folder::Inbox,
            &plain("Alice <alice@remote.test>", "Welcome aboard", "Hello there"),
        )
        .await;
    pause().await;
    let meta = DeliveryMeta {
        received_at_ms: legate::util::now_millis(),
        auth: Some(json!({"spf": "pass", "dkim": "pass", "dmarc": "pass"})),
        envelope_from: "bob@remote.test".into(),
        envelope_to: vec!["reader@agents.test".into()],
        ..Default::default()
    };
    let m2 = s
        .services()
        .mailbox
        .deliver(&a, Folder::Inbox, WITH_ATTACHMENT.to_vec(), meta)
        .await
        .unwrap();
    pause().await;
    let m3 = s
        .deliver(
            &a,
            Folder::Junk,
            &plain("spam@remote.test", "Cheap offer", "buy"),
        )
        .await;

    // Newest first, every folder but Trash.
    let (st, list) = s.call("GET", "/v1/messages", k, None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(
        ids(&list),
        vec![m3.id.clone(), m2.id.clone(), m1.id.clone()]
    );
    assert_eq!(list["next_cursor"], Value::Null);
    let item = &list["items"][1];
    assert_eq!(item["subject"], "Your invoice");
    assert_eq!(item["from"]["email"], "bob@remote.test");
    assert_eq!(item["unread"], true);
    assert_eq!(item["folder"], "INBOX");
    assert_eq!(item["external_content"], true);
    assert!(item.get("text").is_none(), "list items are summaries");

    // Filters.
    for (query, want) in [
        ("folder=INBOX", vec![m2.id.clone(), m1.id.clone()]),
        ("folder=junk", vec![m3.id.clone()]),
        ("from=ALICE@remote.test", vec![m1.id.clone()]),
        ("q=invoice", vec![m2.id.clone()]),
        ("q=hello", vec![m1.id.clone()]),
        (
            "unread=true&folder=INBOX",
            vec![m2.id.clone(), m1.id.clone()],
        ),
        ("unread=false", vec![]),
        ("since=2999-01-01T00:00:00Z", vec![]),
        (
            "since=1000",
            vec![m3.id.clone(), m2.id.clone(), m1.id.clone()],
        ),
    ] {
        let (st, l) = s
            .call("GET", &format!("/v1/messages?{query}"), k, None)
            .await;
        assert_eq!(st, 200, "{query}: {l}");
        assert_eq!(ids(&l), want, "{query}");
    }

    // Paging by cursor.
    let (_, p1) = s.call("GET", "/v1/messages?limit=2", k, None).await;
    assert_eq!(ids(&p1), vec![m3.id.clone(), m2.id.clone()]);
    let cursor = p1["next_cursor"].as_str().expect("cursor");
    let (_, p2) = s
        .call(
            "GET",
            &format!("/v1/messages?limit=2&cursor={cursor}"),
            k,
            None,
        )
        .await;
    assert_eq!(ids(&p2), vec![m1.id.clone()]);
    assert_eq!(p2["next_cursor"], Value::Null);

    // Bad parameters.
    let (st, e) = s.call("GET", "/v1/messages?folder=Spam", k, None).await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "invalid_request");
    let (st, e) = s.call("GET", "/v1/messages?cursor=zzz", k, None).await;
    assert_eq!(st, 400, "{e}");
    let (st, _) = s.call("GET", "/v1/messages?since=yesterday", k, None).await;
    assert_eq!(st, 400);
    let (st, _) = s.call("GET", "/v1/messages?color=red", k, None).await;
    assert_eq!(st, 400);

    // The full record.
    let (st, m) = s
        .call("GET", &format!("/v1/messages/{}", m2.id), k, None)
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["id"], m2.id.as_str());
    assert_eq!(m["uid"], 2);
    assert_eq!(m["folder"], "INBOX");
    assert_eq!(m["auth"]["dmarc"], "pass");
    assert!(m["thread_id"].as_str().unwrap().starts_with("th_"));
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("The invoice is attached."));
    assert!(m["extracted_text"].as_str().unwrap().contains("invoice"));
    assert!(m["codes"].is_array() && m["links"].is_array());
    assert!(m["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "Subject" && h["value"] == "Your invoice"));
    assert_eq!(m["external_content"], true);
    let att = &m["attachments"][0];
    assert_eq!(att["content_type"], "application/pdf");
    let aid = att["id"].as_u64().unwrap();

    // Raw bytes, exactly as stored.
    let (st, h, body) = s
        .get_bytes(&format!("/v1/messages/{}/raw", m2.id), &key)
        .await;
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "message/rfc822");
    assert_eq!(body, WITH_ATTACHMENT);

    // One attachment, decoded, with a filename that cannot escape its quotes or directory.
    let (st, h, body) = s
        .get_bytes(&format!("/v1/messages/{}/attachments/{aid}", m2.id), &key)
        .await;
    assert_eq!(st, 200);
    assert_eq!(body, b"%PDF-1.4\n% invoice\n");
    assert_eq!(h["content-type"], "application/pdf");
    let disp = h["content-disposition"].to_str().unwrap();
    assert!(disp.starts_with("attachment; filename=\""), "{disp}");
    assert!(
        !disp.contains('/') && disp.matches('"').count() == 2,
        "{disp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let (st, _, _) = s
        .get_bytes(
            &format!("/v1/messages/{}/attachments/{}", m2.id, aid + 5),
            &key,
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s.call("GET", "/v1/messages/msg_nosuchthing", k, None).await;
    assert_eq!(st, 404);

    // The documented routes are in the OpenAPI document.
    let (_, doc) = s.call("GET", "/openapi.json", None, None).await;
    for p in [
        "/v1/messages",
        "/v1/messages/wait",
        "/v1/messages/{id}",
        "/v1/messages/{id}/raw",
        "/v1/messages/{id}/attachments/{aid}",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from openapi.json");
    }
    s.stop().await;
}

#[tokio::test]
async fn patch_and_delete() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("manager", &["mail:read", "mail:manage"]).await;
    let a = id_of(&agent);
    let k = Some(key.as_str());
    let m = s
        .deliver(&a, Folder::Inbox, &plain("x@remote.test", "Keep me", "b"))
        .await;
    let path = format!("/v1/messages/{}", m.id);

    let (st, r) = s
        .call(
            "PATCH",
            &path,
            k,
            Some(json!({"flags": {"add": ["\\seen", "$Important"]}, "labels": ["Receipts"]})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["flags"], json!(["$Important", "\\Seen"]));
    assert_eq!(r["labels"], json!(["Receipts"]));
    assert_eq!(r["unread"], false);
    assert_eq!(r["uid"], m.uid);
    let (_, l) = s.call("GET", "/v1/messages?label=receipts", k, None).await;
    assert_eq!(ids(&l), vec![m.id.clone()]);
    let (_, l) = s.call("GET", "/v1/messages?unread=true", k, None).await;
    assert!(ids(&l).is_empty());

    let (st, r) = s
        .call(
            "PATCH",
            &path,
            k,
            Some(json!({"flags": {"remove": ["\\Seen"]}, "labels": {"add": ["Work"], "remove": ["Receipts"]}})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["flags"], json!(["$Important"]));
    assert_eq!(r["labels"], json!(["Work"]));

    // A move takes a new UID in the target folder.
    s.deliver(&a, Folder::Archive, &plain("y@remote.test", "Old", "b"))
        .await;
    let (st, r) = s
        .call("PATCH", &path, k, Some(json!({"folder": "Archive"})))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["folder"], "Archive");
    assert_eq!(r["uid"], 2);
    let (_, l) = s.call("GET", "/v1/messages?folder=INBOX", k, None).await;
    assert!(ids(&l).is_empty());

    for (body, code) in [
        (json!({"folder": "Nowhere"}), 422),
        (json!({"flags": {"add": ["\\Recent"]}}), 422),
        (json!({"flags": ["not ok"]}), 422),
        (json!({"colour": "red"}), 422),
    ] {
        let (st, e) = s.call("PATCH", &path, k, Some(body.clone())).await;
        assert_eq!(st, code, "{body}: {e}");
    }

    // DELETE: to Trash, then purged.
    let (st, r) = s.call("DELETE", &path, k, None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["deleted"], "trashed");
    assert_eq!(r["message"]["folder"], "Trash");
    let (_, l) = s.call("GET", "/v1/messages", k, None).await;
    assert!(
        !ids(&l).contains(&m.id),
        "Trash is not in the default listing"
    );
    let (_, l) = s.call("GET", "/v1/messages?folder=Trash", k, None).await;
    assert_eq!(ids(&l), vec![m.id.clone()]);
    let (st, r) = s.call("DELETE", &path, k, None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["deleted"], "purged");
    let (st, _) = s.call("GET", &path, k, None).await;
    assert_eq!(st, 404);
    let (st, _, _) = s.get_bytes(&format!("{path}/raw"), &key).await;
    assert_eq!(st, 404);
    let (st, _) = s.call("DELETE", &path, k, None).await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn wait_returns_on_arrival_and_204_on_timeout() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("waiter", &["mail:read"]).await;
    let a = id_of(&agent);
    let k = Some(key.as_str());

    let mailbox = s.services().mailbox.clone();
    let target = a.clone();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let meta = |ms| DeliveryMeta {
            received_at_ms: ms,
            ..Default::default()
        };
        // Not a match first: the waiter must keep waiting.
        mailbox
            .deliver(
                &target,
                Folder::Inbox,
                plain("news@remote.test", "Newsletter", "x"),
                meta(legate::util::now_millis()),
            )
            .await
            .unwrap();
        mailbox
            .deliver(
                &target,
                Folder::Inbox,
                plain(
                    "Shop <no-reply@shop.test>",
                    "Verify your email",
                    "Code: 424242",
                ),
                meta(legate::util::now_millis()),
            )
            .await
            .unwrap()
    });
    let t = Instant::now();
    let (st, m) = s
        .call(
            "GET",
            "/v1/messages/wait?from=shop.test&subject=VERIFY&timeout=30",
            k,
            None,
        )
        .await;
    let elapsed = t.elapsed();
    let sent = sender.await.unwrap();
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["id"], sent.id.as_str());
    assert_eq!(m["subject"], "Verify your email");
    assert!(m["text"].as_str().unwrap().contains("424242"));
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

    // Nothing new: 204 after the timeout.
    let t = Instant::now();
    let (st, body) = s
        .call("GET", "/v1/messages/wait?subject=never&timeout=1", k, None)
        .await;
    assert_eq!(st, 204, "{body}");
    assert!(t.elapsed() >= Duration::from_millis(900));

    // `since` also accepts what already arrived.
    let (st, m) = s
        .call(
            "GET",
            "/v1/messages/wait?subject=newsletter&since=1000&timeout=5",
            k,
            None,
        )
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["subject"], "Newsletter");

    let (st, e) = s
        .call("GET", "/v1/messages/wait?timeout=301", k, None)
        .await;
    assert_eq!(st, 422, "{e}");
    s.stop().await;
}

#[tokio::test]
async fn scopes_and_ownership() {
    let s = TestServer::start().await;
    let (owner, owner_key) = s.agent("owner", &["mail:read", "mail:manage"]).await;
    let (_, ro_key) = s.agent("readonly", &["mail:read"]).await;
    let (_, send_key) = s.agent("sender", &["mail:send"]).await;
    let m = s
        .deliver(
            &id_of(&owner),
            Folder::Inbox,
            &plain("x@remote.test", "Private", "secret"),
        )
        .await;
    let path = format!("/v1/messages/{}", m.id);

    // Without mail:read: 403 naming the scope, whatever the route.
    for p in [
        "/v1/messages".to_string(),
        "/v1/messages/wait?timeout=0".to_string(),
        path.clone(),
        format!("{path}/raw"),
    ] {
        let (st, e) = s.call("GET", &p, Some(&send_key), None).await;
        assert_eq!(st, 403, "{p}: {e}");
        assert_eq!(e["error"]["required_scope"], "mail:read", "{p}");
    }
    // Without mail:manage.
    let (st, e) = s
        .call(
            "PATCH",
            &path,
            Some(&ro_key),
            Some(json!({"labels": ["x"]})),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["required_scope"], "mail:manage");
    let (st, e) = s.call("DELETE", &path, Some(&ro_key), None).await;
    assert_eq!(st, 403);
    assert_eq!(e["error"]["required_scope"], "mail:manage");

    // Another agent's message does not exist for this agent (404, never 403).
    let (st, _) = s.call("GET", &path, Some(&ro_key), None).await;
    assert_eq!(st, 404);
    let (st, _, _) = s.get_bytes(&format!("{path}/raw"), &ro_key).await;
    assert_eq!(st, 404);
    let (_, l) = s.call("GET", "/v1/messages", Some(&ro_key), None).await;
    assert!(ids(&l).is_empty());
    // Admin tokens do not read agents' mail.
    let (st, _) = s.call("GET", &path, Some(&s.admin_token), None).await;
    assert_eq!(st, 403);
    // Unauthenticated.
    let (st, _) = s.call("GET", "/v1/messages", None, None).await;
    assert_eq!(st, 401);

    // The owner still reads it, and the denials were audited.
    let (st, _) = s.call("GET", &path, Some(&owner_key), None).await;
    assert_eq!(st, 200);
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
            .any(|e| e["action"] == "mail.update"),
        "{audit}"
    );
    s.stop().await;
}

#[tokio::test]
async fn mail_survives_restart() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("durable", &["mail:read", "mail:manage"]).await;
    let a = id_of(&agent);
    let m1 = s
        .deliver(
            &a,
            Folder::Inbox,
            &plain("x@remote.test", "Before restart", "b"),
        )
        .await;
    let before = s.services().mailbox.folders(&a).await.unwrap();
    let s = s.restart().await;
    let k = Some(key.as_str());
    let (st, m) = s
        .call("GET", &format!("/v1/messages/{}", m1.id), k, None)
        .await;
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["subject"], "Before restart");
    assert_eq!(m["uid"], m1.uid);
    let after = s.services().mailbox.folders(&a).await.unwrap();
    assert_eq!(before[0].uidvalidity, after[0].uidvalidity);
    assert_eq!(after[0].uidnext, m1.uid + 1);
    let m2 = s
        .deliver(
            &a,
            Folder::Inbox,
            &plain("x@remote.test", "After restart", "b"),
        )
        .await;
    assert_eq!(m2.uid, m1.uid + 1);
    let (_, l) = s.call("GET", "/v1/messages", k, None).await;
    assert_eq!(ids(&l), vec![m2.id.clone(), m1.id.clone()]);
    s.stop().await;
}

#[path = "mail/trust.rs"]
mod trust;

#[path = "mail/storage.rs"]
mod storage;

#[path = "mail/diskfull.rs"]
mod diskfull;
#[path = "mail/drafts.rs"]
mod drafts;
#[path = "mail/search.rs"]
mod search;
#[path = "mail/send_policy.rs"]
mod send_policy;
#[path = "mail/senders.rs"]
mod senders;
#[path = "mail/threads.rs"]
mod threads;
