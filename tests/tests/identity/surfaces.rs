//! Revocation and remote did:web resolution: the identity suite's cross-surface tests.

use super::*;
use legate::identity::{RcptDecision, Scope};
use legate::store::Tree;

/// Issue 6 §4: one revocation, every surface refuses on the very next request.
#[tokio::test]
async fn revocation_is_one_operation_seen_on_every_surface() {
    let s = TestServer::start().await;
    let admin = s.admin_token.clone();
    let (a, key) = s.agent("doomed", ALL).await;
    let id = a["id"].as_str().unwrap().to_string();
    let did = a["did"].as_str().unwrap().to_string();
    let (_, checker) = s.agent("checker", &["identity:verify"]).await;
    let (st, kid) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/subagents"),
            Some(&key),
            Some(json!({"local": "doomed-kid", "scopes": ["identity:sign", "mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{kid}");
    let kid_key = kid["api_key"]["key"].as_str().unwrap().to_string();
    let kid_id = kid["id"].as_str().unwrap().to_string();
    // material made before the revocation
    let (_, t) = s
        .call(
            "POST",
            "/v1/identity/token",
            Some(&key),
            Some(json!({"audience": "svc"})),
        )
        .await;
    let token = t["token"].as_str().unwrap().to_string();
    let (_, kt) = s
        .call(
            "POST",
            "/v1/identity/token",
            Some(&kid_key),
            Some(json!({"audience": "svc"})),
        )
        .await;
    let kid_token = kt["token"].as_str().unwrap().to_string();
    let (_, sig) = s
        .call(
            "POST",
            "/v1/identity/sign",
            Some(&key),
            Some(json!({"data_b64": "aGk="})),
        )
        .await;
    let (st, _) = s
        .call(
            "PUT",
            "/v1/vault/site",
            Some(&key),
            Some(json!({"kind": "login", "password": "hunter2"})),
        )
        .await;
    assert_eq!(st, 201);
    let ids = s.services();
    assert!(ids
        .identity
        .login("doomed@agents.test", &key, Scope::MailSend, "127.0.0.1")
        .is_ok());
    assert!(matches!(
        ids.identity
            .accepts_mail_for("doomed+news@agents.test")
            .unwrap(),
        RcptDecision::Accept { .. }
    ));
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&checker),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(v["valid"], true);

    // ONE operation
    let (st, r) = s
        .call("DELETE", &format!("/v1/agents/{id}"), Some(&admin), None)
        .await;
    assert_eq!(st, 200, "{r}");
    let revoked = r["revoked"].as_array().unwrap();
    assert!(revoked.contains(&json!(id)) && revoked.contains(&json!(kid_id)));

    // 1. API keys refused (the agent's and its sub-agent's)
    let (st, e) = s.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("agent_revoked"))
    );
    assert_eq!(
        s.call("GET", "/v1/whoami", Some(&kid_key), None).await.0,
        401
    );
    // 2. identity tokens and signatures reported revoked by our verify
    for t in [&token, &kid_token] {
        let (_, v) = s
            .call(
                "POST",
                "/v1/identity/verify",
                Some(&checker),
                Some(json!({"token": t})),
            )
            .await;
        assert_eq!(
            (v["valid"].as_bool(), v["reason"].as_str()),
            (Some(false), Some("revoked")),
            "{v}"
        );
    }
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&checker),
            Some(json!({"did": did, "data_b64": "aGk=", "signature_b64": sig["signature_b64"]})),
        )
        .await;
    assert_eq!(v["reason"], "revoked");
    // 3. SMTP AUTH / IMAP LOGIN refused
    for scope in [Scope::MailSend, Scope::MailRead] {
        let e = ids
            .identity
            .login("doomed@agents.test", &key, scope, "127.0.0.1")
            .unwrap_err();
        assert!(e.to_string().contains("agent_revoked"), "{e}");
    }
    assert!(ids
        .identity
        .login(
            "doomed-kid@agents.test",
            &kid_key,
            Scope::MailRead,
            "127.0.0.1"
        )
        .is_err());
    // 4. inbound mail refused, tags included
    for rcpt in [
        "doomed@agents.test",
        "doomed+news@agents.test",
        "doomed-kid@agents.test",
    ] {
        assert_eq!(
            ids.identity.accepts_mail_for(rcpt).unwrap(),
            RcptDecision::Revoked,
            "{rcpt}"
        );
    }
    // 5. vault crypto-shredded: agent key, credentials and identity keys gone
    assert!(ids
        .store
        .get(Tree::VaultAgentKeys, id.as_bytes())
        .unwrap()
        .is_none());
    assert_eq!(
        ids.store
            .scan_prefix(Tree::VaultCredentials, id.as_bytes())
            .count(),
        0
    );
    assert!(ids.vault.identity_public_keys(&id).unwrap().is_empty());
    assert!(ids.vault.identity_sign(&id, b"x").is_err());
    // 6. DID documents deactivated (and the JWKS gone)
    for local in ["doomed", "doomed-kid"] {
        let (st, d) = s
            .call("GET", &format!("/agents/{local}/did.json"), None, None)
            .await;
        assert_eq!(st, 410, "{d}");
        assert_eq!(d["didDocumentMetadata"]["deactivated"], true);
        let (st, _) = s
            .call("GET", &format!("/agents/{local}/jwks.json"), None, None)
            .await;
        assert_eq!(st, 410);
    }
    // audited, with the cascade named
    let (_, audit) = s
        .call("GET", "/v1/audit?action=agent.revoke", Some(&admin), None)
        .await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|e| e["outcome"] == "ok"));
    s.stop().await;
}

/// A second legate resolves the first one's agents over (loopback) did:web.
#[tokio::test]
async fn remote_did_resolution_between_two_servers() {
    let a = localhost_server(false).await;
    let b = localhost_server(true).await;
    let (agent, akey) = a.agent("far", ALL).await;
    let did = agent["did"].as_str().unwrap().to_string();
    let (_, bkey) = b.agent("near", &["identity:verify"]).await;
    let (_, t) = a
        .call(
            "POST",
            "/v1/identity/token",
            Some(&akey),
            Some(json!({"audience": "b"})),
        )
        .await;
    let token = t["token"].as_str().unwrap().to_string();
    let (_, sig) = a
        .call(
            "POST",
            "/v1/identity/sign",
            Some(&akey),
            Some(json!({"data_b64": "aGk="})),
        )
        .await;
    let sig_body = json!({"did": did, "data_b64": "aGk=", "signature_b64": sig["signature_b64"]});

    let (_, v) = b
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&bkey),
            Some(json!({"token": token, "audience": "b"})),
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    let (_, v) = b
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&bkey),
            Some(sig_body.clone()),
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    let (_, v) = b
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&bkey),
            Some(
                json!({"did": format!("did:web:localhost%3A{}:agents:ghost", port(&a)),
                        "data_b64": "aGk=", "signature_b64": sig["signature_b64"]}),
            ),
        )
        .await;
    assert_eq!(v["reason"], "unknown_did");

    // production rules (server A itself): plain http and loopback are refused
    let (_, ckey) = a.agent("strict", &["identity:verify"]).await;
    let (_, v) = a
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&ckey),
            Some(
                json!({"did": format!("did:web:localhost%3A{}:agents:near", port(&b)),
                        "data_b64": "aGk=", "signature_b64": sig["signature_b64"]}),
            ),
        )
        .await;
    assert_eq!(v["reason"], "resolution_failed", "{v}");

    // revocation on A is seen by B on its next verify (410 -> revoked)
    let id = agent["id"].as_str().unwrap();
    a.call(
        "DELETE",
        &format!("/v1/agents/{id}"),
        Some(&a.admin_token),
        None,
    )
    .await;
    let (_, v) = b
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&bkey),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(v["reason"], "revoked", "{v}");
    let (_, v) = b
        .call("POST", "/v1/identity/verify", Some(&bkey), Some(sig_body))
        .await;
    assert_eq!(v["reason"], "revoked", "{v}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn remote_resolution_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.identity.remote_did_resolution = false;
    let s = TestServer::start_with(dir, cfg).await;
    let (_, key) = s.agent("local", &["identity:verify"]).await;
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&key),
            Some(
                json!({"did": "did:web:example.com:agents:x", "data_b64": "aGk=",
                        "signature_b64": BASE64.encode(&[0u8; 64])}),
            ),
        )
        .await;
    assert_eq!(v["reason"], "remote_resolution_disabled");
    let (_, doc) = s.call("GET", "/openapi.json", None, None).await;
    for p in [
        "/v1/identity/sign",
        "/v1/identity/verify",
        "/v1/identity/token",
        "/v1/agents/{id}/rotate-key",
        "/.well-known/did.json",
        "/agents/{local}/did.json",
        "/agents/{local}/jwks.json",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from openapi.json");
    }
    s.stop().await;
}
