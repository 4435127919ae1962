//! Drafts and scheduled sending (issue 18 item 6): drafts live in the Drafts folder (REST and
//! IMAP), change in place, send through the same door as `send`, fire at `send_at` (not
//! before, also after a restart), never send once cancelled, and never outlive the key that
//! scheduled them.

use legate_tests::imap::ImapClient;
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn start() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = legate_tests::test_config(dir.path());
    cfg.listen.imap = "127.0.0.1:0".into();
    cfg.imap.danger_allow_plaintext_login = true;
    TestServer::start_with(dir, cfg).await
}

fn subjects(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn inbox(s: &TestServer, key: &str) -> Vec<String> {
    subjects(
        &s.call("GET", "/v1/messages?folder=INBOX", Some(key), None)
            .await
            .1,
    )
}

/// Waits up to `within` for `subject` in the peer's inbox; returns when it arrived.
async fn arrival(s: &TestServer, key: &str, subject: &str, within: Duration) -> Option<Instant> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if inbox(s, key).await.iter().any(|x| x == subject) {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn at(secs_from_now: u64) -> String {
    (legate::util::now_unix() as u64 + secs_from_now).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_are_kept_changed_sent_and_scheduled() {
    let s = start().await;
    let (_, key) = s
        .agent("writer", &["mail:read", "mail:send", "mail:manage"])
        .await;
    let (_, peer) = s.agent("peer", &["mail:read"]).await;
    let k = Some(key.as_str());

    // A draft: in the Drafts folder over REST and IMAP.
    let (st, d) = s
        .call(
            "POST",
            "/v1/drafts",
            k,
            Some(json!({"to": ["peer@agents.test"], "subject": "First", "text": "hi"})),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["status"], "draft");
    let id = d["id"].as_str().unwrap().to_string();
    let (_, drafts) = s.call("GET", "/v1/messages?folder=Drafts", k, None).await;
    assert_eq!(subjects(&drafts), vec!["First"]);
    let mut c = ImapClient::connect(s.imap_addr()).await.0;
    assert!(c.cmd(&format!("LOGIN writer@agents.test {key}")).await.ok());
    let sel = c.cmd("SELECT Drafts").await;
    assert!(sel.all().contains("* 1 EXISTS"), "{sel:?}");
    drop(c);

    // Changed in place: one copy, the new subject; bad input is a 422 with a JSON body.
    let (st, d2) = s
        .call(
            "PATCH",
            &format!("/v1/drafts/{id}"),
            k,
            Some(json!({"subject": "Second"})),
        )
        .await;
    assert_eq!(st, 200, "{d2}");
    assert_ne!(d2["message_id"], d["message_id"]);
    let (_, drafts) = s.call("GET", "/v1/messages?folder=Drafts", k, None).await;
    assert_eq!(subjects(&drafts), vec!["Second"]);
    let (st, v) = s
        .call(
            "PATCH",
            &format!("/v1/drafts/{id}"),
            k,
            Some(json!({"subject": "a\r\nBcc: x@y.z"})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = s
        .call(
            "PATCH",
            &format!("/v1/drafts/{id}"),
            k,
            Some(json!({"send_at": "soon"})),
        )
        .await;
    assert_eq!(st, 422, "{v}");

    // Sent now: delivered, and the draft and its copy are gone.
    let (st, sent) = s
        .call("POST", &format!("/v1/drafts/{id}/send"), k, None)
        .await;
    assert_eq!(st, 202, "{sent}");
    assert!(arrival(&s, &peer, "Second", Duration::from_secs(10))
        .await
        .is_some());
    assert_eq!(
        s.call("GET", &format!("/v1/drafts/{id}"), k, None).await.0,
        404
    );
    let (_, drafts) = s.call("GET", "/v1/messages?folder=Drafts", k, None).await;
    assert_eq!(subjects(&drafts), Vec::<String>::new());

    // Scheduled: not before its time, then within a second of it.
    let send_at = at(3);
    let due = std::time::UNIX_EPOCH + Duration::from_secs(send_at.parse().unwrap());
    let (st, d) = s
        .call(
            "POST",
            "/v1/drafts",
            k,
            Some(json!({"to": "peer@agents.test", "subject": "Timed", "text": "t", "send_at": send_at})),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["status"], "scheduled");
    // A cancelled one scheduled at the same time never goes.
    let (_, c) = s
        .call(
            "POST",
            "/v1/drafts",
            k,
            Some(json!({"to": "peer@agents.test", "subject": "Cancelled", "text": "c", "send_at": send_at})),
        )
        .await;
    let cid = c["id"].as_str().unwrap();
    assert_eq!(
        s.call("DELETE", &format!("/v1/drafts/{cid}"), k, None)
            .await
            .0,
        204
    );
    let got = arrival(&s, &peer, "Timed", Duration::from_secs(10)).await;
    let (_, all) = s.call("GET", "/v1/drafts", k, None).await;
    let got = got.unwrap_or_else(|| panic!("not sent: {all}"));
    let now = std::time::SystemTime::now();
    assert!(now >= due, "sent before its time");
    assert!(
        now.duration_since(due).unwrap() <= Duration::from_millis(1500),
        "sent {:?} late",
        now.duration_since(due).unwrap()
    );
    let _ = got;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!inbox(&s, &peer).await.iter().any(|x| x == "Cancelled"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_drafts_survive_a_restart_and_die_with_their_key() {
    let s = start().await;
    let (agent, key) = s.agent("writer", &["mail:read", "mail:send"]).await;
    let (_, peer) = s.agent("peer", &["mail:read"]).await;
    let aid = agent["id"].as_str().unwrap().to_string();
    // A second key schedules one draft, then is revoked before it fires.
    let (st, k2) = s
        .call(
            "POST",
            &format!("/v1/agents/{aid}/keys"),
            Some(&s.admin_token),
            Some(json!({"name": "k2", "scopes": ["mail:read", "mail:send"]})),
        )
        .await;
    assert_eq!(st, 201, "{k2}");
    let k2_key = k2["key"].as_str().unwrap().to_string();
    let k2_id = k2["id"].as_str().unwrap().to_string();
    let (_, revoked) = s
        .call(
            "POST",
            "/v1/drafts",
            Some(&k2_key),
            Some(json!({"to": "peer@agents.test", "subject": "Orphan", "text": "o", "send_at": at(2)})),
        )
        .await;
    let rid = revoked["id"].as_str().unwrap().to_string();
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{aid}/keys/{k2_id}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(
            "POST",
            "/v1/drafts",
            Some(&key),
            Some(json!({"to": "peer@agents.test", "subject": "Durable", "text": "d", "send_at": at(3)})),
        )
        .await;
    assert_eq!(st, 201);
    let s = s.restart().await;
    assert!(arrival(&s, &peer, "Durable", Duration::from_secs(10))
        .await
        .is_some());
    assert!(!inbox(&s, &peer).await.iter().any(|x| x == "Orphan"));
    // The orphan stays a draft, unscheduled, saying why.
    let (st, d) = s
        .call("GET", &format!("/v1/drafts/{rid}"), Some(&key), None)
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "draft", "{d}");
    assert!(
        d["last_error"].as_str().unwrap_or("").contains("revoked"),
        "{d}"
    );
    s.stop().await;
}

/// Two sends of one draft at once: one goes, the other is a 409; a draft being sent cannot be
/// edited or deleted under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_sent_once() {
    let s = start().await;
    let (_, key) = s.agent("writer", &["mail:read", "mail:send"]).await;
    let (_, peer) = s.agent("peer", &["mail:read"]).await;
    let k = Some(key.as_str());
    let (_, d) = s
        .call(
            "POST",
            "/v1/drafts",
            k,
            Some(json!({"to": "peer@agents.test", "subject": "Once", "text": "x"})),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_string();
    let path = format!("/v1/drafts/{id}/send");
    let (a, b) = tokio::join!(
        s.call("POST", &path, k, None),
        s.call("POST", &path, k, None)
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert!(
        codes == [202, 404] || codes == [202, 409],
        "one send, one refusal: {a:?} {b:?}"
    );
    assert!(arrival(&s, &peer, "Once", Duration::from_secs(10))
        .await
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = inbox(&s, &peer)
        .await
        .iter()
        .filter(|x| *x == "Once")
        .count();
    assert_eq!(n, 1);
    s.stop().await;
}
