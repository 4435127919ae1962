//! The parity proof of DESIGN §1: every MCP tool answers what its REST route answers.

use super::{Mcp, ALL};
use legate::mailbox::Folder;
use legate_tests::TestServer;
use serde_json::{json, Value};

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

fn mail(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Shop <noreply@shop.test>\r\nTo: ops@agents.test\r\nSubject: {subject}\r\n\
Message-ID: <{}@shop.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
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
