//! Co-owners of an agent (issue 25 §2): several humans may own one agent. An owner manages
//! that agent's owners and connected accounts and may revoke it; nothing else. A human added
//! as an owner who is not yet known is created as a non-admin human; one without a working
//! key is sent an invite by mail (`invites`), never a token in the adder's answer, so each
//! owner's actions are audited as theirs (`human:<email>`) and only they hold their key.
//! Owner keys expire (`owners.key_ttl_secs`); removing a human's last ownership revokes them.

use super::error::{Denied, IdentityError};
use super::invites::invite_key;
use super::model::{Agent, ApiKey, Human, KeyOwner};
use super::{Actor, IdentityService};
use crate::audit::Outcome;
use crate::store::{keys, Tree, Tx, TxFail};
use crate::util::{new_id, now_unix, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest email address accepted (RFC 5321 §4.5.3.1.3 path limit less the brackets).
const MAX_EMAIL: usize = 254;
/// Most owners one agent may have.
const MAX_OWNERS: usize = 64;

/// `POST /v1/agents/{id}/owners` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOwner {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// One ownership: stored under (agent id, human id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub human_id: String,
    pub email: String,
    /// Human id of whoever added it.
    pub added_by: String,
    pub added_at: i64,
}

impl OwnerRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "human_id": self.human_id, "email": self.email,
            "added_by": self.added_by, "added_at": rfc3339(self.added_at),
        })
    }
}

/// What adding an owner made: the ownership, whether the human is new, and whether an
/// invite was mailed to them (never its code: only the human gets that).
pub struct AddedOwner {
    pub owner: OwnerRecord,
    pub created_human: bool,
    pub invited: bool,
    /// Why the invite could not be mailed (the ownership stands; adding again retries).
    pub invite_error: Option<String>,
}

/// A plain `local@domain` email, lower-cased: printable ASCII, no spaces or controls (so it
/// can sit in a header or a log line), one `@`, both sides non-empty.
pub fn normalize_email(email: &str) -> Result<String, IdentityError> {
    let e = email.trim();
    let bad = || {
        IdentityError::BadRequest(format!(
            "\"email\" must be an address local@domain of at most {MAX_EMAIL} printable characters"
        ))
    };
    if e.is_empty() || e.len() > MAX_EMAIL || !e.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    match e.split_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@') => {
            Ok(e.to_ascii_lowercase())
        }
        _ => Err(bad()),
    }
}

fn owner_key(agent_id: &str, human_id: &str) -> Vec<u8> {
    keys::join(&[agent_id, human_id])
}

impl IdentityService {
    /// Whether `human_id` owns `agent_id`.
    pub fn is_owner(&self, agent_id: &str, human_id: &str) -> Result<bool, IdentityError> {
        Ok(self
            .store
            .get(Tree::AgentOwners, &owner_key(agent_id, human_id))?
            .is_some())
    }

    /// Whether the actor is a human owning `agent_id` (admins are not asked: they may anyway).
    /// Whether the human `human_id` may still delegate to `agent_id`: an admin, or one of its
    /// owners. Re-checked wherever a delegation is used (a connection's token, a grant's
    /// completion), so removing an owner ends what they granted.
    pub fn may_delegate(&self, agent_id: &str, human_id: &str) -> Result<bool, IdentityError> {
        if self.human(human_id)?.is_some_and(|h| h.admin) {
            return Ok(true);
        }
        self.is_owner(agent_id, human_id)
    }

    pub fn owns(&self, actor: &Actor, agent_id: &str) -> Result<bool, IdentityError> {
        match actor.human() {
            Some((id, _)) => self.is_owner(agent_id, id),
            None => Ok(false),
        }
    }

    /// The ids of the agents a human owns.
    pub fn owned_agents(&self, human_id: &str) -> Result<Vec<String>, IdentityError> {
        let mut out = Vec::new();
        for r in self.store.scan_prefix(Tree::AgentOwners, &[]) {
            let (k, v) = r?;
            let rec: OwnerRecord = crate::store::decode(&v)?;
            if rec.human_id == human_id {
                let end = k.iter().position(|b| *b == 0).unwrap_or(k.len());
                out.push(String::from_utf8_lossy(&k[..end]).into_owned());
            }
        }
        Ok(out)
    }

    /// The gate of every owner action on an agent: an admin, or a human owning it. Anything
    /// else is refused and audited. Returns the agent (found by id or address).
    pub fn require_owner_or_admin(
        &self,
        actor: &Actor,
        agent: &str,
        action: &str,
    ) -> Result<Agent, IdentityError> {
        let found = self.find_agent(agent)?;
        if actor.is_admin() {
            return found.ok_or(IdentityError::NotFound("agent"));
        }
        let owner = match (&found, actor.human()) {
            (Some(a), Some((h, _))) => self.is_owner(&a.id, h)?,
            _ => false,
        };
        match found {
            Some(a) if owner => Ok(a),
            // An owner of another agent (or an agent) learns nothing about this one: the same
            // refusal whether it exists or not.
            _ => Err(actor
                .refuse(
                    &self.audit,
                    action,
                    agent,
                    Denied::Other("only an admin or an owner of this agent may do this".into()),
                )
                .into()),
        }
    }

    /// `GET /v1/agents/{id}/owners`.
    pub fn list_owners(&self, actor: &Actor, agent: &str) -> Result<Vec<Value>, IdentityError> {
        let a = self.require_owner_or_admin(actor, agent, "agent.owners.list")?;
        let mut out = Vec::new();
        for r in self
            .store
            .scan_prefix(Tree::AgentOwners, &keys::prefix(&[&a.id]))
        {
            let rec: OwnerRecord = crate::store::decode(&r?.1)?;
            let mut v = rec.to_json();
            let h = self.human(&rec.human_id)?;
            v["name"] = json!(h.as_ref().map(|h| h.name.clone()));
            v["admin"] = json!(h.is_some_and(|h| h.admin));
            out.push(v);
        }
        Ok(out)
    }

    /// `POST /v1/agents/{id}/owners`: adds a human (made, as a non-admin, if unknown). A
    /// non-admin human with no working key and no pending invite is mailed a new invite.
    pub async fn add_owner(
        &self,
        actor: &Actor,
        agent: &str,
        req: &NewOwner,
    ) -> Result<AddedOwner, IdentityError> {
        let action = "agent.owners.add";
        let a = self.require_owner_or_admin(actor, agent, action)?;
        let email = normalize_email(&req.email)?;
        let name = match &req.name {
            Some(n) if n.trim().is_empty() || n.len() > 256 || n.chars().any(char::is_control) => {
                return Err(IdentityError::BadRequest(
                    "\"name\" must be 1 to 256 characters without control characters".into(),
                ))
            }
            Some(n) => n.trim().to_string(),
            None => email.clone(),
        };
        if !a.is_active() {
            return Err(IdentityError::Invalid("the agent is revoked".into()));
        }
        let (adder, adder_email) = actor
            .human()
            .ok_or_else(|| IdentityError::Invalid("only humans add owners".into()))?;
        let now = now_unix();
        // Who the human is, and whether they need an invite: new, or a non-admin whose key
        // expired or was revoked and who has no invite pending (so re-adding re-invites).
        let existing: Option<Human> = match self.store.get(Tree::HumanEmail, email.as_bytes())? {
            Some(id) => self.human(&String::from_utf8_lossy(&id))?,
            None => None,
        };
        let human = existing.clone().unwrap_or_else(|| Human {
            id: new_id("hu"),
            email: email.clone(),
            name,
            created_at: now,
            admin: false,
        });
        let needs_invite = match &existing {
            None => true,
            Some(h) => {
                !h.admin
                    && !self.has_working_key(&h.id)?
                    && !self.invites()?.iter().any(|(_, i)| i.human_id == h.id)
            }
        };
        if needs_invite && !self.can_invite() {
            return Err(IdentityError::Invalid(
                "owner invites are mailed by the running server; add owners through the API".into(),
            ));
        }
        let invite = needs_invite.then(|| self.new_invite(&human, &a.id, adder));
        // Counted before the transaction: a race may pass the cap by one or two, harmlessly.
        if self
            .store
            .scan_prefix(Tree::AgentOwners, &keys::prefix(&[&a.id]))
            .count()
            >= MAX_OWNERS
        {
            return Err(IdentityError::Invalid(format!(
                "an agent has at most {MAX_OWNERS} owners"
            )));
        }
        let invite_cap = self.owners_config().max_invites_per_hour;
        let (rec, created) = self.store.transact::<_, IdentityError>(
            &[
                Tree::Meta,
                Tree::Humans,
                Tree::HumanEmail,
                Tree::AgentOwners,
                Tree::OwnerInvites,
            ],
            |tx| {
                let (human_id, created) = match tx.get(Tree::HumanEmail, email.as_bytes())? {
                    Some(id) => (String::from_utf8_lossy(&id).into_owned(), false),
                    None => {
                        tx.put_record(Tree::Humans, human.id.as_bytes(), &human)?;
                        tx.put(Tree::HumanEmail, email.as_bytes(), human.id.as_bytes())?;
                        (human.id.clone(), true)
                    }
                };
                // Made concurrently by another request: that one's invite is the one.
                if let Some((code, inv)) = &invite {
                    if inv.human_id == human_id {
                        count_invite(tx, &a.id, now, invite_cap)?;
                        tx.put_record(Tree::OwnerInvites, &invite_key(code), inv)?;
                    }
                }
                let k = owner_key(&a.id, &human_id);
                if let Some(cur) = tx.get_record::<OwnerRecord>(Tree::AgentOwners, &k)? {
                    return Ok((cur, false));
                }
                let rec = OwnerRecord {
                    human_id,
                    email: email.clone(),
                    added_by: adder.to_string(),
                    added_at: now,
                };
                tx.put_record(Tree::AgentOwners, &k, &rec)?;
                Ok((rec, created))
            },
        )?;
        let invite = invite.filter(|(_, i)| i.human_id == rec.human_id);
        actor.audit_on_agent(
            &self.audit,
            action,
            &a.id,
            Outcome::Ok,
            json!({"owner": rec.human_id, "email": rec.email, "created_human": created,
                   "invited": invite.is_some()}),
        )?;
        self.audit.commit().await?;
        let mut invite_error = None;
        if let Some((code, inv)) = &invite {
            let sent = self.mail_invite(&a, adder_email, code, inv).await;
            let outcome = match &sent {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Error,
            };
            if let Err(e) = &sent {
                // Not mailed: not redeemable either, so adding again sends a fresh one.
                tracing::warn!(error = %e, owner = %inv.human_id, "could not mail an owner invite");
                self.store.remove(Tree::OwnerInvites, &invite_key(code))?;
                invite_error = Some(format!("the invite could not be mailed: {e}"));
            }
            actor.audit_on_agent(
                &self.audit,
                "owner.invite.create",
                &a.id,
                outcome,
                json!({"owner": inv.human_id, "email": inv.email,
                       "expires_at": rfc3339(inv.expires_at), "error": invite_error}),
            )?;
            self.audit.commit().await?;
        }
        Ok(AddedOwner {
            owner: rec,
            created_human: created,
            invited: invite.is_some() && invite_error.is_none(),
            invite_error,
        })
    }

    /// Revokes `human_id`'s owner keys other than those at `seen`, each in one transaction.
    fn revoke_human_keys(
        &self,
        human_id: &str,
        seen: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<String>, IdentityError> {
        let late: Vec<Vec<u8>> = self
            .store
            .scan_prefix(Tree::ApiKeys, &keys::prefix(&[human_id]))
            .map(|r| r.map(|(k, _)| k.to_vec()))
            .filter(|r| r.as_ref().map_or(true, |k| !seen.contains(k)))
            .collect::<Result<_, _>>()?;
        if late.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .transact::<_, IdentityError>(&[Tree::ApiKeys], |tx| {
                Ok(revoke_keys_in(tx, &late, now)?)
            })?)
    }

    /// `DELETE /v1/agents/{id}/owners/{human}` (`human`: id or email).
    pub async fn remove_owner(
        &self,
        actor: &Actor,
        agent: &str,
        human: &str,
    ) -> Result<(), IdentityError> {
        let action = "agent.owners.remove";
        let a = self.require_owner_or_admin(actor, agent, action)?;
        let human_id = if human.contains('@') {
            let email = normalize_email(human)?;
            match self.store.get(Tree::HumanEmail, email.as_bytes())? {
                Some(id) => String::from_utf8_lossy(&id).into_owned(),
                None => return Err(IdentityError::NotFound("owner")),
            }
        } else {
            human.to_string()
        };
        let k = owner_key(&a.id, &human_id);
        // A non-admin human left owning nothing keeps no key and no invite: read here, and
        // each record read again and changed in the removing transaction. (An ownership
        // added elsewhere meanwhile errs on the safe side: re-adding sends a new invite.)
        let admin = self.human(&human_id)?.is_some_and(|h| h.admin);
        let orphaned = !admin
            && self
                .owned_agents(&human_id)?
                .iter()
                .all(|other| *other == a.id);
        let key_paths: Vec<Vec<u8>> = if orphaned {
            self.store
                .scan_prefix(Tree::ApiKeys, &keys::prefix(&[&human_id]))
                .map(|r| r.map(|(k, _)| k.to_vec()))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let invite_keys: Vec<Vec<u8>> = self
            .invites()?
            .into_iter()
            .filter(|(_, i)| i.human_id == human_id && (orphaned || i.agent_id == a.id))
            .map(|(k, _)| k)
            .collect();
        let now = now_unix();
        let (removed, revoked) = self.store.transact::<_, IdentityError>(
            &[Tree::AgentOwners, Tree::ApiKeys, Tree::OwnerInvites],
            |tx| {
                let had = tx.get(Tree::AgentOwners, &k)?.is_some();
                if !had {
                    return Ok((false, Vec::new()));
                }
                tx.remove(Tree::AgentOwners, &k)?;
                let revoked = revoke_keys_in(tx, &key_paths, now)?;
                for ik in &invite_keys {
                    tx.remove(Tree::OwnerInvites, ik)?;
                }
                Ok((true, revoked))
            },
        )?;
        let mut revoked = revoked;
        if removed && orphaned {
            // A key redeemed between the scan above and that transaction was not seen by it;
            // none can be redeemed after it (redemption needs the ownership, now gone).
            revoked.extend(self.revoke_human_keys(&human_id, &key_paths, now)?);
        }
        if !revoked.is_empty() {
            // The next request with one of them is refused: no cached authentication survives.
            self.invalidate_auth();
        }
        if !removed {
            return Err(IdentityError::NotFound("owner"));
        }
        actor.audit_on_agent(
            &self.audit,
            action,
            &a.id,
            Outcome::Ok,
            json!({"owner": human_id, "revoked_keys": revoked,
                   "cancelled_invites": invite_keys.len()}),
        )?;
        self.audit.commit().await?;
        Ok(())
    }
}

/// Revokes the live human keys at `paths`; returns their ids.
fn revoke_keys_in(
    tx: &crate::store::Tx<'_>,
    paths: &[Vec<u8>],
    now: i64,
) -> Result<Vec<String>, crate::store::TxStoreError> {
    let mut revoked = Vec::new();
    for p in paths {
        if let Some(mut key) = tx.get_record::<ApiKey>(Tree::ApiKeys, p)? {
            if key.revoked_at.is_none() && matches!(key.owner, KeyOwner::Human(_)) {
                key.revoked_at = Some(now);
                tx.put_record(Tree::ApiKeys, p, &key)?;
                revoked.push(key.id);
            }
        }
    }
    Ok(revoked)
}

/// Counts an invite mailed for `agent` this clock hour (`Meta`, one record per agent), or
/// refuses it past `owners.max_invites_per_hour`: in the transaction that stores it, so
/// concurrent adds cannot pass the cap together.
fn count_invite(tx: &Tx<'_>, agent: &str, now: i64, cap: u32) -> Result<(), TxFail<IdentityError>> {
    let key = keys::join(&["owner_invites_hour", agent]);
    let hour = now.div_euclid(3600);
    let sent = match tx.get_record::<(i64, u32)>(Tree::Meta, &key)? {
        Some((h, n)) if h == hour => n,
        _ => 0,
    };
    if sent >= cap {
        return Err(TxFail::Abort(IdentityError::TooMany {
            message: format!(
                "at most {cap} owner invites an hour are mailed for one agent; try again later"
            ),
            retry_after_secs: u64::try_from(3600 - now.rem_euclid(3600)).unwrap_or(3600),
        }));
    }
    tx.put_record(Tree::Meta, &key, &(hour, sent + 1))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(normalize_email(" Bob@Acme.COM ").unwrap(), "bob@acme.com");
        for bad in [
            "",
            "bob",
            "@a",
            "a@",
            "a@b@c",
            "a b@c",
            "a\r\n@b",
            &"x".repeat(300),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
