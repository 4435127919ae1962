//! Reading and setting agents' send policies, and judging sends against them.

use super::admit::{judge, Counters, Rcpt};
use super::breaker::{BreakerState, Pause};
use super::model::{Effective, Refusal, SendPolicy};
use super::suppress::suppression_key;
use super::PolicyError;
use crate::audit::{Audit, Outcome};
use crate::config::SendPolicyConfig;
use crate::identity::{Actor, Agent, Denied, IdentityService, Principal};
use crate::mailbox::contact_key;
use crate::store::{Store, StoreError, Tree, Tx, TxStoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// The trees a queueing transaction must declare for [`PolicyService::admit_in`].
pub const TX_TREES: [Tree; 4] = [
    Tree::SendCounters,
    Tree::SendContacts,
    Tree::Suppressions,
    Tree::BreakerState,
];

/// Delegation is shallow in practice; a deeper (or circular, if the store were damaged)
/// chain of parents stops here rather than looping.
const MAX_DEPTH: usize = 16;

pub struct PolicyService {
    pub(super) store: Store,
    pub(super) audit: Arc<Audit>,
    pub(super) identity: Arc<IdentityService>,
    /// `server.domain`: its org's suppression list is the one an admin request without an
    /// org means.
    pub(super) home_domain: String,
    /// `[send_policy]`: what an agent without a policy of its own gets.
    default: Effective,
    max_patterns: usize,
    /// `[breaker]` (see `breaker`).
    pub(super) breaker: crate::config::BreakerConfig,
    /// `send_policy.approval_ttl_secs` and `max_pending_approvals`.
    pub approval_ttl_ms: i64,
    pub max_pending_approvals: u64,
    /// `send_policy.danger_unchecked`: nothing is judged (benchmarks only).
    pub unchecked: bool,
}

impl PolicyService {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        identity: Arc<IdentityService>,
        config: &SendPolicyConfig,
        home_domain: &str,
    ) -> Self {
        Self {
            store,
            audit,
            identity,
            home_domain: home_domain.to_string(),
            default: Effective::from_config(config),
            max_patterns: config.max_domain_patterns,
            breaker: crate::config::BreakerConfig::default(),
            approval_ttl_ms: (config.approval_ttl_secs.min(10 * 365 * 86_400) * 1000) as i64,
            max_pending_approvals: config.max_pending_approvals,
            unchecked: config.danger_unchecked,
        }
    }

    /// The circuit breaker's thresholds (`[breaker]`).
    pub fn with_breaker(mut self, c: &crate::config::BreakerConfig) -> Self {
        self.breaker = c.clone();
        self
    }

    /// The org default as judged (for a send nothing is judged for: `danger_unchecked`).
    pub fn default_effective(&self) -> Effective {
        self.default.clone()
    }

    /// `GET /v1/send-policy/default`: any authenticated caller may read the org default.
    pub fn default_json(&self) -> Value {
        self.default.to_json()
    }

    fn own(&self, agent_id: &str) -> Result<SendPolicy, StoreError> {
        Ok(self
            .store
            .get_record(Tree::SendPolicies, agent_id.as_bytes())?
            .unwrap_or_default())
    }

    /// The policy `agent`'s sends are judged by: the default with its own rules, narrowed by
    /// each ancestor's (so a sub-agent is never looser than its parent, whatever was stored).
    pub fn effective(&self, agent: &Agent) -> Result<Effective, PolicyError> {
        let mut eff = self.default.overlay(&self.own(&agent.id)?);
        let mut parent = agent.parent.clone();
        for _ in 0..MAX_DEPTH {
            let Some(id) = parent else { break };
            let Some(p) = self.identity.agent(&id)? else {
                break;
            };
            eff = eff.meet(&self.default.overlay(&self.own(&p.id)?));
            parent = p.parent;
        }
        Ok(eff)
    }

    /// The agent a policy route names, if the caller may see it: an admin, the agent itself
    /// (reading only) or its parent through a key with `identity:sign`.
    pub(super) fn target(
        &self,
        actor: &Actor,
        id: &str,
        action: &str,
        write: bool,
    ) -> Result<Agent, PolicyError> {
        let found = self.identity.find_agent(id)?;
        let Some(agent) = found else {
            if !actor.is_admin() {
                // An agent asking about an id that is not its sub-agent learns nothing more.
                return Err(actor
                    .refuse(&self.audit, action, id, Denied::AdminOnly)
                    .into());
            }
            return Err(PolicyError::NotFound("agent"));
        };
        let is_self = matches!(&actor.principal, Principal::Agent { id, .. } if *id == agent.id);
        if is_self && !write {
            return Ok(agent);
        }
        self.identity
            .require_subagent_authority(actor, &agent, action)?;
        Ok(agent)
    }

    fn json(&self, agent: &Agent, own: &SendPolicy) -> Result<Value, PolicyError> {
        let mut v = serde_json::to_value(own).unwrap_or_else(|_| json!({}));
        v["agent_id"] = agent.id.clone().into();
        v["effective"] = self.effective(agent)?.to_json();
        Ok(v)
    }

    /// `GET /v1/agents/{id}/send-policy`: the agent's own rules (null: inherited) and the
    /// effective policy.
    pub fn get(&self, actor: &Actor, id: &str) -> Result<Value, PolicyError> {
        let agent = self.target(actor, id, "agent.send_policy.get", false)?;
        let own = self.own(&agent.id)?;
        self.json(&agent, &own)
    }

    /// `PUT /v1/agents/{id}/send-policy`: replaces the agent's own rules. A sub-agent's may
    /// not be looser than its parent's effective policy (403, audited), as with scopes.
    pub async fn put(
        &self,
        actor: &Actor,
        id: &str,
        policy: SendPolicy,
    ) -> Result<Value, PolicyError> {
        let action = "agent.send_policy.set";
        let agent = self.target(actor, id, action, true)?;
        let policy = policy
            .normalized(self.max_patterns)
            .map_err(PolicyError::BadRequest)?;
        if let Some(parent_id) = &agent.parent {
            if let Some(parent) = self.identity.agent(parent_id)? {
                let looser = self.effective(&parent)?.looser_in(&policy);
                if !looser.is_empty() {
                    let why = Denied::Other(format!(
                        "a sub-agent's send policy cannot be looser than its parent's; \
                         looser: {}",
                        looser.join(", ")
                    ));
                    return Err(actor.refuse(&self.audit, action, &agent.id, why).into());
                }
            }
        }
        self.store
            .put_record(Tree::SendPolicies, agent.id.as_bytes(), &policy)?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &agent.id,
            Outcome::Ok,
            json!({ "policy": policy }),
        )?;
        self.audit.commit().await?;
        self.json(&agent, &policy)
    }

    /// The early check, before any signing work: the same decision as [`admit_in`], read
    /// outside the transaction (which decides again, and is what holds the line).
    ///
    /// [`admit_in`]: Self::admit_in
    pub fn precheck(
        &self,
        agent: &Agent,
        eff: &Effective,
        approved: bool,
        rcpts: &[Rcpt<'_>],
        size: u64,
        now_ms: i64,
    ) -> Result<Result<(), Refusal>, StoreError> {
        let agent_id = agent.id.as_str();
        let breaker: Option<BreakerState> = self
            .store
            .get_record(Tree::BreakerState, agent_id.as_bytes())?;
        if let Some(p) = breaker.and_then(|b| b.paused) {
            return Ok(Err(paused(p)));
        }
        let counters: Counters = self
            .store
            .get_record(Tree::SendCounters, agent_id.as_bytes())?
            .unwrap_or_default();
        let r = judge(
            eff,
            approved,
            rcpts,
            size,
            &counters,
            now_ms,
            |addr| {
                Ok::<_, StoreError>(
                    self.store
                        .get(Tree::SendContacts, &contact_key(agent_id, addr))?
                        .is_some(),
                )
            },
            |addr| {
                self.store
                    .get_record(Tree::Suppressions, &suppression_key(&agent.org_id, addr))
            },
        )?;
        Ok(r.map(|_| ()))
    }

    /// The decision inside the queueing transaction: judged on the counters as they are in
    /// this transaction; when accepted, the counters and the agent's contacts are updated by
    /// it, so two nodes sending for one agent at once cannot both take the last slot.
    #[allow(clippy::too_many_arguments)]
    pub fn admit_in(
        &self,
        tx: &Tx<'_>,
        agent: &Agent,
        eff: &Effective,
        approved: bool,
        rcpts: &[Rcpt<'_>],
        size: u64,
        now_ms: i64,
    ) -> Result<Result<(), Refusal>, TxStoreError> {
        let r = self.judge_in(tx, agent, eff, approved, rcpts, size, now_ms)?;
        match r {
            Ok(next) => {
                tx.put_record(Tree::SendCounters, agent.id.as_bytes(), &next)?;
                for r in rcpts {
                    tx.put(Tree::SendContacts, &contact_key(&agent.id, r.address), &[])?;
                }
                Ok(Ok(()))
            }
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// The decision on a send about to be held, inside the transaction that holds it: every
    /// rule that refuses outright, nothing counted (the send is counted when released).
    /// `Ok` also when the hold no longer applies: the message waits for its human anyway.
    #[allow(clippy::too_many_arguments)]
    pub fn hold_in(
        &self,
        tx: &Tx<'_>,
        agent: &Agent,
        eff: &Effective,
        rcpts: &[Rcpt<'_>],
        size: u64,
        now_ms: i64,
    ) -> Result<Result<(), Refusal>, TxStoreError> {
        match self.judge_in(tx, agent, eff, false, rcpts, size, now_ms)? {
            Ok(_) | Err(Refusal::Hold { .. }) => Ok(Ok(())),
            Err(Refusal::Limit { .. }) => Ok(Ok(())),
            Err(r) => Ok(Err(r)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn judge_in(
        &self,
        tx: &Tx<'_>,
        agent: &Agent,
        eff: &Effective,
        approved: bool,
        rcpts: &[Rcpt<'_>],
        size: u64,
        now_ms: i64,
    ) -> Result<Result<Counters, Refusal>, TxStoreError> {
        let agent_id = agent.id.as_str();
        let breaker: Option<BreakerState> =
            tx.get_record(Tree::BreakerState, agent_id.as_bytes())?;
        if let Some(p) = breaker.and_then(|b| b.paused) {
            return Ok(Err(paused(p)));
        }
        let counters: Counters = tx
            .get_record(Tree::SendCounters, agent_id.as_bytes())?
            .unwrap_or_default();
        judge(
            eff,
            approved,
            rcpts,
            size,
            &counters,
            now_ms,
            |addr| {
                Ok::<_, TxStoreError>(
                    tx.get(Tree::SendContacts, &contact_key(agent_id, addr))?
                        .is_some(),
                )
            },
            |addr| tx.get_record(Tree::Suppressions, &suppression_key(&agent.org_id, addr)),
        )
    }

    /// Audits a refused send as a denial naming the rule (the caller's send action).
    pub fn audit_refusal(&self, actor: &Actor, action: &str, agent_id: &str, r: &Refusal) {
        let detail = json!({"rule": r.rule(), "reason": r.to_string()});
        if let Err(e) = actor.audit_on_agent(&self.audit, action, agent_id, Outcome::Denied, detail)
        {
            tracing::error!(error = %e, action, "could not audit a refused send");
        }
    }
}

fn paused(p: Pause) -> Refusal {
    Refusal::Paused {
        reason: p.reason,
        since_ms: p.since_ms,
    }
}
