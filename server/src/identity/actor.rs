//! The authenticated caller that every service method receives ("one door per action").

use super::error::Denied;
use super::scope::{Scope, ScopeSet};
use crate::audit::{ActorRef, Audit, AuditError, Entry, NewEntry, Outcome};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An operator-side human holding an admin token.
    Human { id: String, email: String },
    /// A human who is no admin, holding an owner token: may act only on the agents it owns
    /// (their owners and connected accounts, their revocation), checked by each service.
    Owner { id: String, email: String },
    Agent {
        id: String,
        address: String,
        org_id: String,
    },
}

#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    /// The API key used (`cli` for the command line, `smtp`/`imap` logins name their key).
    pub key_id: String,
    /// Effective scopes: the key's, narrowed by the agent's and every ancestor's.
    pub scopes: ScopeSet,
    /// Delegation chain, authorising human first.
    pub chain: Vec<String>,
}

impl Actor {
    /// The operator acting through the command line on the data directory.
    pub fn cli(human_id: &str, email: &str) -> Actor {
        Actor {
            principal: Principal::Human {
                id: human_id.into(),
                email: email.into(),
            },
            key_id: "cli".into(),
            scopes: ScopeSet::all(),
            chain: vec![format!("human:{email}")],
        }
    }

    pub fn actor_ref(&self) -> ActorRef {
        match &self.principal {
            Principal::Human { id, .. } | Principal::Owner { id, .. } => ActorRef::human(id),
            Principal::Agent { id, .. } => ActorRef::agent(id),
        }
    }

    pub fn agent_id(&self) -> Option<&str> {
        match &self.principal {
            Principal::Agent { id, .. } => Some(id),
            Principal::Human { .. } | Principal::Owner { .. } => None,
        }
    }

    /// The human behind this actor (admin or owner): id and email.
    pub fn human(&self) -> Option<(&str, &str)> {
        match &self.principal {
            Principal::Human { id, email } | Principal::Owner { id, email } => Some((id, email)),
            Principal::Agent { .. } => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Human { .. })
    }

    /// Writes an audit entry for this actor.
    pub fn audit(
        &self,
        audit: &Audit,
        action: &str,
        target: &str,
        outcome: Outcome,
        mut detail: Value,
    ) -> Result<Entry, AuditError> {
        if let Value::Object(m) = &mut detail {
            m.insert("key_id".into(), Value::String(self.key_id.clone()));
        } else if detail.is_null() {
            detail = serde_json::json!({ "key_id": self.key_id });
        }
        audit.append(NewEntry {
            actor: self.actor_ref(),
            chain: self.chain.clone(),
            action: action.into(),
            target: target.into(),
            outcome,
            detail,
        })
    }

    /// Writes an audit entry about an agent this service resolved: `agent_id` is its real
    /// id, and the entry is filed under that agent too (see `audit::SUBJECT_AGENT`).
    pub fn audit_on_agent(
        &self,
        audit: &Audit,
        action: &str,
        agent_id: &str,
        outcome: Outcome,
        mut detail: Value,
    ) -> Result<Entry, AuditError> {
        if !detail.is_object() {
            detail = serde_json::json!({});
        }
        if let Value::Object(m) = &mut detail {
            m.insert(
                crate::audit::SUBJECT_AGENT.into(),
                Value::String(agent_id.into()),
            );
        }
        self.audit(audit, action, agent_id, outcome, detail)
    }

    fn deny(&self, audit: &Audit, action: &str, target: &str, why: Denied) -> Denied {
        let detail = match why.required_scope() {
            Some(s) => serde_json::json!({ "required_scope": s.as_str() }),
            None => serde_json::json!({ "reason": why.to_string() }),
        };
        // A denial is already the answer; failing to record it must not turn it into a 500,
        // but it must be visible to the operator.
        if let Err(e) = self.audit(audit, action, target, Outcome::Denied, detail) {
            tracing::error!(error = %e, action, "could not audit a denied request");
        }
        why
    }

    /// The gate of every agent action: an agent principal holding `scope`. A refusal is
    /// audited here, so no front-end can forget to.
    pub fn require(
        &self,
        audit: &Audit,
        scope: Scope,
        action: &str,
        target: &str,
    ) -> Result<&str, Denied> {
        let Some(id) = self.agent_id() else {
            return Err(self.deny(audit, action, target, Denied::AgentOnly));
        };
        if !self.scopes.contains(scope) {
            return Err(self.deny(audit, action, target, Denied::MissingScope(scope)));
        }
        Ok(id)
    }

    /// The gate of every admin action.
    pub fn require_admin(&self, audit: &Audit, action: &str, target: &str) -> Result<(), Denied> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(self.deny(audit, action, target, Denied::AdminOnly))
        }
    }

    /// Records a refusal decided by the caller (for example attenuation rules).
    pub fn refuse(&self, audit: &Audit, action: &str, target: &str, why: Denied) -> Denied {
        self.deny(audit, action, target, why)
    }
}
