//! Connected accounts and co-owners (issue 25 §1-2), everything that needs no OAuth
//! provider: the owners API and its ownership checks, grant validation, the single-use
//! state, the vault's view of an `oauth` credential. The provider side (code exchange,
//! refresh, rotation, revocation, invalid_grant) is the interop suite `25_connections`,
//! against npm's oidc-provider.

use super::owner_keys::add_owner;
use super::*;

async fn connections_server(danger: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.connections.danger_allow_private = danger;
    TestServer::start_with(dir, cfg).await
}

fn explicit(name: &str) -> Value {
    json!({
        "name": name,
        "authorization_endpoint": "http://127.0.0.1:9/authorize?tenant=t1",
        "token_endpoint": "http://127.0.0.1:9/token",
        "client_id": "legate-client",
        "client_secret": "s3cret-client-value",
        "scopes": ["read", "write:issues"],
    })
}

#[tokio::test]
async fn owners_act_on_their_agents_only_and_are_audited_as_themselves() {
    let s = connections_server(true).await;
    let (a, a_key) = s.agent("alpha", ALL).await;
    let (b, _) = s.agent("beta", ALL).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let admin = s.admin_token.clone();
    let bob = add_owner(&s, &admin, a_id, "Bob@agents.test").await;
    let dave = add_owner(&s, &admin, b_id, "dave@agents.test").await;

    // bob owns alpha: he lists and adds its owners, and they are audited as his
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"][0]["email"], "bob@agents.test");
    assert_eq!(v["items"][0]["admin"], false);
    let carol = add_owner(&s, &bob, a_id, "carol@agents.test").await;
    let (_, who) = s.call("GET", "/v1/whoami", Some(&carol), None).await;
    assert_eq!(who["kind"], "human");
    assert_eq!(who["admin"], false);
    assert_eq!(who["owns"], json!([a_id]));
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=agent.owners.add&limit=50",
            Some(&admin),
            None,
        )
        .await;
    let by_bob = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["detail"]["email"] == "carol@agents.test")
        .expect("the addition is audited");
    assert_eq!(by_bob["chain"], json!(["human:bob@agents.test"]));
    assert_eq!(by_bob["actor"]["kind"], "human");

    // ... but not beta, nor anything an admin does; dave (beta's owner) not alpha
    for (path, method, body) in [
        (format!("/v1/agents/{b_id}/owners"), "GET", None),
        (
            format!("/v1/agents/{b_id}/owners"),
            "POST",
            Some(json!({"email": "x@agents.test"})),
        ),
        (format!("/v1/agents/{b_id}/connections"), "GET", None),
        (
            format!("/v1/agents/{b_id}/connections"),
            "POST",
            Some(explicit("gh")),
        ),
        (
            format!("/v1/agents/{b_id}/owners/dave@agents.test"),
            "DELETE",
            None,
        ),
        (format!("/v1/agents/{b_id}"), "DELETE", None),
        ("/v1/agents".to_string(), "GET", None),
        ("/v1/admin/tokens".to_string(), "GET", None),
        ("/v1/orgs".to_string(), "GET", None),
        // owning an agent is not an admin's authority over it, nor over the audit trail
        ("/v1/audit?limit=5".to_string(), "GET", None),
        (
            format!("/v1/agents/{a_id}/send-policy"),
            "PUT",
            Some(json!({"max_per_day": 1000000})),
        ),
    ] {
        let (st, v) = s.call(method, &path, Some(&bob), body).await;
        assert_eq!(st, 403, "bob {method} {path}: {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    let (st, _) = s
        .call(
            "GET",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&dave),
            None,
        )
        .await;
    assert_eq!(st, 403);
    // a missing agent looks the same to a non-admin as someone else's
    let (st, _) = s
        .call("GET", "/v1/agents/ag_nope/owners", Some(&dave), None)
        .await;
    assert_eq!(st, 403);
    // the agent itself may not grant owners or connections
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&a_key),
            Some(json!({"email": "e@agents.test"})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{a_id}/connections"),
            Some(&a_key),
            Some(explicit("gh")),
        )
        .await;
    assert_eq!(st, 403);

    // owner tokens are no admin tokens: the admin list does not show them, and the
    // bootstrap token keeps working
    let (st, toks) = s.call("GET", "/v1/admin/tokens", Some(&admin), None).await;
    assert_eq!(st, 200);
    assert_eq!(toks["items"].as_array().unwrap().len(), 1, "{toks}");

    // bad input is a 400 JSON error
    for bad in [
        json!({"email": "a\r\nb@agents.test"}),
        json!({"email": "no-at"}),
        json!({"email": "x".repeat(300) + "@a.test"}),
        json!({"email": "a@b", "colour": 1}),
    ] {
        let (st, v) = s
            .call(
                "POST",
                &format!("/v1/agents/{a_id}/owners"),
                Some(&bob),
                Some(bad.clone()),
            )
            .await;
        assert!(st == 400 || st == 422, "{bad}: {st} {v}");
        assert!(v["error"]["code"].is_string(), "{v}");
    }

    // removing an owner ends its rights at once
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a_id}/owners/carol@agents.test"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, 204);
    // carol owned nothing else: her owner key went with her last ownership
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/agents/{a_id}/owners"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(st, 401, "{v}");
    assert_eq!(v["error"]["code"], "key_revoked", "{v}");
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a_id}/owners/carol@agents.test"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, 404);

    // an owner may revoke the agent it owns
    let (st, v) = s
        .call("DELETE", &format!("/v1/agents/{a_id}"), Some(&bob), None)
        .await;
    assert!(st == 200 || st == 204, "{st} {v}");
    let (st, _) = s.call("GET", "/v1/whoami", Some(&a_key), None).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn a_grant_is_validated_bound_to_one_state_and_never_shows_secrets() {
    let s = connections_server(true).await;
    let (a, key) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap();
    let admin = s.admin_token.clone();
    let bob = add_owner(&s, &admin, id, "bob@agents.test").await;

    // malformed requests: 400 with a JSON error, nothing stored
    let mut crlf = explicit("gh");
    crlf["client_id"] = json!("c\r\nX-Injected: 1");
    let mut both = explicit("gh");
    both["issuer"] = json!("http://127.0.0.1:9");
    let mut half = explicit("gh");
    half.as_object_mut().unwrap().remove("token_endpoint");
    let mut badscope = explicit("gh");
    badscope["scopes"] = json!(["a b"]);
    let mut ftp = explicit("gh");
    ftp["token_endpoint"] = json!("ftp://127.0.0.1/token");
    for bad in [
        crlf,
        both,
        half,
        badscope,
        ftp,
        explicit("a/b"),
        explicit(&"n".repeat(200)),
    ] {
        let (st, v) = s
            .call(
                "POST",
                &format!("/v1/agents/{id}/connections"),
                Some(&bob),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let huge = json!({"name": "gh", "issuer": format!("https://{}.test", "x".repeat(4000)), "client_id": "c"});
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/connections"),
            Some(&bob),
            Some(huge),
        )
        .await;
    assert_eq!(st, 400);

    // a grant: PKCE S256, a state, our callback, the scopes
    let (st, c) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/connections"),
            Some(&bob),
            Some(explicit("github")),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    assert_eq!(c["status"], "pending");
    assert_eq!(c["granted_by"]["email"], "bob@agents.test");
    let url = url::Url::parse(c["authorization_url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.path(), "/authorize");
    assert_eq!(q["tenant"], "t1", "the endpoint's own query is kept");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "legate-client");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["scope"], "read write:issues");
    assert!(
        q["redirect_uri"].ends_with("/connections/callback"),
        "{q:?}"
    );
    let state = q["state"].clone();
    assert!(state.len() >= 43);
    let cid = c["id"].as_str().unwrap().to_string();

    // the same name twice is refused while the first is live
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/connections"),
            Some(&bob),
            Some(explicit("github")),
        )
        .await;
    assert_eq!(st, 422, "{v}");

    // nothing secret is shown anywhere: not the list, not the agent's vault
    let (_, list) = s
        .call(
            "GET",
            &format!("/v1/agents/{id}/connections"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(list["items"][0]["scopes"], json!(["read", "write:issues"]));
    let (_, vl) = s.call("GET", "/v1/vault", Some(&key), None).await;
    let (_, vg) = s.call("GET", "/v1/vault/github", Some(&key), None).await;
    assert_eq!(vg["kind"], "oauth");
    for v in [&c, &list, &vl, &vg] {
        assert!(!v.to_string().contains("s3cret-client-value"), "{v}");
    }
    // the vault routes neither replace nor delete it (its tokens need revoking first)
    let (st, _) = s
        .call(
            "PUT",
            "/v1/vault/github",
            Some(&key),
            Some(json!({"kind": "api_key", "secret": "x"})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, _) = s
        .call(
            "PUT",
            "/v1/vault/other",
            Some(&key),
            Some(json!({"kind": "oauth"})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, _) = s.call("DELETE", "/v1/vault/github", Some(&key), None).await;
    assert_eq!(st, 422);

    // not granted yet: no token, over REST and MCP alike
    let (st, v) = s
        .call("POST", "/v1/vault/github/token", Some(&key), None)
        .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["code"], "connection_not_active");
    let r = legate_tests::mcp_tool(&s, &key, "vault_token", json!({"name": "github"})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        r["structuredContent"]["error"]["code"], "connection_not_active",
        "{r}"
    );
    let (st, v) = s
        .call("POST", "/v1/vault/nope/token", Some(&key), None)
        .await;
    assert_eq!(st, 404, "{v}");
    let (_, k2) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/keys"),
            Some(&admin),
            Some(json!({"name": "mail", "scopes": ["mail:read"]})),
        )
        .await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/vault/github/token",
            Some(k2["key"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, 403, "{v}");
    assert_eq!(v["error"]["required_scope"], "vault:read");

    // the callback: an unknown state, a bad parameter, then the real one (the provider is
    // unreachable, so the exchange fails) and its replay
    let (st, v) = s
        .call(
            "GET",
            "/connections/callback?state=forged&code=x",
            None,
            None,
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["error"]["code"], "invalid_state");
    let (st, _) = s
        .call("GET", "/connections/callback?code=x", None, None)
        .await;
    assert_eq!(st, 400);
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (st, v) = s
        .call(
            "GET",
            &format!("/connections/callback?state={}&code=%0d%0a", enc(&state)),
            None,
            None,
        )
        .await;
    assert_eq!(st, 400, "control characters: {v}");
    // the provider is unreachable: the exchange fails (502), and the state is spent
    let (st, v) = s
        .call(
            "GET",
            &format!("/connections/callback?state={}&code=abc", enc(&state)),
            None,
            None,
        )
        .await;
    assert_eq!(st, 502, "{v}");
    assert_eq!(v["error"]["code"], "provider_error");
    let (st, v) = s
        .call(
            "GET",
            &format!("/connections/callback?state={}&code=abc", enc(&state)),
            None,
            None,
        )
        .await;
    assert_eq!(st, 400, "a replayed state: {v}");
    assert_eq!(v["error"]["code"], "invalid_state");
    let (_, list) = s
        .call(
            "GET",
            &format!("/v1/agents/{id}/connections"),
            Some(&bob),
            None,
        )
        .await;
    let gh = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == cid.as_str())
        .unwrap()
        .clone();
    assert_eq!(gh["status"], "failed");
    let (st, _) = s.call("GET", "/v1/vault/github", Some(&key), None).await;
    assert_eq!(st, 404, "a failed grant leaves no credential");

    // an admin's grant names the admin; revoking a pending one destroys its credential
    let (st, c2) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/connections"),
            Some(&admin),
            Some(explicit("linear")),
        )
        .await;
    assert_eq!(st, 201, "{c2}");
    assert_eq!(c2["granted_by"]["email"], "admin@agents.test");
    let cid2 = c2["id"].as_str().unwrap();
    let (st, v) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}/connections/{cid2}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "revoked");
    assert_eq!(
        v["provider_revoked"],
        Value::Null,
        "no token, no provider call"
    );
    let (st, _) = s.call("GET", "/v1/vault/linear", Some(&key), None).await;
    assert_eq!(st, 404);
    // and the names are free again
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/connections"),
            Some(&bob),
            Some(explicit("github")),
        )
        .await;
    assert_eq!(st, 201);

    // no secret reached the audit log
    let (_, audit) = s
        .call("GET", "/v1/audit?limit=500", Some(&admin), None)
        .await;
    assert!(!audit.to_string().contains("s3cret-client-value"));
    assert!(!audit.to_string().contains(&state));
}

#[tokio::test]
async fn private_and_plain_http_providers_need_the_danger_switch() {
    let s = connections_server(false).await;
    let (a, _) = s.agent("ops", ALL).await;
    let id = a["id"].as_str().unwrap();
    let admin = s.admin_token.clone();
    for body in [
        explicit("gh"),
        json!({"name": "gh", "issuer": "https://127.0.0.1:9", "client_id": "c"}),
        json!({"name": "gh", "authorization_endpoint": "https://10.1.2.3/a", "token_endpoint": "https://10.1.2.3/t", "client_id": "c"}),
    ] {
        let (st, v) = s
            .call(
                "POST",
                &format!("/v1/agents/{id}/connections"),
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, 400, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("danger_allow_private"),
            "{v}"
        );
    }
    // a name resolving only to loopback is refused at the connection (discovery)
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/connections"),
            Some(&admin),
            Some(json!({"name": "gh", "issuer": "https://localhost:9", "client_id": "c"})),
        )
        .await;
    assert_eq!(st, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no public address"),
        "{v}"
    );
}
