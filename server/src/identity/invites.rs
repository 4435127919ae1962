//! Owner invites (issue 25 §2): adding a human who has no working key as an owner sends them
//! an invite by mail instead of handing their token to whoever added them (who could then
//! act as them, and the audit trail would name them). The invite is 256 random bits, stored
//! only as its SHA-256, single use and expiring (`owners.invite_ttl_secs`); redeeming it
//! (`POST /v1/invites/redeem`) gives the human their own API key, shown once, expiring after
//! `owners.key_ttl_secs`.

use super::error::{AuthFailure, IdentityError};
use super::model::{Agent, ApiKey, Human, KeyOwner};
use super::{apikey, IdentityService, ScopeSet};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::store::{keys, Tree, TxFail};
use crate::util::{now_unix, rfc3339};
use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Invite codes look unlike API keys, so neither is ever taken for the other.
pub const PREFIX: &str = "lgi_";

/// A pending invite, stored under SHA-256(code).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invite {
    pub human_id: String,
    pub email: String,
    /// The agent whose ownership it came with: removing that ownership cancels it.
    pub agent_id: String,
    /// Human id of whoever added the owner.
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A freshly made invite code, mailed once and never stored. Zeroized on drop.
pub fn generate() -> Zeroizing<String> {
    let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(crate::util::random_bytes());
    Zeroizing::new(format!("{PREFIX}{}", BASE32_NOPAD.encode(bytes.as_ref())))
}

fn well_formed(code: &str) -> bool {
    code.strip_prefix(PREFIX)
        .and_then(|b| BASE32_NOPAD.decode(b.as_bytes()).ok())
        .is_some_and(|raw| raw.len() == 32)
}

pub(super) fn invite_key(code: &str) -> Vec<u8> {
    Sha256::digest(code.as_bytes()).to_vec()
}

/// What redeeming gives: the human's own key (the token shown once).
pub struct Redeemed {
    pub human: Human,
    pub key: ApiKey,
    pub token: Zeroizing<String>,
}

impl IdentityService {
    /// Every invite with its store key; expired ones are dropped on the way (best effort).
    pub(super) fn invites(&self) -> Result<Vec<(Vec<u8>, Invite)>, IdentityError> {
        let now = now_unix();
        let mut out = Vec::new();
        for r in self.store.scan_prefix(Tree::OwnerInvites, &[]) {
            let (k, v) = r?;
            let inv: Invite = crate::store::decode(&v)?;
            if inv.expires_at <= now {
                let _ = self.store.remove(Tree::OwnerInvites, &k);
                continue;
            }
            out.push((k.to_vec(), inv));
        }
        Ok(out)
    }

    /// Whether a human has a key that would let them in now (not revoked, not expired).
    pub(super) fn has_working_key(&self, human_id: &str) -> Result<bool, IdentityError> {
        let now = now_unix();
        let ttl = self.owner_key_ttl();
        for r in self
            .store
            .scan_prefix(Tree::ApiKeys, &keys::prefix(&[human_id]))
        {
            let key: ApiKey = crate::store::decode(&r?.1)?;
            if key.revoked_at.is_none()
                && key.expires_at.is_none_or(|e| e > now)
                && key.created_at.saturating_add(ttl) > now
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `owners.key_ttl_secs` as seconds.
    pub(super) fn owner_key_ttl(&self) -> i64 {
        i64::try_from(self.owners_config().key_ttl_secs).unwrap_or(i64::MAX)
    }

    /// A new invite for `human` (not yet stored: the caller writes it in its transaction).
    pub(super) fn new_invite(
        &self,
        human: &Human,
        agent_id: &str,
        invited_by: &str,
    ) -> (Zeroizing<String>, Invite) {
        let now = now_unix();
        let ttl = i64::try_from(self.owners_config().invite_ttl_secs).unwrap_or(i64::MAX);
        let code = generate();
        let inv = Invite {
            human_id: human.id.clone(),
            email: human.email.clone(),
            agent_id: agent_id.to_string(),
            invited_by: invited_by.to_string(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        (code, inv)
    }

    /// Whether invites can be sent at all (a mailer is registered: the server, not the CLI).
    pub(super) fn can_invite(&self) -> bool {
        self.mailer.get().is_some()
    }

    /// Mails a stored invite to its human, from the postmaster.
    pub(super) async fn mail_invite(
        &self,
        agent: &Agent,
        adder_email: &str,
        code: &str,
        inv: &Invite,
    ) -> Result<(), String> {
        let Some(m) = self.mailer.get() else {
            return Err("no mailer is registered".into());
        };
        let origin = self.public_origin();
        let subject = format!("You are invited to co-own the agent {}", agent.address());
        let days = self.owner_key_ttl() / 86400;
        let text = format!(
            "{adder_email} added you ({email}) as an owner of the agent {address} on {origin}.\n\n\
             To get your API key, redeem this invite before {until}; it works once:\n\n  \
             curl -X POST {origin}/v1/invites/redeem -H 'content-type: application/json' \
             -d '{{\"code\":\"{code}\"}}'\n\n\
             The answer holds your API key, shown once. It expires after {days} days; a \
             co-owner can then add you again for a new invite.\n\n\
             If you did not expect this message, ignore it: nothing happens without the code.\n",
            email = inv.email,
            address = agent.address(),
            until = rfc3339(inv.expires_at),
        );
        m.mail_human(&inv.email, &subject, &text).await
    }

    /// `POST /v1/invites/redeem {code}`: the invite is taken (once), and the human's own API
    /// key is made and returned. Refused when the invite is unknown, used, expired, or its
    /// ownership was removed meanwhile; failures count against `peer`'s failure limit as
    /// failed authentications do.
    pub async fn redeem_invite(&self, code: &str, peer: &str) -> Result<Redeemed, IdentityError> {
        let action = "owner.invite.redeem";
        let deny = |why: AuthFailure, human: Option<&str>| -> IdentityError {
            let actor = match human {
                Some(h) => ActorRef::human(h),
                None => ActorRef::anonymous(peer),
            };
            if let Err(e) = self.audit.auth_denied(
                peer,
                NewEntry {
                    actor,
                    chain: vec![],
                    action: action.into(),
                    target: "invite".into(),
                    outcome: Outcome::Denied,
                    detail: json!({"reason": why.code(), "peer": peer}),
                },
            ) {
                return e.into();
            }
            IdentityError::Unauthorized(why)
        };
        if !well_formed(code) {
            return Err(deny(AuthFailure::Malformed, None));
        }
        let ik = invite_key(code);
        let now = now_unix();
        let token = apikey::generate();
        let ttl = self.owner_key_ttl();
        let trees = [
            Tree::OwnerInvites,
            Tree::Humans,
            Tree::AgentOwners,
            Tree::ApiKeys,
            Tree::ApiKeyHash,
        ];
        // Taken, checked and turned into a key in one transaction: a second use finds nothing.
        let result = self.store.transact(&trees, |tx| {
            let Some(inv) = tx.get_record::<Invite>(Tree::OwnerInvites, &ik)? else {
                return Err(TxFail::Abort((AuthFailure::Unknown, None::<String>)));
            };
            tx.remove(Tree::OwnerInvites, &ik)?;
            let who = Some(inv.human_id.clone());
            if inv.expires_at <= now {
                return Ok(Err((AuthFailure::Expired, who)));
            }
            let owned = tx
                .get(
                    Tree::AgentOwners,
                    &keys::join(&[&inv.agent_id, &inv.human_id]),
                )?
                .is_some();
            let human = tx.get_record::<Human>(Tree::Humans, inv.human_id.as_bytes())?;
            let Some(human) = human.filter(|h| owned && !h.admin) else {
                return Ok(Err((AuthFailure::KeyRevoked, who)));
            };
            let key = ApiKey::issue(
                KeyOwner::Human(human.id.clone()),
                "owner".into(),
                ScopeSet::default(),
                &token,
                Some(now.saturating_add(ttl)),
            );
            let path = keys::join(&[&human.id, &key.id]);
            tx.put_record(Tree::ApiKeys, &path, &key)?;
            tx.put(Tree::ApiKeyHash, &key.hash, &path)?;
            Ok(Ok((human, key, inv)))
        });
        let (human, key, inv) = match result {
            Ok(Ok(v)) => v,
            // The spent invite's removal is committed: an expired or cancelled one is gone.
            Ok(Err((why, who))) => return Err(deny(why, who.as_deref())),
            Err(crate::store::TxError::Abort((why, who))) => return Err(deny(why, who.as_deref())),
            Err(crate::store::TxError::Store(e)) => return Err(e.into()),
        };
        self.invalidate_auth();
        self.audit.append(NewEntry {
            actor: ActorRef::human(&human.id),
            chain: vec![format!("human:{}", human.email)],
            action: action.into(),
            target: human.id.clone(),
            outcome: Outcome::Ok,
            detail: json!({"key": key.id, "agent": inv.agent_id, "invited_by": inv.invited_by,
                           "expires_at": key.expires_at.map(rfc3339), "peer": peer}),
        })?;
        self.audit.commit().await?;
        Ok(Redeemed { human, key, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_256_bits_and_unlike_api_keys() {
        let c = generate();
        assert!(well_formed(&c));
        assert!(!apikey::well_formed(&c));
        assert!(!well_formed(&apikey::generate()));
        assert!(!well_formed("lgi_short"));
        assert_ne!(invite_key(&c), invite_key(&generate()));
        assert_eq!(invite_key(&c).len(), 32);
    }
}
