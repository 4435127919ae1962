//! Deliveries: signed, fast, retried, in order, surviving a restart; 410 disables.

use super::receiver::{Answer, Receiver};
use super::{message, server, verify, webhook};
use legate::mailbox::Folder;
use legate_tests::SmtpClient;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[tokio::test]
async fn an_smtp_delivery_reaches_the_webhook_signed_within_a_second() {
    let s = server(|_| {}).await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let mut r = Receiver::start().await;
    let (wh, secret) = webhook(
        &s,
        &key,
        json!({"url": r.url(), "event_types": ["message.received"]}),
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    // The secret is shown once: never again.
    let (st, got) = s
        .call("GET", &format!("/v1/webhooks/{wh}"), Some(&key), None)
        .await;
    assert_eq!(st, 200);
    assert!(got.get("secret").is_none(), "{got}");

    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO c.sender.test").await;
    let sent = Instant::now();
    let reply = c
        .send_mail(
            "alice@sender.test",
            &["ops@agents.test"],
            &message("Your code", "Your verification code is 482913."),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let hit = r.next(5).await.expect("a delivery");
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(verify(&secret, &hit), "signature: {:?}", hit.headers);
    assert!(!verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &hit));
    let v = hit.json();
    assert_eq!(v["type"], "message.received");
    assert_eq!(hit.headers["webhook-id"], v["id"].as_str().unwrap());
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(v["agent"], agent["id"]);
    assert!(v["org"].is_string(), "{v}");
    assert!(v["chain"].as_array().is_some_and(|c| !c.is_empty()), "{v}");
    // The message as GET /v1/messages/{id} shows it: extracted text and codes.
    assert_eq!(v["data"]["subject"], "Your code");
    assert_eq!(v["data"]["codes"][0]["code"], "482913", "{v}");
    assert!(v["data"]["extracted_text"]
        .as_str()
        .unwrap()
        .contains("482913"));
    let (_, m) = s
        .call(
            "GET",
            &format!("/v1/messages/{}", v["data"]["id"].as_str().unwrap()),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(m["extracted_text"], v["data"]["extracted_text"]);

    // The deliveries list shows it delivered (recorded once the worker's batch ends, just
    // after the endpoint answered).
    let mut tries = 0;
    let (st, d) = loop {
        let (st, d) = s
            .call(
                "GET",
                &format!("/v1/webhooks/{wh}/deliveries"),
                Some(&key),
                None,
            )
            .await;
        tries += 1;
        if st != 200 || !d["items"][0].is_null() || tries == 50 {
            break (st, d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["items"][0]["status"], "delivered", "{d}");
    assert_eq!(d["items"][0]["event_id"], v["id"]);

    // Rotation: both secrets sign during the overlap.
    let (st, rot) = s
        .call(
            "POST",
            &format!("/v1/webhooks/{wh}/rotate"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(st, 200, "{rot}");
    let new_secret = rot["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let (st, t) = s
        .call("POST", &format!("/v1/webhooks/{wh}/test"), Some(&key), None)
        .await;
    assert_eq!((st, t["ok"].as_bool()), (200, Some(true)), "{t}");
    let hit = r.next(5).await.expect("the test event");
    assert_eq!(hit.json()["type"], "webhook.test");
    assert!(verify(&secret, &hit) && verify(&new_secret, &hit));
    assert_eq!(hit.headers["webhook-signature"].split(' ').count(), 2);

    // Minimal summaries carry ids, not content.
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/webhooks/{wh}"),
            Some(&key),
            Some(json!({"summary": "minimal"})),
        )
        .await;
    assert_eq!(st, 200);
    let id = agent["id"].as_str().unwrap();
    s.deliver(
        id,
        Folder::Inbox,
        message("second", "code 111222").as_bytes(),
    )
    .await;
    let v = r.next(5).await.expect("second").json();
    assert!(v["data"]["message_id"].is_string(), "{v}");
    assert!(v["data"].get("extracted_text").is_none(), "{v}");
    s.stop().await;
}

#[tokio::test]
async fn a_dead_receiver_is_retried_and_served_after_it_returns_even_across_a_restart() {
    let s = server(|_| {}).await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap().to_string();
    let r = Receiver::start().await;
    let url = r.url();
    let (wh, secret) = webhook(
        &s,
        &key,
        json!({"url": url, "event_types": ["message.received"]}),
    )
    .await;
    let port = r.stop();
    // Mail delivery does not wait for the dead endpoint.
    let t = Instant::now();
    s.deliver(&id, Folder::Inbox, message("one", "first").as_bytes())
        .await;
    s.deliver(&id, Folder::Inbox, message("two", "second").as_bytes())
        .await;
    assert!(t.elapsed() < Duration::from_secs(2));
    // Retried with backoff: attempts grow, the delivery stays pending.
    let deadline = Instant::now() + Duration::from_secs(10);
    let attempts = loop {
        let (_, d) = s
            .call(
                "GET",
                &format!("/v1/webhooks/{wh}/deliveries"),
                Some(&key),
                None,
            )
            .await;
        let a = d["items"][0]["attempts"].as_u64().unwrap_or(0);
        if a >= 3 {
            assert_eq!(d["items"][0]["status"], "pending", "{d}");
            assert!(d["items"][0]["last_error"].is_string(), "{d}");
            break a;
        }
        assert!(Instant::now() < deadline, "no retries: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(attempts >= 3);
    // Across a restart, then the receiver comes back on its port.
    let s = s.restart().await;
    let mut r = Receiver::on(port).await;
    let first = r.next(10).await.expect("delivered after the restart");
    assert!(verify(&secret, &first));
    assert_eq!(first.json()["data"]["subject"], "one");
    let second = r.next(10).await.expect("and the next, in order");
    assert_eq!(second.json()["data"]["subject"], "two");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, d) = s
            .call(
                "GET",
                &format!("/v1/webhooks/{wh}/deliveries"),
                Some(&key),
                None,
            )
            .await;
        if d["items"][0]["status"] == "delivered" && d["items"][1]["status"] == "delivered" {
            assert!(d["items"][1]["attempts"].as_u64().unwrap() > 1, "{d}");
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

#[tokio::test]
async fn gone_disables_the_webhook_audited_and_patch_re_enables_it() {
    let s = server(|_| {}).await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap().to_string();
    let mut r = Receiver::start().await;
    r.set(Answer::Status(410));
    let (wh, _) = webhook(&s, &key, json!({"url": r.url()})).await;
    s.deliver(&id, Folder::Inbox, message("gone", "x").as_bytes())
        .await;
    r.next(5).await.expect("one attempt");
    let deadline = Instant::now() + Duration::from_secs(5);
    let w = loop {
        let (_, w) = s
            .call("GET", &format!("/v1/webhooks/{wh}"), Some(&key), None)
            .await;
        if w["enabled"] == false {
            break w;
        }
        assert!(Instant::now() < deadline, "{w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        w["disabled_reason"].as_str().unwrap().contains("410"),
        "{w}"
    );
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=webhook.disabled",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(
        audit["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["target"] == wh.as_str())),
        "{audit}"
    );
    // Disabled: nothing more is sent.
    s.deliver(&id, Folder::Inbox, message("quiet", "x").as_bytes())
        .await;
    assert!(r.next(1).await.is_none());
    // Re-enabled: the event that met the 410 and the one after arrive, in order.
    r.set(Answer::Status(204));
    let (st, w) = s
        .call(
            "PATCH",
            &format!("/v1/webhooks/{wh}"),
            Some(&key),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!((st, &w["enabled"]), (200, &json!(true)), "{w}");
    assert_eq!(r.next(5).await.unwrap().json()["data"]["subject"], "gone");
    assert_eq!(r.next(5).await.unwrap().json()["data"]["subject"], "quiet");
    s.stop().await;
}

#[tokio::test]
async fn failures_in_a_row_disable_the_webhook() {
    let s = server(|c| c.webhooks.max_consecutive_failures = 3).await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap().to_string();
    let mut r = Receiver::start().await;
    r.set(Answer::Status(500));
    let (wh, _) = webhook(&s, &key, json!({"url": r.url()})).await;
    s.deliver(&id, Folder::Inbox, message("fails", "x").as_bytes())
        .await;
    for _ in 0..3 {
        r.next(5).await.expect("an attempt");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, w) = s
            .call("GET", &format!("/v1/webhooks/{wh}"), Some(&key), None)
            .await;
        if w["enabled"] == false {
            assert!(
                w["disabled_reason"]
                    .as_str()
                    .unwrap()
                    .contains("3 consecutive"),
                "{w}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(r.next(1).await.is_none(), "no attempt after disabling");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_per_agent_holds_under_100_concurrent_deliveries() {
    let s = server(|_| {}).await;
    let (a, _) = s.agent("ops", &["mail:read"]).await;
    let (b, _) = s.agent("dev", &["mail:read"]).await;
    let mut r = Receiver::start().await;
    let (_, secret) = webhook(
        &s,
        &s.admin_token,
        json!({"url": r.url(), "event_types": ["message.received"], "summary": "minimal"}),
    )
    .await;
    let ids = [
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    ];
    let mb = s.services().mailbox.clone();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let mb = mb.clone();
            let agent = ids[i % 2].clone();
            tokio::spawn(async move {
                let meta = legate::mailbox::DeliveryMeta {
                    received_at_ms: legate::util::now_millis(),
                    envelope_from: "alice@sender.test".into(),
                    ..Default::default()
                };
                mb.deliver(
                    &agent,
                    Folder::Inbox,
                    message(&format!("m{i}"), "x").into_bytes(),
                    meta,
                )
                .await
                .unwrap()
                .id
            })
        })
        .collect();
    let mut stored = Vec::new();
    for t in tasks {
        stored.push(t.await.unwrap());
    }
    // Each agent's events arrive in outbox order, each exactly once.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut messages = Vec::new();
    for _ in 0..100 {
        let hit = r.next(10).await.expect("all 100 delivered");
        assert!(verify(&secret, &hit));
        let v = hit.json();
        seen.entry(v["agent"].as_str().unwrap().to_string())
            .or_default()
            .push(v["id"].as_str().unwrap().to_string());
        messages.push(v["data"]["message_id"].as_str().unwrap().to_string());
    }
    for (agent, evs) in &seen {
        assert_eq!(evs.len(), 50, "{agent}");
        assert!(evs.windows(2).all(|w| w[0] < w[1]), "{agent}: {evs:?}");
    }
    messages.sort();
    stored.sort();
    assert_eq!(messages, stored);
    s.stop().await;
}

#[tokio::test]
async fn replay_sends_retained_events_again_in_order() {
    let s = server(|_| {}).await;
    let (agent, key) = s.agent("ops", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap().to_string();
    let mut r = Receiver::start().await;
    let (wh, secret) = webhook(
        &s,
        &key,
        json!({"url": r.url(), "event_types": ["message.received"]}),
    )
    .await;
    let since = legate::util::now_millis();
    for i in 0..3 {
        s.deliver(
            &id,
            Folder::Inbox,
            message(&format!("r{i}"), "x").as_bytes(),
        )
        .await;
    }
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(r.next(5).await.expect("delivered").headers["webhook-id"].clone());
    }
    assert!(r.next(1).await.is_none());
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/webhooks/{wh}/replay"),
            Some(&key),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["from_event"], first[0].as_str());
    for want in &first {
        let hit = r.next(5).await.expect("replayed");
        assert!(verify(&secret, &hit));
        assert_eq!(&hit.headers["webhook-id"], want, "same ids, same order");
    }
    assert!(r.next(1).await.is_none(), "each once");
    // An RFC 3339 time works too; a bad one is refused.
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/webhooks/{wh}/replay"),
            Some(&key),
            Some(json!({"since": "yesterday"})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/webhooks/{wh}/replay"),
            Some(&key),
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(st, 202);
    s.stop().await;
}
