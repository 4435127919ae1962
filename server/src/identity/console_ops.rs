//! What the console needs of identity beyond the REST admin calls: an admin tending one
//! agent's mailbox or vault, and verifying the audit chain. Both are gated and audited here,
//! like every other admin action.

use super::error::IdentityError;
use super::{Actor, IdentityService, Principal, ScopeSet};
use crate::audit::Outcome;

impl IdentityService {
    /// The actor an admin works through on one agent's mail or vault from the console: the
    /// agent as principal (so the mailbox and vault services apply their own checks and file
    /// the audit entries under the agent), holding only `scopes` (what the page needs), with
    /// the human first in its chain and in its key id, so every entry names who did it.
    pub fn operator_for_agent(
        &self,
        actor: &Actor,
        agent_id: &str,
        scopes: ScopeSet,
    ) -> Result<Actor, IdentityError> {
        actor.require_admin(&self.audit, "console.act_for_agent", agent_id)?;
        let Principal::Human { id: human_id, .. } = &actor.principal else {
            return Err(IdentityError::Invalid("only humans use the console".into()));
        };
        let agent = self
            .agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let mut chain = actor.chain.clone();
        chain.push(format!("agent:{}", agent.address()));
        Ok(Actor {
            principal: Principal::Agent {
                id: agent.id.clone(),
                address: agent.address(),
                org_id: agent.org_id.clone(),
            },
            key_id: format!("{}/{human_id}", actor.key_id),
            scopes,
            chain,
        })
    }

    /// `legate audit verify` for an admin: recomputes the chain; audited with its result.
    pub async fn verify_audit(
        &self,
        actor: &Actor,
    ) -> Result<crate::audit::VerifyReport, IdentityError> {
        actor.require_admin(&self.audit, "audit.verify", "")?;
        let audit = self.audit.clone();
        let report = tokio::task::spawn_blocking(move || audit.verify())
            .await
            .map_err(|e| IdentityError::Invalid(format!("verification stopped: {e}")))??;
        actor.audit(
            &self.audit,
            "audit.verify",
            "",
            if report.first_broken.is_none() {
                Outcome::Ok
            } else {
                Outcome::Error
            },
            serde_json::json!({"entries": report.entries, "first_broken": report.first_broken}),
        )?;
        self.audit.commit().await?;
        Ok(report)
    }
}
