//! Identity suite (issue 6): did:web documents, sign/verify, identity tokens checked with only
//! the published keys, rotation, sub-agents, remote resolution between two servers, and
//! revocation seen on every surface on the very next request.

use data_encoding::{BASE64, BASE64URL_NOPAD};
use ed25519_dalek::{Signature, VerifyingKey};
use legate::identity::multibase;
use legate_tests::{test_config, TestServer};
use serde_json::{json, Value};

const ALL: &[&str] = &[
    "mail:read",
    "mail:send",
    "vault:read",
    "vault:write",
    "identity:sign",
    "identity:verify",
];

/// A server whose domain is `localhost`, so its DIDs (`did:web:localhost%3A<port>:...`)
/// resolve over loopback exactly as did:web says.
async fn localhost_server(danger_http: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.server.domain = "localhost".into();
    cfg.server.hostname = "localhost".into();
    cfg.identity.danger_allow_http_did_resolution = danger_http;
    TestServer::start_with(dir, cfg).await
}

fn port(s: &TestServer) -> u16 {
    s.running.as_ref().unwrap().http_addr.unwrap().port()
}

/// The did:web rule: the document URL of a DID, over http for loopback tests.
fn did_to_url(did: &str) -> String {
    let rest = did.strip_prefix("did:web:").unwrap();
    let mut parts = rest.split(':');
    let host = parts.next().unwrap().replace("%3A", ":");
    let path: Vec<&str> = parts.collect();
    if path.is_empty() {
        format!("http://{host}/.well-known/did.json")
    } else {
        format!("http://{host}/{}/did.json", path.join("/"))
    }
}

async fn get_json(s: &TestServer, url: &str) -> (u16, String, Value) {
    let r = s.http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.text().await.unwrap();
    (
        status,
        ct,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

/// Verifies a JWT with nothing but a raw public key, independently of legate's verifier.
fn jwt_verifies(token: &str, key: &[u8; 32]) -> bool {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig: [u8; 64] = BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(key)
        .unwrap()
        .verify_strict(input.as_bytes(), &Signature::from_bytes(&sig))
        .is_ok()
}

fn jwt_part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&BASE64URL_NOPAD.decode(p.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn did_documents_follow_did_web() {
    let s = localhost_server(false).await;
    let (a, _) = s.agent("ops", ALL).await;
    let did = a["did"].as_str().unwrap();
    assert_eq!(did, format!("did:web:localhost%3A{}:agents:ops", port(&s)));
    let url = did_to_url(did);
    assert_eq!(
        url,
        format!("http://localhost:{}/agents/ops/did.json", port(&s))
    );
    let (st, ct, doc) = get_json(&s, &url).await;
    assert_eq!(st, 200);
    assert_eq!(ct, "application/did+json");
    assert_eq!(doc["id"], did, "id equals the DID the URL was derived from");
    let domain_did = format!("did:web:localhost%3A{}", port(&s));
    assert_eq!(doc["controller"], domain_did);
    assert_eq!(doc["service"][0]["serviceEndpoint"], "mailto:ops@localhost");
    let vm = &doc["verificationMethod"][0];
    assert_eq!(vm["id"], format!("{did}#key-1"));
    assert_eq!(vm["type"], "Multikey");
    let mk = vm["publicKeyMultibase"].as_str().unwrap();
    assert!(mk.starts_with("z6Mk"), "{mk}");
    let jvm = &doc["verificationMethod"][1];
    assert_eq!(jvm["type"], "JsonWebKey2020");
    let x = jvm["publicKeyJwk"]["x"].as_str().unwrap();
    assert_eq!(
        multibase::parse_ed25519_multikey(mk).unwrap().to_vec(),
        BASE64URL_NOPAD.decode(x.as_bytes()).unwrap(),
        "both methods carry the same key"
    );
    assert!(doc["assertionMethod"]
        .as_array()
        .unwrap()
        .contains(&json!(format!("{did}#key-1"))));

    // the domain's DID, at the URL its DID names
    let (st, _, d) = get_json(&s, &did_to_url(&domain_did)).await;
    assert_eq!(st, 200);
    assert_eq!(d["id"], domain_did);

    // JWKS: kid = the DID URL
    let (st, _, jwks) = get_json(&s, &format!("{}/agents/ops/jwks.json", s.base)).await;
    assert_eq!(st, 200);
    assert_eq!(jwks["keys"][0]["kid"], format!("{did}#key-1"));
    assert_eq!(jwks["keys"][0]["x"], x);

    let (st, _, e) = get_json(&s, &format!("{}/agents/nobody/did.json", s.base)).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("not_found")));
    s.stop().await;
}

#[tokio::test]
async fn sign_verify_and_tokens_check_out_with_only_the_published_keys() {
    let s = TestServer::start().await;
    let (a, key) = s.agent("signer", ALL).await;
    let did = a["did"].as_str().unwrap().to_string();
    let (_, checker) = s.agent("checker", &["identity:verify"]).await;

    // sign, and check it with the did.json key alone
    let data = b"pay 10 EUR to bob";
    let (st, signed) = s
        .call(
            "POST",
            "/v1/identity/sign",
            Some(&key),
            Some(json!({"data_b64": BASE64.encode(data)})),
        )
        .await;
    assert_eq!(st, 200, "{signed}");
    assert_eq!(signed["kid"], format!("{did}#key-1"));
    let (_, doc) = s.call("GET", "/agents/signer/did.json", None, None).await;
    let pk = multibase::parse_ed25519_multikey(
        doc["verificationMethod"][0]["publicKeyMultibase"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let sig: [u8; 64] = BASE64
        .decode(signed["signature_b64"].as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(VerifyingKey::from_bytes(&pk)
        .unwrap()
        .verify_strict(data, &Signature::from_bytes(&sig))
        .is_ok());

    // our verify agrees, and refuses a changed message
    let body = |d: &[u8]| json!({"did": did, "data_b64": BASE64.encode(d), "signature_b64": signed["signature_b64"]});
    let (st, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&checker),
            Some(body(data)),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["valid"].as_bool(), v["reason"].as_str()),
        (Some(true), Some("ok"))
    );
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&checker),
            Some(body(b"pay 99")),
        )
        .await;
    assert_eq!(v["reason"], "bad_signature");

    // a token, checked with the JWKS key alone
    let (st, t) = s
        .call(
            "POST",
            "/v1/identity/token",
            Some(&key),
            Some(json!({"audience": "https://svc.example", "ttl_seconds": 300})),
        )
        .await;
    assert_eq!(st, 200, "{t}");
    let token = t["token"].as_str().unwrap();
    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], format!("{did}#key-1"));
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], did);
    assert_eq!(claims["sub"], did);
    assert_eq!(claims["aud"], "https://svc.example");
    assert_eq!(claims["email"], "signer@agents.test");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert!(claims["jti"].is_string());
    assert_eq!(
        claims["act"],
        json!({"sub": "org:agents.test", "act": {"sub": "human:admin@agents.test"}})
    );
    let (_, jwks) = s.call("GET", "/agents/signer/jwks.json", None, None).await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let x: [u8; 32] = BASE64URL_NOPAD
        .decode(jwk["x"].as_str().unwrap().as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    assert!(jwt_verifies(token, &x));

    // our verify: valid for its audience, wrong for another
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&checker),
            Some(json!({"token": token, "audience": "https://svc.example"})),
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["claims"]["jti"], claims["jti"]);
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/verify",
            Some(&checker),
            Some(json!({"token": token, "audience": "https://evil.example"})),
        )
        .await;
    assert_eq!(v["reason"], "wrong_audience");

    // input errors and scopes
    for bad in [
        json!({"token": token, "did": did}),
        json!({"did": did, "data_b64": "!!", "signature_b64": "AA=="}),
        json!({}),
    ] {
        let (st, e) = s
            .call("POST", "/v1/identity/verify", Some(&checker), Some(bad))
            .await;
        assert_eq!(st, 422, "{e}");
    }
    let (st, e) = s
        .call(
            "POST",
            "/v1/identity/token",
            Some(&key),
            Some(json!({"audience": "x", "ttl_seconds": 3601})),
        )
        .await;
    assert_eq!(st, 422, "{e}");
    let (st, e) = s
        .call(
            "POST",
            "/v1/identity/sign",
            Some(&checker),
            Some(json!({"data_b64": "AA=="})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("identity:sign"))
    );

    // every sign, verify and token is audited
    let (_, audit) = s
        .call("GET", "/v1/audit?limit=200", Some(&s.admin_token), None)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "identity.sign").count(), 2);
    assert_eq!(
        actions.iter().filter(|a| **a == "identity.verify").count(),
        4
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "identity.token").count(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn subagents_show_the_whole_chain_everywhere() {
    let s = TestServer::start().await;
    let (p, pkey) = s.agent("lead", ALL).await;
    let pid = p["id"].as_str().unwrap();
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&pkey),
            Some(json!({"local": "helper", "scopes": ["mail:manage"]})),
        )
        .await;
    assert_eq!(st, 403, "a superset of the parent's scopes: {e}");
    let (st, kid) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&pkey),
            Some(json!({"local": "helper", "scopes": ["identity:sign", "identity:verify"]})),
        )
        .await;
    assert_eq!(st, 201, "{kid}");
    let chain = json!([
        "human:admin@agents.test",
        "org:agents.test",
        "agent:lead@agents.test",
        "agent:helper@agents.test"
    ]);
    assert_eq!(kid["chain"], chain);
    let kkey = kid["api_key"]["key"].as_str().unwrap();
    let (_, me) = s.call("GET", "/v1/whoami", Some(kkey), None).await;
    assert_eq!(me["chain"], chain);
    assert_eq!(me["parent"], p["id"]);
    let (_, t) = s
        .call(
            "POST",
            "/v1/identity/token",
            Some(kkey),
            Some(json!({"audience": "svc"})),
        )
        .await;
    let claims = jwt_part(t["token"].as_str().unwrap(), 1);
    assert_eq!(
        claims["act"],
        json!({"sub": "agent:lead@agents.test", "act": {"sub": "org:agents.test",
               "act": {"sub": "human:admin@agents.test"}}})
    );
    assert_eq!(claims["scope"], "identity:sign identity:verify");
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=identity.token",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(audit["items"][0]["chain"], chain);
    s.stop().await;
}

#[tokio::test]
async fn rotation_publishes_both_keys_then_drops_the_old() {
    let s = TestServer::start().await;
    let (a, key) = s.agent("rot", ALL).await;
    let id = a["id"].as_str().unwrap();
    let token = |aud: &'static str| {
        let s = &s;
        let key = key.clone();
        async move {
            let (_, t) = s
                .call(
                    "POST",
                    "/v1/identity/token",
                    Some(&key),
                    Some(json!({"audience": aud})),
                )
                .await;
            t["token"].as_str().unwrap().to_string()
        }
    };
    let old = token("svc").await;
    let (st, r) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/rotate-key"),
            Some(&s.admin_token),
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert!(r["kid"].as_str().unwrap().ends_with("#key-2"));
    let (_, jwks) = s.call("GET", "/agents/rot/jwks.json", None, None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    let new = token("svc").await;
    assert!(jwt_part(&new, 0)["kid"]
        .as_str()
        .unwrap()
        .ends_with("#key-2"));
    let verify = |t: String| {
        let s = &s;
        let key = key.clone();
        async move {
            let (_, v) = s
                .call(
                    "POST",
                    "/v1/identity/verify",
                    Some(&key),
                    Some(json!({"token": t})),
                )
                .await;
            v["reason"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(verify(old.clone()).await, "ok");
    assert_eq!(verify(new.clone()).await, "ok");
    // no overlap: key-2 leaves now (key-1 keeps its hour)
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/rotate-key"),
            Some(&s.admin_token),
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(verify(new).await, "unknown_key");
    assert_eq!(verify(old).await, "ok");
    // agents cannot rotate; the audit has it
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/rotate-key"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(st, 403);
    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=agent.rotate_key",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 3);
    s.stop().await;
}

#[path = "identity/card.rs"]
mod card;
#[path = "identity/connections.rs"]
mod connections;
#[path = "identity/connections_provider.rs"]
mod connections_provider;
#[path = "identity/invite_limits.rs"]
mod invite_limits;
#[path = "identity/mailsig.rs"]
mod mailsig;
#[path = "identity/owner_keys.rs"]
mod owner_keys;
#[path = "identity/reputation.rs"]
mod reputation;
#[path = "identity/surfaces.rs"]
mod surfaces;
#[path = "identity/trust.rs"]
mod trust;
#[path = "identity/webbot.rs"]
mod webbot;
