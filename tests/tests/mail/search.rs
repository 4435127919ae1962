//! Issue 23 item 4: full-text search (`GET /v1/messages?q=`) from the index, over REST.

use super::{id_of, ids, plain};
use legate::mailbox::{DeliveryMeta, Folder, StoredMessage};
use legate::store::{Store, Tree};
use legate_tests::{test_config, TestServer};
use serde_json::Value;

/// `q=` (URL-encoded) with extra parameters; the page as JSON.
async fn search(s: &TestServer, key: &str, q: &str, extra: &str) -> Value {
    let mut enc = String::new();
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/messages?q={enc}{extra}"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(st, 200, "q={q}: {v}");
    v
}

/// A delivery at a given receive time (so "newest first" has one answer).
async fn deliver_at(s: &TestServer, agent: &str, ms: i64, raw: &[u8]) -> StoredMessage {
    let meta = DeliveryMeta {
        received_at_ms: ms,
        envelope_from: "sender@remote.test".into(),
        ..Default::default()
    };
    s.services()
        .mailbox
        .deliver(agent, Folder::Inbox, raw.to_vec(), meta)
        .await
        .expect("deliver")
}

const HTML_ONLY: &[u8] = b"From: Shop <news@shop.test>\r\n\
To: agent@agents.test\r\n\
Subject: Weekly letter\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>Our <b>marmalade</b> is back.</p></body></html>\r\n";

#[tokio::test]
async fn words_accents_prefixes_html_bodies_and_only_own_mail() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("finder", &["mail:read"]).await;
    let (other, other_key) = s.agent("nosy", &["mail:read"]).await;
    let a = id_of(&agent);
    let t0 = legate::util::now_millis();
    let zurich = deliver_at(
        &s,
        &a,
        t0,
        &plain("Jörg <joerg@bank.test>", "Treffen in Zürich", "Bis Montag."),
    )
    .await;
    let html = deliver_at(&s, &a, t0 + 1, HTML_ONLY).await;
    let plainer = deliver_at(
        &s,
        &a,
        t0 + 2,
        &plain("ops@remote.test", "Status", "The zurichsee sensors report."),
    )
    .await;
    deliver_at(
        &s,
        &id_of(&other),
        t0 + 3,
        &plain("x@remote.test", "Zürich for nosy", "marmalade"),
    )
    .await;

    for (q, want) in [
        ("zurich", vec![plainer.id.clone(), zurich.id.clone()]),
        ("ZÜR", vec![plainer.id.clone(), zurich.id.clone()]),
        ("Zürich treffen", vec![zurich.id.clone()]),
        ("zurichsee", vec![plainer.id.clone()]),
        ("jorg", vec![zurich.id.clone()]),
        ("joerg@bank.test", vec![zurich.id.clone()]),
        ("bank.test", vec![zurich.id.clone()]),
        ("montag", vec![zurich.id.clone()]),
        // A word only in an HTML body (no text part).
        ("marmalade", vec![html.id.clone()]),
        ("marm", vec![html.id.clone()]),
        ("sensors rep", vec![plainer.id.clone()]),
        ("zurich marmalade", vec![]),
        ("nosy", vec![]),
    ] {
        let page = search(&s, &key, q, "").await;
        assert_eq!(ids(&page), want, "q={q}");
        assert_eq!(page["next_cursor"], Value::Null, "q={q}");
    }
    // The other agent finds only its own.
    let page = search(&s, &other_key, "zurich", "").await;
    assert_eq!(ids(&page).len(), 1);
    let page = search(&s, &other_key, "treffen", "").await;
    assert!(ids(&page).is_empty());
    // Too many words is refused, not silently cut.
    let many: Vec<String> = (0..17).map(|i| format!("w{i}x")).collect();
    let (st, e) = s
        .call(
            "GET",
            &format!("/v1/messages?q={}", many.join("+")),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(st, 422, "{e}");
    s.stop().await;
}

#[tokio::test]
async fn deleted_mail_disappears_and_new_mail_appears_in_the_next_search() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("keeper", &["mail:read", "mail:manage"]).await;
    let a = id_of(&agent);
    let k = Some(key.as_str());
    let t0 = legate::util::now_millis();
    let gone = deliver_at(
        &s,
        &a,
        t0,
        &plain("x@remote.test", "Quarterly figures", "a"),
    )
    .await;
    let kept = deliver_at(
        &s,
        &a,
        t0 + 1,
        &plain("x@remote.test", "Quarterly plan", "b"),
    )
    .await;
    assert_eq!(
        ids(&search(&s, &key, "quarterly", "").await),
        vec![kept.id.clone(), gone.id.clone()]
    );

    // To Trash: out of the default results (as the listing), still found in Trash.
    let path = format!("/v1/messages/{}", gone.id);
    let (st, _) = s.call("DELETE", &path, k, None).await;
    assert_eq!(st, 200);
    assert_eq!(
        ids(&search(&s, &key, "quarterly", "").await),
        vec![kept.id.clone()]
    );
    assert_eq!(
        ids(&search(&s, &key, "quarterly", "&folder=Trash").await),
        vec![gone.id.clone()]
    );
    // Purged: gone everywhere.
    let (st, r) = s.call("DELETE", &path, k, None).await;
    assert_eq!((st, r["deleted"].as_str()), (200, Some("purged")));
    assert!(ids(&search(&s, &key, "quarterly", "&folder=Trash").await).is_empty());
    assert!(ids(&search(&s, &key, "figures", "").await).is_empty());

    // Deliveries racing searches: every search answers, and the one after the last
    // delivery sees them all.
    let mailbox = s.services().mailbox.clone();
    let target = a.clone();
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        for i in 0..20 {
            let meta = DeliveryMeta {
                received_at_ms: t0 + 10 + i,
                ..Default::default()
            };
            let raw = plain("x@remote.test", &format!("Quarterly update {i}"), "c");
            out.push(
                mailbox
                    .deliver(&target, Folder::Inbox, raw, meta)
                    .await
                    .expect("deliver")
                    .id,
            );
        }
        out
    });
    while !writer.is_finished() {
        let page = search(&s, &key, "quarterly update", "").await;
        assert!(ids(&page).len() <= 20);
    }
    let mut new = writer.await.expect("writer");
    new.reverse();
    assert_eq!(ids(&search(&s, &key, "quarterly update", "").await), new);
    s.stop().await;
}

#[tokio::test]
async fn many_matches_come_in_complete_pages_with_a_working_cursor() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("pager", &["mail:read"]).await;
    let a = id_of(&agent);
    let t0 = legate::util::now_millis();
    let mut want = Vec::new();
    for i in 0..90i64 {
        // Matches from two senders, interleaved with mail that does not match at all.
        let from = if i % 2 == 0 {
            "billing@acme.test"
        } else {
            "x@other.test"
        };
        let m = deliver_at(
            &s,
            &a,
            t0 + 3 * i,
            &plain(from, &format!("Invoice {i}"), "due"),
        )
        .await;
        if i % 2 == 0 {
            want.push(m.id);
        }
        deliver_at(
            &s,
            &a,
            t0 + 3 * i + 1,
            &plain(from, &format!("Note {i}"), "x"),
        )
        .await;
    }
    want.reverse();
    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = search(
            &s,
            &key,
            "invoice",
            &format!("&from=acme.test&limit=10{cursor}"),
        )
        .await;
        let items = ids(&page);
        got.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), 10, "a page with a cursor is complete");
                cursor = format!("&cursor={c}");
            }
            None => break,
        }
    }
    assert_eq!(got.len(), 45);
    assert_eq!(got, want);
    s.stop().await;
}

#[tokio::test]
async fn a_schema_3_data_directory_gets_its_index_on_upgrade() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("upgraded", &["mail:read"]).await;
    let a = id_of(&agent);
    let admin = s.admin_token.clone();
    let t0 = legate::util::now_millis();
    let old = deliver_at(
        &s,
        &a,
        t0,
        &plain("x@remote.test", "Grüße aus Zürich", "alt"),
    )
    .await;
    deliver_at(&s, &a, t0 + 1, HTML_ONLY).await;
    let dir = s.stop().await;

    // Back to what schema 3 stored: no postings, no forward records.
    {
        let store = Store::open(dir.path()).expect("open");
        for tree in [Tree::SearchPostings, Tree::SearchDocs, Tree::SearchPending] {
            let keys: Vec<Vec<u8>> = store
                .scan_prefix(tree, &[])
                .map(|r| r.expect("scan").0)
                .collect();
            for k in keys {
                store.remove(tree, &k).unwrap();
            }
        }
        store
            .put(Tree::Meta, b"schema_version", &3u32.to_be_bytes())
            .unwrap();
        store.flush_blocking().unwrap();
    }
    let cfg = test_config(dir.path());
    let mut s = TestServer::start_with(dir, cfg).await;
    s.admin_token = admin;
    assert!(!s.services().store.is_empty(Tree::SearchPostings));
    assert_eq!(
        ids(&search(&s, &key, "zurich grusse", "").await),
        vec![old.id.clone()]
    );
    assert_eq!(ids(&search(&s, &key, "marmalade", "").await).len(), 1);
    s.stop().await;
}
