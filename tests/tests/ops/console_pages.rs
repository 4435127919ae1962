//! Console pages added after the first cut, over real HTTP: a thread view, attachments served
//! only as downloads (and refused past `console.max_attachment_bytes`), the audit log
//! filtered by actor, the webhooks page re-enabling a webhook through the REST service, and
//! the TOTP enrolment QR code.

use super::console::first_sign_in;
use legate_tests::{test_config, TestServer};

const ORDER: &str =
    "From: Shop <shop@remote.test>\r\nTo: buyer@agents.test\r\nSubject: Order 7\r\n\
Message-ID: <order7@remote.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nYour order is confirmed.\r\n\
--b1\r\nContent-Type: text/html; name=\"../../evil.html\"\r\n\
Content-Disposition: attachment; filename=\"../../evil.html\"\r\n\r\n\
<script>alert(1)</script>invoice\r\n--b1--\r\n";

const SHIPPED: &str = "From: Shop <shop@remote.test>\r\nTo: buyer@agents.test\r\n\
Subject: Re: Order 7\r\nMessage-ID: <order7-shipped@remote.test>\r\n\
In-Reply-To: <order7@remote.test>\r\nReferences: <order7@remote.test>\r\n\r\nShipped today.\r\n";

#[tokio::test]
async fn a_thread_and_an_attachment_that_only_downloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.console.max_attachment_bytes = 40;
    let server = TestServer::start_with(dir, cfg).await;
    let (agent, _) = server.agent("buyer", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap();
    let inbox = legate::mailbox::Folder::Inbox;
    let order = server.deliver(id, inbox, ORDER.as_bytes()).await;
    let shipped = server.deliver(id, inbox, SHIPPED.as_bytes()).await;
    assert_eq!(order.thread_id, shipped.thread_id);
    let mut b = first_sign_in(&server).await;

    let msg = b.get(&format!("/console/mail/{id}/{}", order.id)).await;
    assert_eq!(msg.status, 200, "{}", msg.body);
    let thread_href = format!("/console/mail/{id}/thread/{}", order.thread_id);
    assert!(msg.body.contains(&thread_href), "{}", msg.body);
    let dl = format!("/console/mail/{id}/{}/attachments/0", order.id);
    assert!(msg.body.contains(&dl), "{}", msg.body);

    let t = b.get(&thread_href).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert!(t.body.contains("Order 7") && t.body.contains("Shipped today."));
    assert_eq!(t.body.matches("<article").count(), 2);

    let a = b.get(&dl).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let h = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(h("content-type"), "application/octet-stream");
    assert_eq!(
        h("content-disposition"),
        "attachment; filename=\"evil.html\""
    );
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert!(h("content-security-policy").starts_with("sandbox"));
    assert!(a.body.contains("<script>alert(1)</script>invoice"));

    // Past the limit: refused, with the REST route to use instead.
    let big = "From: a@remote.test\r\nTo: buyer@agents.test\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nbig\r\n\
--b2\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"b.bin\"\r\n\r\n\
0123456789012345678901234567890123456789012345678901234567890123456789\r\n--b2--\r\n";
    let m = server.deliver(id, inbox, big.as_bytes()).await;
    let p = b
        .get(&format!("/console/mail/{id}/{}/attachments/0", m.id))
        .await;
    assert_eq!(p.status, 413, "{}", p.body);
    assert!(p.body.contains("/v1/messages/"));
    // Another agent's message is not found through this agent's path.
    let (other, _) = server.agent("other", &["mail:read"]).await;
    let other_id = other["id"].as_str().unwrap();
    let p = b
        .get(&format!(
            "/console/mail/{other_id}/{}/attachments/0",
            order.id
        ))
        .await;
    assert_eq!(p.status, 404);
}

#[tokio::test]
async fn audit_filters_by_actor_and_webhooks_are_re_enabled_as_the_human() {
    let server = TestServer::start().await;
    let (st, hook) = server
        .call(
            "POST",
            "/v1/webhooks",
            Some(&server.admin_token),
            Some(serde_json::json!({"url": "https://hooks.remote.test/in", "event_types": ["message.received"]})),
        )
        .await;
    assert_eq!(st, 201, "{hook}");
    let hid = hook["id"].as_str().unwrap();
    let mut b = first_sign_in(&server).await;
    let list = b.get("/console/webhooks").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("https://hooks.remote.test/in"));
    let page = format!("/console/webhooks/{hid}");
    let p = b.submit(&page, &format!("{page}/disable"), &[]).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let (_, v) = server
        .call(
            "GET",
            &format!("/v1/webhooks/{hid}"),
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(v["enabled"], false, "{v}");
    let shown = b.get(&page).await;
    assert!(shown.body.contains("Re-enable"), "{}", shown.body);
    assert!(shown.body.contains("Recent deliveries"));
    let p = b.submit(&page, &format!("{page}/enable"), &[]).await;
    assert_eq!(p.status, 303);
    let (_, v) = server
        .call(
            "GET",
            &format!("/v1/webhooks/{hid}"),
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(v["enabled"], true, "{v}");

    // The audit log by actor: the human's email names its id; only its entries come back.
    let (st, v) = server
        .call(
            "GET",
            "/v1/audit?actor=human:admin@agents.test&action=webhook.update",
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert!(items.iter().all(|e| e["actor"]["kind"] == "human"));
    let (_, none) = server
        .call(
            "GET",
            "/v1/audit?actor=nobody@agents.test",
            Some(&server.admin_token),
            None,
        )
        .await;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");
    let p = b
        .get("/console/audit?actor=admin%40agents.test&action=webhook.update")
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(
        p.body.matches("<code>webhook.update</code>").count(),
        2,
        "{}",
        p.body
    );
}

#[tokio::test]
async fn totp_enrolment_shows_a_qr_code() {
    let server = TestServer::start().await;
    let mut b = first_sign_in(&server).await;
    let p = b
        .submit("/console/settings", "/console/settings/totp", &[])
        .await;
    assert_eq!(p.status, 200);
    let at = p
        .body
        .find("src=\"data:image/svg+xml;base64,")
        .expect("a QR image")
        + 31;
    let b64 = p.body[at..].split('"').next().unwrap();
    let svg = data_encoding::BASE64.decode(b64.as_bytes()).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
    assert!(p
        .body
        .contains("otpauth://totp/legate%20agents.test:admin%40agents.test?secret="));
}
