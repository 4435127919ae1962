//! MCP suite: real JSON-RPC over Streamable HTTP to `/mcp` (initialize, notifications,
//! tools/list, tools/call), the key check in front of it, scope filtering, Host validation,
//! and the parity proof of DESIGN §1: every tool answers what its REST route answers.

use legate_tests::TestServer;
use serde_json::{json, Value};

const PROTOCOL: &str = "2025-06-18";

/// A minimal MCP client: enough of the protocol to drive the server as a real client would.
struct Mcp<'a> {
    s: &'a TestServer,
    key: String,
    next_id: u64,
}

/// The JSON-RPC message of a response body: plain JSON, or the first `data:` event of an
/// SSE stream carrying one.
fn jsonrpc_body(content_type: &str, text: &str) -> Value {
    if content_type.starts_with("text/event-stream") {
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    if v.get("jsonrpc").is_some() {
                        return v;
                    }
                }
            }
        }
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }
}

impl<'a> Mcp<'a> {
    async fn connect(s: &'a TestServer, key: &str) -> Mcp<'a> {
        let mut c = Mcp {
            s,
            key: key.to_string(),
            next_id: 1,
        };
        let init = c
            .rpc(
                "initialize",
                json!({"protocolVersion": PROTOCOL, "capabilities": {},
                       "clientInfo": {"name": "legate-tests", "version": "1"}}),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "legate", "{init}");
        assert!(init["result"]["capabilities"]["tools"].is_object());
        let (st, _) = c
            .post(
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                None,
            )
            .await;
        assert_eq!(st, 202);
        c
    }

    /// One POST; returns the HTTP status and the JSON-RPC message (Null when none).
    async fn post(&self, body: Value, host: Option<&str>) -> (u16, Value) {
        let mut req = self
            .s
            .http
            .post(format!("{}/mcp", self.s.base))
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL)
            .json(&body);
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        (status, jsonrpc_body(&ctype, &text))
    }

    async fn rpc(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let (st, v) = self
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
                None,
            )
            .await;
        assert_eq!(st, 200, "{method}: {v}");
        assert_eq!(v["id"], id, "{v}");
        v
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let v = self.rpc("tools/list", json!({})).await;
        let mut names: Vec<String> = v["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_string())
            .collect();
        names.sort();
        names
    }

    /// `tools/call`: (isError, structuredContent, the whole result).
    async fn call(&mut self, name: &str, args: Value) -> (bool, Value, Value) {
        let v = self
            .rpc("tools/call", json!({"name": name, "arguments": args}))
            .await;
        let r = v["result"].clone();
        assert!(r.is_object(), "{name}: {v}");
        (
            r["isError"].as_bool().unwrap_or(false),
            r["structuredContent"].clone(),
            r,
        )
    }

    /// A successful call's structured content.
    async fn ok(&mut self, name: &str, args: Value) -> Value {
        let (err, v, whole) = self.call(name, args).await;
        assert!(!err, "{name} failed: {whole}");
        v
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

const ALL: [&str; 7] = [
    "mail:read",
    "mail:send",
    "mail:manage",
    "vault:read",
    "vault:write",
    "identity:sign",
    "identity:verify",
];

#[tokio::test]
async fn a_missing_or_bad_key_is_401_with_the_rest_error_body() {
    let s = TestServer::start().await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params":
        {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for key in [None, Some("lg_NOTAREALKEY"), Some("nonsense")] {
        let mut req = s
            .http
            .post(format!("{}/mcp", s.base))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status().as_u16(), 401, "{key:?}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        if key.is_none() {
            // No credentials at all: the OAuth discovery challenge (RFC 9728 §5.1).
            assert!(
                challenge.starts_with("Bearer resource_metadata=\"http://"),
                "{challenge}"
            );
        } else {
            assert_eq!(challenge, "Bearer");
        }
        let v: Value = resp.json().await.expect("json body");
        assert!(
            v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{v}"
        );
        assert!(v["error"]["message"].as_str().is_some(), "{v}");
    }
    // The other header works too.
    let (_, key) = s.agent("hdr", &["mail:read"]).await;
    let resp = s
        .http
        .post(format!("{}/mcp", s.base))
        .header("x-legate-api-key", &key)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn tools_are_listed_by_scope_and_out_of_scope_calls_name_the_scope() {
    let s = TestServer::start().await;
    let (_, reader) = s.agent("reader", &["mail:read"]).await;
    let mut c = Mcp::connect(&s, &reader).await;
    assert_eq!(
        c.tool_names().await,
        sorted(&[
            "identity_whoami",
            "identity_reputation",
            "audit_list",
            "mail_list_messages",
            "mail_get_message",
            "mail_wait_for_message",
            "mail_list_threads",
            "mail_get_thread",
            "mail_list_drafts",
        ])
    );
    let (err, v, whole) = c.call("vault_totp", json!({"name": "github"})).await;
    assert!(err, "{whole}");
    assert_eq!(v["error"]["code"], "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "vault:read");
    let text = whole["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("vault:read"), "{whole}");
    // The refusal is audited, as on REST.
    let trail = c.ok("audit_list", json!({"outcome": "denied"})).await;
    assert_eq!(trail["items"][0]["action"], "vault.totp", "{trail}");

    let (_, full) = s.agent("full", &ALL).await;
    let mut f = Mcp::connect(&s, &full).await;
    assert_eq!(f.tool_names().await.len(), 32);
    // Each listed tool says what it needs and how it behaves.
    let v = f.rpc("tools/list", json!({})).await;
    let totp = v["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "vault_totp")
        .cloned()
        .expect("vault_totp");
    assert_eq!(totp["_meta"]["legate/required_scope"], "vault:read");
    assert_eq!(totp["annotations"]["readOnlyHint"], true);
    assert_eq!(totp["inputSchema"]["required"], json!(["name"]));

    // An unknown tool is a protocol error (no such method to route to), not a tool result.
    let v = f
        .rpc(
            "tools/call",
            json!({"name": "no_such_tool", "arguments": {}}),
        )
        .await;
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_configured_names_are_accepted() {
    let s = TestServer::start().await;
    let (_, key) = s.agent("hosts", &["mail:read"]).await;
    let c = Mcp::connect(&s, &key).await;
    let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}});
    let (st, _) = c.post(ping.clone(), Some("evil.example")).await;
    assert_eq!(st, 403);
    let (st, _) = c.post(ping.clone(), Some("evil.example:80")).await;
    assert_eq!(st, 403);
    for ok_host in ["mx.agents.test", "agents.test:8080", "localhost"] {
        let (st, v) = c.post(ping.clone(), Some(ok_host)).await;
        assert_eq!(st, 200, "{ok_host}: {v}");
        assert!(v["result"]["tools"].is_array());
    }
}

/// Issue 15, 4: `mail_send` refuses what `POST /v1/messages/send` refuses, with the same
/// `invalid_header` error naming the field, and queues nothing.
#[tokio::test]
async fn mail_send_refuses_header_injection_like_rest() {
    let s = TestServer::start().await;
    let (_, key) = s.agent("ops", &["mail:send", "mail:read"]).await;
    let (_, peer_key) = s.agent("peer", &["mail:read"]).await;
    let mut c = Mcp::connect(&s, &key).await;
    let inject = "x\r\nBcc: evil@x.test";
    let base = json!({"to": ["peer@agents.test"], "subject": "hi", "text": "x"});
    let cases = [
        json!({"subject": inject}),
        json!({"to": [format!("Peer {inject} <peer@agents.test>")]}),
        json!({"cc": ["peer@agents.test\nX-Evil: 1"]}),
        json!({"bcc": ["<peer@agents.test>\u{0}"]}),
        json!({"reply_to": [format!("Desk {inject} <d@b.test>")]}),
        json!({"in_reply_to": "<a@b>\r\nBcc: evil@x.test"}),
        json!({"attachments": [{"filename": "a\r\nb.txt", "content": "aGk="}]}),
        json!({"headers": {"X-Note": inject}}),
        json!({"headers": {"From": "ceo@bank.test"}}),
        json!({"headers": {"Sender": "ceo@bank.test"}}),
        json!({"to": ["peer@agents.test, evil@x.test"]}),
    ];
    for patch in cases {
        let mut args = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            args[k] = v.clone();
        }
        let (_, rest) = s
            .call("POST", "/v1/messages/send", Some(&key), Some(args.clone()))
            .await;
        let (err, mcp, whole) = c.call("mail_send", args.clone()).await;
        assert!(err, "{args}: {whole}");
        assert_eq!(mcp["error"]["code"], "invalid_header", "{args}: {mcp}");
        assert_eq!(mcp, rest, "{args}");
    }
    let (_, inbox) = s
        .call("GET", "/v1/messages?folder=INBOX", Some(&peer_key), None)
        .await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 0, "{inbox}");
}

#[path = "mcp/session.rs"]
mod session;

#[path = "mcp/watch.rs"]
mod watch;

#[path = "mcp/parity.rs"]
mod parity;
