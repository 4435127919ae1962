//! API keys of agents: create (shown once), list, revoke.

use super::error::IdentityError;
use super::model::{ApiKey, KeyOwner};
use super::{apikey, Actor, IdentityService, ScopeSet};
use crate::audit::Outcome;
use crate::store::{keys, Tree, TxFail};
use crate::util::now_unix;
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
        let name = key_name(req.name.as_deref().unwrap_or("key"))?;
        let expires_at = key_expiry(req.expires_in)?;
        let token = apikey::generate();
        let key = ApiKey::issue(
            KeyOwner::Agent(agent.id.clone()),
            name,
            scopes,
            &token,
            expires_at,
        );
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

    /// An agent's API keys, for internal readers (reputation); no actor check.
    pub fn agent_api_keys(&self, agent_id: &str) -> Result<Vec<ApiKey>, IdentityError> {
        self.store
            .scan_prefix(Tree::ApiKeys, &keys::prefix(&[agent_id]))
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
        let trees = [Tree::ApiKeys, Tree::Events, Tree::Meta];
        let key = self.store.transact(&trees, |tx| {
            let mut key: ApiKey = tx
                .get_record(Tree::ApiKeys, &k)?
                .ok_or(TxFail::Abort(IdentityError::NotFound("key")))?;
            if key.revoked_at.is_none() {
                key.revoked_at = Some(now);
                tx.put_record(Tree::ApiKeys, &k, &key)?;
                tx.emit(&crate::store::EventRecord::new(
                    "key.revoked",
                    &agent.id,
                    serde_json::json!({"agent_id": agent.id, "key_id": key_id}),
                ))?;
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

/// A key's name, as shown in listings and audit entries: 1 to 128 printable characters.
pub(super) fn key_name(name: &str) -> Result<String, IdentityError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(IdentityError::Invalid(
            "name must be 1 to 128 printable characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// `expires_in` seconds from now as a unix time; none = no expiry.
pub(super) fn key_expiry(expires_in: Option<u64>) -> Result<Option<i64>, IdentityError> {
    match expires_in {
        Some(0) => Err(IdentityError::Invalid("expires_in must be positive".into())),
        Some(s) => Ok(Some(
            now_unix().saturating_add(i64::try_from(s).unwrap_or(i64::MAX)),
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_printable_and_bounded() {
        assert_eq!(key_name("  laptop ").unwrap(), "laptop");
        for bad in ["", "   ", "a\r\nb", "nul\0", &"x".repeat(129)] {
            assert!(key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiry_is_positive_and_saturates() {
        assert!(key_expiry(Some(0)).is_err());
        assert_eq!(key_expiry(None).unwrap(), None);
        assert!(key_expiry(Some(60)).unwrap().unwrap() > now_unix());
        assert_eq!(key_expiry(Some(u64::MAX)).unwrap(), Some(i64::MAX));
    }
}
