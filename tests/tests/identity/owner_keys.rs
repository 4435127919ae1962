//! Owners' keys and invites (issue 25 §2, hardening): adding a human never hands the adder a
//! token; the human is mailed a single-use, expiring invite and redeems it for their own key;
//! owner keys expire, are listed and revoked by their human or an admin, and die with the
//! human's last ownership, refused at the next request over REST and MCP alike.

use super::*;

/// Adds `email` as an owner of `agent` (by `by`); the adder's answer carries no token, only
/// `invited`; the new owner's token comes from redeeming the invite mailed to them.
pub(super) async fn add_owner(s: &TestServer, by: &str, agent: &str, email: &str) -> String {
    human_inbox(s, email).await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{agent}/owners"),
            Some(by),
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["created_human"], true);
    assert_eq!(v["invited"], true, "{v}");
    assert!(v.get("token").is_none(), "{v}");
    let shown = v.to_string();
    assert!(
        !shown.contains("lg_") && !shown.contains("lgi_"),
        "no token nor code for the adder: {v}"
    );
    let code = invite_code(s, email).await;
    let (st, r) = s
        .call(
            "POST",
            "/v1/invites/redeem",
            None,
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!(st, 201, "{r}");
    r["key"].as_str().expect("the owner's own key").to_string()
}

/// The invite code mailed to `email` (the only one).
pub(super) async fn invite_code(s: &TestServer, email: &str) -> String {
    let codes = invite_codes(s, email, 1).await;
    assert_eq!(codes.len(), 1, "one invite mailed to {email}: {codes:?}");
    codes[0].clone()
}

/// A `mail:read` key to the mailbox of the human `email`: the tests' owners have addresses on
/// our own domain, each the address of an agent made here, so their invites are delivered
/// to a mailbox the test reads (the postmaster keeps no copy, and an address nobody has
/// fails the invite). Call it before the owner is added.
pub(super) async fn human_inbox(s: &TestServer, email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let (st, v) = s
        .call(
            "POST",
            "/v1/agents",
            Some(&s.admin_token),
            Some(json!({"local": local, "scopes": ["mail:read"]})),
        )
        .await;
    if st == 201 {
        return v["api_key"]["key"].as_str().expect("key").to_string();
    }
    let (st, k) = s
        .call(
            "POST",
            &format!("/v1/agents/{local}@agents.test/keys"),
            Some(&s.admin_token),
            Some(json!({"name": "inbox", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    k["key"].as_str().expect("key").to_string()
}

/// The texts of the messages in the mailbox behind `key`'s `folder`.
pub(super) async fn texts(s: &TestServer, key: &str, folder: &str) -> Vec<String> {
    let (_, list) = s
        .call(
            "GET",
            &format!("/v1/messages?folder={folder}&limit=100"),
            Some(key),
            None,
        )
        .await;
    let mut out = Vec::new();
    for m in list["items"].as_array().expect("messages") {
        let (_, full) = s
            .call(
                "GET",
                &format!("/v1/messages/{}", m["id"].as_str().unwrap()),
                Some(key),
                None,
            )
            .await;
        out.push(full["text"].as_str().unwrap_or_default().to_string());
    }
    out
}

/// Every invite code mailed to `email`, as found in its INBOX once it holds `at_least` of
/// them (delivered by the queue, so waited for).
pub(super) async fn invite_codes(s: &TestServer, email: &str, at_least: usize) -> Vec<String> {
    let key = human_inbox(s, email).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found: Vec<String> = texts(s, &key, "INBOX")
            .await
            .iter()
            .filter_map(|text| {
                let i = text.find("lgi_")?;
                Some(
                    text[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect(),
                )
            })
            .collect();
        if found.len() >= at_least.max(1) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no invite mailed to {email}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn owners_server(key_ttl: u64, invite_ttl: u64) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.owners.key_ttl_secs = key_ttl;
    cfg.owners.invite_ttl_secs = invite_ttl;
    TestServer::start_with(dir, cfg).await
}

/// The status of an MCP `initialize` with `key`: where a refused key shows on that surface.
async fn mcp_status(s: &TestServer, key: &str) -> u16 {
    s.http
        .post(format!("{}/mcp", s.base))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .expect("mcp")
        .status()
        .as_u16()
}

/// The key is refused with `code` on REST and on MCP.
async fn refused(s: &TestServer, key: &str, code: &str) {
    let (st, v) = s.call("GET", "/v1/whoami", Some(key), None).await;
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(mcp_status(s, key).await, 401, "MCP takes a dead key");
}

async fn redeem(s: &TestServer, code: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/invites/redeem",
        None,
        Some(json!({"code": code})),
    )
    .await
}

#[tokio::test]
async fn an_added_owner_gets_an_invite_by_mail_and_only_it_gives_their_key() {
    let s = owners_server(30 * 86400, 3 * 86400).await;
    let (a, _) = s.agent("alpha", ALL).await;
    let (b, _) = s.agent("beta", ALL).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let admin = s.admin_token.clone();

    // the adder's answer: invited, no token, no code
    human_inbox(&s, "bob@agents.test").await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&admin),
            Some(json!({"email": "bob@agents.test"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["invited"], true, "{v}");
    assert!(
        v.get("token").is_none() && !v.to_string().contains("lgi_"),
        "{v}"
    );
    let code = invite_code(&s, "bob@agents.test").await;
    assert!(code.starts_with("lgi_") && code.len() == 4 + 52, "{code}");

    // forged, malformed: refused like bad credentials
    let forged = format!("lgi_{}", "A".repeat(52));
    let (st, v) = redeem(&s, &forged).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );
    let (st, v) = redeem(&s, "lg_nope").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("malformed_credentials")),
        "{v}"
    );
    let (st, _) = s
        .call(
            "POST",
            "/v1/invites/redeem",
            None,
            Some(json!({"code": code, "x": 1})),
        )
        .await;
    assert!(st == 400 || st == 422, "unknown fields: {st}");

    // the real one, once: bob's own key, expiring
    let (st, r) = redeem(&s, &code).await;
    assert_eq!(st, 201, "{r}");
    let bob = r["key"].as_str().unwrap().to_string();
    assert!(bob.starts_with("lg_"));
    assert!(r["expires_at"].is_string(), "an owner key expires: {r}");
    assert_eq!(r["human"]["email"], "bob@agents.test");
    let (st, v) = redeem(&s, &code).await;
    assert_eq!(st, 401, "a used invite: {v}");
    let (_, doc) = s.call("GET", "/openapi.json", None, None).await;
    for p in [
        "/v1/invites/redeem",
        "/v1/humans/{human}/keys",
        "/v1/humans/{human}/keys/{key_id}",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from openapi.json");
    }
    let (_, who) = s.call("GET", "/v1/whoami", Some(&bob), None).await;
    assert_eq!(
        (who["kind"].as_str(), who["admin"].as_bool()),
        (Some("human"), Some(false))
    );
    assert_eq!(who["owns"], json!([a_id]));

    // audited: the invite by the admin, the redemption by bob; the code nowhere
    let (_, audit) = s
        .call("GET", "/v1/audit?limit=500", Some(&admin), None)
        .await;
    let items = audit["items"].as_array().unwrap();
    let made = items
        .iter()
        .find(|e| e["action"] == "owner.invite.create")
        .expect("invite audited");
    assert_eq!(made["chain"], json!(["human:admin@agents.test"]));
    assert_eq!(made["outcome"], "ok");
    let used = items
        .iter()
        .find(|e| e["action"] == "owner.invite.redeem" && e["outcome"] == "ok")
        .expect("redemption audited");
    assert_eq!(used["chain"], json!(["human:bob@agents.test"]));
    assert!(items
        .iter()
        .any(|e| e["action"] == "owner.invite.redeem" && e["outcome"] == "denied"));
    assert!(
        !audit.to_string().contains(&code),
        "the code in the audit trail"
    );
    assert!(
        !audit.to_string().contains(&bob),
        "the key in the audit trail"
    );

    // bob, who has a working key, is not invited again when added elsewhere
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{b_id}/owners"),
            Some(&admin),
            Some(json!({"email": "bob@agents.test"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["created_human"].as_bool(), v["invited"].as_bool()),
        (Some(false), Some(false))
    );

    // bob (an owner) invites carol; removed before she redeems, her invite is void
    human_inbox(&s, "carol@agents.test").await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&bob),
            Some(json!({"email": "carol@agents.test"})),
        )
        .await;
    assert_eq!((st, v["invited"].as_bool()), (201, Some(true)), "{v}");
    let carol_code = invite_code(&s, "carol@agents.test").await;
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a_id}/owners/carol@agents.test"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, v) = redeem(&s, &carol_code).await;
    assert_eq!(st, 401, "a cancelled invite: {v}");
}

/// Whoever reads the postmaster's mail must not be able to redeem an invite: it keeps no Sent
/// copy of one, and an invite it cannot deliver fails rather than being filed in its INBOX.
#[tokio::test]
async fn an_invite_leaves_no_copy_with_the_postmaster_and_an_undeliverable_one_fails() {
    let s = owners_server(30 * 86400, 3 * 86400).await;
    let (a, _) = s.agent("alpha", ALL).await;
    let a_id = a["id"].as_str().unwrap();
    let admin = s.admin_token.clone();
    let bob = add_owner(&s, &admin, a_id, "bob@agents.test").await;
    assert!(bob.starts_with("lg_"));

    // nobody has this address: the owner is added, but no invite exists to be read anywhere
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&admin),
            Some(json!({"email": "nobody@agents.test"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["invited"], false, "{v}");
    assert!(v["invite_error"].is_string(), "{v}");

    let (st, k) = s
        .call(
            "POST",
            "/v1/agents/postmaster@agents.test/keys",
            Some(&admin),
            Some(json!({"name": "read", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    let pm = k["key"].as_str().unwrap();
    for folder in ["Sent", "INBOX"] {
        for text in texts(&s, pm, folder).await {
            assert!(
                !text.contains("lgi_"),
                "an invite code in the postmaster's {folder}"
            );
        }
    }
    let (_, raw_list) = s
        .call("GET", "/v1/messages?limit=100", Some(pm), None)
        .await;
    assert!(!raw_list.to_string().contains("lgi_"), "{raw_list}");
}

#[tokio::test]
async fn owner_keys_are_listed_revoked_by_their_human_or_an_admin_and_die_with_the_last_ownership()
{
    let s = owners_server(30 * 86400, 3 * 86400).await;
    let (a, a_key) = s.agent("alpha", ALL).await;
    let (b, _) = s.agent("beta", ALL).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let admin = s.admin_token.clone();
    let bob = add_owner(&s, &admin, a_id, "bob@agents.test").await;
    let dave = add_owner(&s, &admin, b_id, "dave@agents.test").await;
    let eve = add_owner(&s, &admin, b_id, "eve@agents.test").await;

    // listed: by bob (me, email or id) and by an admin; not by dave nor an agent
    let (st, mine) = s.call("GET", "/v1/humans/me/keys", Some(&bob), None).await;
    assert_eq!(st, 200, "{mine}");
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(items[0]["active"], true);
    assert!(items[0]["expires_at"].is_string(), "{mine}");
    assert!(!mine.to_string().contains(&bob), "never the key itself");
    let bob_key_id = items[0]["id"].as_str().unwrap().to_string();
    let bob_id = items[0]["owner"]["id"].as_str().unwrap().to_string();
    for who in ["bob@agents.test", bob_id.as_str()] {
        let (st, v) = s
            .call("GET", &format!("/v1/humans/{who}/keys"), Some(&admin), None)
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["items"][0]["id"], bob_key_id.as_str());
    }
    for key in [&dave, &a_key] {
        let (st, v) = s
            .call("GET", "/v1/humans/bob@agents.test/keys", Some(key), None)
            .await;
        assert_eq!(st, 403, "{v}");
        let (st, _) = s
            .call(
                "DELETE",
                &format!("/v1/humans/bob@agents.test/keys/{bob_key_id}"),
                Some(key),
                None,
            )
            .await;
        assert_eq!(st, 403);
    }

    // dave revokes his own key: refused at the next request, REST and MCP
    assert_ne!(mcp_status(&s, &dave).await, 401);
    let (_, dl) = s.call("GET", "/v1/humans/me/keys", Some(&dave), None).await;
    let dave_key_id = dl["items"][0]["id"].as_str().unwrap().to_string();
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/humans/me/keys/{dave_key_id}"),
            Some(&dave),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["active"], false);
    refused(&s, &dave, "key_revoked").await;
    // an admin revokes eve's
    let (_, el) = s
        .call("GET", "/v1/humans/eve@agents.test/keys", Some(&admin), None)
        .await;
    let eve_key_id = el["items"][0]["id"].as_str().unwrap().to_string();
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/humans/eve@agents.test/keys/{eve_key_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 200);
    refused(&s, &eve, "key_revoked").await;

    // bob owns alpha and beta: removed from alpha he keeps his key; from beta too, it dies
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{b_id}/owners"),
            Some(&admin),
            Some(json!({"email": "bob@agents.test"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a_id}/owners/bob@agents.test"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, who) = s.call("GET", "/v1/whoami", Some(&bob), None).await;
    assert_eq!(st, 200, "{who}");
    assert_eq!(who["owns"], json!([b_id]));
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{b_id}/owners/bob@agents.test"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 204);
    refused(&s, &bob, "key_revoked").await;
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=agent.owners.remove&limit=10",
            Some(&admin),
            None,
        )
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["revoked_keys"] == json!([bob_key_id])),
        "{audit}"
    );

    // re-added, bob (no working key now) is invited again and gets a new key
    let new_bob = add_owner_again(&s, &admin, a_id, "bob@agents.test").await;
    let (st, _) = s.call("GET", "/v1/whoami", Some(&new_bob), None).await;
    assert_eq!(st, 200);
    // the admin's own tokens go by the admin-token rules: never the last working one
    let (_, al) = s
        .call("GET", "/v1/humans/me/keys", Some(&admin), None)
        .await;
    let admin_key = al["items"][0]["id"].as_str().unwrap().to_string();
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/humans/me/keys/{admin_key}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(st, 409, "{v}");
}

/// Adds a known human again; they have no working key, so a new invite is mailed.
async fn add_owner_again(s: &TestServer, by: &str, agent: &str, email: &str) -> String {
    let before = invite_codes(s, email, 1).await.len();
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{agent}/owners"),
            Some(by),
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!((st, v["invited"].as_bool()), (201, Some(true)), "{v}");
    // the earlier invite is spent or expired: exactly one of them redeems
    let mut keys = Vec::new();
    for code in invite_codes(s, email, before + 1).await {
        let (st, r) = redeem(s, &code).await;
        if st == 201 {
            keys.push(r["key"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.remove(0)
}

#[tokio::test]
async fn owner_keys_and_invites_expire_at_their_ttl() {
    let s = owners_server(2, 2).await;
    let (a, _) = s.agent("alpha", ALL).await;
    let a_id = a["id"].as_str().unwrap();
    let admin = s.admin_token.clone();
    let frank = add_owner(&s, &admin, a_id, "frank@agents.test").await;
    let (st, _) = s.call("GET", "/v1/whoami", Some(&frank), None).await;
    assert_eq!(st, 200);
    // gina's invite is left to expire meanwhile
    human_inbox(&s, "gina@agents.test").await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&admin),
            Some(json!({"email": "gina@agents.test"})),
        )
        .await;
    assert_eq!((st, v["invited"].as_bool()), (201, Some(true)), "{v}");
    let gina_code = invite_code(&s, "gina@agents.test").await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    refused(&s, &frank, "key_expired").await;
    let (st, v) = redeem(&s, &gina_code).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("key_expired")),
        "{v}"
    );
    // an expired owner is invited again when re-added
    let again = add_owner_again(&s, &admin, a_id, "frank@agents.test").await;
    let (st, _) = s.call("GET", "/v1/whoami", Some(&again), None).await;
    assert_eq!(st, 200);
}
