//! A human's own API keys (`GET /v1/humans/{human}/keys`, `DELETE .../keys/{key_id}`): the
//! human and any admin may list and revoke them, so an owner's key is never invisible nor
//! beyond reach. `{human}` is a human id, an email, or `me`. An admin's keys are admin tokens:
//! revoking one goes through the admin-token rules (never the last working one).

use super::error::{Denied, IdentityError};
use super::model::{ApiKey, Human, KeyOwner};
use super::owners::normalize_email;
use super::{Actor, IdentityService};
use crate::audit::Outcome;
use crate::store::{keys, Tree, TxFail};
use crate::util::now_unix;
use serde_json::{json, Value};

impl IdentityService {
    /// The human `who` names, if the actor may manage their keys (an admin, or themselves);
    /// anything else is refused and audited, the same whether the human exists or not.
    fn key_holder(&self, actor: &Actor, who: &str, action: &str) -> Result<Human, IdentityError> {
        let found = if who == "me" {
            match actor.human() {
                Some((id, _)) => self.human(id)?,
                None => None,
            }
        } else if who.contains('@') {
            let email = normalize_email(who)?;
            match self.store.get(Tree::HumanEmail, email.as_bytes())? {
                Some(id) => self.human(&String::from_utf8_lossy(&id))?,
                None => None,
            }
        } else {
            self.human(who)?
        };
        let allowed = actor.is_admin()
            || matches!((&found, actor.human()), (Some(h), Some((id, _))) if h.id == id);
        match found {
            Some(h) if allowed => Ok(h),
            None if actor.is_admin() => Err(IdentityError::NotFound("human")),
            _ => Err(actor
                .refuse(
                    &self.audit,
                    action,
                    who,
                    Denied::Other("only an admin or this human may manage these keys".into()),
                )
                .into()),
        }
    }

    /// The public view of a human's key, with whether it would let its holder in now.
    fn human_key_json(&self, human: &Human, key: &ApiKey, now: i64) -> Value {
        let mut v = key.to_json();
        let owner_end = (!human.admin).then(|| key.created_at.saturating_add(self.owner_key_ttl()));
        v["active"] = json!(
            key.revoked_at.is_none()
                && key.expires_at.is_none_or(|e| e > now)
                && owner_end.is_none_or(|e| e > now)
        );
        if let Some(end) = owner_end {
            let e = key.expires_at.map_or(end, |x| x.min(end));
            v["expires_at"] = json!(crate::util::rfc3339(e));
        }
        v
    }

    /// `GET /v1/humans/{human}/keys`: every key of the human (revoked and expired ones too).
    pub fn list_human_keys(&self, actor: &Actor, who: &str) -> Result<Vec<Value>, IdentityError> {
        let human = self.key_holder(actor, who, "human_key.list")?;
        let now = now_unix();
        let mut out = Vec::new();
        for r in self
            .store
            .scan_prefix(Tree::ApiKeys, &keys::prefix(&[&human.id]))
        {
            let key: ApiKey = crate::store::decode(&r?.1)?;
            if matches!(key.owner, KeyOwner::Human(_)) {
                out.push(self.human_key_json(&human, &key, now));
            }
        }
        Ok(out)
    }

    /// `DELETE /v1/humans/{human}/keys/{key_id}`: revoked at once (the next request with it is
    /// refused, REST and MCP alike).
    pub async fn revoke_human_key(
        &self,
        actor: &Actor,
        who: &str,
        key_id: &str,
    ) -> Result<Value, IdentityError> {
        let action = "human_key.revoke";
        let human = self.key_holder(actor, who, action)?;
        if human.admin {
            // The last-working-token rule lives there; only admins hold admin tokens.
            let key = self.revoke_admin_token(actor, key_id).await?;
            return Ok(self.human_key_json(&human, &key, now_unix()));
        }
        let k = keys::join(&[&human.id, key_id]);
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
        self.invalidate_auth();
        actor.audit(
            &self.audit,
            action,
            &human.id,
            Outcome::Ok,
            json!({"key": key.id, "human": human.email}),
        )?;
        self.audit.commit().await?;
        Ok(self.human_key_json(&human, &key, now))
    }
}
