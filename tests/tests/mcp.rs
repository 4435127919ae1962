//! MCP suite: real JSON-RPC over Streamable HTTP to `/mcp` (initialize, notifications,
//! tools/list, tools/call), the key check in front of it, scope filtering, Host validation,
//! and the parity proof of DESIGN §1: every tool answers what its REST route answers.

use legate::mailbox::Folder;
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

/// Removes `keys` wherever they occur: fields that legitimately differ between two
/// otherwise identical operations (new ids, times).
fn strip(mut v: Value, keys: &[&str]) -> Value {
    fn walk(v: &mut Value, keys: &[&str]) {
        match v {
            Value::Object(m) => {
                for k in keys {
                    m.remove(*k);
                }
                m.values_mut().for_each(|x| walk(x, keys));
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, keys)),
            _ => {}
        }
    }
    walk(&mut v, keys);
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

fn mail(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Shop <noreply@shop.test>\r\nTo: ops@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@shop.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

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

#[tokio::test]
async fn every_tool_answers_what_its_rest_route_answers() {
    let s = TestServer::start().await;
    let (agent, key) = s.agent("ops", &ALL).await;
    let aid = agent["id"].as_str().expect("id").to_string();
    let k = Some(key.as_str());
    let mut c = Mcp::connect(&s, &key).await;

    // identity_whoami
    let (_, rest) = s.call("GET", "/v1/whoami", k, None).await;
    assert_eq!(c.ok("identity_whoami", json!({})).await, rest);

    // Mail: one message with a code, two more to delete.
    let m = s
        .deliver(
            &aid,
            Folder::Inbox,
            &mail("Your code", "Your verification code is 482913."),
        )
        .await;
    for _ in 0..2 {
        s.deliver(&aid, Folder::Inbox, &mail("Twin", "same")).await;
    }
    let (_, rest) = s.call("GET", "/v1/messages?limit=10", k, None).await;
    let (_, mcp, whole) = c.call("mail_list_messages", json!({"limit": 10})).await;
    assert_eq!(mcp, rest);
    assert_eq!(whole["_meta"]["untrusted_content"], true);
    assert!(whole["content"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("untrusted")));
    // Full-text search is the same service call on both sides.
    let (_, rest) = s.call("GET", "/v1/messages?q=VERIF", k, None).await;
    let mcp = c.ok("mail_list_messages", json!({"q": "VERIF"})).await;
    assert_eq!(mcp, rest);
    assert_eq!(mcp["items"][0]["id"], m.id.as_str(), "{mcp}");

    let path = format!("/v1/messages/{}", m.id);
    let (_, rest) = s.call("GET", &path, k, None).await;
    let mcp = c.ok("mail_get_message", json!({"id": m.id})).await;
    assert_eq!(mcp, rest);
    assert_eq!(mcp["codes"][0]["code"], "482913", "{mcp}");

    let (_, rest) = s
        .call(
            "GET",
            "/v1/messages/wait?subject=code&since=0&timeout=1",
            k,
            None,
        )
        .await;
    let mcp = c
        .ok(
            "mail_wait_for_message",
            json!({"subject": "code", "since": "0", "timeout": 1}),
        )
        .await;
    assert_eq!(mcp, rest);
    assert_eq!(mcp["id"], m.id.as_str());
    let (st, _) = s
        .call(
            "GET",
            "/v1/messages/wait?subject=nothing&timeout=1",
            k,
            None,
        )
        .await;
    assert_eq!(st, 204);
    let mcp = c
        .ok(
            "mail_wait_for_message",
            json!({"subject": "nothing", "timeout": 1}),
        )
        .await;
    assert_eq!(mcp, json!({"timed_out": true}));

    let patch = json!({"unread": false, "labels": {"add": ["otp"]}, "flags": ["\\Flagged"]});
    let (_, rest) = s.call("PATCH", &path, k, Some(patch.clone())).await;
    let mut args = patch.clone();
    args["id"] = json!(m.id);
    assert_eq!(c.ok("mail_update_message", args).await, rest);
    assert_eq!(rest["labels"], json!(["otp"]));

    let (_, list) = s.call("GET", "/v1/messages?q=Twin", k, None).await;
    let twins: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(twins.len(), 2);
    let differ = ["id", "uid", "received_at", "thread_id"];
    let (_, rest) = s
        .call("DELETE", &format!("/v1/messages/{}", twins[0]), k, None)
        .await;
    let mcp = c.ok("mail_delete_message", json!({"id": twins[1]})).await;
    assert_eq!(rest["deleted"], "trashed");
    assert_eq!(strip(mcp, &differ), strip(rest, &differ));
    // Deleting from Trash purges, through either door.
    let (_, rest) = s
        .call("DELETE", &format!("/v1/messages/{}", twins[0]), k, None)
        .await;
    let mcp = c.ok("mail_delete_message", json!({"id": twins[1]})).await;
    assert_eq!(rest["deleted"], "purged");
    assert_eq!(strip(mcp, &["id"]), strip(rest, &["id"]));

    // Errors have the same body too.
    let (st, rest) = s.call("GET", "/v1/messages/msg_nope", k, None).await;
    assert_eq!(st, 404);
    let (err, mcp, _) = c.call("mail_get_message", json!({"id": "msg_nope"})).await;
    assert!(err);
    assert_eq!(mcp, rest);

    // Vault: the same document stored through each door.
    let cred = json!({"kind": "login", "username": "ops", "password": "hunter2",
        "url": "https://shop.test/login", "totp": {"secret": "JBSWY3DPEHPK3PXP"}});
    let (st, rest) = s
        .call("PUT", "/v1/vault/shop-rest", k, Some(cred.clone()))
        .await;
    assert_eq!(st, 201);
    let mut args = cred.clone();
    args["name"] = json!("shop-mcp");
    let mcp = c.ok("vault_store", args).await;
    let differ = ["id", "name", "created_at", "updated_at", "last_used_at"];
    assert_eq!(strip(mcp.clone(), &differ), strip(rest, &differ));
    assert_eq!(mcp["name"], "shop-mcp");
    assert_eq!(mcp["has_totp"], true);

    let (_, rest) = s.call("GET", "/v1/vault/shop-mcp", k, None).await;
    let mcp = c.ok("vault_get", json!({"name": "shop-mcp"})).await;
    assert_eq!(
        strip(mcp.clone(), &["last_used_at"]),
        strip(rest, &["last_used_at"])
    );
    assert_eq!(mcp["password"], "hunter2");
    assert!(
        !mcp.to_string().contains("JBSWY3DPEHPK3PXP"),
        "seed leaked: {mcp}"
    );

    let (_, rest) = s.call("GET", "/v1/vault", k, None).await;
    let mcp = c.ok("vault_list", json!({})).await;
    assert_eq!(
        strip(mcp, &["last_used_at"]),
        strip(rest, &["last_used_at"])
    );

    let at = json!({"at": 1_700_000_000u64});
    let (_, rest) = s
        .call("POST", "/v1/vault/shop-mcp/totp", k, Some(at.clone()))
        .await;
    let mcp = c
        .ok(
            "vault_totp",
            json!({"name": "shop-mcp", "at": 1_700_000_000u64}),
        )
        .await;
    assert_eq!(mcp, rest);
    // Now: equal whenever both fall in the same 30 s step (retry once across a boundary).
    let mut same = false;
    for _ in 0..2 {
        let (_, rest) = s.call("POST", "/v1/vault/shop-mcp/totp", k, None).await;
        let mcp = c.ok("vault_totp", json!({"name": "shop-mcp"})).await;
        let step = |v: &Value| v["at"].as_u64().map(|t| t / 30);
        if step(&rest) == step(&mcp) {
            assert_eq!(mcp["code"], rest["code"]);
            same = true;
            break;
        }
    }
    assert!(same, "two TOTP steps in a row differed");

    let (st, _) = s.call("DELETE", "/v1/vault/shop-rest", k, None).await;
    assert_eq!(st, 204);
    let mcp = c.ok("vault_delete", json!({"name": "shop-mcp"})).await;
    assert_eq!(mcp, json!({"name": "shop-mcp", "deleted": true}));
    for n in ["shop-rest", "shop-mcp"] {
        let (st, rest) = s.call("GET", &format!("/v1/vault/{n}"), k, None).await;
        assert_eq!(st, 404);
        let (err, mcp, _) = c.call("vault_get", json!({"name": n})).await;
        assert!(err);
        assert_eq!(mcp, rest);
    }

    // Identity: Ed25519 is deterministic, so signatures are equal byte for byte.
    let data = json!({"data_b64": "aGVsbG8gd29ybGQ="});
    let (_, rest) = s
        .call("POST", "/v1/identity/sign", k, Some(data.clone()))
        .await;
    let signed = c.ok("identity_sign", data).await;
    assert_eq!(signed, rest);

    let aud = json!({"audience": "https://shop.test", "ttl_seconds": 300});
    let (_, rest) = s
        .call("POST", "/v1/identity/token", k, Some(aud.clone()))
        .await;
    let mcp = c.ok("identity_token", aud).await;
    let differ = ["token", "jti", "issued_at", "expires_at"];
    assert_eq!(strip(mcp.clone(), &differ), strip(rest.clone(), &differ));

    // Web Bot Auth: the same headers bar the nonce, time and signature.
    let req =
        json!({"method": "GET", "url": "https://shop.test/a", "headers": {"Accept": "text/html"}});
    let (_, rest_h) = s
        .call("POST", "/v1/identity/http-signature", k, Some(req.clone()))
        .await;
    let mcp_h = c.ok("identity_http_signature", req).await;
    let differ = ["headers", "created", "expires", "signature_base"];
    assert_eq!(
        strip(mcp_h.clone(), &differ),
        strip(rest_h.clone(), &differ)
    );
    assert_eq!(
        mcp_h["headers"]["Signature-Agent"],
        rest_h["headers"]["Signature-Agent"]
    );

    let check = json!({"token": mcp["token"], "audience": "https://shop.test"});
    let (_, rest_v) = s
        .call("POST", "/v1/identity/verify", k, Some(check.clone()))
        .await;
    let mcp_v = c.ok("identity_verify", check).await;
    assert_eq!(mcp_v, rest_v);
    assert_eq!(mcp_v["valid"], true, "{mcp_v}");
    let sig = json!({"did": signed["did"], "data_b64": "aGVsbG8gd29ybGQ=",
        "signature_b64": signed["signature_b64"], "kid": signed["kid"]});
    let (_, rest) = s
        .call("POST", "/v1/identity/verify", k, Some(sig.clone()))
        .await;
    let mcp = c.ok("identity_verify", sig).await;
    assert_eq!(mcp, rest);
    assert_eq!(mcp["valid"], true, "{mcp}");
    let bad = json!({"token": "x", "did": "did:web:x"});
    let (_, rest) = s
        .call("POST", "/v1/identity/verify", k, Some(bad.clone()))
        .await;
    let (err, mcp, _) = c.call("identity_verify", bad).await;
    assert!(err);
    assert_eq!(mcp, rest);

    // mail_send and mail_reply: the same acceptance through both doors (ids differ).
    let (_, peer_key) = s.agent("peer", &["mail:read"]).await;
    let send = json!({"to": ["peer@agents.test"], "subject": "Parity", "text": "hello"});
    let (st, rest) = s
        .call("POST", "/v1/messages/send", k, Some(send.clone()))
        .await;
    assert_eq!(st, 202, "{rest}");
    let mcp = c.ok("mail_send", send).await;
    let volatile = ["id", "message_id", "thread_id", "next_attempt_at"];
    assert_eq!(strip(mcp.clone(), &volatile), strip(rest, &volatile));
    assert_eq!(mcp["status"], "queued");
    let (st, rest) = s
        .call(
            "POST",
            &format!("/v1/messages/{}/reply", m.id),
            k,
            Some(json!({"text": "thanks"})),
        )
        .await;
    assert_eq!(st, 202, "{rest}");
    let mcp = c
        .ok("mail_reply", json!({"id": m.id, "text": "thanks"}))
        .await;
    assert_eq!(strip(mcp, &volatile), strip(rest, &volatile));
    let _ = peer_key;

    // Sender lists: one added by each door, read back by both.
    let mcp = c
        .ok(
            "mail_senders_add",
            json!({"list": "block", "entry": "Pest.Test", "note": "m"}),
        )
        .await;
    let (st, rest) = s
        .call(
            "POST",
            "/v1/senders",
            k,
            Some(json!({"list": "allow", "entry": "bank.test"})),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(mcp["entry"], "pest.test");
    assert_eq!(mcp["created_by"], rest["created_by"]);
    let (_, rest) = s.call("GET", "/v1/senders", k, None).await;
    assert_eq!(c.ok("mail_senders_list", json!({})).await, rest);
    assert_eq!(rest["block"][0]["entry"], "pest.test", "{rest}");
    let gone = c
        .ok(
            "mail_senders_remove",
            json!({"list": "block", "entry": "pest.test"}),
        )
        .await;
    assert_eq!(gone, json!({"removed": true}));
    let (err, _, whole) = c
        .call(
            "mail_senders_remove",
            json!({"list": "block", "entry": "pest.test"}),
        )
        .await;
    assert!(err, "{whole}");

    // Drafts: made over MCP, seen over REST; changed, listed, deleted.
    let tomorrow = (legate::util::now_unix() + 86400).to_string();
    let d = c
        .ok(
            "mail_create_draft",
            json!({"to": ["x@remote.test"], "subject": "Later", "text": "t"}),
        )
        .await;
    let did = d["id"].as_str().expect("draft id").to_string();
    let (_, rest) = s.call("GET", &format!("/v1/drafts/{did}"), k, None).await;
    assert_eq!(strip(rest, &["updated_at"]), strip(d, &["updated_at"]));
    let d = c
        .ok(
            "mail_update_draft",
            json!({"id": did, "subject": "Sooner", "send_at": tomorrow}),
        )
        .await;
    assert!(d.is_object());
    let (err, _, whole) = c
        .call(
            "mail_update_draft",
            json!({"id": did, "send_at": "4102444800"}),
        )
        .await;
    assert!(err, "more than a year ahead is refused: {whole}");
    let d = c
        .ok(
            "mail_update_draft",
            json!({"id": did, "subject": "Sooner", "unschedule": true}),
        )
        .await;
    assert_eq!(
        (d["subject"].as_str(), d["status"].as_str()),
        (Some("Sooner"), Some("draft"))
    );
    let (_, rest) = s.call("GET", "/v1/drafts", k, None).await;
    assert_eq!(c.ok("mail_list_drafts", json!({})).await, rest);
    assert_eq!(
        c.ok("mail_delete_draft", json!({"id": did})).await,
        json!({"deleted": true})
    );

    // audit_list: the trail both doors just wrote, read through both.
    let (_, rest) = s
        .call("GET", "/v1/audit?action=identity.*&limit=10", k, None)
        .await;
    let mcp = c
        .ok("audit_list", json!({"action": "identity.*", "limit": 10}))
        .await;
    assert_eq!(mcp, rest);
    assert!(
        mcp["items"].as_array().is_some_and(|a| a.len() >= 4),
        "{mcp}"
    );
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
