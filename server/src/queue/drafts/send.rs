//! Sending a draft: the claim that makes it go once, the send through the same door as
//! `POST /v1/messages/send`, and the scheduled sends the queue worker fires.

use super::{draft_key, parse_schedule_key, schedule_key, Draft, DraftPatch};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::queue::service::QueueService;
use crate::queue::QueueError;
use crate::store::{Tree, TxFail};
use crate::util::now_millis;
use serde_json::{json, Value};

/// Scheduled drafts sent at once.
const MAX_FIRING: usize = 16;

impl QueueService {
    /// Takes the draft for one send: it must be unchanged since `seen` was read (and, for a
    /// scheduled send, still due at `due`) and not already claimed. The schedule entry goes
    /// in the same transaction, so nothing else fires it.
    fn claim(&self, seen: &Draft, due: Option<i64>) -> Result<Draft, QueueError> {
        let key = draft_key(&seen.agent_id, &seen.id);
        Ok(self
            .store
            .transact::<_, QueueError>(&[Tree::Drafts, Tree::DraftSchedule], |tx| {
                let Some(mut cur) = tx.get_record::<Draft>(Tree::Drafts, &key)? else {
                    return Err(TxFail::Abort(QueueError::NotFound("draft")));
                };
                if cur.sending {
                    return Err(TxFail::Abort(QueueError::Conflict(
                        "the draft is already being sent".into(),
                    )));
                }
                if cur.updated_at_ms != seen.updated_at_ms
                    || due.is_some_and(|d| cur.send_at_ms != Some(d))
                {
                    return Err(TxFail::Abort(QueueError::Conflict(
                        "the draft changed meanwhile; read it again".into(),
                    )));
                }
                if let Some(at) = cur.send_at_ms.take() {
                    tx.remove(
                        Tree::DraftSchedule,
                        &schedule_key(at, &cur.agent_id, &cur.id),
                    )?;
                }
                cur.sending = true;
                tx.put_record(Tree::Drafts, &key, &cur)?;
                Ok(cur)
            })?)
    }

    /// A send that did not go: the draft is the user's again, with the reason.
    async fn unclaim(&self, d: &Draft, why: Option<String>) -> Result<(), QueueError> {
        let key = draft_key(&d.agent_id, &d.id);
        self.store
            .transact::<_, QueueError>(&[Tree::Drafts], |tx| {
                if let Some(mut cur) = tx.get_record::<Draft>(Tree::Drafts, &key)? {
                    cur.sending = false;
                    cur.last_error = why.clone();
                    tx.put_record(Tree::Drafts, &key, &cur)?;
                }
                Ok(())
            })?;
        self.audit.commit().await?;
        Ok(())
    }

    /// At start: a draft still claimed was being sent when the server stopped. Whether it
    /// left is unknown, so it is not sent again by itself: it is handed back with a note.
    pub fn recover_drafts(&self) -> Result<usize, QueueError> {
        let mut n = 0;
        for r in self.store.scan_prefix(Tree::Drafts, &[]) {
            let (k, v) = r?;
            let mut d: Draft = crate::store::decode(&v)?;
            if d.sending {
                d.sending = false;
                d.last_error = Some(
                    "the server stopped while sending it: check Sent before sending it again"
                        .into(),
                );
                self.store.put_record(Tree::Drafts, &k, &d)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// `mail:send`. Sends now (the draft is gone and the message queued, as
    /// `POST /v1/messages/send` answers), or with `send_at` schedules it.
    pub async fn send_draft(
        &self,
        actor: &Actor,
        id: &str,
        send_at: Option<&str>,
    ) -> Result<Value, QueueError> {
        let agent = actor.require(&self.audit, Scope::MailSend, "draft.send", id)?;
        if let Some(at) = send_at {
            let p = DraftPatch {
                send_at: Some(Some(at.to_string())),
                ..DraftPatch::default()
            };
            return Ok(self.update_draft(actor, id, p).await?.to_json());
        }
        let seen = self.load_draft(agent, id)?;
        let d = self.claim(&seen, None)?;
        let accepted = match self.send(actor, &d.fields.request()).await {
            Ok(a) => a,
            Err(e) => {
                self.unclaim(&d, None).await?;
                return Err(e);
            }
        };
        self.drop_draft(&d, true).await?;
        self.audit_draft(actor, "draft.send", &d)?;
        self.audit.commit().await?;
        Ok(accepted.to_json())
    }

    /// Sends every scheduled draft now due (each in its own task); returns the next due time.
    pub(in crate::queue) fn fire_due_drafts(
        self: &std::sync::Arc<Self>,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Option<i64> {
        let now = now_millis();
        for r in self.store.scan_prefix(Tree::DraftSchedule, &[]) {
            let Ok((k, _)) = r else {
                return None;
            };
            let Some((due, agent, id)) = parse_schedule_key(&k) else {
                continue;
            };
            if due > now {
                return Some(due);
            }
            // One attempt at a time per draft; the entry stays until the attempt settles
            // (sent: dropped with the draft; refused: dropped, the draft kept with the
            // reason), so a crash meanwhile fires it again after the restart.
            let flight = format!("draft:{id}");
            {
                let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
                // A burst of due drafts goes a few at a time; the rest wait for a later pass.
                if inflight.iter().filter(|f| f.starts_with("draft:")).count() >= MAX_FIRING {
                    return Some(now + 100);
                }
                if !inflight.insert(flight.clone()) {
                    continue;
                }
            }
            let q = self.clone();
            tasks.spawn(async move {
                if let Err(e) = q.fire_draft(&agent, &id, due).await {
                    tracing::warn!(draft = %id, error = %e, "scheduled draft not sent");
                }
                q.inflight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&flight);
            });
        }
        None
    }

    async fn fire_draft(&self, agent: &str, id: &str, due: i64) -> Result<(), QueueError> {
        let stale = || -> Result<(), QueueError> {
            Ok(self
                .store
                .remove(Tree::DraftSchedule, &schedule_key(due, agent, id))?)
        };
        let Ok(seen) = self.load_draft(agent, id) else {
            return stale();
        };
        // Rescheduled, unscheduled or being sent since the entry was read.
        if seen.send_at_ms != Some(due) || seen.sending {
            return stale();
        }
        let d = match self.claim(&seen, Some(due)) {
            Ok(d) => d,
            Err(QueueError::Conflict(_) | QueueError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let sent = match self.identity.actor_for_key(agent, &d.key_id) {
            Ok(actor) if actor.agent_id() == Some(agent) => {
                match self.send(&actor, &d.fields.request()).await {
                    Ok(_) => Ok(actor),
                    Err(e) => Err(e.to_string()),
                }
            }
            Ok(_) => Err("the key that scheduled it no longer belongs to this agent".into()),
            Err(e) => Err(format!("not sent: {e}")),
        };
        match sent {
            Ok(actor) => {
                self.drop_draft(&d, true).await?;
                self.audit_draft(&actor, "draft.send", &d)?;
                self.audit.commit().await?;
            }
            Err(why) => {
                self.audit.append(crate::audit::NewEntry {
                    actor: crate::audit::ActorRef::agent(agent),
                    chain: vec![],
                    action: "draft.send".into(),
                    target: id.to_string(),
                    outcome: Outcome::Error,
                    detail: json!({"reason": why, "key_id": d.key_id}),
                })?;
                self.unclaim(&d, Some(why)).await?;
            }
        }
        Ok(())
    }
}
