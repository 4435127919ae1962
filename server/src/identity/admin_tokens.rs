//! Admin tokens: list, create (named, with an optional expiry), keep, revoke.
//!
//! An admin token is an API key owned by a human. Like every key it is shown once and stored
//! only as its SHA-256. Two rules make revocation something an operator can rely on:
//! - the token from `LEGATE_BOOTSTRAP_ADMIN_TOKEN` (kept in a Helm Secret or a CI variable,
//!   so easily left behind) stops working once any other admin token exists, unless an admin
//!   explicitly keeps it; so rotating means "create a new token", and the old one is dead;
//! - the last working admin token cannot be revoked, so the API is never left without an
//!   administrator (the command line, which opens the data directory, always remains).

use super::error::IdentityError;
use super::model::{ApiKey, Human, KeyOwner};
use super::{apikey, Actor, IdentityService, Principal, ScopeSet};
use crate::audit::Outcome;
use crate::store::{keys, Tree, TxFail};
use crate::util::now_unix;
use serde::Deserialize;
use zeroize::Zeroizing;

/// `POST /v1/admin/tokens` body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAdminToken {
    pub name: String,
    /// Lifetime in seconds; none = no expiry.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// Whether `key` would let its holder in now, given whether a listed token exists.
fn works(key: &ApiKey, listed_exists: bool, now: i64) -> bool {
    key.revoked_at.is_none()
        && key.expires_at.is_none_or(|e| e > now)
        && !(key.bootstrap && listed_exists)
}

impl IdentityService {
    /// Every admin token record with its store key (revoked and expired ones too).
    fn admin_keys(&self) -> Result<Vec<(Vec<u8>, ApiKey)>, IdentityError> {
        let mut out = Vec::new();
        for h in self.store.scan_prefix(Tree::Humans, &[]) {
            let human: Human = crate::store::decode(&h?.1)?;
            // An owner's token is no admin token (`identity::owners`).
            if !human.admin {
                continue;
            }
            for r in self
                .store
                .scan_prefix(Tree::ApiKeys, &keys::prefix(&[&human.id]))
            {
                let (k, v) = r?;
                let key: ApiKey = crate::store::decode(&v)?;
                if matches!(key.owner, KeyOwner::Human(_)) {
                    out.push((k, key));
                }
            }
        }
        Ok(out)
    }

    /// Whether any admin token other than a bootstrap one was ever made (revoked ones count:
    /// revoking the replacement must not bring the bootstrap token back to life).
    pub(super) fn has_listed_admin_token(&self) -> Result<bool, IdentityError> {
        Ok(self.admin_keys()?.iter().any(|(_, k)| !k.bootstrap))
    }

    /// The public view of an admin token: never the secret or its hash.
    pub fn admin_token_json(&self, key: &ApiKey, listed_exists: bool) -> serde_json::Value {
        let mut v = key.to_json();
        v["active"] = serde_json::json!(works(key, listed_exists, now_unix()));
        v
    }

    /// `GET /v1/admin/tokens`: every admin token with whether it works now.
    pub fn list_admin_tokens(
        &self,
        actor: &Actor,
    ) -> Result<Vec<serde_json::Value>, IdentityError> {
        actor.require_admin(&self.audit, "admin_token.list", "")?;
        let all = self.admin_keys()?;
        let listed = all.iter().any(|(_, k)| !k.bootstrap);
        Ok(all
            .iter()
            .map(|(_, k)| self.admin_token_json(k, listed))
            .collect())
    }

    /// `POST /v1/admin/tokens`: a new admin token for the acting human, shown once.
    pub async fn create_admin_token(
        &self,
        actor: &Actor,
        req: &NewAdminToken,
    ) -> Result<(ApiKey, Zeroizing<String>), IdentityError> {
        actor.require_admin(&self.audit, "admin_token.create", "")?;
        let Principal::Human { id: human_id, .. } = &actor.principal else {
            return Err(IdentityError::Invalid(
                "only humans hold admin tokens".into(),
            ));
        };
        let name = super::keys::key_name(&req.name)?;
        let expires_at = super::keys::key_expiry(req.expires_in)?;
        let token = apikey::generate();
        let key = ApiKey::issue(
            KeyOwner::Human(human_id.clone()),
            name,
            ScopeSet::all(),
            &token,
            expires_at,
        );
        self.put_key(&key)?;
        // A bootstrap token may just have been superseded: no cached authentication survives.
        self.invalidate_auth();
        actor.audit(
            &self.audit,
            "admin_token.create",
            &key.id,
            Outcome::Ok,
            serde_json::json!({"name": key.name, "expires_at": expires_at}),
        )?;
        self.audit.commit().await?;
        Ok((key, token))
    }

    /// `PATCH /v1/admin/tokens/{id} {"keep": true}`: a bootstrap token becomes an ordinary
    /// listed token, so it keeps working after others are created.
    pub async fn keep_admin_token(&self, actor: &Actor, id: &str) -> Result<ApiKey, IdentityError> {
        actor.require_admin(&self.audit, "admin_token.keep", id)?;
        let (k, _) = self
            .admin_keys()?
            .into_iter()
            .find(|(_, key)| key.id == id)
            .ok_or(IdentityError::NotFound("admin token"))?;
        let key = self.store.transact(&[Tree::ApiKeys], |tx| {
            let mut key: ApiKey = tx
                .get_record(Tree::ApiKeys, &k)?
                .ok_or(TxFail::Abort(IdentityError::NotFound("admin token")))?;
            key.bootstrap = false;
            tx.put_record(Tree::ApiKeys, &k, &key)?;
            Ok(key)
        })?;
        self.invalidate_auth();
        actor.audit(
            &self.audit,
            "admin_token.keep",
            id,
            Outcome::Ok,
            serde_json::Value::Null,
        )?;
        self.audit.commit().await?;
        Ok(key)
    }

    /// `DELETE /v1/admin/tokens/{id}`: refused (409) when it is the last admin token that
    /// still works. The check reads every admin token inside the revoking transaction, so
    /// two concurrent revocations cannot both pass it.
    pub async fn revoke_admin_token(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<ApiKey, IdentityError> {
        actor.require_admin(&self.audit, "admin_token.revoke", id)?;
        let all = self.admin_keys()?;
        let (target, _) = all
            .iter()
            .find(|(_, key)| key.id == id)
            .cloned()
            .ok_or(IdentityError::NotFound("admin token"))?;
        let paths: Vec<Vec<u8>> = all.into_iter().map(|(k, _)| k).collect();
        let now = now_unix();
        let result = self.store.transact(&[Tree::ApiKeys], |tx| {
            let mut current = Vec::with_capacity(paths.len());
            for p in &paths {
                if let Some(key) = tx.get_record::<ApiKey>(Tree::ApiKeys, p)? {
                    current.push((p.clone(), key));
                }
            }
            let listed = current.iter().any(|(_, k)| !k.bootstrap);
            let others_work = current
                .iter()
                .any(|(p, k)| *p != target && works(k, listed, now));
            if !others_work {
                return Err(TxFail::Abort(IdentityError::Conflict(
                    "this is the last working admin token: create another one before revoking it"
                        .into(),
                )));
            }
            let mut key: ApiKey = tx
                .get_record(Tree::ApiKeys, &target)?
                .ok_or(TxFail::Abort(IdentityError::NotFound("admin token")))?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now);
                tx.put_record(Tree::ApiKeys, &target, &key)?;
            }
            Ok(key)
        });
        let key = match result {
            Ok(k) => k,
            Err(e) => {
                let e = IdentityError::from(e);
                if let IdentityError::Conflict(why) = &e {
                    actor.audit(
                        &self.audit,
                        "admin_token.revoke",
                        id,
                        Outcome::Denied,
                        serde_json::json!({"reason": why}),
                    )?;
                }
                return Err(e);
            }
        };
        self.invalidate_auth();
        actor.audit(
            &self.audit,
            "admin_token.revoke",
            id,
            Outcome::Ok,
            serde_json::json!({"name": key.name}),
        )?;
        self.audit.commit().await?;
        Ok(key)
    }
}
