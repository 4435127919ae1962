//! Unit tests of the identity service over a real store.

use super::*;
use crate::audit::{Filter, Outcome};

fn setup() -> (tempfile::TempDir, IdentityService, Actor) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = Arc::new(Audit::open(store.clone()).unwrap());
    let id = IdentityService::new(store, audit, "agents.test".into());
    let b = id
        .bootstrap("alice@acme.com", "acme", "agents.test", None)
        .unwrap()
        .unwrap();
    let token = b.token.unwrap();
    let admin = id.authenticate(&token, "test").unwrap();
    (dir, id, admin)
}

fn new_agent(local: &str, scopes: &[&str]) -> NewAgent {
    NewAgent {
        local: Some(local.into()),
        scopes: Some(scopes.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

#[tokio::test]
async fn agent_lifecycle_and_chain() {
    let (_d, id, admin) = setup();
    let c = id
        .create_agent(&admin, &new_agent("Ops", &["mail:read"]))
        .await
        .unwrap();
    assert_eq!(c.agent.address(), "ops@agents.test");
    assert_eq!(
        c.agent.chain,
        vec!["human:alice@acme.com", "org:acme", "agent:ops@agents.test"]
    );
    let actor = id.authenticate(&c.token, "t").unwrap();
    assert!(actor.scopes.contains(Scope::MailRead));
    assert!(!actor.scopes.contains(Scope::MailSend));
    // duplicate -> conflict
    assert!(matches!(
        id.create_agent(&admin, &new_agent("ops", &[])).await,
        Err(IdentityError::Conflict(_))
    ));
    id.revoke_agent(&admin, &c.agent.id).await.unwrap();
    assert!(matches!(
        id.authenticate(&c.token, "t"),
        Err(IdentityError::Unauthorized(AuthFailure::AgentRevoked))
    ));
}

#[tokio::test]
async fn subagents_are_attenuated_and_revoked_with_parent() {
    let (_d, id, admin) = setup();
    let p = id
        .create_agent(
            &admin,
            &new_agent("parent", &["mail:read", "identity:sign"]),
        )
        .await
        .unwrap();
    let pa = id.authenticate(&p.token, "t").unwrap();
    let too_much = id
        .create_subagent(&pa, &p.agent.id, &new_agent("kid", &["mail:send"]))
        .await;
    assert!(matches!(too_much, Err(IdentityError::Denied(_))));
    let kid = id
        .create_subagent(&pa, &p.agent.id, &new_agent("kid", &["mail:read"]))
        .await
        .unwrap();
    assert_eq!(kid.agent.chain.len(), 4);
    assert_eq!(kid.agent.chain[3], "agent:kid@agents.test");
    id.revoke_agent(&admin, &p.agent.id).await.unwrap();
    assert!(id.authenticate(&kid.token, "t").is_err());
}

#[tokio::test]
async fn scopes_are_enforced_and_denials_audited() {
    let (_d, id, admin) = setup();
    let c = id
        .create_agent(&admin, &new_agent("a", &["mail:read"]))
        .await
        .unwrap();
    let actor = id.authenticate(&c.token, "t").unwrap();
    let err = actor
        .require(id.audit_log(), Scope::VaultRead, "vault.list", "")
        .unwrap_err();
    assert_eq!(err.required_scope(), Some(Scope::VaultRead));
    let page = id
        .audit_log()
        .query(
            &Filter {
                outcome: Some(Outcome::Denied),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(page.items[0].action, "vault.list");
    assert_eq!(page.items[0].detail["required_scope"], "vault:read");
    // agents cannot do admin things
    assert!(id.list_orgs(&actor).is_err());
}

#[tokio::test]
async fn keys_expire_and_revoke() {
    let (_d, id, admin) = setup();
    let c = id
        .create_agent(&admin, &new_agent("k", &["mail:read"]))
        .await
        .unwrap();
    let (key, token) = id
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
    assert!(id.authenticate(&token, "t").is_ok());
    id.revoke_key(&admin, &c.agent.id, &key.id).await.unwrap();
    assert!(matches!(
        id.authenticate(&token, "t"),
        Err(IdentityError::Unauthorized(AuthFailure::KeyRevoked))
    ));
    let bigger = NewKey {
        scopes: Some(vec!["mail:send".into()]),
        ..Default::default()
    };
    assert!(id.create_key(&admin, &c.agent.id, &bigger).await.is_err());
    assert!(matches!(
        id.authenticate("lg_nope", "t"),
        Err(IdentityError::Unauthorized(AuthFailure::Malformed))
    ));
}
