//! Humans, orgs and the first admin.

use super::error::IdentityError;
use super::model::{ApiKey, Human, KeyOwner, Org};
use super::{address, apikey, Actor, IdentityService, ScopeSet};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::store::{keys, Tree, TxFail};
use crate::util::{new_id, now_unix};
use zeroize::Zeroizing;

/// What `bootstrap` made, for the caller to print once.
pub struct Bootstrap {
    pub human: Human,
    pub org: Org,
    /// The admin token, when one was generated (not when the operator supplied it).
    pub token: Option<Zeroizing<String>>,
}

impl IdentityService {
    /// On an empty database: the first human, their org for `domain`, and an admin key —
    /// `token` if the operator supplied one (`LEGATE_BOOTSTRAP_ADMIN_TOKEN`), else a new one.
    /// On a populated database it only makes sure a supplied token is registered, so a Helm
    /// release can keep its token in a Secret across restarts.
    pub fn bootstrap(
        &self,
        email: &str,
        org_name: &str,
        domain: &str,
        token: Option<&str>,
    ) -> Result<Option<Bootstrap>, IdentityError> {
        if let Some(t) = token {
            if !apikey::well_formed(t) {
                return Err(IdentityError::Invalid(
                    "LEGATE_BOOTSTRAP_ADMIN_TOKEN is not an lg_ key (lg_ + base32 of 32 bytes)"
                        .into(),
                ));
            }
        }
        // The first admin: a co-owner (a non-admin human, issue 25) never takes the
        // environment's admin token.
        if let Some(human) = self.first_human()? {
            if let Some(t) = token {
                let known = self
                    .store
                    .get(Tree::ApiKeyHash, &apikey::hash(t))?
                    .is_some();
                // Once the operator has admin tokens of their own, the environment's token is
                // not (re-)registered: it would only be superseded at once.
                if !known && !self.has_listed_admin_token()? {
                    self.replace_env_admin_key(&human, t)?;
                } else if !known {
                    tracing::warn!("LEGATE_BOOTSTRAP_ADMIN_TOKEN ignored: admin tokens exist (see `legate admin token`)");
                }
            }
            return Ok(None);
        }
        let domain = address::normalize_domain(domain).map_err(IdentityError::Invalid)?;
        let now = now_unix();
        let human = Human {
            id: new_id("hu"),
            email: email.to_ascii_lowercase(),
            name: email.to_string(),
            created_at: now,
            admin: true,
        };
        let org = Org {
            id: new_id("org"),
            name: org_name.to_string(),
            domain: domain.clone(),
            created_by: human.id.clone(),
            created_at: now,
        };
        self.store.transact::<_, IdentityError>(
            &[
                Tree::Meta,
                Tree::Humans,
                Tree::HumanEmail,
                Tree::Orgs,
                Tree::OrgDomain,
            ],
            |tx| {
                tx.put(Tree::Meta, super::agents::DEFAULT_ORG, org.id.as_bytes())?;
                tx.put_record(Tree::Humans, human.id.as_bytes(), &human)?;
                tx.put(
                    Tree::HumanEmail,
                    human.email.as_bytes(),
                    human.id.as_bytes(),
                )?;
                tx.put_record(Tree::Orgs, org.id.as_bytes(), &org)?;
                tx.put(Tree::OrgDomain, domain.as_bytes(), org.id.as_bytes())?;
                Ok(())
            },
        )?;
        let generated = match token {
            Some(t) => {
                self.insert_admin_key(&human, t, "bootstrap", true)?;
                None
            }
            None => {
                let t = apikey::generate();
                self.insert_admin_key(&human, &t, "bootstrap", false)?;
                Some(t)
            }
        };
        self.audit.append(NewEntry {
            actor: ActorRef::system(),
            chain: vec![],
            action: "admin.bootstrap".into(),
            target: human.id.clone(),
            outcome: Outcome::Ok,
            detail: serde_json::json!({"email": human.email, "org": org.id, "domain": domain}),
        })?;
        self.audit.sync_blocking();
        self.store.flush_blocking()?;
        Ok(Some(Bootstrap {
            human,
            org,
            token: generated,
        }))
    }

    fn insert_admin_key(
        &self,
        human: &Human,
        token: &str,
        name: &str,
        from_env: bool,
    ) -> Result<(), IdentityError> {
        let mut key = ApiKey::issue(
            KeyOwner::Human(human.id.clone()),
            name.into(),
            ScopeSet::all(),
            token,
            None,
        );
        key.bootstrap = from_env;
        self.put_key(&key)
    }

    /// A changed `LEGATE_BOOTSTRAP_ADMIN_TOKEN`: the new token is registered and every
    /// earlier one from the environment is revoked in the same transaction. Changing the
    /// secret is how an operator rotates it, so the old value must stop working, not linger
    /// as a second admin token nobody lists.
    fn replace_env_admin_key(&self, human: &Human, token: &str) -> Result<(), IdentityError> {
        let now = now_unix();
        let mut key = ApiKey::issue(
            KeyOwner::Human(human.id.clone()),
            "bootstrap".into(),
            ScopeSet::all(),
            token,
            None,
        );
        key.bootstrap = true;
        let new_path = keys::join(&[key.owner.id(), &key.id]);
        let prefix = keys::prefix(&[&human.id]);
        let mut old = Vec::new();
        for r in self.store.scan_prefix(Tree::ApiKeys, &prefix) {
            let (k, v) = r?;
            let existing: ApiKey = crate::store::decode(&v)?;
            if existing.bootstrap && existing.revoked_at.is_none() {
                old.push(k);
            }
        }
        let revoked =
            self.store
                .transact::<_, IdentityError>(&[Tree::ApiKeys, Tree::ApiKeyHash], |tx| {
                    let mut revoked = Vec::new();
                    for p in &old {
                        if let Some(mut k) = tx.get_record::<ApiKey>(Tree::ApiKeys, p)? {
                            if k.revoked_at.is_none() {
                                k.revoked_at = Some(now);
                                tx.put_record(Tree::ApiKeys, p, &k)?;
                                revoked.push(k.id);
                            }
                        }
                    }
                    tx.put_record(Tree::ApiKeys, &new_path, &key)?;
                    tx.put(Tree::ApiKeyHash, &key.hash, &new_path)?;
                    Ok(revoked)
                })?;
        if !revoked.is_empty() {
            self.invalidate_auth();
            tracing::warn!(
                revoked = revoked.len(),
                "LEGATE_BOOTSTRAP_ADMIN_TOKEN changed: the previous bootstrap token is revoked"
            );
            for id in revoked {
                self.audit.append(NewEntry {
                    actor: ActorRef::system(),
                    chain: vec![],
                    action: "admin_token.revoke".into(),
                    target: id,
                    outcome: Outcome::Ok,
                    detail: serde_json::json!({"reason": "bootstrap token changed", "new": key.id}),
                })?;
            }
        }
        Ok(())
    }

    pub(super) fn put_key(&self, key: &ApiKey) -> Result<(), IdentityError> {
        let k = keys::join(&[key.owner.id(), &key.id]);
        self.store
            .transact::<_, IdentityError>(&[Tree::ApiKeys, Tree::ApiKeyHash], |tx| {
                tx.put_record(Tree::ApiKeys, &k, key)?;
                tx.put(Tree::ApiKeyHash, &key.hash, &k)?;
                Ok(())
            })?;
        Ok(())
    }

    /// The first admin human: the operator the command line acts as (owners added later
    /// are no operators).
    pub fn first_human(&self) -> Result<Option<Human>, IdentityError> {
        for r in self.store.scan_prefix(Tree::Humans, &[]) {
            let h: Human = crate::store::decode(&r?.1)?;
            if h.admin {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }

    pub fn human(&self, id: &str) -> Result<Option<Human>, IdentityError> {
        Ok(self.store.get_record(Tree::Humans, id.as_bytes())?)
    }

    pub async fn create_org(
        &self,
        actor: &Actor,
        name: &str,
        domain: &str,
    ) -> Result<Org, IdentityError> {
        actor.require_admin(&self.audit, "org.create", domain)?;
        let domain = address::normalize_domain(domain).map_err(IdentityError::Invalid)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(IdentityError::Invalid(
                "name must be 1 to 128 characters".into(),
            ));
        }
        let human_id = match &actor.principal {
            super::Principal::Human { id, .. } | super::Principal::Owner { id, .. } => id.clone(),
            super::Principal::Agent { id, .. } => id.clone(),
        };
        let org = Org {
            id: new_id("org"),
            name: name.into(),
            domain: domain.clone(),
            created_by: human_id,
            created_at: now_unix(),
        };
        self.store.transact(&[Tree::Orgs, Tree::OrgDomain], |tx| {
            if tx.get(Tree::OrgDomain, domain.as_bytes())?.is_some() {
                return Err(TxFail::Abort(IdentityError::Conflict(format!(
                    "an org already owns the domain {domain}"
                ))));
            }
            tx.put_record(Tree::Orgs, org.id.as_bytes(), &org)?;
            tx.put(Tree::OrgDomain, domain.as_bytes(), org.id.as_bytes())?;
            Ok(())
        })?;
        actor.audit(
            &self.audit,
            "org.create",
            &org.id,
            Outcome::Ok,
            serde_json::json!({"domain": domain, "name": org.name}),
        )?;
        self.audit.commit().await?;
        Ok(org)
    }

    pub fn list_orgs(&self, actor: &Actor) -> Result<Vec<Org>, IdentityError> {
        actor.require_admin(&self.audit, "org.list", "")?;
        self.all_orgs()
    }

    pub fn all_orgs(&self) -> Result<Vec<Org>, IdentityError> {
        self.store
            .scan_prefix(Tree::Orgs, &[])
            .map(|r| Ok(crate::store::decode(&r?.1)?))
            .collect()
    }

    pub fn org(&self, id: &str) -> Result<Option<Org>, IdentityError> {
        Ok(self.store.get_record(Tree::Orgs, id.as_bytes())?)
    }

    pub fn org_by_domain(&self, domain: &str) -> Result<Option<Org>, IdentityError> {
        match self.store.get(Tree::OrgDomain, domain.as_bytes())? {
            Some(id) => self.org(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Whether we host mail for `domain`.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        matches!(self.store.get(Tree::OrgDomain, d.as_bytes()), Ok(Some(_)))
    }
}
