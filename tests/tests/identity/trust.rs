//! Issue 15 ("trust hardening"), identity items: sub-agent authority, audit filing and DIDs
//! across orgs, admin tokens, role addresses.

use super::*;

async fn subagent(s: &TestServer, parent: &str, key: &str, local: &str) -> (String, String) {
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{parent}/subagents"),
            Some(key),
            Some(json!({"local": local, "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["api_key"]["key"].as_str().unwrap().to_string(),
    )
}

/// Item 13: revoking a sub-agent takes the authority that creates one (admin, or the
/// parent's key holding identity:sign), not any key of the parent; a sub-agent can never
/// revoke or change its parent or a sibling.
#[tokio::test]
async fn subagent_revocation_needs_creation_authority() {
    let s = TestServer::start().await;
    let (boss, full) = s.agent("boss", ALL).await;
    let bid = boss["id"].as_str().unwrap().to_string();
    let (st, weak) = s
        .call(
            "POST",
            &format!("/v1/agents/{bid}/keys"),
            Some(&s.admin_token),
            Some(json!({"name": "reader", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{weak}");
    let weak = weak["key"].as_str().unwrap().to_string();
    let (k1, k1key) = subagent(&s, &bid, &full, "kid-one").await;
    let (k2, k2key) = subagent(&s, &bid, &full, "kid-two").await;

    let del = |id: String, key: String| {
        let s = &s;
        async move {
            s.call("DELETE", &format!("/v1/agents/{id}"), Some(&key), None)
                .await
        }
    };
    // The parent's key without identity:sign.
    let (st, e) = del(k1.clone(), weak.clone()).await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("identity:sign")),
        "{e}"
    );
    // A sibling, and the child against its parent.
    assert_eq!(del(k1.clone(), k2key.clone()).await.0, 403);
    assert_eq!(del(bid.clone(), k1key.clone()).await.0, 403);
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/agents/{bid}"),
            Some(&k1key),
            Some(json!({"name": "pwned"})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/agents/{k2}"),
            Some(&k1key),
            Some(json!({"scopes": []})),
        )
        .await;
    assert_eq!(st, 403);
    // Nothing was revoked by the refused attempts.
    for (id, key) in [(&k1, &k1key), (&k2, &k2key)] {
        let (st, me) = s.call("GET", "/v1/whoami", Some(key), None).await;
        assert_eq!((st, me["id"].as_str()), (200, Some(id.as_str())));
    }
    // The parent's identity:sign key may.
    let (st, r) = del(k1.clone(), full.clone()).await;
    assert_eq!((st, r["revoked"].clone()), (200, json!([k1])), "{r}");
    let (st, log) = s
        .call(
            "GET",
            "/v1/audit?action=agent.revoke&outcome=denied",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(log["items"].as_array().unwrap().len(), 3, "{log}");
    s.stop().await;
}
