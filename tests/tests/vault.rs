//! Vault suite: credentials over HTTP, TOTP, scopes, revocation shred, root keys, rotation,
//! and the rule that secrets appear in no response, log line or byte of the data directory.

use legate_tests::{legate_bin, test_config, TestServer};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test binary, at TRACE, for the secret scan.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(sub);
        buf
    })
    .clone()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);
impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SEED_B32: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const PASSWORD: &str = "Tr0ub4dor&3-horse-battery";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn scan_dir(dir: &std::path::Path, needles: &[&[u8]]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                for n in needles {
                    if contains(&bytes, n) {
                        hits.push(p.display().to_string());
                    }
                }
            }
        }
    }
    hits
}

#[tokio::test]
async fn secrets_never_leave_the_vault() {
    let logs = captured_logs();
    let s = TestServer::start().await;
    let (_, key) = s.agent("sec", &["vault:read", "vault:write"]).await;
    let mut bodies = Vec::new();
    let put = json!({"kind": "login", "username": "bob", "password": PASSWORD, "url": "https://example.com",
                     "totp": format!("otpauth://totp/Ex:bob?secret={SEED_B32}&issuer=Ex")});
    let (st, b) = s
        .call("PUT", "/v1/vault/example", Some(&key), Some(put.clone()))
        .await;
    assert_eq!(st, 201, "{b}");
    bodies.push(b);
    let (st, b) = s
        .call("PUT", "/v1/vault/example", Some(&key), Some(put))
        .await;
    assert_eq!(st, 200);
    assert_eq!(b["version"], 2);
    bodies.push(b);
    let (st, list) = s.call("GET", "/v1/vault", Some(&key), None).await;
    assert_eq!(st, 200);
    let item = &list["items"][0];
    assert_eq!(
        (
            item["name"].as_str(),
            item["has_totp"].as_bool(),
            item["username"].as_str()
        ),
        (Some("example"), Some(true), Some("bob"))
    );
    assert!(item.get("password").is_none());
    bodies.push(list);
    let (st, got) = s.call("GET", "/v1/vault/example", Some(&key), None).await;
    assert_eq!(st, 200);
    assert_eq!(got["password"], PASSWORD);
    assert_eq!(got["totp"]["digits"], 6);
    let mut got_wo_pw = got.clone();
    got_wo_pw["password"] = json!(null);
    bodies.push(got_wo_pw);
    let (st, code) = s
        .call("POST", "/v1/vault/example/totp", Some(&key), None)
        .await;
    assert_eq!(st, 200, "{code}");
    assert_eq!(code["code"].as_str().unwrap().len(), 6);
    bodies.push(code);
    for path in ["/v1/audit?limit=100"] {
        bodies.push(s.call("GET", path, Some(&s.admin_token), None).await.1);
    }
    bodies.push(s.call("GET", "/v1/audit", Some(&key), None).await.1);
    let seed_raw = data_encoding::BASE32_NOPAD
        .decode(SEED_B32.as_bytes())
        .unwrap();
    let needles: [&[u8]; 4] = [
        SEED_B32.as_bytes(),
        &SEED_B32.to_lowercase().into_bytes(),
        &seed_raw,
        PASSWORD.as_bytes(),
    ];
    for b in &bodies {
        let text = b.to_string();
        for n in &needles {
            assert!(
                !contains(text.as_bytes(), n),
                "secret in a response body: {text}"
            );
        }
    }
    s.services().store.flush_blocking().unwrap();
    let dir = s.stop().await;
    let hits = scan_dir(dir.path(), &needles);
    assert!(hits.is_empty(), "secret bytes found in {hits:?}");
    let logs = logs.lock().unwrap().clone();
    assert!(!logs.is_empty(), "log capture is wired");
    for n in &needles {
        assert!(!contains(&logs, n), "secret in the logs");
    }
}

#[tokio::test]
async fn totp_scopes_errors_and_isolation() {
    let s = TestServer::start().await;
    let (_, rw) = s.agent("rw", &["vault:read", "vault:write"]).await;
    let (_, ro) = s.agent("ro", &["vault:read"]).await;
    let (_, none) = s.agent("nv", &["mail:read"]).await;
    let rfc = json!({"kind": "totp", "totp": {"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "digits": 8, "algorithm": "SHA1"}});
    assert_eq!(
        s.call("PUT", "/v1/vault/rfc", Some(&rw), Some(rfc)).await.0,
        201
    );
    let (st, c) = s
        .call(
            "POST",
            "/v1/vault/rfc/totp",
            Some(&rw),
            Some(json!({"at": 59})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            c["code"].as_str(),
            c["at"].as_u64(),
            c["period"].as_u64(),
            c["digits"].as_u64()
        ),
        (Some("94287082"), Some(59), Some(30), Some(8))
    );
    assert_eq!(c["seconds_remaining"], 1);
    assert!(c["next_code"].is_string());
    let (_, c) = s
        .call(
            "POST",
            "/v1/vault/rfc/totp",
            Some(&rw),
            Some(json!({"at": 1111111109})),
        )
        .await;
    assert_eq!(c["code"], "07081804");

    // scopes
    let (st, e) = s
        .call(
            "PUT",
            "/v1/vault/x",
            Some(&ro),
            Some(json!({"kind": "note", "notes": "n"})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("vault:write"))
    );
    let (st, e) = s.call("GET", "/v1/vault", Some(&none), None).await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("vault:read"))
    );
    let (st, e) = s.call("DELETE", "/v1/vault/rfc", Some(&ro), None).await;
    assert_eq!(
        (st, e["error"]["required_scope"].as_str()),
        (403, Some("vault:write"))
    );
    // another agent's credential is 404, not 403
    assert_eq!(s.call("GET", "/v1/vault/rfc", Some(&ro), None).await.0, 404);
    assert_eq!(
        s.call("POST", "/v1/vault/rfc/totp", Some(&ro), None)
            .await
            .0,
        404
    );

    // 422s that say which
    for (body, want) in [
        (
            json!({"kind": "totp", "totp": "otpauth://totp/x?secret=not*base32"}),
            "base32",
        ),
        (json!({"kind": "totp", "totp": "https://x"}), "otpauth"),
        (
            json!({"kind": "totp", "totp": "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZD&algorithm=MD5"}),
            "MD5",
        ),
        (
            json!({"kind": "totp", "totp": "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZD&digits=7"}),
            "digits",
        ),
        (
            json!({"kind": "totp", "totp": "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZD&period=500"}),
            "period",
        ),
        (json!({"kind": "login"}), "username or a password"),
        (
            json!({"kind": "login", "password": "x", "extra": 1}),
            "extra",
        ),
    ] {
        let (st, e) = s.call("PUT", "/v1/vault/bad", Some(&rw), Some(body)).await;
        assert_eq!(st, 422, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{e}"
        );
    }
    let (st, _) = s
        .call(
            "PUT",
            "/v1/vault/bad%2Fname",
            Some(&rw),
            Some(json!({"kind": "note", "notes": "n"})),
        )
        .await;
    assert_eq!(st, 422);
    let (st, _) = s
        .call(
            "POST",
            "/v1/vault/rfc/totp",
            Some(&rw),
            Some(json!({"at": "soon"})),
        )
        .await;
    assert_eq!(st, 422);
    // a credential without TOTP
    s.call(
        "PUT",
        "/v1/vault/note",
        Some(&rw),
        Some(json!({"kind": "note", "notes": "hello"})),
    )
    .await;
    assert_eq!(
        s.call("POST", "/v1/vault/note/totp", Some(&rw), None)
            .await
            .0,
        422
    );
    assert_eq!(
        s.call("DELETE", "/v1/vault/note", Some(&rw), None).await.0,
        204
    );
    assert_eq!(
        s.call("GET", "/v1/vault/note", Some(&rw), None).await.0,
        404
    );

    // every vault action is audited with the chain
    let (_, a) = s
        .call(
            "GET",
            "/v1/audit?action=vault.*&limit=100",
            Some(&s.admin_token),
            None,
        )
        .await;
    let items = a["items"].as_array().unwrap();
    for act in [
        "vault.store",
        "vault.totp",
        "vault.get",
        "vault.delete",
        "vault.list",
    ] {
        assert!(
            items.iter().any(|e| e["action"] == act),
            "{act} not audited"
        );
    }
    assert!(items
        .iter()
        .any(|e| e["outcome"] == "denied" && e["chain"][2] == "agent:ro@agents.test"));
    s.stop().await;
}

#[tokio::test]
async fn revocation_crypto_shreds() {
    let s = TestServer::start().await;
    let (a, key) = s.agent("gone", &["vault:read", "vault:write"]).await;
    let id = a["id"].as_str().unwrap();
    s.call(
        "PUT",
        "/v1/vault/site",
        Some(&key),
        Some(json!({"kind": "login", "password": PASSWORD})),
    )
    .await;
    use legate::store::Tree;
    let store = &s.services().store;
    assert!(store
        .get(Tree::VaultAgentKeys, id.as_bytes())
        .unwrap()
        .is_some());
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/v1/agents/{id}"),
            Some(&s.admin_token),
            None
        )
        .await
        .0,
        200
    );
    assert!(
        store
            .get(Tree::VaultAgentKeys, id.as_bytes())
            .unwrap()
            .is_none(),
        "agent key destroyed"
    );
    assert_eq!(
        store
            .scan_prefix(Tree::VaultCredentials, id.as_bytes())
            .count(),
        0
    );
    assert_eq!(
        s.call("GET", "/v1/vault/site", Some(&key), None).await.0,
        401
    );
    s.stop().await;
}

#[tokio::test]
async fn wrong_root_key_refuses_to_start_and_rotation_works() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let k1 = dir.path().join("k1");
    let k2 = dir.path().join("k2");
    legate::vault::create_key_file(&k1).unwrap();
    legate::vault::create_key_file(&k2).unwrap();
    let mut cfg = test_config(&data);
    cfg.vault.master_key_file = k1.display().to_string();

    let s = TestServer::start_with(tempfile::tempdir().unwrap(), cfg.clone()).await;
    let (_, key) = s.agent("rot", &["vault:read", "vault:write"]).await;
    s.call(
        "PUT",
        "/v1/vault/site",
        Some(&key),
        Some(json!({"kind": "login", "password": "pw-rot"})),
    )
    .await;
    s.stop().await;

    let mut wrong = cfg.clone();
    wrong.vault.master_key_file = k2.display().to_string();
    let err = legate::app::start(wrong.clone(), Default::default())
        .await
        .err()
        .expect("must refuse");
    assert!(
        format!("{err:#}").contains("does not open this vault"),
        "{err:#}"
    );

    // rotate with the CLI to a third key
    let cfg_file = dir.path().join("c.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[storage]\npath = \"{}\"\n[vault]\nmaster_key_file = \"{}\"\n",
            data.display(),
            k1.display()
        ),
    )
    .unwrap();
    let k3 = dir.path().join("k3");
    let out = std::process::Command::new(legate_bin())
        .arg("--config")
        .arg(&cfg_file)
        .args(["vault", "rotate-master", "--new-key-file"])
        .arg(&k3)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        legate::app::start(cfg.clone(), Default::default())
            .await
            .is_err(),
        "old key opens nothing"
    );
    let mut new = cfg.clone();
    new.vault.master_key_file = k3.display().to_string();
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), new).await;
    let (st, v) = s.call("GET", "/v1/vault/site", Some(&key), None).await;
    assert_eq!((st, v["password"].as_str()), (200, Some("pw-rot")));
    s.stop().await;
}

/// Issue 15 item 8: a `vault:read` key may move `at` only ±2 periods from now (a clock check),
/// never to any time it likes (which would precompute every future code); a `vault:write`
/// key, which could replace the seed anyway, may. Every use of `at` is audited.
#[tokio::test]
async fn totp_at_is_bounded_without_vault_write() {
    let s = TestServer::start().await;
    let (rw_agent, rw) = s.agent("tw", &["vault:read", "vault:write"]).await;
    let (st, ro) = s
        .call(
            "POST",
            &format!("/v1/agents/{}/keys", rw_agent["id"].as_str().unwrap()),
            Some(&s.admin_token),
            Some(json!({"name": "ro", "scopes": ["vault:read"]})),
        )
        .await;
    assert_eq!(st, 201, "{ro}");
    let ro = ro["key"].as_str().unwrap().to_string();
    let spec = json!({"kind": "totp", "totp": {"secret": SEED_B32, "period": 30}});
    assert_eq!(
        s.call("PUT", "/v1/vault/t", Some(&rw), Some(spec)).await.0,
        201
    );
    let now = legate::util::now_unix() as u64;
    let totp = |key: String, at: u64| {
        let s = &s;
        async move {
            s.call(
                "POST",
                "/v1/vault/t/totp",
                Some(&key),
                Some(json!({"at": at})),
            )
            .await
        }
    };
    // Within the window: a clock check, allowed.
    for at in [now, now - 60, now + 60] {
        let (st, c) = totp(ro.clone(), at).await;
        assert_eq!((st, c["at"].as_u64()), (200, Some(at)), "{c}");
    }
    // Beyond it, either way: refused for the read-only key, audited as denied.
    for at in [now + 3600, now + 86_400 * 365, now - 3600, 59] {
        let (st, e) = totp(ro.clone(), at).await;
        assert_eq!(
            (st, e["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{at}: {e}"
        );
    }
    // The key that may write the seed may ask for any time.
    let (st, c) = totp(rw.clone(), now + 86_400).await;
    assert_eq!((st, c["at"].as_u64()), (200, Some(now + 86_400)), "{c}");
    // No body: now, for either key.
    assert_eq!(
        s.call("POST", "/v1/vault/t/totp", Some(&ro), None).await.0,
        200
    );

    let (st, log) = s
        .call(
            "GET",
            "/v1/audit?action=vault.totp&limit=100",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    let denied = items.iter().filter(|e| e["outcome"] == "denied").count();
    let with_at = items
        .iter()
        .filter(|e| e["outcome"] == "ok" && e["detail"]["at_requested"] == true)
        .count();
    assert_eq!((denied, with_at), (4, 4), "{log}");
}

/// Issue 15 item 16: `vault put`s racing the agent's revocation. However the race falls, once
/// the revocation has returned the agent has no key-encryption key and no credential, every
/// vault operation of it fails, and a request authenticated just before the revocation (still
/// in flight) cannot bring the key back.
#[tokio::test]
async fn vault_put_racing_revocation_leaves_no_key() {
    let s = TestServer::start().await;
    for round in 0..3 {
        let (agent, key) = s
            .agent(&format!("race{round}"), &["vault:read", "vault:write"])
            .await;
        let id = agent["id"].as_str().unwrap().to_string();
        // A request that authenticated before the revocation and reaches the vault after it.
        let in_flight = s.services().identity.authenticate(&key, "test").unwrap();
        let mut puts = Vec::new();
        for i in 0..16 {
            let (http, base, key) = (s.http.clone(), s.base.clone(), key.clone());
            puts.push(tokio::spawn(async move {
                for j in 0..8 {
                    let _ = http
                        .put(format!("{base}/v1/vault/c{i}-{j}"))
                        .bearer_auth(&key)
                        .json(&json!({"kind": "note", "notes": "n"}))
                        .send()
                        .await;
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20 * round)).await;
        let (st, v) = s
            .call(
                "DELETE",
                &format!("/v1/agents/{id}"),
                Some(&s.admin_token),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let vault = s.services().vault.clone();
        let input: legate::vault::CredentialInput =
            serde_json::from_value(json!({"kind": "note", "notes": "late"})).unwrap();
        assert!(vault.put(&in_flight, "late", input).await.is_err());
        for p in puts {
            p.await.unwrap();
        }
        assert!(vault.list(&in_flight).is_err());
        assert!(vault.get(&in_flight, "c0-0").is_err());
        let store = &s.services().store;
        assert!(
            store
                .get(legate::store::Tree::VaultAgentKeys, id.as_bytes())
                .unwrap()
                .is_none(),
            "round {round}: a key-encryption key exists after the shred"
        );
        let prefix = legate::store::keys::prefix(&[&id]);
        assert_eq!(
            store
                .scan_prefix(legate::store::Tree::VaultCredentials, &prefix)
                .count(),
            0,
            "round {round}: credentials survived the shred"
        );
        let (st, _) = s
            .call(
                "PUT",
                "/v1/vault/after",
                Some(&key),
                Some(json!({"kind": "note", "notes": "n"})),
            )
            .await;
        // 401, or 429 once this address has failed too often: a valid key is let in even
        // then, so either proves the key is dead.
        assert!(st == 401 || st == 429, "{st}");
    }
}
