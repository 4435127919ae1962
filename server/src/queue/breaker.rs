//! The queue's side of the circuit breaker (`policy::breaker`): every final outcome of a
//! recipient (delivered, hard-bounced, complained about) is observed; a trip is audited and
//! mailed to the human at the head of the agent's delegation chain, from the postmaster
//! mailbox, through the queue like any other mail.

use super::compose::{compose, SendRequest};
use super::model::QueuedMessage;
use super::service::{QueueService, SendAudit};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::identity::{Actor, Principal, ScopeSet};
use crate::policy::{Observation, Pause};
use serde_json::json;

impl QueueService {
    /// Records one outcome of recipient `index` of `msg`; on a trip, audits it and notifies
    /// the owner. Failures are logged: an outcome is never refused for them.
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

    async fn tripped(&self, msg: &QueuedMessage, p: &Pause) {
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
        let Some(pm) = self.identity.postmaster()? else {
            return Ok(());
        };
        let agent = self.identity.agent(&msg.agent_id)?;
        let who = agent
            .as_ref()
            .map(|a| a.address())
            .unwrap_or_else(|| msg.agent_id.clone());
        let req = SendRequest {
            to: vec![owner.clone()],
            subject: format!("Sending paused for {who}"),
            text: Some(format!(
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
            )),
            ..Default::default()
        };
        let composed = compose(
            &req,
            &pm.address(),
            "Postmaster",
            &self.settings.hostname,
            crate::util::now_unix(),
        )?;
        let actor = Actor {
            principal: Principal::Agent {
                id: pm.id.clone(),
                address: pm.address(),
                org_id: pm.org_id.clone(),
            },
            key_id: "breaker".into(),
            scopes: ScopeSet::all(),
            chain: pm.chain.clone(),
        };
        let audit = SendAudit {
            actor: &actor,
            action: "breaker.notice",
            extra: json!({"agent": msg.agent_id}),
            best_effort: true,
        };
        let raw = composed.raw.clone();
        match self
            .enqueue(
                &pm,
                &composed.rcpts,
                composed.raw,
                Some(composed.message_id),
                audit,
            )
            .await
        {
            Ok(_) => Ok(()),
            // The owner's address is no deliverable one (an address on our own domain that
            // is no agent, say): the notice goes to the operator mailbox instead.
            Err(e) if !e.is_temporary() => {
                tracing::warn!(error = %e, %owner, "breaker notice undeliverable to the owner; filed with the postmaster");
                let meta = crate::mailbox::DeliveryMeta {
                    received_at_ms: crate::util::now_millis(),
                    labels: vec!["breaker".into()],
                    auth: Some(json!({"internal": true, "sender": "breaker"})),
                    envelope_from: String::new(),
                    envelope_to: vec![pm.address()],
                    flags: vec![],
                };
                self.mailbox
                    .deliver(&pm.id, crate::mailbox::Folder::Inbox, raw, meta)
                    .await?;
                actor.audit(
                    &self.audit,
                    "breaker.notice",
                    &pm.id,
                    Outcome::Ok,
                    json!({"agent": msg.agent_id, "owner": owner, "filed_with_postmaster": true}),
                )?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
