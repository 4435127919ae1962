//! The queue's side of the circuit breaker (`policy::breaker`): every final outcome of a
//! recipient (delivered, hard-bounced, complained about) is observed; a trip is audited and
//! mailed to the human at the head of the agent's delegation chain, from the postmaster
//! mailbox, through the queue like any other mail.

use super::model::QueuedMessage;
use super::service::QueueService;
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::policy::{Observation, Pause};
use serde_json::json;

impl QueueService {
    /// Records one outcome of recipient `index` of `msg` reported after delivery (a DSN, a
    /// complaint); on a trip, audits it and notifies the owner. Failures are logged: an
    /// outcome is never refused for them. (Delivery outcomes are observed by the recorder,
    /// in its transaction.)
    pub(super) async fn observe(&self, msg: &QueuedMessage, index: usize, obs: Observation) {
        // Our own DSNs are no agent's sending; `danger_unchecked` keeps no breaker.
        if msg.mail_from.is_empty() || self.policy.unchecked {
            return;
        }
        let key = format!("{}/{index}", msg.id);
        match self.policy.observe(&msg.agent_id, &key, obs) {
            Ok(Some(p)) => self.tripped(msg, &p).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, agent = %msg.agent_id, "could not record a breaker outcome")
            }
        }
    }

    /// A trip: audited, and the owner notified.
    pub(super) async fn tripped(&self, msg: &QueuedMessage, p: &Pause) {
        tracing::warn!(agent = %msg.agent_id, rule = %p.rule, "circuit breaker: sending paused");
        let _ = self.audit.append(NewEntry {
            actor: ActorRef::system(),
            chain: msg.chain.clone(),
            action: "agent.sending_paused".into(),
            target: msg.agent_id.clone(),
            outcome: Outcome::Ok,
            detail: json!({
                "rule": p.rule, "reason": p.reason, "message_id": msg.id,
                (crate::audit::SUBJECT_AGENT): msg.agent_id,
            }),
        });
        if let Err(e) = self.audit.commit().await {
            tracing::error!(error = %e, "could not commit the breaker's audit entry");
        }
        if self.policy.breaker_notifies() {
            if let Err(e) = self.notify_owner(msg, p).await {
                tracing::warn!(error = %e, agent = %msg.agent_id, "could not send the breaker notice");
            }
        }
    }

    /// The notice to `human:<email>` at the head of the chain.
    async fn notify_owner(&self, msg: &QueuedMessage, p: &Pause) -> Result<(), super::QueueError> {
        let Some(owner) = msg
            .chain
            .first()
            .and_then(|h| h.strip_prefix("human:"))
            .map(str::to_string)
        else {
            return Ok(());
        };
        let agent = self.identity.agent(&msg.agent_id)?;
        let who = agent
            .as_ref()
            .map(|a| a.address())
            .unwrap_or_else(|| msg.agent_id.clone());
        let subject = format!("Sending paused for {who}");
        let text = format!(
            "The circuit breaker paused outbound mail of the agent {who} ({}).\n\n\
                 Rule: {}\nWhy: {}\nSince: {}\n\n\
                 Reading mail still works. Once the cause is fixed, an admin resumes it:\n\
                 POST /v1/agents/{}/resume, or `legate agent resume {}`.\n",
            msg.agent_id,
            p.rule,
            p.reason,
            crate::util::rfc3339(p.since_ms / 1000),
            msg.agent_id,
            msg.agent_id,
        );
        let from = super::notice::NoticeFrom {
            source: "breaker",
            action: "breaker.notice",
            secret: false,
        };
        let extra = json!({"agent": msg.agent_id});
        if let Some(actor) = self
            .postmaster_notice(&from, &owner, &subject, &text, extra)
            .await?
        {
            actor.audit(
                &self.audit,
                "breaker.notice",
                actor.agent_id().unwrap_or_default(),
                Outcome::Ok,
                json!({"agent": msg.agent_id, "owner": owner, "filed_with_postmaster": true}),
            )?;
        }
        Ok(())
    }
}
