//! API keys of agents: create (shown once), list, revoke.

use super::error::IdentityError;
use super::model::{ApiKey, KeyOwner};
use super::{apikey, Actor, IdentityService, ScopeSet};
use crate::audit::Outcome;
use crate::store::{keys, Tree, TxFail};
use crate::util::{new_id, now_unix};
use serde::Deserialize;
use zeroize::Zeroizing;

/// `POST /v1/agents/{id}/keys` body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    #[serde(default)]
    pub name: Option<String>,
    /// Defaults to all of the agent's scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Lifetime in seconds; none = no expiry.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl IdentityService {
    pub async fn create_key(
        &self,
        actor: &Actor,
        agent_id: &str,
        req: &NewKey,
    ) -> Result<(ApiKey, Zeroizing<String>), IdentityError> {
        actor.require_admin(&self.audit, "key.create", agent_id)?;
        let agent = self
            .find_agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        if !agent.is_active() {
            return Err(IdentityError::Invalid("the agent is revoked".into()));
        }
        let scopes = match &req.scopes {
            Some(s) => ScopeSet::parse_list(s).map_err(IdentityError::Invalid)?,
            None => agent.scopes,
        };
        if !scopes.is_subset_of(agent.scopes) {
            return Err(IdentityError::Invalid(
                "a key's scopes must be a subset of its agent's scopes".into(),
            ));
        }
        let name = req.name.clone().unwrap_or_else(|| "key".into());
        if name.is_empty() || name.len() > 128 {
            return Err(IdentityError::Invalid(
                "name must be 1 to 128 characters".into(),
            ));
        }
        let now = now_unix();
        let expires_at = match req.expires_in {
            Some(0) => return Err(IdentityError::Invalid("expires_in must be positive".into())),
            Some(s) => Some(now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
            None => None,
        };
        let token = apikey::generate();
        let key = ApiKey {
            id: new_id("key"),
            owner: KeyOwner::Agent(agent.id.clone()),
            name,
            scopes,
            hash: apikey::hash(&token).to_vec(),
            created_at: now,
            last_used_at: None,
            expires_at,
            revoked_at: None,
            bootstrap: false,
        };
        self.put_key(&key)?;
        actor.audit_on_agent(
            &self.audit,
            "key.create",
            &agent.id,
            Outcome::Ok,
            serde_json::json!({"key": key.id, "scopes": scopes, "expires_at": expires_at}),
        )?;
        self.audit.commit().await?;
        Ok((key, token))
    }

    pub fn list_keys(&self, actor: &Actor, agent_id: &str) -> Result<Vec<ApiKey>, IdentityError> {
        actor.require_admin(&self.audit, "key.list", agent_id)?;
        let agent = self
            .find_agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        self.store
            .scan_prefix(Tree::ApiKeys, &keys::prefix(&[&agent.id]))
            .map(|r| Ok(crate::store::decode(&r?.1)?))
            .collect()
    }

    pub async fn revoke_key(
        &self,
        actor: &Actor,
        agent_id: &str,
        key_id: &str,
    ) -> Result<ApiKey, IdentityError> {
        actor.require_admin(&self.audit, "key.revoke", agent_id)?;
        let agent = self
            .find_agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let k = keys::join(&[&agent.id, key_id]);
        let now = now_unix();
        let key = self.store.transact(&[Tree::ApiKeys], |tx| {
            let mut key: ApiKey = tx
                .get_record(Tree::ApiKeys, &k)?
                .ok_or(TxFail::Abort(IdentityError::NotFound("key")))?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now);
                tx.put_record(Tree::ApiKeys, &k, &key)?;
            }
            Ok(key)
        })?;
        actor.audit_on_agent(
            &self.audit,
            "key.revoke",
            &agent.id,
            Outcome::Ok,
            serde_json::json!({"key": key_id}),
        )?;
        self.invalidate_auth();
        self.audit.commit().await?;
        Ok(key)
    }
}
