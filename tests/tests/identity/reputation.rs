//! Reputation (issue 24 §6): the score follows the documented formula from recorded history,
//! and the public attestation is an operator-signed EdDSA JWT checkable with the domain's
//! published keys alone, rate-limited.

use super::*;

#[tokio::test]
async fn reputation_scores_history_and_the_operator_attests_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.identity.reputation_jwt_per_minute = 4;
    let s = TestServer::start_with(dir, cfg).await;
    let (a, key) = s.agent("rep", &["identity:verify"]).await;
    let id = a["id"].as_str().unwrap().to_string();
    let did = a["did"].as_str().unwrap().to_string();
    let (_, other) = s.agent("nosy", &["identity:verify"]).await;

    let rep = |k: String| {
        let s = &s;
        let id = id.clone();
        async move {
            s.call(
                "GET",
                &format!("/v1/agents/{id}/reputation"),
                Some(&k),
                None,
            )
            .await
        }
    };
    let (st, r) = rep(s.admin_token.clone()).await;
    assert_eq!(st, 200, "{r}");
    // a new agent with no history: 0 age + 0 volume + 15 delivery + 5 dmarc + 30 conduct
    assert_eq!(r["score"], 50, "{r}");
    assert_eq!(r["window"]["days"], 30);
    assert_eq!(r["did"], did);
    // three requests outside its scopes: 1 point each off conduct
    for _ in 0..3 {
        let (st, _) = s
            .call(
                "POST",
                "/v1/identity/sign",
                Some(&key),
                Some(json!({"data_b64": "aGk="})),
            )
            .await;
        assert_eq!(st, 403);
    }
    let (st, r) = rep(key.clone()).await;
    assert_eq!(st, 200, "the agent reads its own: {r}");
    assert_eq!(r["factors"]["conduct"]["denied_requests"], 3);
    assert_eq!(r["score"], 47, "{r}");
    let (st, _) = rep(other.clone()).await;
    assert_eq!(st, 403, "another agent may not");

    // the public attestation: signed by the operator, checked with /.well-known/jwks.json
    let resp = s
        .http
        .get(format!("{}/agents/rep/reputation.jwt", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/jwt");
    let token = resp.text().await.unwrap();
    let header = jwt_part(&token, 0);
    let claims = jwt_part(&token, 1);
    let domain_did = did.split(":agents:").next().unwrap().to_string();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(claims["iss"], domain_did);
    assert_eq!(claims["sub"], did);
    assert_eq!(claims["score"], 47);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    let (_, jwks) = s.call("GET", "/.well-known/jwks.json", None, None).await;
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], header["kid"]);
    let x: [u8; 32] = BASE64URL_NOPAD
        .decode(jwk["x"].as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(jwt_verifies(&token, &x));
    let (_, ddoc) = s.call("GET", "/.well-known/did.json", None, None).await;
    assert_eq!(ddoc["verificationMethod"][0]["id"], header["kid"]);
    assert_eq!(ddoc["verificationMethod"][0]["publicKeyJwk"]["x"], jwk["x"]);
    // a changed score no longer verifies
    let mut forged = claims.clone();
    forged["score"] = json!(100);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        BASE64URL_NOPAD.encode(forged.to_string().as_bytes()),
        parts[2]
    );
    assert!(!jwt_verifies(&forged, &x));
    // not an agent key: the agent's own keys do not verify it
    let (_, ajwks) = s.call("GET", "/agents/rep/jwks.json", None, None).await;
    assert_ne!(ajwks["keys"][0]["x"], jwk["x"]);

    // revoked: 0; the public route is rate-limited
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{id}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (_, r) = rep(s.admin_token.clone()).await;
    assert_eq!(r["score"], 0, "{r}");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = s
            .http
            .get(format!("{}/agents/rep/reputation.jwt", s.base))
            .send()
            .await
            .unwrap();
        statuses.push((
            r.status().as_u16(),
            r.headers().get("retry-after").is_some(),
        ));
    }
    assert!(statuses.contains(&(429, true)), "{statuses:?}");
    let (st, _) = s
        .call("GET", "/agents/ghost/reputation.jwt", None, None)
        .await;
    assert!(st == 404 || st == 429, "{st}");
    s.stop().await;
}
