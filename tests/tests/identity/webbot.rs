//! Web Bot Auth (issue 25 §3): RFC 9421 request signatures made by legate check out with the
//! served key directory alone; the verify route refuses tampering, expiry and revoked agents;
//! hostile input is a 400 with a JSON error.

use super::*;
use sha2::{Digest, Sha256};

/// RFC 7638 thumbprint of an Ed25519 JWK, computed here independently of legate.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()))
}

fn key_of(x: &str) -> VerifyingKey {
    let raw: [u8; 32] = BASE64URL_NOPAD
        .decode(x.as_bytes())
        .unwrap()
        .try_into()
        .unwrap();
    VerifyingKey::from_bytes(&raw).unwrap()
}

/// `label=(...)...` -> the parameters text after `label=`.
fn params_of(input: &str) -> &str {
    input.split_once('=').unwrap().1
}

fn sig_bytes(sig: &str) -> Signature {
    let b64 = sig.split_once('=').unwrap().1.trim_matches(':');
    let raw: [u8; 64] = BASE64.decode(b64.as_bytes()).unwrap().try_into().unwrap();
    Signature::from_bytes(&raw)
}

async fn sign(s: &TestServer, key: &str, body: Value) -> (u16, Value) {
    s.call("POST", "/v1/identity/http-signature", Some(key), Some(body))
        .await
}

#[tokio::test]
async fn signed_requests_verify_against_the_served_directory() {
    let s = TestServer::start().await;
    let (a, key) = s.agent("crawler", ALL).await;
    let did = a["did"].as_str().unwrap().to_string();
    let (_, checker) = s.agent("site", &["identity:verify"]).await;
    let url = "https://shop.example/products?page=2";
    let (st, r) = sign(
        &s,
        &key,
        json!({"method": "GET", "url": url, "headers": {"Accept": "text/html"}}),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    let h = &r["headers"];
    let input = h["Signature-Input"].as_str().unwrap();
    let agent = h["Signature-Agent"].as_str().unwrap();
    assert!(
        input.starts_with(r#"sig1=("@authority" "signature-agent";key="sig1");created="#),
        "{input}"
    );
    assert!(
        input.contains(r#";alg="ed25519""#) && input.ends_with(r#";tag="web-bot-auth""#),
        "{input}"
    );
    assert!(
        agent.starts_with("sig1=\"https://")
            && agent.ends_with("/agents/crawler/.well-known/http-message-signatures-directory\""),
        "{agent}"
    );
    let created = r["created"].as_i64().unwrap();
    assert_eq!(r["expires"].as_i64().unwrap() - created, 300);

    // the agent's directory: a JWKS whose key thumbprint is the keyid, itself signed
    // the directory signs over its own authority (did host), whatever Host a client sends
    let authority = format!("agents.test:{}", s.base.rsplit(':').next().unwrap());
    let resp = s
        .http
        .get(format!(
            "{}/agents/crawler/.well-known/http-message-signatures-directory",
            s.base
        ))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hd = resp.headers().clone();
    assert_eq!(
        hd["content-type"],
        "application/http-message-signatures-directory+json"
    );
    let dir: Value = resp.json().await.unwrap();
    let x = dir["keys"][0]["x"].as_str().unwrap().to_string();
    let keyid = thumbprint(&x);
    assert_eq!(r["keyid"], keyid);
    assert!(input.contains(&format!("keyid=\"{keyid}\"")));
    let d_input = hd["signature-input"].to_str().unwrap();
    assert!(
        d_input.contains("tag=\"http-message-signatures-directory\"") && d_input.contains(&keyid),
        "{d_input}"
    );
    let d_base = format!(
        "\"@authority\";req: {authority}\n\"@signature-params\": {}",
        params_of(d_input)
    );
    key_of(&x)
        .verify_strict(
            d_base.as_bytes(),
            &sig_bytes(hd["signature"].to_str().unwrap()),
        )
        .expect("the directory response signature verifies with the key it lists");

    // the request signature, checked by hand from the RFC 9421 signature base
    let member = agent.split_once('=').unwrap().1;
    let base = format!(
        "\"@authority\": shop.example\n\"signature-agent\";key=\"sig1\": {member}\n\"@signature-params\": {}",
        params_of(input)
    );
    assert_eq!(r["signature_base"], base);
    key_of(&x)
        .verify_strict(
            base.as_bytes(),
            &sig_bytes(h["Signature"].as_str().unwrap()),
        )
        .expect("signature verifies with the directory key");

    // the verify route, as a receiving service would call it
    let received =
        |headers: Value, url: &str| json!({"method": "GET", "url": url, "headers": headers});
    let good = json!({"Accept": "text/html", "Signature-Input": input,
                      "Signature": h["Signature"], "Signature-Agent": agent});
    let (st, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(received(good.clone(), url)),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["claims"]["did"], did);
    // The public chain names the human by id, never by email.
    let public = v["claims"]["chain"].as_array().unwrap();
    assert!(
        public[0].as_str().unwrap().starts_with("human:hu_"),
        "{public:?}"
    );
    assert_eq!(public[1..], a["chain"].as_array().unwrap()[1..]);
    let email = a["chain"][0].as_str().unwrap().trim_start_matches("human:");
    assert!(!v.to_string().contains(email), "{v}");
    // another authority, or another Signature-Agent: the signature no longer matches
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(received(
                good.clone(),
                "https://evil.example/products?page=2",
            )),
        )
        .await;
    assert_eq!(v["reason"], "bad_signature", "{v}");
    let mut tampered = good.clone();
    tampered["Signature-Input"] = json!(input.replace("created=", "created=1"));
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(received(tampered, url)),
        )
        .await;
    assert_eq!(v["valid"], false, "{v}");
    let mut stripped = good.clone();
    stripped["Signature-Input"] = json!(input.replace(r#" "signature-agent";key="sig1""#, ""));
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(received(stripped, url)),
        )
        .await;
    assert_eq!(
        v["reason"], "malformed",
        "Signature-Agent present but not covered: {v}"
    );

    // a covered header, changed in transit
    let (_, r2) = sign(
        &s,
        &key,
        json!({"method": "POST", "url": url, "headers": {"Content-Type": "application/json"},
               "components": ["@method", "@authority", "@path", "@query", "content-type", "signature-agent;key=\"sig1\""],
               "expires_in": 1}),
    )
    .await;
    let h2 = &r2["headers"];
    let req2 = |ct: &str| {
        json!({"method": "POST", "url": url, "headers": {
        "Content-Type": ct, "Signature-Input": h2["Signature-Input"],
        "Signature": h2["Signature"], "Signature-Agent": h2["Signature-Agent"]}})
    };
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(req2("application/json")),
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(req2("text/plain")),
        )
        .await;
    assert_eq!(v["reason"], "bad_signature", "{v}");
    // ... and once expired
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(req2("application/json")),
        )
        .await;
    assert_eq!(v["reason"], "expired", "{v}");

    // the org directory lists the agent's key; revocation removes it at once
    let org = |s: &TestServer| {
        let url = format!("{}/.well-known/http-message-signatures-directory", s.base);
        let http = s.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let kids = |d: &Value| -> Vec<String> {
        d["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(kids(&org(&s).await).contains(&keyid));
    // The org directory is built once and served again while nothing changes; a new
    // agent's key and a rotated key are listed at once all the same.
    let before = kids(&org(&s).await).len();
    s.agent("fresh", ALL).await;
    assert_eq!(kids(&org(&s).await).len(), before + 1, "a new agent's key");
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/agents/{}/rotate-key", a["id"].as_str().unwrap()),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let listed = kids(&org(&s).await);
    assert_eq!(listed.len(), before + 2, "a rotated key: {listed:?}");
    assert!(
        listed.contains(&keyid),
        "the old key stays through the overlap"
    );
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{}", a["id"].as_str().unwrap()),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(!kids(&org(&s).await).contains(&keyid));
    let (st, _) = s
        .call(
            "GET",
            "/agents/crawler/.well-known/http-message-signatures-directory",
            None,
            None,
        )
        .await;
    assert_eq!(st, 410);
    let (_, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&checker),
            Some(received(good, url)),
        )
        .await;
    assert_eq!(v["reason"], "revoked", "{v}");
    let (st, _) = sign(&s, &key, json!({"method": "GET", "url": url})).await;
    assert_eq!(st, 401, "a revoked agent's key signs nothing");

    let (_, audit) = s
        .call(
            "GET",
            "/v1/audit?action=identity.http_signature",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn hostile_signature_requests_are_400_with_a_json_error() {
    let s = TestServer::start().await;
    let (_, key) = s.agent("bot", ALL).await;
    let (_, reader) = s.agent("reader", &["mail:read"]).await;
    let url = "https://a.example/";
    let big = "x".repeat(9000);
    for bad in [
        json!({"method": "GET", "url": url, "headers": {"X-A": "1\r\nInjected: yes"}}),
        json!({"method": "GET", "url": url, "headers": {"X-A": "1\nb"}}),
        json!({"method": "GET", "url": url, "headers": {"Bad Name": "v"}}),
        json!({"method": "GET", "url": url, "headers": {"X-A": big}}),
        json!({"method": "GET", "url": url, "headers": {"X-A": 5}}),
        json!({"method": "GET", "url": url, "headers": {"Signature": "sig1=:AA==:"}}),
        json!({"method": "GET", "url": url, "components": ["@status"]}),
        json!({"method": "GET", "url": url, "components": ["x-not-sent"]}),
        json!({"method": "GET", "url": url, "components": ["@path", "@path"]}),
        json!({"method": "GET", "url": url, "components": []}),
        json!({"method": "GET", "url": url, "expires_in": 0}),
        json!({"method": "GET", "url": url, "expires_in": 999999}),
        json!({"method": "G T", "url": url}),
        json!({"method": "GET", "url": "ftp://a.example/"}),
        json!({"method": "GET", "url": "/relative"}),
        json!({"method": "GET"}),
        json!({"method": "GET", "url": url, "surprise": 1}),
    ] {
        let (st, e) = sign(&s, &key, bad.clone()).await;
        assert_eq!(st, 400, "{bad} -> {e}");
        assert!(e["error"]["code"].is_string(), "{e}");
    }
    let (st, e) = sign(&s, &reader, json!({"method": "GET", "url": url})).await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("identity:sign"))
    );
    let (st, e) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&reader),
            Some(json!({"method": "GET", "url": url, "headers": {}})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("identity:verify"))
    );
    // unparsable signature headers are a verdict, not an error
    let (st, v) = s
        .call(
            "POST",
            "/v1/identity/http-signature/verify",
            Some(&key),
            Some(json!({"method": "GET", "url": url, "headers": {
                  "Signature-Input": "sig1=(\"@authority\"", "Signature": "sig1=:AA==:"}})),
        )
        .await;
    assert_eq!((st, v["reason"].as_str()), (200, Some("malformed")), "{v}");
    s.stop().await;
}
