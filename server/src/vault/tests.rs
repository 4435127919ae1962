//! Vault service tests over a real store and identity service.

use super::*;
use crate::identity::{IdentityService, NewAgent};
use crate::store::{keys, Tree};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    audit: Arc<Audit>,
    identity: Arc<IdentityService>,
    vault: Arc<VaultService>,
    root: Key32,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = Arc::new(Audit::open(store.clone()).unwrap());
    let identity = Arc::new(IdentityService::new(
        store.clone(),
        audit.clone(),
        "v.test".into(),
    ));
    let root = Key32::random();
    let vault = Arc::new(
        VaultService::with_root(
            store.clone(),
            audit.clone(),
            Arc::new(Metrics::new()),
            root.clone(),
        )
        .unwrap(),
    );
    identity.add_hook(Arc::new(VaultHook(vault.clone())));
    identity.bootstrap("a@v.test", "v", "v.test", None).unwrap();
    Fixture {
        _dir: dir,
        store,
        audit,
        identity,
        vault,
        root,
    }
}

async fn agent(f: &Fixture, local: &str) -> crate::identity::Actor {
    let h = f.identity.first_human().unwrap().unwrap();
    let admin = crate::identity::Actor::cli(&h.id, &h.email);
    let c = f
        .identity
        .create_agent(
            &admin,
            &NewAgent {
                local: Some(local.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.identity.authenticate(&c.token, "t").unwrap()
}

fn login(pw: &str) -> CredentialInput {
    serde_json::from_value(serde_json::json!({
        "kind": "login", "username": "bob", "password": pw,
        "totp": "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    }))
    .unwrap()
}

#[tokio::test]
async fn store_get_totp_and_versions() {
    let f = fixture();
    let a = agent(&f, "one").await;
    let (m, created) = f.vault.put(&a, "site", login("pw1")).await.unwrap();
    assert!(created);
    assert_eq!(m.version, 1);
    let (m, created) = f.vault.put(&a, "site", login("pw2")).await.unwrap();
    assert!(!created);
    assert_eq!(m.version, 2);
    let v = f.vault.get(&a, "site").unwrap();
    assert_eq!(v.password.as_deref().map(|s| s.as_str()), Some("pw2"));
    let json = serde_json::to_string(&v).unwrap();
    assert!(
        !json.contains("GEZDGNBV") && !json.contains("secret\":["),
        "{json}"
    );
    let code = f.vault.totp(&a, "site", Some(59)).unwrap();
    assert_eq!(code.code, "287082");
    assert_eq!(f.vault.list(&a).unwrap().len(), 1);
    // another agent: not found, not forbidden
    let b = agent(&f, "two").await;
    assert!(matches!(f.vault.get(&b, "site"), Err(VaultError::NotFound)));
}

#[tokio::test]
async fn aad_swap_between_agents_fails() {
    let f = fixture();
    let a = agent(&f, "a").await;
    let b = agent(&f, "b").await;
    f.vault.put(&a, "x", login("alpha")).await.unwrap();
    f.vault.put(&b, "x", login("beta")).await.unwrap();
    let (aid, bid) = (a.agent_id().unwrap(), b.agent_id().unwrap());
    // copy a's record onto b's slot
    let raw = f
        .store
        .get(Tree::VaultCredentials, &keys::join(&[aid, "x"]))
        .unwrap()
        .unwrap();
    f.store
        .put(Tree::VaultCredentials, &keys::join(&[bid, "x"]), &raw)
        .unwrap();
    assert!(matches!(f.vault.get(&b, "x"), Err(VaultError::Decrypt)));
    // and a's record under another name of a's (same agent, other credential id): still a's id, so
    // opens; but moving the payload of one credential into another credential's record fails
    f.vault.put(&a, "y", login("gamma")).await.unwrap();
    let mut y: service_record::Rec = f
        .store
        .get_record(Tree::VaultCredentials, &keys::join(&[aid, "y"]))
        .unwrap()
        .unwrap();
    let x: service_record::Rec = f
        .store
        .get_record(Tree::VaultCredentials, &keys::join(&[aid, "x"]))
        .unwrap()
        .unwrap();
    y.payload = x.payload;
    f.store
        .put_record(Tree::VaultCredentials, &keys::join(&[aid, "y"]), &y)
        .unwrap();
    assert!(matches!(f.vault.get(&a, "y"), Err(VaultError::Decrypt)));
}

/// A mirror of the stored record shape, for tampering in tests.
mod service_record {
    use super::super::crypto::Sealed;
    use serde::{Deserialize, Serialize};
    #[derive(Serialize, Deserialize)]
    pub struct Rec {
        pub meta: serde_json::Value,
        pub wrapped_dek: Sealed,
        pub payload: Sealed,
    }
}

#[tokio::test]
async fn revocation_shreds_even_for_root_key_holders() {
    let f = fixture();
    let a = agent(&f, "gone").await;
    let aid = a.agent_id().unwrap().to_string();
    f.vault.put(&a, "site", login("secretpw")).await.unwrap();
    let rec: service_record::Rec = f
        .store
        .get_record(Tree::VaultCredentials, &keys::join(&[&aid, "site"]))
        .unwrap()
        .unwrap();
    let h = f.identity.first_human().unwrap().unwrap();
    f.identity
        .revoke_agent(&crate::identity::Actor::cli(&h.id, &h.email), &aid)
        .await
        .unwrap();
    // the wrapped agent key is gone from the store
    assert!(f
        .store
        .get(Tree::VaultAgentKeys, aid.as_bytes())
        .unwrap()
        .is_none());
    // with the root key, try every wrapped key left in the store against the saved record
    for r in f.store.scan_prefix(Tree::VaultAgentKeys, &[]) {
        let (k, v) = r.unwrap();
        let owner = String::from_utf8_lossy(&k).to_string();
        let s: crypto::Sealed = crate::store::decode(&v).unwrap();
        let kek =
            crypto::unwrap(&f.root, &owner, "kek", crypto::Purpose::AgentKeyWrap, &s).unwrap();
        let id = rec.meta["id"].as_str().unwrap();
        assert!(crypto::unwrap(
            &kek,
            &aid,
            id,
            crypto::Purpose::DataKeyWrap,
            &rec.wrapped_dek
        )
        .is_err());
    }
    assert!(f.vault.identity_public_keys(&aid).unwrap().is_empty());
    assert!(f.vault.identity_sign(&aid, b"x").is_err());
    let _ = &f.audit;
}

#[tokio::test]
async fn master_rotation_rewraps_and_old_key_opens_nothing() {
    let f = fixture();
    let a = agent(&f, "r").await;
    f.vault.put(&a, "site", login("pw")).await.unwrap();
    f.vault.ensure_dkim("v.test", "lg").unwrap();
    let before = f
        .store
        .get(
            Tree::VaultCredentials,
            &keys::join(&[a.agent_id().unwrap(), "site"]),
        )
        .unwrap();
    let new = Key32::random();
    assert_eq!(rotate_master(&f.store, &f.root, &new).unwrap(), 1);
    // credentials untouched
    let after = f
        .store
        .get(
            Tree::VaultCredentials,
            &keys::join(&[a.agent_id().unwrap(), "site"]),
        )
        .unwrap();
    assert_eq!(before, after);
    assert!(matches!(
        VaultService::with_root(
            f.store.clone(),
            f.audit.clone(),
            Arc::new(Metrics::new()),
            f.root.clone()
        ),
        Err(VaultError::WrongRootKey)
    ));
    let v2 = VaultService::with_root(
        f.store.clone(),
        f.audit.clone(),
        Arc::new(Metrics::new()),
        new,
    )
    .unwrap();
    assert_eq!(v2.get(&a, "site").unwrap().password.unwrap().as_str(), "pw");
    assert_eq!(v2.dkim_signers("v.test").unwrap().len(), 2);
    assert!(v2.identity_sign(a.agent_id().unwrap(), b"m").is_ok());
}

/// A live rotation racing key creation and signing: nothing is sealed under the old key after
/// the switch nor opened with the new one before it, so every key opens afterwards with the
/// new key alone, and nothing failed meanwhile.
#[test]
fn live_rotation_racing_new_keys_loses_nothing() {
    let f = fixture();
    f.vault.ensure_dkim("v.test", "lg").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k2 = dir.path().join("k2");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (v, stop) = (f.vault.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut made = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || i < 20 {
                    let id = format!("ag-{w}-{i}");
                    v.create_agent_key(&id).unwrap();
                    v.new_identity_key(&id, None).unwrap();
                    v.identity_sign(&id, b"m").unwrap();
                    made.push(id);
                    i += 1;
                }
                made
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let (n, created, warning) = f.vault.rotate_root(&k2).unwrap();
    assert_eq!(warning, None);
    assert!(created && n > 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let new = rootkey::load_file(&k2).unwrap();
    let v2 = VaultService::with_root(
        f.store.clone(),
        f.audit.clone(),
        Arc::new(Metrics::new()),
        new,
    )
    .unwrap();
    for id in &made {
        v2.agent_key(id, false).unwrap();
        v2.identity_sign(id, b"m").unwrap();
    }
    assert_eq!(v2.dkim_signers("v.test").unwrap().len(), 2);
    assert!(matches!(
        f.vault.rotate_root(&k2),
        Err(VaultError::Invalid(_))
    ));
}

#[tokio::test]
async fn scopes_gate_and_audit() {
    let f = fixture();
    let h = f.identity.first_human().unwrap().unwrap();
    let admin = crate::identity::Actor::cli(&h.id, &h.email);
    let c = f
        .identity
        .create_agent(
            &admin,
            &NewAgent {
                local: Some("ro".into()),
                scopes: Some(vec!["vault:read".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ro = f.identity.authenticate(&c.token, "t").unwrap();
    let e = f
        .vault
        .put(&ro, "x", login("Pa55-unique-pw"))
        .await
        .unwrap_err();
    assert!(matches!(e, VaultError::Denied(_)));
    assert!(f.vault.list(&ro).unwrap().is_empty());
    let page = f
        .audit
        .query(
            &crate::audit::Filter {
                action: Some("vault.*".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert!(page
        .items
        .iter()
        .any(|e| e.action == "vault.store" && e.outcome == crate::audit::Outcome::Denied));
    assert!(page
        .items
        .iter()
        .all(|e| !e.detail.to_string().contains("Pa55-unique-pw")));
}

#[tokio::test]
async fn cached_records_never_outlive_an_update_or_delete() {
    let f = fixture();
    let a = agent(&f, "cache").await;
    f.vault.put(&a, "site", login("first")).await.unwrap();
    assert_eq!(
        f.vault.get(&a, "site").unwrap().password.unwrap().as_str(),
        "first"
    );
    f.vault.put(&a, "site", login("second")).await.unwrap();
    assert_eq!(
        f.vault.get(&a, "site").unwrap().password.unwrap().as_str(),
        "second"
    );
    f.vault.delete(&a, "site").await.unwrap();
    assert!(matches!(f.vault.get(&a, "site"), Err(VaultError::NotFound)));
}

#[tokio::test]
async fn dkim_records_publish_what_the_dns_plan_publishes() {
    let f = fixture();
    f.vault.ensure_dkim("v.test", "lg").unwrap();
    let records = f.vault.dkim_records("v.test").unwrap();
    assert_eq!(records.len(), 2);
    for r in &records {
        let plan = crate::dns::plan::DkimPublic::from(r);
        let txt = r.txt();
        assert!(
            txt.ends_with(&data_encoding::BASE64.encode(&plan.public)),
            "{txt}"
        );
        match r.algorithm {
            // SubjectPublicKeyInfo, as `openssl rsa -pubout` prints it; stored as PKCS#1.
            DkimAlgorithm::Rsa => {
                assert!(txt.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"));
                assert!(plan.public.ends_with(&r.public));
            }
            DkimAlgorithm::Ed25519 => assert_eq!(r.published_key(), r.public),
        }
    }
}

/// Issue 15 item 16: an actor authenticated before the revocation (a request in flight)
/// cannot recreate the shredded agent key, store a credential, or read anything.
#[tokio::test]
async fn stale_actor_after_shred_recreates_nothing() {
    let f = fixture();
    let a = agent(&f, "late").await;
    let aid = a.agent_id().unwrap().to_string();
    f.vault.put(&a, "site", login("pw")).await.unwrap();
    let h = f.identity.first_human().unwrap().unwrap();
    f.identity
        .revoke_agent(&crate::identity::Actor::cli(&h.id, &h.email), &aid)
        .await
        .unwrap();
    assert!(matches!(
        f.vault.put(&a, "other", login("pw2")).await,
        Err(VaultError::Shredded)
    ));
    assert!(matches!(f.vault.get(&a, "site"), Err(VaultError::Shredded)));
    assert!(matches!(f.vault.list(&a), Err(VaultError::Shredded)));
    assert!(matches!(
        f.vault.totp(&a, "site", None),
        Err(VaultError::Shredded)
    ));
    assert!(matches!(
        f.vault.create_agent_key(&aid),
        Err(VaultError::Shredded)
    ));
    assert!(f
        .store
        .get(Tree::VaultAgentKeys, aid.as_bytes())
        .unwrap()
        .is_none());
    assert_eq!(
        f.store
            .scan_prefix(Tree::VaultCredentials, &keys::prefix(&[&aid]))
            .count(),
        0
    );
}

/// Issue 15 item 8, at the service (the one door MCP's vault_totp shares with REST).
#[tokio::test]
async fn totp_at_window_depends_on_vault_write() {
    let f = fixture();
    let mut a = agent(&f, "clock").await;
    f.vault.put(&a, "site", login("pw")).await.unwrap();
    let now = crate::util::now_unix() as u64;
    a.scopes = crate::identity::ScopeSet::parse_list(&["vault:read".to_string()]).unwrap();
    assert!(f.vault.totp(&a, "site", Some(now + 60)).is_ok());
    assert!(matches!(
        f.vault.totp(&a, "site", Some(now + 61)),
        Err(VaultError::Denied(_))
    ));
    assert!(matches!(
        f.vault.totp(&a, "site", Some(59)),
        Err(VaultError::Denied(_))
    ));
    a.scopes = crate::identity::ScopeSet::all();
    assert!(f.vault.totp(&a, "site", Some(59)).is_ok());
}
