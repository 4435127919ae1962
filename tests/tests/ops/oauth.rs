//! OAuth 2.1 for MCP clients, end to end over HTTP: discovery from the 401 challenge,
//! dynamic registration, consent in the console, the code exchange with PKCE (missing or
//! wrong refused), MCP calls with the access token (bound to one agent), refresh rotation
//! with replay detection, RFC 7009 revocation, and disconnecting a client in the console.

use super::console::{first_sign_in, Browser};
use legate_tests::TestServer;
use serde_json::{json, Value};
use sha2::Digest;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn challenge_of(verifier: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(verifier.as_bytes()))
}

async fn register(s: &TestServer) -> String {
    let (st, v) = s
        .call(
            "POST",
            "/oauth/register",
            None,
            Some(
                json!({"client_name": "Test MCP client", "redirect_uris": [REDIRECT],
                        "token_endpoint_auth_method": "none"}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    v["client_id"].as_str().unwrap().to_string()
}

/// The consent of the signed-in browser for `agent` with `scopes`; returns the code.
async fn consent(
    b: &mut Browser,
    client: &str,
    agent: &str,
    scopes: &[&str],
    verifier: &str,
) -> String {
    let q = format!(
        "/console/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&code_challenge={}&code_challenge_method=S256&state=st8&scope=mail:read",
        enc(REDIRECT),
        challenge_of(verifier)
    );
    let page = b.get(&q).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Test MCP client"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{csp}"
    );
    let token = page.csrf();
    let challenge = challenge_of(verifier);
    let mut form = vec![
        ("csrf", token.as_str()),
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "st8"),
        ("agent", agent),
        ("decision", "allow"),
    ];
    for sc in scopes {
        form.push(("scopes", sc));
    }
    let p = b.post("/console/oauth/authorize", &form).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let loc = url::Url::parse(p.location()).expect("redirect");
    assert_eq!(loc.path(), "/callback");
    let pairs: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "st8");
    pairs["code"].clone()
}

async fn token(s: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/oauth/token", s.base))
        .form(form)
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

async fn exchange(s: &TestServer, client: &str, code: &str, verifier: &str) -> (u16, Value) {
    token(
        s,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// One MCP JSON-RPC call with a bearer token: (status, result or error).
async fn mcp(s: &TestServer, bearer: &str, method: &str, params: Value) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/mcp", s.base))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_mcp_client_signs_in_with_oauth_and_acts_only_as_its_agent() {
    let s = TestServer::start().await;
    // Discovery starts from the 401.
    let resp = s
        .http
        .post(format!("{}/mcp", s.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let www = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let meta_url = www
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("resource_metadata")
        .to_string();
    let meta: Value = s
        .http
        .get(&meta_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], format!("{}/mcp", s.base));
    let issuer = meta["authorization_servers"][0]
        .as_str()
        .unwrap()
        .to_string();
    let asm: Value = s
        .http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        asm["registration_endpoint"],
        format!("{}/oauth/register", s.base)
    );

    // Registration refuses unsafe redirect URIs.
    let (st, v) = s
        .call(
            "POST",
            "/oauth/register",
            None,
            Some(json!({"redirect_uris": ["http://evil.test/cb"]})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let client = register(&s).await;

    let (a, _) = s.agent("alpha", &["mail:read", "mail:send"]).await;
    let (b_agent, b_key) = s.agent("beta", &["mail:read"]).await;
    let a_id = a["id"].as_str().unwrap();
    let b_id = b_agent["id"].as_str().unwrap();
    let b_msg = s
        .deliver(
            b_id,
            legate::mailbox::Folder::Inbox,
            b"From: x@y.test\r\nTo: beta@agents.test\r\nSubject: secret of beta\r\n\r\nhi\r\n",
        )
        .await;
    s.deliver(
        a_id,
        legate::mailbox::Folder::Inbox,
        b"From: x@y.test\r\nTo: alpha@agents.test\r\nSubject: for alpha\r\n\r\nhi\r\n",
    )
    .await;

    let mut browser = first_sign_in(&s).await;
    // Not signed in: the consent page sends the browser to sign in first, and back.
    let mut anon = Browser::new(&s);
    let q = format!(
        "/console/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        enc(REDIRECT),
        challenge_of(&"v".repeat(43))
    );
    let p = anon.get(&q).await;
    assert_eq!(p.status, 303);
    assert!(
        p.location()
            .starts_with("/console/login?next=%2Fconsole%2Foauth%2Fauthorize"),
        "{}",
        p.location()
    );
    // A protocol error sends no one to the client before sign-in (with open registration
    // that would be an open redirect): the signed-out browser is sent to sign in.
    let p = anon
        .get(&q.replace("response_type=code", "response_type=token"))
        .await;
    assert_eq!(p.status, 303);
    assert!(
        p.location().starts_with("/console/login?"),
        "{}",
        p.location()
    );
    // An unregistered redirect URI is an error page, never a redirect.
    let p = browser
        .get(&q.replace("127.0.0.1%3A9", "127.0.0.1%3A10"))
        .await;
    assert_eq!(p.status, 400);
    // No PKCE: back to the client with invalid_request.
    let p = browser
        .get(&q.replace("&code_challenge_method=S256", ""))
        .await;
    assert_eq!(p.status, 303);
    assert!(
        p.location().contains("error=invalid_request"),
        "{}",
        p.location()
    );

    // PKCE missing or wrong at the token endpoint: refused.
    let verifier = "x".repeat(43);
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (st, v) = exchange(&s, &client, &code, "").await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (st, v) = exchange(&s, &client, &code, &"y".repeat(43)).await;
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );

    // The right verifier: tokens for agent alpha with mail:read only. A thief's try with
    // the code and a wrong verifier first spends nothing.
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (st, _) = exchange(&s, &client, &code, &"z".repeat(43)).await;
    assert_eq!(st, 400);
    let (st, t) = exchange(&s, &client, &code, &verifier).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "mail:read");
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();

    let (st, v) = mcp(&s, &access, "tools/list", json!({})).await;
    assert_eq!(st, 200, "{v}");
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"mail_list_messages"));
    assert!(
        !names.contains(&"mail_send"),
        "only the granted scope: {names:?}"
    );
    let (st, v) = mcp(
        &s,
        &access,
        "tools/call",
        json!({"name": "mail_list_messages", "arguments": {}}),
    )
    .await;
    assert_eq!(st, 200);
    let listed = v["result"].to_string();
    assert!(
        listed.contains("for alpha") && !listed.contains("secret of beta"),
        "{listed}"
    );
    // A token for alpha cannot read beta's message.
    let (_, v) = mcp(
        &s,
        &access,
        "tools/call",
        json!({"name": "mail_get_message", "arguments": {"id": b_msg.id}}),
    )
    .await;
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(!v.to_string().contains("secret of beta"));

    // Refresh rotates; the old refresh token replayed ends the whole grant.
    let refresh_form = |r: String| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", client.clone()),
            ("refresh_token", r),
        ]
    };
    let f = refresh_form(refresh.clone());
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (st, t2) = token(&s, &f).await;
    assert_eq!(st, 200, "{t2}");
    let access2 = t2["access_token"].as_str().unwrap().to_string();
    assert_ne!(access2, access);
    assert_eq!(mcp(&s, &access2, "tools/list", json!({})).await.0, 200);
    let (st, v) = token(&s, &f).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        mcp(&s, &access2, "tools/list", json!({})).await.0,
        401,
        "replay revokes the family"
    );
    assert_eq!(mcp(&s, &access, "tools/list", json!({})).await.0, 401);

    // A code is single-use: presented again, it is refused and what it made is revoked.
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (_, t) = exchange(&s, &client, &code, &verifier).await;
    let replayed = t["access_token"].as_str().unwrap();
    assert_eq!(mcp(&s, replayed, "tools/list", json!({})).await.0, 200);
    let (st, _) = exchange(&s, &client, &code, &verifier).await;
    assert_eq!(st, 400);
    assert_eq!(mcp(&s, replayed, "tools/list", json!({})).await.0, 401);

    // RFC 7009 revocation of an access token.
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (_, t3) = exchange(&s, &client, &code, &verifier).await;
    let access3 = t3["access_token"].as_str().unwrap();
    assert_eq!(mcp(&s, access3, "tools/list", json!({})).await.0, 200);
    let resp = s
        .http
        .post(format!("{}/oauth/revoke", s.base))
        .form(&[("token", access3), ("client_id", &client)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(mcp(&s, access3, "tools/list", json!({})).await.0, 401);

    // Disconnecting the client on the agent's console page refuses its tokens.
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (_, t4) = exchange(&s, &client, &code, &verifier).await;
    let access4 = t4["access_token"].as_str().unwrap();
    let page = browser.get(&format!("/console/agents/{a_id}")).await;
    assert!(page.body.contains("Test MCP client"), "connections listed");
    let p = browser
        .post(
            &format!("/console/agents/{a_id}/oauth/{client}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, 303);
    assert_eq!(mcp(&s, access4, "tools/list", json!({})).await.0, 401);

    // Revoking the agent ends its tokens too; API keys keep working for other agents.
    let code = consent(&mut browser, &client, a_id, &["mail:read"], &verifier).await;
    let (_, t5) = exchange(&s, &client, &code, &verifier).await;
    let access5 = t5["access_token"].as_str().unwrap();
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/agents/{a_id}"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(mcp(&s, access5, "tools/list", json!({})).await.0, 401);
    assert_eq!(mcp(&s, &b_key, "tools/list", json!({})).await.0, 200);
}
