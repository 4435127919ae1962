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

/// A server started the way Helm and CI start it: with `LEGATE_BOOTSTRAP_ADMIN_TOKEN`.
async fn server_with_bootstrap_token(token: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(dir.path());
    let running = legate::app::start(
        cfg,
        legate::app::StartOptions {
            bootstrap_token: Some(token.to_string()),
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    TestServer {
        running: Some(running),
        dns: None,
        base,
        admin_token: token.to_string(),
        dir,
        http: reqwest::Client::new(),
    }
}

async fn whoami_status(s: &TestServer, token: &str) -> (u16, String) {
    let (st, v) = s.call("GET", "/v1/whoami", Some(token), None).await;
    (st, v["error"]["code"].as_str().unwrap_or("").to_string())
}

/// Item 10: admin tokens are listed (never their secrets), created with a name and expiry,
/// revoked; the bootstrap token stops working once another admin token exists; the last
/// working admin token cannot be revoked; every change is audited.
#[tokio::test]
async fn admin_tokens_rotate_and_revoke() {
    let boot = legate::identity::apikey::generate().to_string();
    let s = server_with_bootstrap_token(&boot).await;
    let (st, list) = s.call("GET", "/v1/admin/tokens", Some(&boot), None).await;
    assert_eq!(st, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(
        (&items[0]["bootstrap"], &items[0]["active"]),
        (&json!(true), &json!(true))
    );
    let boot_id = items[0]["id"].as_str().unwrap().to_string();
    // The only admin token: refused.
    let (st, e) = s
        .call(
            "DELETE",
            &format!("/v1/admin/tokens/{boot_id}"),
            Some(&boot),
            None,
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{e}"
    );

    // Rotation: a named token; the bootstrap token is dead from the next request on.
    let (st, t1) = s
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(&boot),
            Some(json!({"name": "ops laptop", "expires_in": 86400})),
        )
        .await;
    assert_eq!(st, 201, "{t1}");
    assert_eq!(t1["name"], "ops laptop");
    assert!(t1["expires_at"].is_string(), "{t1}");
    let t1_id = t1["id"].as_str().unwrap().to_string();
    let t1 = t1["key"].as_str().unwrap().to_string();
    assert_eq!(whoami_status(&s, &t1).await.0, 200);
    assert_eq!(
        whoami_status(&s, &boot).await,
        (401, "key_superseded".into())
    );
    // Even after the new token is revoked, the bootstrap token stays dead.
    let (st, short) = s
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(&t1),
            Some(json!({"name": "short", "expires_in": 1})),
        )
        .await;
    assert_eq!(st, 201);
    let short = short["key"].as_str().unwrap().to_string();
    let (st, t2) = s
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(&t1),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(st, 201);
    let t2 = t2["key"].as_str().unwrap().to_string();

    // The list shows every token, no secret and no hash.
    let resp = s
        .http
        .get(format!("{}/v1/admin/tokens", s.base))
        .bearer_auth(&t2)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    for secret in [&boot, &t1, &t2, &short] {
        assert!(
            !text.contains(secret.as_str()),
            "a token in the list: {text}"
        );
    }
    assert!(!text.contains("\"hash\""), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 4, "{list}");
    let boot_item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == boot_id.as_str())
        .unwrap();
    assert_eq!(boot_item["active"], false);

    // Revocation; then t2 is the last working token (short expires, boot is superseded).
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/admin/tokens/{t1_id}"),
            Some(&t2),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(whoami_status(&s, &t1).await, (401, "key_revoked".into()));
    assert_eq!(
        whoami_status(&s, &boot).await,
        (401, "key_superseded".into())
    );
    // Expiry is enforced at use (a sleep past the one-second lifetime, not a timing check).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(whoami_status(&s, &short).await, (401, "key_expired".into()));
    let (_, me) = s.call("GET", "/v1/whoami", Some(&t2), None).await;
    let t2_id = me["key_id"].as_str().unwrap().to_string();
    let (st, e) = s
        .call(
            "DELETE",
            &format!("/v1/admin/tokens/{t2_id}"),
            Some(&t2),
            None,
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{e}"
    );
    assert_eq!(whoami_status(&s, &t2).await.0, 200);
    // Agents cannot touch admin tokens.
    let (st, a) = s
        .call(
            "POST",
            "/v1/agents",
            Some(&t2),
            Some(json!({"local": "nosy"})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let agent_key = a["api_key"]["key"].as_str().unwrap().to_string();
    assert_eq!(
        s.call("GET", "/v1/admin/tokens", Some(&agent_key), None)
            .await
            .0,
        403
    );

    let (_, log) = s
        .call(
            "GET",
            "/v1/audit?action=admin_token.&limit=50",
            Some(&t2),
            None,
        )
        .await;
    let actions: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let count = |a: &str, o: &str| actions.iter().filter(|x| x.0 == a && x.1 == o).count();
    assert_eq!(count("admin_token.create", "ok"), 3, "{actions:?}");
    assert_eq!(count("admin_token.revoke", "ok"), 1, "{actions:?}");
    assert_eq!(count("admin_token.revoke", "denied"), 2, "{actions:?}");
    s.stop().await;
}

/// Item 10: a bootstrap token the operator keeps (lists) survives the creation of others.
#[tokio::test]
async fn kept_bootstrap_token_keeps_working() {
    let boot = legate::identity::apikey::generate().to_string();
    let s = server_with_bootstrap_token(&boot).await;
    let (_, list) = s.call("GET", "/v1/admin/tokens", Some(&boot), None).await;
    let boot_id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (st, k) = s
        .call(
            "PATCH",
            &format!("/v1/admin/tokens/{boot_id}"),
            Some(&boot),
            Some(json!({"keep": true})),
        )
        .await;
    assert_eq!((st, &k["bootstrap"]), (200, &json!(false)), "{k}");
    let (st, _) = s
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(&boot),
            Some(json!({"name": "second"})),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(whoami_status(&s, &boot).await.0, 200);
    s.stop().await;
}

/// Item 14: agents of two orgs with the same local part get different addresses, DIDs and DID
/// documents, and a signature by one never verifies as the other.
#[tokio::test]
async fn same_local_part_in_two_orgs_has_two_identities() {
    let s = TestServer::start().await;
    let (st, org) = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&s.admin_token),
            Some(json!({"name": "bee", "domain": "b.test"})),
        )
        .await;
    assert_eq!(st, 201, "{org}");
    let (a, _) = s.agent("ops", ALL).await;
    let (st, b) = s
        .call(
            "POST",
            "/v1/agents",
            Some(&s.admin_token),
            Some(json!({"address": "ops@b.test"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let bkey = b["api_key"]["key"].as_str().unwrap().to_string();
    assert_eq!(a["address"], "ops@agents.test");
    assert_eq!(b["address"], "ops@b.test");
    let (da, db) = (a["did"].as_str().unwrap(), b["did"].as_str().unwrap());
    assert_ne!(da, db);
    let (_, me) = s.call("GET", "/v1/whoami", Some(&bkey), None).await;
    assert_eq!(me["did"], db);

    // Each DID's document is its own agent's.
    for (did, mail) in [(da, "mailto:ops@agents.test"), (db, "mailto:ops@b.test")] {
        let path = did_to_url(did);
        let rest = path.strip_prefix("http://").unwrap();
        let path = &rest[rest.find('/').unwrap()..];
        let (st, doc) = s.call("GET", path, None, None).await;
        assert_eq!((st, doc["id"].as_str()), (200, Some(did)), "{path}: {doc}");
        assert!(doc.to_string().contains(mail), "{doc}");
    }
    // The short form never reaches the other org's agent.
    let (st, _) = s.call("GET", "/agents/ops/did.json", None, None).await;
    assert_eq!(st, 200);
    let (_, b_doc) = s
        .call("GET", "/orgs/b.test/agents/ops/did.json", None, None)
        .await;
    let (_, a_doc) = s.call("GET", "/agents/ops/did.json", None, None).await;
    assert_ne!(
        a_doc["verificationMethod"][0]["publicKeyMultibase"],
        b_doc["verificationMethod"][0]["publicKeyMultibase"]
    );

    // A signature by ops@b.test verifies under its DID only.
    let (_, checker) = s.agent("checker", &["identity:verify"]).await;
    let (st, signed) = s
        .call(
            "POST",
            "/v1/identity/sign",
            Some(&bkey),
            Some(json!({"data_b64": BASE64.encode(b"hello")})),
        )
        .await;
    assert_eq!(st, 200, "{signed}");
    assert!(signed["kid"].as_str().unwrap().starts_with(db), "{signed}");
    for (did, valid) in [(db, true), (da, false)] {
        let (st, v) = s
            .call(
                "POST",
                "/v1/identity/verify",
                Some(&checker),
                Some(json!({"did": did, "data_b64": BASE64.encode(b"hello"),
                            "signature_b64": signed["signature_b64"]})),
            )
            .await;
        assert_eq!((st, v["valid"].as_bool()), (200, Some(valid)), "{did}: {v}");
    }
    s.stop().await;
}

/// Item 14: audit entries are filed under an agent by its real id, never because a caller
/// chose a target string that looks like one (a credential name, an id in a refused request).
#[tokio::test]
async fn audit_entries_are_filed_by_real_id() {
    let s = TestServer::start().await;
    let (victim, vkey) = s.agent("victim", ALL).await;
    let vid = victim["id"].as_str().unwrap().to_string();
    let (mallory, mkey) = s.agent("mallory", ALL).await;
    let mid = mallory["id"].as_str().unwrap().to_string();
    let (st, _) = s
        .call(
            "PUT",
            &format!("/v1/vault/{vid}"),
            Some(&mkey),
            Some(json!({"kind": "note", "notes": "n"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .call("GET", &format!("/v1/agents/{vid}"), Some(&mkey), None)
        .await;
    assert_eq!(st, 403);
    let (st, _) = s
        .call("DELETE", &format!("/v1/agents/{vid}"), Some(&mkey), None)
        .await;
    assert_eq!(st, 403);

    let mallory_in = |log: &Value| {
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"]["id"] == mid.as_str())
            .count()
    };
    // The victim's own view, and the admin's view filtered by the victim.
    let (st, own) = s
        .call("GET", "/v1/audit?limit=200", Some(&vkey), None)
        .await;
    assert_eq!(st, 200, "{own}");
    assert_eq!(mallory_in(&own), 0, "{own}");
    let (_, by_agent) = s
        .call(
            "GET",
            &format!("/v1/audit?agent={vid}&limit=200"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(mallory_in(&by_agent), 0, "{by_agent}");
    // What was done to the victim is still filed under it.
    let actions: Vec<&str> = by_agent["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"agent.create"), "{by_agent}");
    // And Mallory's entries are under Mallory.
    let (_, by_mallory) = s
        .call(
            "GET",
            &format!("/v1/audit?agent={mid}&limit=200"),
            Some(&s.admin_token),
            None,
        )
        .await;
    assert!(mallory_in(&by_mallory) >= 3, "{by_mallory}");
    s.stop().await;
}

/// Item 12: role addresses are for admins only. A parent agent cannot give a sub-agent
/// postmaster, abuse, no-reply (in any spelling) or a configured reserved name; an admin can.
#[tokio::test]
async fn role_addresses_are_reserved_for_admins() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.identity.reserved_locals = vec!["billing".into()];
    let s = TestServer::start_with(dir, cfg).await;
    let (p, pkey) = s.agent("lead", ALL).await;
    let pid = p["id"].as_str().unwrap().to_string();
    for local in [
        "postmaster",
        "Abuse",
        "no-reply",
        "no.reply",
        "NoReply",
        "mailer-daemon",
        "dmarc-reports",
        "tls_reports",
        "hostmaster",
        "webmaster",
        "security",
        "admin",
        "root",
        "billing",
        "Bill.ing",
    ] {
        let (st, e) = s
            .call(
                "POST",
                &format!("/v1/agents/{pid}/subagents"),
                Some(&pkey),
                Some(json!({"local": local, "scopes": ["mail:read"]})),
            )
            .await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{local}: {e}"
        );
    }
    // An ordinary name is fine; an admin may create a role sub-agent.
    subagent(&s, &pid, &pkey, "helper").await;
    let (st, e) = s
        .call(
            "POST",
            &format!("/v1/agents/{pid}/subagents"),
            Some(&s.admin_token),
            Some(json!({"local": "security", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    s.stop().await;
}

/// Item 12: postmaster@ and abuse@ of every hosted domain, and a bare <postmaster>, are
/// accepted and land in the operator mailbox agent, made when the first such mail arrives.
#[tokio::test]
async fn postmaster_and_abuse_always_deliver() {
    let dns = legate::mailauth::StaticDns::new();
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    let s = TestServer::start_smtp(dns).await;
    let (st, org) = s
        .call(
            "POST",
            "/v1/orgs",
            Some(&s.admin_token),
            Some(json!({"name": "bee", "domain": "b.test"})),
        )
        .await;
    assert_eq!(st, 201, "{org}");
    let rcpts = [
        "postmaster",
        "PostMaster@Agents.Test",
        "abuse@agents.test",
        "postmaster@b.test",
        "abuse+report@b.test",
    ];
    for (i, to) in rcpts.iter().enumerate() {
        let (mut c, _) = legate_tests::SmtpClient::connect(s.smtp_addr()).await;
        c.cmd("EHLO client.sender.test").await;
        let msg = format!(
            "From: Reporter <r@sender.test>\r\nTo: {to}\r\nSubject: report {i}\r\n\
             Message-ID: <pm{i}@sender.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n"
        );
        let r = c.send_mail("r@sender.test", &[to], &msg).await;
        assert!(r.starts_with("250"), "{to}: {r}");
        c.cmd("QUIT").await;
    }
    // Other unknown role-less names are still unknown.
    let (mut c, _) = legate_tests::SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO client.sender.test").await;
    c.cmd("MAIL FROM:<r@sender.test>").await;
    assert!(c.cmd("RCPT TO:<nobody@b.test>").await.starts_with("550"));
    c.cmd("QUIT").await;

    let (st, pm) = s
        .call(
            "GET",
            "/v1/agents/postmaster@agents.test",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "the operator mailbox was made on first need: {pm}");
    let pm_id = pm["id"].as_str().unwrap();
    let (st, k) = s
        .call(
            "POST",
            &format!("/v1/agents/{pm_id}/keys"),
            Some(&s.admin_token),
            Some(json!({"name": "ops", "scopes": ["mail:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    let pm_key = k["key"].as_str().unwrap().to_string();

    let (st, list) = s
        .call("GET", "/v1/messages?limit=50", Some(&pm_key), None)
        .await;
    assert_eq!(st, 200, "{list}");
    let mut subjects: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect();
    subjects.sort();
    let want: Vec<String> = (0..rcpts.len()).map(|i| format!("report {i}")).collect();
    assert_eq!(subjects, want, "{list}");
    s.stop().await;
}

/// Item 10, command line: `legate admin token create|list|revoke` on the data directory.
#[tokio::test]
async fn cli_admin_token_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let v = legate_tests::cli_init(&data, "cli.test");
    let cfg = v["config"].as_str().unwrap().to_string();
    let first = v["admin_token"].as_str().unwrap().to_string();
    let run = |args: &[&str]| legate_tests::cli(&cfg, args);
    let o = run(&[
        "admin",
        "token",
        "create",
        "--name",
        "laptop",
        "--expires-in",
        "3600",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let created: Value = serde_json::from_slice(&o.stdout).unwrap();
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("lg_"));
    assert_eq!(created["name"], "laptop");
    let o = run(&["admin", "token", "list"]);
    assert!(o.status.success());
    let listing = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(listing.contains("laptop") && !listing.contains(&secret) && !listing.contains(&first));
    let first_id = listing
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["name"] == "bootstrap")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = run(&["admin", "token", "revoke", &first_id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The last working token: refused.
    let o = run(&["admin", "token", "revoke", created["id"].as_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("last"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Item 10 (review): changing `LEGATE_BOOTSTRAP_ADMIN_TOKEN` is how an operator rotates it,
/// so after a restart with the new value the old one no longer works, and the change is
/// audited.
#[tokio::test]
async fn a_changed_bootstrap_token_revokes_the_old_one() {
    let old = legate::identity::apikey::generate().to_string();
    let mut s = server_with_bootstrap_token(&old).await;
    assert_eq!(whoami_status(&s, &old).await.0, 200);
    let running = s.running.take().expect("running");
    let cfg = running.services.config.clone();
    running.stop().await.expect("stop");
    let new = legate::identity::apikey::generate().to_string();
    let running = legate::app::start(
        cfg,
        legate::app::StartOptions {
            bootstrap_token: Some(new.clone()),
        },
    )
    .await
    .expect("restart");
    s.base = format!("http://{}", running.http_addr.expect("http"));
    s.running = Some(running);
    assert_eq!(whoami_status(&s, &new).await.0, 200);
    assert_eq!(
        whoami_status(&s, &old).await.0,
        401,
        "the old token is revoked"
    );
    let (st, log) = s
        .call(
            "GET",
            "/v1/audit?action=admin_token.revoke",
            Some(&new),
            None,
        )
        .await;
    assert_eq!(st, 200, "{log}");
    assert_eq!(log["items"].as_array().map(Vec::len), Some(1), "{log}");
    s.stop().await;
}
