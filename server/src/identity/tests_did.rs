//! Unit tests of signing, tokens, DID documents, rotation, logins and recipients, over a real
//! store with an in-memory key custody standing in for the vault.

use super::*;
use crate::audit::Filter;
use crate::util::now_unix;
use ed25519_dalek::{Signer, SigningKey};
use std::collections::HashMap;
use std::sync::Mutex;

/// Keys in memory, made at agent creation and dropped at revocation, like the vault's.
#[derive(Default)]
struct MemCustody(
    Mutex<HashMap<String, Vec<(IdentityKey, SigningKey)>>>,
    Mutex<u32>,
);

impl MemCustody {
    fn add(&self, agent_id: &str, overlap: Option<i64>) -> IdentityKey {
        let mut m = self.0.lock().unwrap();
        let keys = m.entry(agent_id.to_string()).or_default();
        let n = if keys.is_empty() {
            1
        } else {
            let mut c = self.1.lock().unwrap();
            *c += 1;
            *c + 1
        };
        let now = now_unix();
        keys.retain(|(k, _)| k.retire_at.is_none_or(|t| t > now));
        if let Some(o) = overlap {
            for (k, _) in keys.iter_mut().filter(|(k, _)| k.retire_at.is_none()) {
                k.retire_at = Some(now + o);
            }
        }
        let sk = SigningKey::from_bytes(&crate::util::random_bytes());
        let key = IdentityKey {
            kid: format!("key-{n}"),
            public: sk.verifying_key().to_bytes(),
            created_at: now,
            retire_at: None,
        };
        keys.push((key.clone(), sk));
        key
    }
}

impl KeyCustody for MemCustody {
    fn public_keys(&self, agent_id: &str) -> Result<Vec<IdentityKey>, String> {
        let now = now_unix();
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(agent_id)
            .map(|ks| {
                ks.iter()
                    .filter(|(k, _)| k.retire_at.is_none_or(|t| t > now))
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
    fn sign(&self, agent_id: &str, data: &[u8]) -> Result<(String, [u8; 64]), String> {
        let m = self.0.lock().unwrap();
        let (k, sk) = m.get(agent_id).and_then(|v| v.last()).ok_or("shredded")?;
        Ok((k.kid.clone(), sk.sign(data).to_bytes()))
    }
    fn rotate(&self, agent_id: &str, overlap_secs: i64) -> Result<IdentityKey, String> {
        Ok(self.add(agent_id, Some(overlap_secs)))
    }
}

struct Hook(Arc<MemCustody>);
impl LifecycleHook for Hook {
    fn agent_created(&self, agent: &Agent) -> Result<(), String> {
        self.0.add(&agent.id, None);
        Ok(())
    }
    fn agent_revoked(&self, agent: &Agent) -> Result<(), String> {
        self.0 .0.lock().unwrap().remove(&agent.id);
        Ok(())
    }
}

fn setup_with(opts: IdentityOptions) -> (tempfile::TempDir, IdentityService, Actor) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = Arc::new(Audit::open(store.clone()).unwrap());
    let id = IdentityService::new(store, audit, "agents.test%3A8443".into());
    let custody = Arc::new(MemCustody::default());
    id.add_hook(Arc::new(Hook(custody.clone())));
    id.set_custody(custody);
    id.configure(opts);
    let b = id
        .bootstrap("alice@acme.com", "acme", "agents.test", None)
        .unwrap()
        .unwrap();
    let admin = id.authenticate(&b.token.unwrap(), "test").unwrap();
    (dir, id, admin)
}

fn setup() -> (tempfile::TempDir, IdentityService, Actor) {
    setup_with(IdentityOptions::default())
}

async fn agent(
    id: &IdentityService,
    admin: &Actor,
    local: &str,
    scopes: &[&str],
) -> (Agent, Actor) {
    let c = id
        .create_agent(
            admin,
            &NewAgent {
                local: Some(local.into()),
                scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actor = id.authenticate(&c.token, "t").unwrap();
    (c.agent, actor)
}

const ALL: &[&str] = &["identity:sign", "identity:verify", "mail:read", "mail:send"];

#[tokio::test]
async fn sign_then_verify_and_revocation_is_reported() {
    let (_d, id, admin) = setup();
    let (ops, a) = agent(&id, &admin, "ops", ALL).await;
    let (_, checker) = agent(&id, &admin, "checker", &["identity:verify"]).await;
    let did = id.agent_did(&ops);
    assert_eq!(did, "did:web:agents.test%3A8443:agents:ops");
    let s = id.sign(&a, b"hello").await.unwrap();
    assert_eq!(s.kid, format!("{did}#key-1"));

    let v = id
        .verify_signature(&checker, &did, b"hello", &s.signature, None)
        .await
        .unwrap();
    assert!(v.valid(), "{v:?}");
    assert_eq!(v.kid.as_deref(), Some(s.kid.as_str()));
    let v = id
        .verify_signature(&checker, &did, b"hellO", &s.signature, None)
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::BadSignature);
    let v = id
        .verify_signature(&checker, &did, b"hello", &s.signature, Some("key-9"))
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::UnknownKey);
    let v = id
        .verify_signature(&checker, &did, b"hello", &s.signature[..10], None)
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::Malformed);
    let v = id
        .verify_signature(
            &checker,
            "did:web:agents.test%3A8443:agents:nobody",
            b"x",
            &[0; 64],
            None,
        )
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::UnknownDid);
    let v = id
        .verify_signature(&checker, "did:key:z6Mk", b"x", &[0; 64], None)
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::InvalidDid);

    // scope gates: the checker cannot sign, the signer's key is fine for verify too
    assert!(matches!(
        id.sign(&checker, b"x").await,
        Err(IdentityError::Denied(_))
    ));
    assert!(matches!(
        id.sign(&admin, b"x").await,
        Err(IdentityError::Denied(_))
    ));

    id.revoke_agent(&admin, &ops.id).await.unwrap();
    let v = id
        .verify_signature(&checker, &did, b"hello", &s.signature, None)
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::Revoked);

    // every sign and verify is in the audit with the chain
    let page = id
        .audit_log()
        .query(
            &Filter {
                action: Some("identity.verify".into()),
                ..Default::default()
            },
            50,
            None,
        )
        .unwrap();
    assert_eq!(page.items.len(), 7);
    assert_eq!(page.items[0].detail["reason"], "revoked");
    let page = id
        .audit_log()
        .query(
            &Filter {
                action: Some("identity.sign".into()),
                ..Default::default()
            },
            50,
            None,
        )
        .unwrap();
    let ok: Vec<_> = page
        .items
        .iter()
        .filter(|e| e.outcome == crate::audit::Outcome::Ok)
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(
        ok[0].chain,
        vec!["human:alice@acme.com", "org:acme", "agent:ops@agents.test"]
    );
}

#[tokio::test]
async fn tokens_carry_the_chain_and_verify() {
    let (_d, id, admin) = setup();
    let (parent, pa) = agent(&id, &admin, "parent", ALL).await;
    let kid = id
        .create_subagent(
            &pa,
            &parent.id,
            &NewAgent {
                local: Some("kid".into()),
                scopes: Some(vec!["identity:sign".into(), "identity:verify".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ka = id.authenticate(&kid.token, "t").unwrap();
    let t = id
        .issue_token(&ka, "https://svc.example", Some(600))
        .await
        .unwrap();
    assert_eq!(t.expires_at - t.issued_at, 600);
    let v = id
        .verify_token(&pa, &t.token, Some("https://svc.example"))
        .await
        .unwrap();
    assert!(v.valid(), "{v:?}");
    let c = v.claims.unwrap();
    let did = id.agent_did(&kid.agent);
    assert_eq!(c["iss"], did);
    assert_eq!(c["sub"], did);
    assert_eq!(c["email"], "kid@agents.test");
    assert_eq!(c["scope"], "identity:sign identity:verify");
    assert_eq!(c["jti"], t.jti);
    assert_eq!(
        c["act"],
        serde_json::json!({"sub": "agent:parent@agents.test", "act": {"sub": "org:acme",
                           "act": {"sub": "human:alice@acme.com"}}})
    );
    // audience and tampering
    let v = id
        .verify_token(&pa, &t.token, Some("https://other"))
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::WrongAudience);
    let (hp, sig) = t.token.rsplit_once('.').unwrap();
    let mut forged_claims = c.clone();
    forged_claims["scope"] = "everything".into();
    let forged = format!(
        "{}.{}.{sig}",
        hp.split('.').next().unwrap(),
        data_encoding::BASE64URL_NOPAD.encode(forged_claims.to_string().as_bytes())
    );
    assert_eq!(
        id.verify_token(&pa, &forged, None).await.unwrap().reason,
        Reason::BadSignature
    );
    assert_eq!(
        id.verify_token(&pa, "x.y.z", None).await.unwrap().reason,
        Reason::Malformed
    );

    // limits
    assert!(matches!(
        id.issue_token(&ka, "a", Some(3601)).await,
        Err(IdentityError::Invalid(_))
    ));
    assert!(matches!(
        id.issue_token(&ka, "a", Some(0)).await,
        Err(IdentityError::Invalid(_))
    ));
    assert!(matches!(
        id.issue_token(&ka, "", None).await,
        Err(IdentityError::Invalid(_))
    ));
    let d = id.issue_token(&ka, "a", None).await.unwrap();
    assert_eq!(d.expires_at - d.issued_at, DEFAULT_TTL_SECS as i64);

    // revoking the parent: the child's token reports revoked on the next call
    id.revoke_agent(&admin, &parent.id).await.unwrap();
    let (_, checker) = agent(&id, &admin, "checker", &["identity:verify"]).await;
    let v = id.verify_token(&checker, &t.token, None).await.unwrap();
    assert_eq!(v.reason, Reason::Revoked);
    assert!(!v.valid());
    let e = id
        .audit_log()
        .query(
            &Filter {
                action: Some("identity.token".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(
        e.items.last().unwrap().chain.len(),
        4,
        "the audit names the whole chain"
    );
}

#[tokio::test]
async fn expired_tokens_are_reported_expired() {
    let (_d, id, admin) = setup();
    let (_, a) = agent(&id, &admin, "brief", ALL).await;
    let t = id.issue_token(&a, "svc", Some(1)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let v = id.verify_token(&a, &t.token, None).await.unwrap();
    assert_eq!(v.reason, Reason::Expired);
    assert!(
        v.claims.is_some(),
        "claims are shown once the signature checked out"
    );
}

#[tokio::test]
async fn rotation_overlaps_then_drops_the_old_key() {
    let (_d, id, admin) = setup();
    let (ops, a) = agent(&id, &admin, "ops", ALL).await;
    let old = id.issue_token(&a, "svc", None).await.unwrap();
    assert!(matches!(
        id.rotate_identity_key(&a, &ops.id, 60).await,
        Err(IdentityError::Denied(_))
    ));
    let k2 = id.rotate_identity_key(&admin, &ops.id, 3600).await.unwrap();
    assert_eq!(k2.kid, "key-2");
    let PublicDoc::Active(doc) = id.did_document("ops").unwrap() else {
        panic!("active")
    };
    assert_eq!(
        doc["verificationMethod"].as_array().unwrap().len(),
        4,
        "both keys published"
    );
    let new = id.issue_token(&a, "svc", None).await.unwrap();
    assert!(new.kid.ends_with("#key-2"));
    assert!(id.verify_token(&a, &old.token, None).await.unwrap().valid());
    assert!(id.verify_token(&a, &new.token, None).await.unwrap().valid());
    // overlap 0: the previous key leaves at once, and with it tokens it signed
    id.rotate_identity_key(&admin, &ops.id, 0).await.unwrap();
    let PublicDoc::Active(jwks) = id.jwks("ops").unwrap() else {
        panic!("active")
    };
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids[0].ends_with("#key-1"), "still inside its overlap");
    assert!(kids[1].ends_with("#key-3"));
    assert_eq!(
        id.verify_token(&a, &new.token, None).await.unwrap().reason,
        Reason::UnknownKey
    );
    assert!(id.verify_token(&a, &old.token, None).await.unwrap().valid());
    assert!(id.rotate_identity_key(&admin, &ops.id, -1).await.is_err());
    let audited = id
        .audit_log()
        .query(
            &Filter {
                action: Some("agent.rotate_key".into()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(audited.items.len(), 3, "two rotations and one denial");
}

#[tokio::test]
async fn documents_and_deactivation() {
    let (_d, id, admin) = setup();
    let (ops, _) = agent(&id, &admin, "ops", ALL).await;
    let PublicDoc::Active(doc) = id.did_document("OPS").unwrap() else {
        panic!("active")
    };
    assert_eq!(doc["id"], id.agent_did(&ops));
    assert_eq!(doc["controller"], "did:web:agents.test%3A8443");
    assert!(matches!(
        id.did_document("ghost"),
        Err(IdentityError::NotFound(_))
    ));
    assert!(matches!(
        id.did_document("../x"),
        Err(IdentityError::NotFound(_))
    ));
    assert_eq!(id.domain_did_document()["id"], "did:web:agents.test%3A8443");
    id.revoke_agent(&admin, &ops.id).await.unwrap();
    let PublicDoc::Deactivated(d) = id.did_document("ops").unwrap() else {
        panic!("deactivated")
    };
    assert_eq!(d["didDocumentMetadata"]["deactivated"], true);
    assert!(matches!(id.jwks("ops").unwrap(), PublicDoc::Deactivated(_)));
}

#[tokio::test]
async fn remote_resolution_can_be_switched_off() {
    let (_d, id, admin) = setup_with(IdentityOptions {
        remote_did_resolution: false,
        ..Default::default()
    });
    let (_, a) = agent(&id, &admin, "v", ALL).await;
    let v = id
        .verify_signature(
            &a,
            "did:web:elsewhere.example:agents:x",
            b"x",
            &[0; 64],
            None,
        )
        .await
        .unwrap();
    assert_eq!(v.reason, Reason::RemoteResolutionDisabled);
}

#[tokio::test]
async fn logins_and_recipients_follow_revocation() {
    let (_d, id, admin) = setup();
    let c = id
        .create_agent(
            &admin,
            &NewAgent {
                local: Some("mail".into()),
                scopes: Some(vec!["mail:read".into(), "mail:send".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (other, _) = agent(&id, &admin, "other", &["mail:read"]).await;
    let (rk, read_only) = id
        .create_key(
            &admin,
            &c.agent.id,
            &NewKey {
                scopes: Some(vec!["mail:read".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let _ = rk;
    assert!(id
        .login("Mail@Agents.Test", &c.token, Scope::MailSend, "p")
        .is_ok());
    assert!(id
        .login("mail@agents.test", &read_only, Scope::MailRead, "p")
        .is_ok());
    assert!(matches!(
        id.login("mail@agents.test", &read_only, Scope::MailSend, "p"),
        Err(IdentityError::Denied(Denied::MissingScope(Scope::MailSend)))
    ));
    assert!(matches!(
        id.login("other@agents.test", &c.token, Scope::MailRead, "p"),
        Err(IdentityError::Unauthorized(AuthFailure::Unknown))
    ));
    assert!(id
        .login("mail@agents.test", "lg_wrong", Scope::MailRead, "p")
        .is_err());

    let accept = RcptDecision::Accept {
        agent_id: c.agent.id.clone(),
        address: "mail@agents.test".into(),
    };
    assert_eq!(id.accepts_mail_for("mail@agents.test").unwrap(), accept);
    assert_eq!(
        id.accepts_mail_for("MAIL+news@Agents.Test").unwrap(),
        accept
    );
    assert_eq!(
        id.accepts_mail_for("nobody@agents.test").unwrap(),
        RcptDecision::UnknownUser
    );
    assert_eq!(
        id.accepts_mail_for("x@elsewhere.example").unwrap(),
        RcptDecision::NotLocal
    );
    assert_eq!(
        id.accepts_mail_for("no-at-sign").unwrap(),
        RcptDecision::Invalid
    );
    assert_eq!(
        id.accepts_mail_for("\"q\"@agents.test").unwrap(),
        RcptDecision::UnknownUser
    );

    id.revoke_agent(&admin, &c.agent.id).await.unwrap();
    assert!(matches!(
        id.login("mail@agents.test", &c.token, Scope::MailSend, "p"),
        Err(IdentityError::Unauthorized(AuthFailure::AgentRevoked))
    ));
    assert_eq!(
        id.accepts_mail_for("mail+x@agents.test").unwrap(),
        RcptDecision::Revoked
    );
    assert!(matches!(
        id.accepts_mail_for("other@agents.test").unwrap(),
        RcptDecision::Accept { .. }
    ));
    let _ = other;
}
