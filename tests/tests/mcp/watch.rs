//! New mail as an MCP resource (issue 18 item 4): `legate://mail/INBOX` is listed and read
//! for a `mail:read` key, and a `subscriptions/listen` stream (MCP 2026-07-28) gets
//! `notifications/resources/updated` when mail arrives, and ends when the key is revoked.

use legate::mailbox::Folder;
use legate_tests::TestServer;
use serde_json::{json, Value};
use std::time::Duration;

const URI: &str = "legate://mail/INBOX";

/// The `_meta` every 2026-07-28 request carries (the protocol is stateless: no initialize).
fn with_meta(mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    params
}

async fn rpc(s: &TestServer, key: &str, method: &str, params: Value) -> Value {
    let name = params["uri"].as_str().map(str::to_string);
    let params = with_meta(params);
    let mut req = s.http.post(format!("{}/mcp", s.base)).bearer_auth(key);
    if let Some(n) = name {
        req = req.header("mcp-name", n);
    }
    let resp = req
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("send");
    let text = resp.text().await.unwrap_or_default();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .next_back()
        .unwrap_or(&text)
        .trim()
        .to_string();
    serde_json::from_str(&data).unwrap_or(Value::Null)
}

/// Reads the SSE stream until a `data:` message satisfies `want`; None when the stream
/// ends or nothing matches within the time.
async fn until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    want: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(i) = buf.find('\n') {
            let line: String = buf.drain(..=i).collect();
            if let Some(d) = line.trim_end().strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str::<Value>(d.trim()) {
                    if want(&v) {
                        return Some(v);
                    }
                }
            }
        }
        let chunk = tokio::time::timeout_at(end, resp.chunk())
            .await
            .ok()?
            .ok()??;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_is_a_resource_whose_subscribers_hear_of_new_mail() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("watcher", &["mail:read"]).await;
    let a = agent["id"].as_str().unwrap().to_string();
    let (_, blind) = s.agent("blind", &["vault:read"]).await;

    let list = rpc(&s, &key, "resources/list", json!({})).await;
    assert_eq!(list["result"]["resources"][0]["uri"], URI, "{list}");
    let none = rpc(&s, &blind, "resources/list", json!({})).await;
    assert_eq!(none["result"]["resources"], json!([]), "{none}");

    let mut resp = s
        .http
        .post(format!("{}/mcp", s.base))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .json(&json!({
            "jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
            "params": with_meta(json!({"notifications": {"resourceSubscriptions": [URI]}})),
        }))
        .send()
        .await
        .expect("listen");
    if resp.status().as_u16() != 200 {
        panic!(
            "listen: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let mut buf = String::new();
    let ack = until(&mut resp, &mut buf, |v| {
        v["method"] == "notifications/subscriptions/acknowledged"
    })
    .await
    .expect("acknowledged");
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([URI]),
        "{ack}"
    );

    let raw = b"From: a@remote.test\r\nTo: watcher@agents.test\r\nSubject: ping\r\n\r\nhi\r\n";
    s.deliver(&a, Folder::Inbox, raw).await;
    let upd = until(&mut resp, &mut buf, |v| {
        v["method"] == "notifications/resources/updated"
    })
    .await
    .expect("told of new mail");
    assert_eq!(upd["params"]["uri"], URI);
    let read = rpc(&s, &key, "resources/read", json!({"uri": URI})).await;
    let text = read["result"]["contents"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("ping"), "{read}");

    // Revoked: the stream ends at the next change instead of telling anyone anything.
    let (_, keys) = s
        .call(
            "GET",
            &format!("/v1/agents/{a}/keys"),
            Some(&s.admin_token),
            None,
        )
        .await;
    let kid = keys["items"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a}/keys/{kid}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    s.deliver(&a, Folder::Inbox, raw).await;
    let after = until(&mut resp, &mut buf, |v| {
        v["method"] == "notifications/resources/updated" || v.get("id").is_some()
    })
    .await;
    assert!(
        after.as_ref().is_none_or(|v| v.get("method").is_none()),
        "no notification after revocation: {after:?}"
    );
    s.stop().await;
}
