//! Turning a presented token into an [`Actor`], on every request.
//!
//! Revocation is checked here, against the stored agent, so it takes effect on the very next
//! request with no cache to expire.

use super::error::{AuthFailure, IdentityError};
use super::model::{Agent, ApiKey, Human, KeyOwner};
use super::{apikey, Actor, IdentityService, Principal, ScopeSet};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::store::Tree;
use crate::util::now_unix;

/// `last_used_at` is refreshed at most this often (seconds), so authentication stays a
/// read on the hot path instead of a write per request.
const LAST_USED_GRANULARITY: i64 = 60;

/// Most cached authentications kept; past it the cache starts over.
const AUTH_CACHE_MAX: usize = 10_000;

/// A cache of successful authentications keyed by token hash. Every change to a key or an
/// agent bumps the epoch (synchronously, before the change is acknowledged), which voids all
/// entries; expiry is still checked on every use. Saves three record reads per request.
/// Not used when other nodes share the store (PostgreSQL): a revocation made on another
/// node never bumps this process's epoch, so there every request reads the records.
#[derive(Default)]
pub(super) struct AuthCache {
    epoch: std::sync::atomic::AtomicU64,
    entries: std::sync::RwLock<std::collections::HashMap<[u8; 32], Cached>>,
}

#[derive(Clone)]
struct Cached {
    epoch: u64,
    actor: Actor,
    expires_at: Option<i64>,
    /// When the key's last-used time was last recorded; past the granularity the slow
    /// path runs again and records it.
    stamped: i64,
}

impl AuthCache {
    fn get(&self, hash: &[u8; 32], now: i64) -> Option<Actor> {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::SeqCst);
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let c = map.get(hash)?;
        let fresh = now - c.stamped < LAST_USED_GRANULARITY;
        (c.epoch == epoch && fresh && c.expires_at.is_none_or(|e| e > now)).then(|| c.actor.clone())
    }

    fn put(&self, hash: [u8; 32], epoch: u64, actor: &Actor, expires_at: Option<i64>, now: i64) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= AUTH_CACHE_MAX {
            map.clear();
        }
        map.insert(
            hash,
            Cached {
                epoch,
                actor: actor.clone(),
                expires_at,
                stamped: now,
            },
        );
    }

    /// Changes with every change to keys or agents: what else is derived from them (the org
    /// key directory) is reused only while it holds.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(super) fn invalidate(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Ancestors deeper than this are not followed (a loop guard; chains are short).
const MAX_CHAIN_DEPTH: usize = 16;

impl IdentityService {
    /// Authenticates a bearer token. Failures for a known key are audited against its owner;
    /// malformed and unknown tokens are audited as anonymous attempts from `peer`.
    pub fn authenticate(&self, token: &str, peer: &str) -> Result<Actor, IdentityError> {
        match self.try_authenticate(token) {
            Ok(actor) => Ok(actor),
            Err((why, owner)) => {
                let actor = match &owner {
                    Some(KeyOwner::Agent(id)) => ActorRef::agent(id),
                    Some(KeyOwner::Human(id)) => ActorRef::human(id),
                    None => ActorRef::anonymous(peer),
                };
                // Counted against `peer`'s failure limit; written in full only as the
                // first of its aggregation interval (audit/denials.rs).
                self.audit.auth_denied(
                    peer,
                    NewEntry {
                        actor,
                        chain: vec![],
                        action: "auth.denied".into(),
                        target: "api".into(),
                        outcome: Outcome::Denied,
                        detail: serde_json::json!({"reason": why.code(), "peer": peer}),
                    },
                )?;
                Err(IdentityError::Unauthorized(why))
            }
        }
    }

    /// For a source past its failure limit: the actor if `token` is valid, else `None`, and
    /// nothing recorded. A valid key is 256 random bits, so letting it through costs no
    /// brute-force resistance, while refusing it would let one misconfigured client lock out
    /// every agent behind the same NAT.
    pub fn authenticate_valid_only(&self, token: &str) -> Option<Actor> {
        self.try_authenticate(token).ok()
    }

    fn try_authenticate(&self, token: &str) -> Result<Actor, (AuthFailure, Option<KeyOwner>)> {
        let internal = |_| (AuthFailure::Unknown, None);
        if token.is_empty() {
            return Err((AuthFailure::Missing, None));
        }
        if !apikey::well_formed(token) {
            return Err((AuthFailure::Malformed, None));
        }
        let hash = apikey::hash(token);
        let now = now_unix();
        // Several nodes: another one may have revoked this key a moment ago.
        let cached = !self.store.is_shared();
        if let Some(actor) = self.auth_cache.get(&hash, now).filter(|_| cached) {
            return Ok(actor);
        }
        // Read the epoch before the records: a change racing with this read voids the entry.
        let epoch = self
            .auth_cache
            .epoch
            .load(std::sync::atomic::Ordering::SeqCst);
        let Some(k) = self.store.get(Tree::ApiKeyHash, &hash).map_err(internal)? else {
            return Err((AuthFailure::Unknown, None));
        };
        let Some(mut key) = self
            .store
            .get_record::<ApiKey>(Tree::ApiKeys, &k)
            .map_err(internal)?
        else {
            return Err((AuthFailure::Unknown, None));
        };
        if !apikey::hashes_equal(&key.hash, &hash) {
            return Err((AuthFailure::Unknown, None));
        }
        let actor = self.actor_of(&key, now)?;
        if cached {
            // An owner's key also ends `owners.key_ttl_secs` after its issue (keys made before
            // owner keys had an expiry included): the cache must not outlive that either.
            let expires_at = match actor.principal {
                Principal::Owner { .. } => Some(
                    key.created_at
                        .saturating_add(self.owner_key_ttl())
                        .min(key.expires_at.unwrap_or(i64::MAX)),
                ),
                _ => key.expires_at,
            };
            self.auth_cache.put(hash, epoch, &actor, expires_at, now);
        }
        if key
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_GRANULARITY)
        {
            key.last_used_at = Some(now);
            // Best effort: a missed last-used stamp must not fail the request.
            if let Err(e) = self.store.put_record(Tree::ApiKeys, &k, &key) {
                tracing::warn!(error = %e, "could not record key use");
            }
        }
        Ok(actor)
    }

    /// The principal a stored key stands for now: refused when the key is revoked or
    /// expired, its agent (or any ancestor) revoked, or a bootstrap key superseded.
    fn actor_of(&self, key: &ApiKey, now: i64) -> Result<Actor, (AuthFailure, Option<KeyOwner>)> {
        let internal = |_| (AuthFailure::Unknown, None);
        let owner = Some(key.owner.clone());
        if key.revoked_at.is_some() {
            return Err((AuthFailure::KeyRevoked, owner));
        }
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err((AuthFailure::Expired, owner));
        }
        let actor = match &key.owner {
            KeyOwner::Human(id) => {
                let human: Human = self
                    .store
                    .get_record(Tree::Humans, id.as_bytes())
                    .map_err(internal)?
                    .ok_or((AuthFailure::Unknown, owner.clone()))?;
                // A non-admin human's (owner's) key lives `owners.key_ttl_secs` at most,
                // whatever it was issued with: checked here, at every use.
                if !human.admin && key.created_at.saturating_add(self.owner_key_ttl()) <= now {
                    return Err((AuthFailure::Expired, owner));
                }
                if key.bootstrap
                    && self
                        .has_listed_admin_token()
                        .map_err(|_| (AuthFailure::Unknown, None))?
                {
                    return Err((AuthFailure::Superseded, owner));
                }
                let (id, email) = (human.id, human.email);
                Actor {
                    chain: vec![format!("human:{email}")],
                    principal: if human.admin {
                        Principal::Human { id, email }
                    } else {
                        Principal::Owner { id, email }
                    },
                    key_id: key.id.clone(),
                    scopes: key.scopes,
                }
            }
            KeyOwner::Agent(id) => {
                let agent: Agent = self
                    .agent(id)
                    .map_err(|_| (AuthFailure::Unknown, owner.clone()))?
                    .ok_or((AuthFailure::Unknown, owner.clone()))?;
                if !agent.is_active() {
                    return Err((AuthFailure::AgentRevoked, owner));
                }
                let scopes = self
                    .effective_scopes(&agent, key.scopes)
                    .map_err(|_| (AuthFailure::Unknown, owner.clone()))?
                    .ok_or((AuthFailure::AgentRevoked, owner.clone()))?;
                Actor {
                    principal: Principal::Agent {
                        address: agent.address(),
                        org_id: agent.org_id.clone(),
                        id: agent.id.clone(),
                    },
                    key_id: key.id.clone(),
                    scopes,
                    chain: agent.chain.clone(),
                }
            }
        };
        Ok(actor)
    }

    /// The actor of a key by its owner and id, checked afresh (revocation, expiry, the agent and its
    /// ancestors, scopes): for work done later on a caller's behalf, such as a scheduled
    /// send, which must not outlive the key that asked for it.
    pub fn actor_for_key(&self, owner_id: &str, key_id: &str) -> Result<Actor, IdentityError> {
        let key: ApiKey = self
            .store
            .get_record(
                Tree::ApiKeys,
                &crate::store::keys::join(&[owner_id, key_id]),
            )?
            .ok_or(IdentityError::Unauthorized(AuthFailure::Unknown))?;
        self.actor_of(&key, now_unix())
            .map_err(|(why, _)| IdentityError::Unauthorized(why))
    }

    /// Key scopes narrowed by the agent's and each ancestor's; `None` if an ancestor is
    /// revoked (so a sub-agent can never outlive or out-scope its parent).
    pub(super) fn effective_scopes(
        &self,
        agent: &Agent,
        key_scopes: ScopeSet,
    ) -> Result<Option<ScopeSet>, IdentityError> {
        let mut scopes = key_scopes.intersect(agent.scopes);
        let mut parent = agent.parent.clone();
        let mut depth = 0;
        while let Some(pid) = parent {
            depth += 1;
            if depth > MAX_CHAIN_DEPTH {
                return Ok(None);
            }
            let Some(p) = self.agent(&pid)? else {
                return Ok(None);
            };
            if !p.is_active() {
                return Ok(None);
            }
            scopes = scopes.intersect(p.scopes);
            parent = p.parent.clone();
        }
        Ok(Some(scopes))
    }

    /// `GET /v1/whoami`.
    pub fn whoami(&self, actor: &Actor) -> Result<serde_json::Value, IdentityError> {
        let v = match &actor.principal {
            Principal::Human { id, email } | Principal::Owner { id, email } => serde_json::json!({
                "kind": "human",
                "id": id,
                "email": email,
                "admin": actor.is_admin(),
                "owns": self.owned_agents(id)?,
                "key_id": actor.key_id,
                "scopes": actor.scopes,
                "chain": actor.chain,
            }),
            Principal::Agent { id, .. } => {
                let agent = self.agent(id)?.ok_or(IdentityError::NotFound("agent"))?;
                serde_json::json!({
                    "kind": "agent",
                    "id": agent.id,
                    "address": agent.address(),
                    "name": agent.name,
                    "did": self.agent_did(&agent),
                    "org_id": agent.org_id,
                    "parent": agent.parent,
                    "key_id": actor.key_id,
                    "scopes": actor.scopes,
                    "agent_scopes": agent.scopes,
                    "chain": actor.chain,
                })
            }
        };
        actor.audit(
            &self.audit,
            "identity.whoami",
            &actor.actor_ref().id,
            Outcome::Ok,
            serde_json::Value::Null,
        )?;
        Ok(v)
    }
}
