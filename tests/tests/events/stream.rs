//! The live stream: SSE resumes with Last-Event-ID (every event exactly once), WebSocket
//! carries the same events, and an agent sees only itself and its sub-agents.

use super::{message, server};
use legate::mailbox::Folder;
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

/// An open SSE response and what has been read of it.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(s: &TestServer, key: &str, last: Option<&str>, query: &str) -> Sse {
        let mut req = s
            .http
            .get(format!("{}/v1/events{query}", s.base))
            .bearer_auth(key);
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (id, type, data), skipping heartbeats; `None` after `secs` of silence.
    async fn next(&mut self, secs: u64) -> Option<(String, String, Value)> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if id.is_empty() {
                    continue; // a heartbeat comment
                }
                return Some((id, kind, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(secs), self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn sse_resumes_exactly_once_and_an_agent_sees_only_itself_and_its_sub_agents() {
    let s = server(|_| {}).await;
    let (p, pkey) = s
        .agent("parent", &["mail:read", "identity:sign", "identity:verify"])
        .await;
    let (o, okey) = s.agent("other", &["mail:read"]).await;
    let pid = p["id"].as_str().unwrap().to_string();
    let oid = o["id"].as_str().unwrap().to_string();
    let (st, sub) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&pkey),
            Some(json!({"local": "helper", "scopes": ["identity:verify"]})),
        )
        .await;
    assert_eq!(st, 201, "{sub}");
    let sid = sub["id"].as_str().unwrap().to_string();

    let mut first = Sse::open(&s, &pkey, None, "").await;
    let mut others = Sse::open(&s, &okey, None, "?types=message.received").await;
    let mut want = Vec::new();
    for i in 0..3 {
        want.push(
            s.deliver(
                &pid,
                Folder::Inbox,
                message(&format!("p{i}"), "x").as_bytes(),
            )
            .await
            .id,
        );
        want.push(
            s.deliver(
                &sid,
                Folder::Inbox,
                message(&format!("s{i}"), "x").as_bytes(),
            )
            .await
            .id,
        );
        s.deliver(
            &oid,
            Folder::Inbox,
            message(&format!("o{i}"), "x").as_bytes(),
        )
        .await;
    }
    // The parent reads three, then disconnects.
    let mut seen = Vec::new();
    let mut last = String::new();
    for _ in 0..3 {
        let (id, kind, v) = first.next(5).await.expect("an event");
        assert_eq!(kind, "message.received");
        assert_eq!(v["id"], id.as_str());
        assert!(
            [&pid, &sid].contains(&&v["agent"].as_str().unwrap().to_string()),
            "{v}"
        );
        seen.push(v["data"]["id"].as_str().unwrap().to_string());
        last = id;
    }
    drop(first);
    // Meanwhile more happens; resuming from the last id gets the rest, once each, in order.
    for i in 3..5 {
        want.push(
            s.deliver(
                &pid,
                Folder::Inbox,
                message(&format!("p{i}"), "x").as_bytes(),
            )
            .await
            .id,
        );
    }
    let mut again = Sse::open(&s, &pkey, Some(&last), "").await;
    let mut prev = last.clone();
    while seen.len() < want.len() {
        let (id, _, v) = again.next(5).await.expect("the rest");
        assert!(id > prev, "ids ascend: {prev} then {id}");
        prev = id;
        seen.push(v["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, want, "every event exactly once, in order");
    assert!(again.next(1).await.is_none(), "nothing more: no duplicate");

    // The other agent saw only its own mail.
    for i in 0..3 {
        let (_, _, v) = others.next(5).await.expect("other's own mail");
        assert_eq!(v["agent"], oid.as_str());
        assert_eq!(v["data"]["subject"], format!("o{i}"));
    }
    assert!(others.next(1).await.is_none());
    // The sub-agent (no mail:read) sees no message events, even its own.
    let skey = sub["api_key"]["key"].as_str().unwrap();
    let mut subs = Sse::open(&s, skey, None, "").await;
    s.deliver(&sid, Folder::Inbox, message("hidden", "x").as_bytes())
        .await;
    assert!(subs.next(1).await.is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_sub_agent_created_while_a_stream_is_open_joins_it() {
    let s = server(|_| {}).await;
    let (p, pkey) = s
        .agent("lead", &["mail:read", "identity:sign", "identity:verify"])
        .await;
    let pid = p["id"].as_str().unwrap().to_string();
    let mut stream = Sse::open(&s, &pkey, None, "").await;
    // The stream has read its family (the caller alone) with this first event.
    let before = s
        .deliver(&pid, Folder::Inbox, message("before", "x").as_bytes())
        .await
        .id;
    let (_, _, v) = stream.next(5).await.expect("the caller's own mail");
    assert_eq!(v["data"]["id"], before.as_str());

    let (st, sub) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&pkey),
            Some(json!({"local": "late", "scopes": ["identity:verify"]})),
        )
        .await;
    assert_eq!(st, 201, "{sub}");
    let sid = sub["id"].as_str().unwrap().to_string();
    let (_, kind, v) = stream.next(5).await.expect("the new sub-agent's creation");
    assert_eq!(kind, "agent.created");
    assert_eq!(v["agent"], sid.as_str());
    let late = s
        .deliver(&sid, Folder::Inbox, message("late", "x").as_bytes())
        .await
        .id;
    let (_, kind, v) = stream.next(5).await.expect("the new sub-agent's mail");
    assert_eq!(kind, "message.received");
    assert_eq!(v["data"]["id"], late.as_str());
    s.stop().await;
}

#[tokio::test]
async fn a_websocket_gets_the_same_events_and_a_revoked_key_ends_the_stream() {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let s = server(|_| {}).await;
    let (a, key) = s.agent("ops", &["mail:read"]).await;
    let id = a["id"].as_str().unwrap().to_string();
    let mut sse = Sse::open(&s, &key, None, "").await;
    let mut req = format!("{}/v1/events/ws", s.base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    let m = s
        .deliver(
            &id,
            Folder::Inbox,
            message("both", "code 123456").as_bytes(),
        )
        .await;
    let (sid, _, sv) = sse.next(5).await.unwrap();
    let wv = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), futures_next(&mut ws))
            .await
            .expect("a message")
            .expect("open");
        if let Message::Text(t) = msg {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(wv["id"], sid.as_str());
    assert_eq!(wv, sv, "the same event on both");
    assert_eq!(wv["data"]["id"], m.id.as_str());
    // Without a key: no upgrade.
    let r = tokio_tungstenite::connect_async(format!(
        "{}/v1/events/ws",
        s.base.replace("http://", "ws://")
    ))
    .await;
    assert!(r.is_err());
    // Revoking the key ends both streams at their next look.
    let (_, keys) = s
        .call(
            "GET",
            &format!("/v1/agents/{id}/keys"),
            Some(&s.admin_token),
            None,
        )
        .await;
    let kid = keys["items"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}/keys/{kid}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(st == 200 || st == 204, "{st}");
    s.deliver(&id, Folder::Inbox, message("after", "x").as_bytes())
        .await;
    assert!(sse.next(3).await.is_none(), "the SSE stream ended");
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match futures_next(&mut ws).await {
                None | Some(Message::Close(_)) => return true,
                Some(Message::Text(t)) => panic!("an event after revocation: {t}"),
                Some(_) => {}
            }
        }
    })
    .await;
    assert_eq!(end, Ok(true));
    s.stop().await;
}

/// The next WebSocket message (`None` once closed or failed).
async fn futures_next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<tokio_tungstenite::tungstenite::Message> {
    use futures::StreamExt;
    ws.next().await.and_then(Result::ok)
}

#[tokio::test]
async fn streams_per_caller_are_limited_and_given_back_when_closed() {
    let s = server(|c| c.events.max_streams_per_caller = 2).await;
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (_, other) = s.agent("dev", &["mail:read"]).await;
    let one = Sse::open(&s, &key, None, "").await;
    let _two = Sse::open(&s, &key, None, "").await;
    let third = |k: String| {
        let req = s.http.get(format!("{}/v1/events", s.base)).bearer_auth(k);
        async move { req.send().await.unwrap() }
    };
    let r = third(key.clone()).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    // Another agent has its own share.
    let _theirs = Sse::open(&s, &other, None, "").await;
    // A closed stream gives its slot back.
    drop(one);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = third(key.clone()).await;
        if r.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot not given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}
