//! Foundation suite: principals, keys, scopes, delegation, audit, API errors, restart, CLI.

use legate_tests::{legate_bin, test_config, TestServer};
use serde_json::json;

#[tokio::test]
async fn orgs_agents_keys_and_whoami() {
    let s = TestServer::start().await;
    let admin = s.admin_token.clone();
    let (st, org) = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&admin),
            Some(json!({"name": "beta", "domain": "Beta.TEST"})),
        )
        .await;
    assert_eq!(st, 201, "{org}");
    assert_eq!(org["domain"], "beta.test");
    let (st, _) = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&admin),
            Some(json!({"name": "dup", "domain": "beta.test"})),
        )
        .await;
    assert_eq!(st, 409);

    let (agent, key) = s.agent("ops", &["mail:read", "mail:send"]).await;
    assert_eq!(agent["address"], "ops@agents.test");
    assert!(key.starts_with("lg_"));
    assert_eq!(
        agent["api_key"]["scopes"],
        json!(["mail:read", "mail:send"])
    );
    assert!(agent["did"]
        .as_str()
        .unwrap()
        .starts_with("did:web:agents.test%3A"));

    // duplicate address, any case
    let (st, e) = s
        .call(
            "POST",
            "/v1/agents",
            Some(&admin),
            Some(json!({"address": "OPS@agents.test"})),
        )
        .await;
    assert_eq!(st, 409, "{e}");
    // bad address
    let (st, e) = s
        .call(
            "POST",
            "/v1/agents",
            Some(&admin),
            Some(json!({"local": "a b"})),
        )
        .await;
    assert_eq!(st, 422);
    assert_eq!(e["error"]["code"], "invalid_request");
    // agent in the second org by address
    let (st, b) = s
        .call(
            "POST",
            "/v1/agents",
            Some(&admin),
            Some(json!({"address": "bot@beta.test"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        b["chain"],
        json!(["human:admin@agents.test", "org:beta", "agent:bot@beta.test"])
    );

    let (st, me) = s.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(st, 200);
    assert_eq!(me["address"], "ops@agents.test");
    assert_eq!(me["scopes"], json!(["mail:read", "mail:send"]));
    assert_eq!(
        me["chain"],
        json!([
            "human:admin@agents.test",
            "org:agents.test",
            "agent:ops@agents.test"
        ])
    );
    assert_eq!(me["did"], agent["did"]);

    // a second key with fewer scopes
    let id = agent["id"].as_str().unwrap();
    let (st, k2) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/keys"),
            Some(&admin),
            Some(json!({"name": "ro", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{k2}");
    let (_, me2) = s.call("GET", "/v1/whoami", k2["key"].as_str(), None).await;
    assert_eq!(me2["scopes"], json!(["mail:read"]));
    let (st, keys) = s
        .call("GET", &format!("/v1/agents/{id}/keys"), Some(&admin), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(keys["items"].as_array().unwrap().len(), 2);
    assert!(
        !keys.to_string().contains("hash"),
        "key hashes must not be listed"
    );

    // list with cursor
    let (_, p1) = s
        .call("GET", "/v1/agents?limit=1", Some(&admin), None)
        .await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 1);
    let c = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .call(
            "GET",
            &format!("/v1/agents?limit=10&cursor={c}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
    s.stop().await;
}

#[tokio::test]
async fn unauthorized_for_every_bad_key() {
    let s = TestServer::start().await;
    let admin = s.admin_token.clone();
    let (agent, key) = s.agent("k", &["mail:read"]).await;
    let id = agent["id"].as_str().unwrap().to_string();

    let (st, e) = s.call("GET", "/v1/whoami", None, None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("missing_credentials"))
    );
    let (st, e) = s.call("GET", "/v1/whoami", Some("Basic xyz"), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("malformed_credentials"))
    );
    let unknown = format!("lg_{}", "A".repeat(52));
    let (st, e) = s.call("GET", "/v1/whoami", Some(&unknown), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("invalid_credentials"))
    );

    // expired: a key living one second
    let (_, k) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/keys"),
            Some(&admin),
            Some(json!({"expires_in": 1})),
        )
        .await;
    let short = k["key"].as_str().unwrap().to_string();
    assert_eq!(s.call("GET", "/v1/whoami", Some(&short), None).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (st, e) = s.call("GET", "/v1/whoami", Some(&short), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("key_expired"))
    );

    // revoked key
    let (_, k) = s
        .call(
            "POST",
            &format!("/v1/agents/{id}/keys"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    let (kid, kk) = (k["id"].as_str().unwrap(), k["key"].as_str().unwrap());
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/v1/agents/{id}/keys/{kid}"),
            Some(&admin),
            None
        )
        .await
        .0,
        200
    );
    let (st, e) = s.call("GET", "/v1/whoami", Some(kk), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("key_revoked"))
    );

    // revoked agent: the very next request
    assert_eq!(s.call("GET", "/v1/whoami", Some(&key), None).await.0, 200);
    let (st, r) = s
        .call("DELETE", &format!("/v1/agents/{id}"), Some(&admin), None)
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, e) = s.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("agent_revoked"))
    );
    let (_, a) = s
        .call("GET", &format!("/v1/agents/{id}"), Some(&admin), None)
        .await;
    assert_eq!(a["status"], "revoked");
    // X-Legate-Api-Key works like Bearer
    let resp = s
        .http
        .get(format!("{}/v1/whoami", s.base))
        .header("X-Legate-Api-Key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test]
async fn scopes_attenuation_and_forbidden() {
    let s = TestServer::start().await;
    let admin = s.admin_token.clone();
    let (parent, pkey) = s.agent("parent", &["mail:read", "identity:sign"]).await;
    let pid = parent["id"].as_str().unwrap();
    let (_, nosign) = s.agent("plain", &["mail:read"]).await;

    // agents cannot use admin routes
    let (st, e) = s.call("GET", "/v1/agents", Some(&pkey), None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (403, Some("admin_only")));
    // missing scope names it
    let (_, plain) = s.call("GET", "/v1/whoami", Some(&nosign), None).await;
    let plain_id = plain["id"].as_str().unwrap();
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/agents/{plain_id}/subagents"),
            Some(&nosign),
            Some(json!({"local": "x"})),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["error"]["required_scope"], "identity:sign");

    // a sub-agent cannot exceed its parent
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&pkey),
            Some(json!({"local": "kid", "scopes": ["mail:send"]})),
        )
        .await;
    assert_eq!(st, 403, "{e}");
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&admin),
            Some(json!({"local": "kid", "scopes": ["vault:read"]})),
        )
        .await;
    assert_eq!(st, 403, "admin too is bound by attenuation: {e}");
    let (st, kid) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&pkey),
            Some(json!({"local": "kid", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{kid}");
    assert_eq!(kid["chain"].as_array().unwrap().len(), 4);
    let kid_key = kid["api_key"]["key"].as_str().unwrap();
    let (_, me) = s.call("GET", "/v1/whoami", Some(kid_key), None).await;
    assert_eq!(me["chain"][3], "agent:kid@agents.test");
    assert_eq!(me["parent"], parent["id"]);

    // narrowing the parent narrows the child on the next request
    let (st, _) = s
        .call(
            "PATCH",
            &format!("/v1/agents/{pid}"),
            Some(&admin),
            Some(json!({"scopes": ["identity:sign"]})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, me) = s.call("GET", "/v1/whoami", Some(kid_key), None).await;
    assert_eq!(me["scopes"], json!([]));
    // revoking the parent revokes the child
    assert_eq!(
        s.call("DELETE", &format!("/v1/agents/{pid}"), Some(&admin), None)
            .await
            .0,
        200
    );
    assert_eq!(
        s.call("GET", "/v1/whoami", Some(kid_key), None).await.0,
        401
    );
    s.stop().await;
}

#[tokio::test]
async fn audit_records_allowed_and_denied_and_filters() {
    let s = TestServer::start().await;
    let admin = s.admin_token.clone();
    let (a, key) = s.agent("aud", &["mail:read"]).await;
    let id = a["id"].as_str().unwrap();
    s.call("GET", "/v1/whoami", Some(&key), None).await;
    s.call("GET", "/v1/agents", Some(&key), None).await; // denied
    s.call("GET", "/v1/whoami", Some("lg_garbage"), None).await; // denied, anonymous

    let (st, all) = s
        .call("GET", "/v1/audit?limit=100", Some(&admin), None)
        .await;
    assert_eq!(st, 200);
    let actions: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "admin.bootstrap",
        "agent.create",
        "identity.whoami",
        "agent.list",
        "auth.denied",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let (_, denied) = s
        .call("GET", "/v1/audit?outcome=denied", Some(&admin), None)
        .await;
    let d = denied["items"].as_array().unwrap();
    assert!(d.iter().all(|e| e["outcome"] == "denied"));
    assert!(d.iter().any(|e| e["action"] == "agent.list"
        && e["actor"]["id"] == id
        && e["chain"][2] == "agent:aud@agents.test"));

    // an agent sees only its own entries, even when asking for everything
    let (st, own) = s.call("GET", "/v1/audit?limit=100", Some(&key), None).await;
    assert_eq!(st, 200);
    let own = own["items"].as_array().unwrap();
    assert!(!own.is_empty());
    assert!(own
        .iter()
        .all(|e| e["actor"]["id"] == id || e["target"] == id));

    // filter by agent (address accepted), action, time, with a cursor
    let (_, f) = s
        .call(
            "GET",
            "/v1/audit?agent=aud@agents.test&action=identity.whoami",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(f["items"].as_array().unwrap().len(), 1);
    let (_, f) = s
        .call(
            "GET",
            "/v1/audit?since=2999-01-01T00:00:00Z",
            Some(&admin),
            None,
        )
        .await;
    assert!(f["items"].as_array().unwrap().is_empty());
    let (_, p) = s.call("GET", "/v1/audit?limit=2", Some(&admin), None).await;
    let c = p["next_cursor"].as_str().unwrap();
    let (_, p2) = s
        .call(
            "GET",
            &format!("/v1/audit?limit=2&cursor={c}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(p2["items"][0]["seq"].as_u64().unwrap() < p["items"][1]["seq"].as_u64().unwrap());
    let (st, _) = s
        .call("GET", "/v1/audit?outcome=maybe", Some(&admin), None)
        .await;
    assert_eq!(st, 400);
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_never_500() {
    let s = TestServer::start().await;
    let admin = s.admin_token.clone();
    let url = format!("{}/v1/agents", s.base);
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            s.http
                .post(&url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
        ),
        (
            s.http
                .post(&url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(r#"{"local": 5}"#),
            422,
        ),
        (
            s.http
                .post(&url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(r#"{"local": "a", "bogus": 1}"#),
            422,
        ),
        (
            s.http
                .post(&url)
                .bearer_auth(&admin)
                .body(r#"{"local": "a"}"#),
            415,
        ),
        (
            s.http
                .post(&url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(vec![b' '; 40 * 1024 * 1024]),
            413,
        ),
        (s.http.get(format!("{}/v1/nothing/here", s.base)), 404),
        (s.http.put(format!("{}/v1/whoami", s.base)), 405),
        (
            s.http
                .get(format!("{}/v1/audit?limit=abc", s.base))
                .bearer_auth(&admin),
            400,
        ),
        (
            s.http
                .get(format!("{}/v1/agents/%FF%FE", s.base))
                .bearer_auth(&admin),
            400,
        ),
        (
            s.http
                .post(&url)
                .bearer_auth(&admin)
                .json(&json!({"local": "x", "scopes": ["mail:write"]})),
            422,
        ),
    ];
    for (i, (req, want)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        let st = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        assert_eq!(st, want, "case {i}: {body}");
        assert!(
            body["error"]["code"].is_string(),
            "case {i} has no JSON error: {body}"
        );
    }
    // operational endpoints
    assert_eq!(s.call("GET", "/healthz", None, None).await.0, 200);
    assert_eq!(s.call("GET", "/readyz", None, None).await.0, 200);
    let (st, doc) = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(st, 200);
    assert!(doc["paths"]["/v1/agents/{id}/keys"].is_object());
    let m = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("legate_api_requests_total"), "{m}");
    s.stop().await;
}

#[tokio::test]
async fn data_survives_restart_and_tamper_is_named() {
    let s = TestServer::start().await;
    let (a, key) = s.agent("keep", &["mail:read"]).await;
    let s = s.restart().await;
    let (st, me) = s.call("GET", "/v1/whoami", Some(&key), None).await;
    assert_eq!(st, 200);
    assert_eq!(me["id"], a["id"]);
    assert_eq!(
        s.call("GET", "/v1/agents", Some(&s.admin_token), None)
            .await
            .0,
        200
    );

    let audit = &s.services().audit;
    assert_eq!(audit.verify().unwrap().first_broken, None);
    // change one entry's bytes through the store
    use legate::store::{keys, Tree};
    let store = &s.services().store;
    let k = keys::u64_key(2);
    let mut raw = store.get(Tree::Audit, &k).unwrap().unwrap();
    let pos = raw
        .windows(6)
        .position(|w| w == b"create")
        .expect("an action to alter");
    raw[pos] = b'C';
    store.put(Tree::Audit, &k, &raw).unwrap();
    let r = audit.verify().unwrap();
    assert_eq!(r.first_broken, Some(2), "{r:?}");
    s.stop().await;
}

#[tokio::test]
async fn cli_init_agent_and_audit_verify() {
    let bin = legate_bin();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let v = legate_tests::cli_init(&data, "cli.test");
    assert!(v["admin_token"].as_str().unwrap().starts_with("lg_"));
    // The DNS records to publish first: both DKIM selectors, and where the full plan is.
    let dkim = v["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 2, "{v}");
    assert!(dkim.iter().all(|r| r["name"]
        .as_str()
        .unwrap()
        .ends_with("._domainkey.cli.test")
        && r["value"].as_str().unwrap().starts_with("v=DKIM1;")));
    assert!(v["dns_plan_command"]
        .as_str()
        .unwrap()
        .ends_with("dns plan"));
    assert!(
        v["dns_plan"]
            .as_str()
            .unwrap()
            .contains("_domainkey.cli.test"),
        "{v}"
    );
    assert!(v["certificate"]
        .as_str()
        .unwrap()
        .starts_with("self-signed"));
    assert!(data.join("tls-cert.pem").exists());
    let cfg = v["config"].as_str().unwrap().to_string();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(v["master_key"].as_str().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // refuses to overwrite
    let again = std::process::Command::new(&bin)
        .args(["init", "--domain", "cli.test", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    // No terminal and no --domain: an error naming the flag, not a prompt.
    let o = std::process::Command::new(&bin)
        .args(["init", "--data"])
        .arg(dir.path().join("nodomain"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--domain"));

    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["agent", "create", "ops", "--scopes", "mail:read,vault:read"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let agent: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(agent["address"], "ops@cli.test");
    let o = run(&["agent", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ops@cli.test"));
    let o = run(&["key", "create", "ops@cli.test", "--scopes", "mail:read"]);
    assert!(o.status.success());
    let o = run(&["key", "create", "ops@cli.test", "--scopes", "mail:send"]);
    assert!(!o.status.success(), "a key cannot exceed its agent");
    let o = run(&["agent", "show", "nobody@cli.test"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
    // DKIM: two active selectors from init; rotate adds a pair and retires the old one,
    // which stays published until removed; an active selector cannot be removed.
    let keys = |o: std::process::Output| -> Vec<serde_json::Value> {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let before = keys(run(&["dkim", "records", "--json"]));
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.iter().all(|k| k["active"] == true));
    let after = keys(run(&["dkim", "rotate", "--json"]));
    assert_eq!(after.len(), 4);
    let active: Vec<&str> = after
        .iter()
        .filter(|k| k["active"] == true)
        .map(|k| k["selector"].as_str().unwrap())
        .collect();
    assert_eq!(active.len(), 2);
    assert!(before
        .iter()
        .all(|k| !active.contains(&k["selector"].as_str().unwrap())));
    let o = run(&["dkim", "remove", active[0]]);
    assert!(!o.status.success(), "an active selector stays");
    let old = before[0]["selector"].as_str().unwrap();
    assert!(run(&["dkim", "remove", old]).status.success());
    assert_eq!(keys(run(&["dkim", "records", "--json"])).len(), 3);
    let o = run(&["agent", "revoke", "ops@cli.test"]);
    assert!(o.status.success());
    let o = run(&["audit", "verify"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok"));
    let o = run(&["audit", "tail", "-n", "3"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("agent.revoke"));

    // tamper through the store, then the CLI names the entry
    {
        let c = legate::config::load_file(std::path::Path::new(&cfg)).unwrap();
        let store = legate::store::Store::open(&c.storage.path).unwrap();
        use legate::store::Tree;
        let k = legate::audit::page_key_of(&store, 3).unwrap().unwrap();
        let mut raw = store.get(Tree::Audit, &k).unwrap().unwrap();
        // bootstrap (1), agent.create (2), key.create (3)
        let pos = raw
            .windows(10)
            .position(|w| w == b"key.create")
            .expect("entry 3 is key.create");
        raw[pos] = b'A';
        store.put(Tree::Audit, &k, &raw).unwrap();
        store.flush_blocking().unwrap();
    }
    let o = run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("entry 3"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // a bad config names every wrong key
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[listen]\nsmtp = 25\nhttp = \"x\"\n[server]\ncolour = 1\n",
    )
    .unwrap();
    let o = std::process::Command::new(&bin)
        .arg("--config")
        .arg(&bad)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for p in ["listen.smtp", "listen.http", "server.colour"] {
        assert!(err.contains(p), "{p} not in {err}");
    }
}

#[tokio::test]
async fn test_config_has_no_fixed_ports() {
    let dir = tempfile::tempdir().unwrap();
    let c = test_config(dir.path());
    assert!(c.listen.http.ends_with(":0"));
}

#[path = "foundation/dns.rs"]
mod dns;

#[path = "foundation/fuzz.rs"]
mod fuzz;
#[path = "foundation/hardening.rs"]
mod hardening;

#[path = "foundation/badinput.rs"]
mod badinput;
