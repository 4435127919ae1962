//! Operator actions on the queue: list, retry now, cancel. Admin only, audited.

use super::model::{schedule_key, QueuedMessage, RcptStatus};
use super::service::QueueService;
use super::QueueError;
use crate::audit::Outcome;
use crate::identity::Actor;
use crate::store::{Tree, TxFail};
use crate::util::now_millis;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Include messages whose recipients are all final.
    #[serde(default)]
    pub all: bool,
}

impl QueueService {
    /// `GET /v1/queue`: pending messages (or all with `all=true`), in id order.
    pub fn list(&self, actor: &Actor, q: &QueueQuery) -> Result<Value, QueueError> {
        actor.require_admin(&self.audit, "queue.list", "")?;
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let start = q.cursor.clone().unwrap_or_default();
        let mut items = Vec::new();
        let mut next = None;
        let from = std::ops::Bound::Excluded(start.clone().into_bytes());
        let from = if start.is_empty() {
            std::ops::Bound::Unbounded
        } else {
            from
        };
        for item in self
            .store
            .range(Tree::Queue, from, std::ops::Bound::Unbounded, false)
        {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k).to_string();
            let m: QueuedMessage = crate::store::decode(&v)?;
            if !q.all && m.is_done() {
                continue;
            }
            if items.len() == limit {
                next = Some(items_last_id(&items).unwrap_or(id));
                break;
            }
            items.push(m.to_json());
        }
        actor.audit(&self.audit, "queue.list", "", Outcome::Ok, Value::Null)?;
        Ok(json!({"items": items, "next_cursor": next}))
    }

    /// One queued message (admin).
    pub fn get_queued(&self, actor: &Actor, id: &str) -> Result<Value, QueueError> {
        actor.require_admin(&self.audit, "queue.get", id)?;
        let m: QueuedMessage = self
            .store
            .get_record(Tree::Queue, id.as_bytes())?
            .ok_or(QueueError::NotFound("queued message"))?;
        Ok(m.to_json())
    }

    /// Makes every pending recipient due now and wakes the worker.
    pub async fn retry_now(&self, actor: &Actor, id: &str) -> Result<Value, QueueError> {
        actor.require_admin(&self.audit, "queue.retry", id)?;
        let now = now_millis();
        let m = self.rewrite(id, |m| {
            for r in m.recipients.iter_mut().filter(|r| !r.status.is_final()) {
                r.next_attempt_ms = now;
            }
        })?;
        actor.audit(&self.audit, "queue.retry", id, Outcome::Ok, Value::Null)?;
        self.audit.commit().await?;
        self.nudge();
        Ok(m.to_json())
    }

    /// Withdraws every pending recipient; delivered ones stay as they are.
    pub async fn cancel(&self, actor: &Actor, id: &str) -> Result<Value, QueueError> {
        actor.require_admin(&self.audit, "queue.cancel", id)?;
        let m = self.rewrite(id, |m| {
            for r in m.recipients.iter_mut().filter(|r| !r.status.is_final()) {
                r.status = RcptStatus::Cancelled;
                r.last_reply = Some("cancelled by the operator".into());
            }
        })?;
        actor.audit(&self.audit, "queue.cancel", id, Outcome::Ok, Value::Null)?;
        self.audit.commit().await?;
        Ok(m.to_json())
    }

    /// Edits a record and moves its schedule entry in one transaction.
    fn rewrite(
        &self,
        id: &str,
        edit: impl Fn(&mut QueuedMessage),
    ) -> Result<QueuedMessage, QueueError> {
        let m = self.store.transact(&super::recorder::RECORD_TREES, |tx| {
            let Some(mut m) = tx.get_record::<QueuedMessage>(Tree::Queue, id.as_bytes())? else {
                return Err(TxFail::Abort(QueueError::NotFound("queued message")));
            };
            if let Some(d) = m.next_due_ms() {
                tx.remove(Tree::QueueSchedule, &schedule_key(d, id))?;
            }
            let before = crate::reputation::tally::Tally::of(&m);
            edit(&mut m);
            crate::reputation::tally::record_tallied(tx, &m, before)?;
            match m.next_due_ms() {
                Some(d) => tx.put(Tree::QueueSchedule, &schedule_key(d, id), &[])?,
                None => crate::mailbox::holds::release(tx, id)?,
            }
            tx.put_record(Tree::Queue, id.as_bytes(), &m)?;
            Ok(m)
        })?;
        Ok(m)
    }
}

fn items_last_id(items: &[Value]) -> Option<String> {
    items
        .last()
        .and_then(|v| v["id"].as_str())
        .map(str::to_string)
}
