//! Agents: creation (with their first key), sub-agents, listing, changes, revocation.

use super::error::{Denied, IdentityError};
use super::model::{Agent, AgentStatus, ApiKey, KeyOwner, Org};
use super::{address, apikey, Actor, IdentityService, Principal, Scope, ScopeSet};
use crate::audit::Outcome;
use crate::store::{keys, Tree, TxFail};
use crate::util::{new_id, now_unix, rfc3339};
use serde::Deserialize;
use std::ops::Bound;
use zeroize::Zeroizing;

/// Meta key naming the org created at bootstrap.
pub(super) const DEFAULT_ORG: &[u8] = b"default_org";

/// `POST /v1/agents` body (DESIGN §6): `local` or a full `address`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    #[serde(default)]
    pub local: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub org_id: Option<String>,
}

/// `PATCH /v1/agents/{id}` body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

/// A new agent and its first key (all of its scopes), shown once.
pub struct CreatedAgent {
    pub agent: Agent,
    pub key: ApiKey,
    pub token: Zeroizing<String>,
}

impl IdentityService {
    /// The public JSON view of an agent.
    pub fn agent_json(&self, a: &Agent) -> serde_json::Value {
        serde_json::json!({
            "id": a.id,
            "address": a.address(),
            "name": a.name,
            "did": self.agent_did(a),
            "org_id": a.org_id,
            "scopes": a.scopes,
            "chain": a.chain,
            "parent": a.parent,
            "status": a.status,
            "created_at": rfc3339(a.created_at),
            "revoked_at": a.revoked_at.map(rfc3339),
        })
    }

    pub fn created_json(&self, c: &CreatedAgent) -> serde_json::Value {
        let mut v = self.agent_json(&c.agent);
        v["api_key"] = serde_json::json!({
            "id": c.key.id,
            "key": c.token.as_str(),
            "scopes": c.key.scopes,
        });
        v
    }

    fn resolve_org(&self, req: &NewAgent, addr_domain: Option<&str>) -> Result<Org, IdentityError> {
        if let Some(id) = &req.org_id {
            return self.org(id)?.ok_or(IdentityError::NotFound("org"));
        }
        if let Some(d) = addr_domain {
            return self.org_by_domain(d)?.ok_or_else(|| {
                IdentityError::Invalid(format!("no org serves the domain {d}; create it first"))
            });
        }
        // The org made at bootstrap (the server's own domain) is the default.
        if let Some(id) = self.store.get(Tree::Meta, DEFAULT_ORG)? {
            if let Some(org) = self.org(&String::from_utf8_lossy(&id))? {
                return Ok(org);
            }
        }
        let orgs = self.all_orgs()?;
        match orgs.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(IdentityError::Invalid("no org exists yet".into())),
            _ => Err(IdentityError::Invalid(
                "several orgs exist: give org_id or a full address".into(),
            )),
        }
    }

    fn parse_new(&self, req: &NewAgent) -> Result<(String, Option<String>), IdentityError> {
        match (&req.local, &req.address) {
            (Some(l), None) => Ok((
                address::normalize_local(l).map_err(IdentityError::Invalid)?,
                None,
            )),
            (None, Some(a)) => {
                let (l, d) = address::normalize_address(a).map_err(IdentityError::Invalid)?;
                Ok((l, Some(d)))
            }
            (Some(_), Some(_)) => Err(IdentityError::Invalid(
                "give either local or address, not both".into(),
            )),
            (None, None) => Err(IdentityError::Invalid(
                "local or address is required".into(),
            )),
        }
    }

    /// Admin creates an agent in an org.
    pub async fn create_agent(
        &self,
        actor: &Actor,
        req: &NewAgent,
    ) -> Result<CreatedAgent, IdentityError> {
        actor.require_admin(
            &self.audit,
            "agent.create",
            req.local.as_deref().unwrap_or(""),
        )?;
        let (local, domain) = self.parse_new(req)?;
        let org = self.resolve_org(req, domain.as_deref())?;
        let domain = domain.unwrap_or_else(|| org.domain.clone());
        if domain != org.domain {
            return Err(IdentityError::Invalid(format!(
                "the org {} serves {}, not {domain}",
                org.id, org.domain
            )));
        }
        let scopes = match &req.scopes {
            Some(s) => ScopeSet::parse_list(s).map_err(IdentityError::Invalid)?,
            None => ScopeSet::all(),
        };
        let mut chain = actor.chain.clone();
        chain.push(format!("org:{}", org.name));
        self.insert_agent(
            actor,
            &org.id,
            local,
            domain,
            req.name.clone(),
            scopes,
            chain,
            None,
        )
        .await
    }

    /// A sub-agent: by an admin, or by the parent itself holding `identity:sign`. Its scopes
    /// must be a subset of the parent's (attenuation), and its chain is the parent's plus one.
    pub async fn create_subagent(
        &self,
        actor: &Actor,
        parent_id: &str,
        req: &NewAgent,
    ) -> Result<CreatedAgent, IdentityError> {
        let action = "agent.create_subagent";
        match &actor.principal {
            Principal::Human { .. } => {}
            Principal::Owner { .. } => {
                actor.require_admin(&self.audit, action, parent_id)?;
            }
            Principal::Agent { id, .. } if id == parent_id => {
                actor.require(&self.audit, Scope::IdentitySign, action, parent_id)?;
            }
            Principal::Agent { .. } => {
                return Err(actor
                    .refuse(
                        &self.audit,
                        action,
                        parent_id,
                        Denied::Other("an agent may only create its own sub-agents".into()),
                    )
                    .into())
            }
        }
        let parent = self
            .agent(parent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        if !parent.is_active() {
            return Err(IdentityError::Invalid("the parent agent is revoked".into()));
        }
        let (local, domain) = self.parse_new(req)?;
        if domain.as_ref().is_some_and(|d| *d != parent.domain) {
            return Err(IdentityError::Invalid(format!(
                "a sub-agent lives on its parent's domain {}",
                parent.domain
            )));
        }
        let scopes = match &req.scopes {
            Some(s) => ScopeSet::parse_list(s).map_err(IdentityError::Invalid)?,
            None => parent.scopes,
        };
        // An agent can only hand on what it holds itself, through the key it is using.
        let ceiling = if actor.is_admin() {
            parent.scopes
        } else {
            parent.scopes.intersect(actor.scopes)
        };
        if !scopes.is_subset_of(ceiling) {
            let extra: Vec<_> = scopes.iter().filter(|s| !ceiling.contains(*s)).collect();
            return Err(actor
                .refuse(
                    &self.audit,
                    action,
                    parent_id,
                    Denied::Other(format!(
                        "a sub-agent's scopes must be a subset of its parent's; not held: {}",
                        extra
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                )
                .into());
        }
        let chain = parent.chain.clone();
        self.insert_agent(
            actor,
            &parent.org_id,
            local,
            parent.domain.clone(),
            req.name.clone(),
            scopes,
            chain,
            Some(parent.id.clone()),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_agent(
        &self,
        actor: &Actor,
        org_id: &str,
        local: String,
        domain: String,
        name: Option<String>,
        scopes: ScopeSet,
        chain: Vec<String>,
        parent: Option<String>,
    ) -> Result<CreatedAgent, IdentityError> {
        let created =
            self.insert_agent_now(actor, org_id, local, domain, name, scopes, chain, parent)?;
        self.audit.commit().await?;
        Ok(created)
    }

    /// [`Self::insert_agent`] without waiting for the audit entry to be durable (for callers
    /// on a synchronous path, whose own later commit covers it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_agent_now(
        &self,
        actor: &Actor,
        org_id: &str,
        local: String,
        domain: String,
        name: Option<String>,
        scopes: ScopeSet,
        mut chain: Vec<String>,
        parent: Option<String>,
    ) -> Result<CreatedAgent, IdentityError> {
        let action = if parent.is_some() {
            "agent.create_subagent"
        } else {
            "agent.create"
        };
        self.check_reserved(actor, action, &local)?;
        let address = format!("{local}@{domain}");
        let name = name.unwrap_or_else(|| local.clone());
        if name.len() > 256 {
            return Err(IdentityError::Invalid(
                "name is longer than 256 characters".into(),
            ));
        }
        chain.push(format!("agent:{address}"));
        let now = now_unix();
        let agent = Agent {
            id: new_id("ag"),
            org_id: org_id.into(),
            local,
            domain,
            name,
            scopes,
            chain,
            parent,
            status: AgentStatus::Active,
            created_at: now,
            created_by: actor.actor_ref().id,
            revoked_at: None,
        };
        let token = apikey::generate();
        let key = ApiKey::issue(
            KeyOwner::Agent(agent.id.clone()),
            "default".into(),
            scopes,
            &token,
            None,
        );
        let key_k = keys::join(&[&agent.id, &key.id]);
        self.store.transact(
            &[
                Tree::Agents,
                Tree::AgentAddress,
                Tree::ApiKeys,
                Tree::ApiKeyHash,
                Tree::Events,
                Tree::Meta,
            ],
            |tx| {
                if tx.get(Tree::AgentAddress, address.as_bytes())?.is_some() {
                    return Err(TxFail::Abort(IdentityError::Conflict(format!(
                        "the address {address} is taken"
                    ))));
                }
                tx.put_record(Tree::Agents, agent.id.as_bytes(), &agent)?;
                tx.put(Tree::AgentAddress, address.as_bytes(), agent.id.as_bytes())?;
                tx.put_record(Tree::ApiKeys, &key_k, &key)?;
                tx.put(Tree::ApiKeyHash, &key.hash, &key_k)?;
                tx.emit(&crate::store::EventRecord::new(
                    "agent.created",
                    &agent.id,
                    serde_json::json!({"agent_id": agent.id, "address": address, "parent": agent.parent}),
                ))?;
                Ok(())
            },
        )?;
        for hook in self.hooks() {
            hook.agent_created(&agent).map_err(IdentityError::Hook)?;
        }
        let action = if agent.parent.is_some() {
            "agent.create_subagent"
        } else {
            "agent.create"
        };
        actor.audit_on_agent(
            &self.audit,
            action,
            &agent.id,
            Outcome::Ok,
            serde_json::json!({"address": address, "scopes": scopes, "parent": agent.parent, "first_key": key.id}),
        )?;
        // Its identity key (made by the hooks) is now published: what was derived without
        // it (the org key directory) is void.
        self.invalidate_auth();
        Ok(CreatedAgent { agent, key, token })
    }

    pub fn agent(&self, id: &str) -> Result<Option<Agent>, IdentityError> {
        Ok(self.store.get_record(Tree::Agents, id.as_bytes())?)
    }

    /// By id, or by address (normalized).
    pub fn find_agent(&self, id_or_address: &str) -> Result<Option<Agent>, IdentityError> {
        if id_or_address.contains('@') {
            self.agent_by_address(id_or_address)
        } else {
            self.agent(id_or_address)
        }
    }

    pub fn agent_by_address(&self, addr: &str) -> Result<Option<Agent>, IdentityError> {
        let Ok((l, d)) = address::normalize_address(addr) else {
            return Ok(None);
        };
        match self
            .store
            .get(Tree::AgentAddress, format!("{l}@{d}").as_bytes())?
        {
            Some(id) => self.agent(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    pub fn get_agent(&self, actor: &Actor, id: &str) -> Result<Agent, IdentityError> {
        actor.require_admin(&self.audit, "agent.get", id)?;
        self.find_agent(id)?.ok_or(IdentityError::NotFound("agent"))
    }

    /// A page of agents in id order; the cursor is the last id returned.
    pub fn list_agents(
        &self,
        actor: &Actor,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Agent>, Option<String>), IdentityError> {
        actor.require_admin(&self.audit, "agent.list", "")?;
        self.page_agents(limit, cursor)
    }

    pub fn page_agents(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Agent>, Option<String>), IdentityError> {
        let limit = limit.clamp(1, 1000);
        let from = match cursor {
            Some(c) => Bound::Excluded(c.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        let mut items = Vec::new();
        for r in self
            .store
            .range(Tree::Agents, from, Bound::Unbounded, false)
        {
            items.push(crate::store::decode::<Agent>(&r?.1)?);
            if items.len() == limit + 1 {
                items.pop();
                let next = items.last().map(|a| a.id.clone());
                return Ok((items, next));
            }
        }
        Ok((items, None))
    }

    /// Changing or revoking an agent takes the authority that could create it: an admin, or
    /// (for a sub-agent) its own parent acting through a key that holds `identity:sign`. Any
    /// other key of the parent, the sub-agent itself, its siblings and other agents are
    /// refused, and the refusal is audited.
    pub fn require_subagent_authority(
        &self,
        actor: &Actor,
        target: &Agent,
        action: &str,
    ) -> Result<(), IdentityError> {
        if actor.is_admin() {
            return Ok(());
        }
        let is_parent = target.parent.is_some() && target.parent.as_deref() == actor.agent_id();
        if !is_parent {
            actor.require_admin(&self.audit, action, &target.id)?;
            return Ok(());
        }
        actor.require(&self.audit, Scope::IdentitySign, action, &target.id)?;
        Ok(())
    }

    pub async fn update_agent(
        &self,
        actor: &Actor,
        id: &str,
        patch: &AgentPatch,
    ) -> Result<Agent, IdentityError> {
        actor.require_admin(&self.audit, "agent.update", id)?;
        let id = self
            .find_agent(id)?
            .ok_or(IdentityError::NotFound("agent"))?
            .id;
        let scopes = match &patch.scopes {
            Some(s) => Some(ScopeSet::parse_list(s).map_err(IdentityError::Invalid)?),
            None => None,
        };
        if let Some(n) = &patch.name {
            if n.trim().is_empty() || n.len() > 256 {
                return Err(IdentityError::Invalid(
                    "name must be 1 to 256 characters".into(),
                ));
            }
        }
        let updated = self.store.transact(&[Tree::Agents], |tx| {
            let mut a: Agent = tx
                .get_record(Tree::Agents, id.as_bytes())?
                .ok_or(TxFail::Abort(IdentityError::NotFound("agent")))?;
            if !a.is_active() {
                return Err(TxFail::Abort(IdentityError::Invalid(
                    "the agent is revoked".into(),
                )));
            }
            if let Some(n) = &patch.name {
                a.name = n.trim().into();
            }
            if let Some(s) = scopes {
                a.scopes = s;
            }
            tx.put_record(Tree::Agents, id.as_bytes(), &a)?;
            Ok(a)
        })?;
        actor.audit_on_agent(
            &self.audit,
            "agent.update",
            &id,
            Outcome::Ok,
            serde_json::json!({"name": patch.name, "scopes": scopes}),
        )?;
        self.invalidate_auth();
        self.audit.commit().await?;
        Ok(updated)
    }

    /// Revokes an agent and, recursively, every sub-agent: keys stop working on the next
    /// request (authentication checks the agent's status), hooks crypto-shred its vault.
    pub async fn revoke_agent(&self, actor: &Actor, id: &str) -> Result<Vec<Agent>, IdentityError> {
        let target = self
            .find_agent(id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        // An owner may revoke the agents it owns (issue 25: one operation ends the agent and
        // all its connections), and nothing else of this authority (send policy, changes).
        if !self.owns(actor, &target.id)? {
            self.require_subagent_authority(actor, &target, "agent.revoke")?;
        }
        let mut todo = vec![target];
        let mut done = Vec::new();
        let all: Vec<Agent> = self
            .store
            .scan_prefix(Tree::Agents, &[])
            .map(|r| Ok(crate::store::decode::<Agent>(&r?.1)?))
            .collect::<Result<_, IdentityError>>()?;
        while let Some(a) = todo.pop() {
            todo.extend(
                all.iter()
                    .filter(|c| c.parent.as_deref() == Some(&a.id))
                    .cloned(),
            );
            if !a.is_active() {
                continue;
            }
            let now = now_unix();
            let trees = [Tree::Agents, Tree::Events, Tree::Meta];
            let revoked = self.store.transact(&trees, |tx| {
                let mut cur: Agent = tx
                    .get_record(Tree::Agents, a.id.as_bytes())?
                    .ok_or(TxFail::Abort(IdentityError::NotFound("agent")))?;
                cur.status = AgentStatus::Revoked;
                cur.revoked_at = Some(now);
                tx.put_record(Tree::Agents, a.id.as_bytes(), &cur)?;
                tx.emit(&crate::store::EventRecord::new(
                    "agent.revoked",
                    &cur.id,
                    serde_json::json!({"agent_id": cur.id, "address": cur.address(), "cascade_from": id}),
                ))?;
                Ok(cur)
            })?;
            // At once, not after the hooks: revoking connections at their providers can take
            // `connections.revoke_timeout_secs`, and a key still cached as live meanwhile
            // would let the revoked agent read its vault or send.
            self.invalidate_auth();
            let mut hook_errors = Vec::new();
            for hook in self.hooks() {
                if let Err(e) = hook.agent_revoked(&revoked) {
                    hook_errors.push(e);
                }
            }
            let outcome = if hook_errors.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Error
            };
            actor.audit_on_agent(
                &self.audit,
                "agent.revoke",
                &revoked.id,
                outcome,
                serde_json::json!({"address": revoked.address(), "cascade_from": id, "errors": hook_errors}),
            )?;
            done.push(revoked);
        }
        self.invalidate_auth();
        self.audit.commit().await?;
        Ok(done)
    }
}
