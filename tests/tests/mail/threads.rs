//! Threads (issue 18 item 5): conversations listed by newest activity with participants and
//! counts, one thread read in order with extracted text, thread-level changes, paging that
//! lists each thread once, and no view into another agent's threads.

use legate::mailbox::Folder;
use legate_tests::TestServer;
use serde_json::{json, Value};

fn msg(from: &str, subject: &str, id: &str, reply_to: Option<&str>, body: &str) -> Vec<u8> {
    let refs = reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\nReferences: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: {from}\r\nTo: ops@agents.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
{refs}Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn threads_list_by_activity_read_in_order_and_change_as_a_whole() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("ops", &["mail:read", "mail:manage"]).await;
    let (_, other) = s.agent("other", &["mail:read", "mail:manage"]).await;
    let a = agent["id"].as_str().unwrap().to_string();
    let k = Some(key.as_str());
    let tick = || tokio::time::sleep(std::time::Duration::from_millis(3));

    let root = s
        .deliver(
            &a,
            Folder::Inbox,
            &msg("alice@remote.test", "Plan", "p1@r", None, "Shall we meet?"),
        )
        .await;
    tick().await;
    let lone = s
        .deliver(
            &a,
            Folder::Inbox,
            &msg("bob@remote.test", "Other", "o1@r", None, "Unrelated"),
        )
        .await;
    tick().await;
    let reply = s
        .deliver(
            &a,
            Folder::Inbox,
            &msg(
                "carol@remote.test",
                "Re: Plan",
                "p2@r",
                Some("p1@r"),
                "Yes, at noon.\r\n\r\n> Shall we meet?",
            ),
        )
        .await;
    assert_eq!(root.thread_id, reply.thread_id);
    assert_ne!(root.thread_id, lone.thread_id);

    // Newest activity first: the Plan thread (replied last), then Other.
    let (st, list) = s.call("GET", "/v1/threads", k, None).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(
        ids(&list),
        vec![root.thread_id.clone(), lone.thread_id.clone()]
    );
    let t = &list["items"][0];
    assert_eq!(t["message_count"], 2);
    assert_eq!(t["unread_count"], 2);
    assert_eq!(t["subject"], "Plan");
    assert_eq!(t["last_message"]["id"], reply.id.as_str());
    let people = t["participants"].as_array().unwrap();
    for p in ["alice@remote.test", "carol@remote.test", "ops@agents.test"] {
        assert!(people.iter().any(|x| x == p), "{p} in {t}");
    }

    // Paging lists each thread exactly once, also after new activity moved a thread.
    let (_, p1) = s.call("GET", "/v1/threads?limit=1", k, None).await;
    assert_eq!(ids(&p1), vec![root.thread_id.clone()]);
    let cursor = p1["next_cursor"].as_str().expect("a next page").to_string();
    let (_, p2) = s
        .call(
            "GET",
            &format!("/v1/threads?limit=1&cursor={cursor}"),
            k,
            None,
        )
        .await;
    assert_eq!(ids(&p2), vec![lone.thread_id.clone()]);
    assert!(p2["next_cursor"].is_null(), "{p2}");

    // One thread in order, each message in full with its extracted text.
    let (st, one) = s
        .call("GET", &format!("/v1/threads/{}", root.thread_id), k, None)
        .await;
    assert_eq!(st, 200, "{one}");
    let msgs = one["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["id"], root.id.as_str());
    assert_eq!(msgs[1]["id"], reply.id.as_str());
    assert_eq!(
        msgs[1]["extracted_text"].as_str().map(str::trim),
        Some("Yes, at noon.")
    );

    // Thread-level changes: read, labelled, archived; each message is changed.
    let (st, t) = s
        .call(
            "PATCH",
            &format!("/v1/threads/{}", root.thread_id),
            k,
            Some(json!({"unread": false, "labels": {"add": ["meeting"]}, "folder": "Archive"})),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["unread_count"], 0);
    assert_eq!(t["folders"], json!(["Archive"]));
    assert_eq!(t["labels"], json!(["meeting"]));
    let (_, archived) = s.call("GET", "/v1/threads?folder=Archive", k, None).await;
    assert_eq!(ids(&archived), vec![root.thread_id.clone()]);
    let (_, inbox) = s.call("GET", "/v1/threads?folder=INBOX", k, None).await;
    assert_eq!(ids(&inbox), vec![lone.thread_id.clone()]);
    // Trashed as a whole: gone from the listing.
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/threads/{}", root.thread_id),
            k,
            Some(json!({"folder": "Trash"})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, list) = s.call("GET", "/v1/threads", k, None).await;
    assert_eq!(ids(&list), vec![lone.thread_id.clone()]);

    // Another agent: not found, whatever the id; a bad id is not found either.
    let o = Some(other.as_str());
    for path in [
        format!("/v1/threads/{}", lone.thread_id),
        "/v1/threads/th_nope".into(),
        "/v1/threads/..%2f".into(),
    ] {
        let (st, v) = s.call("GET", &path, o, None).await;
        assert_eq!(st, 404, "{path}: {v}");
    }
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/threads/{}", lone.thread_id),
            o,
            Some(json!({"unread": false})),
        )
        .await;
    assert_eq!(st, 404);
    let (_, l) = s.call("GET", "/v1/threads", o, None).await;
    assert_eq!(ids(&l), Vec::<String>::new());
    s.stop().await;
}
