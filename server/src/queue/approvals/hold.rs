//! Holding a send for a human's approval, and listing what is held (`GET /v1/approvals`).

use super::*;

impl QueueService {
    /// Inside the queueing transaction of a held send: judged again (nothing counted),
    /// bounded by `send_policy.max_pending_approvals`, then recorded as pending with a hold
    /// on the message's bytes.
    pub(in crate::queue) fn hold_in(
        &self,
        tx: &Tx<'_>,
        h: &NewHold<'_>,
        queued: QueuedMessage,
    ) -> Result<Result<(), Refusal>, TxStoreError> {
        if let Err(r) = self
            .policy
            .hold_in(tx, h.agent, h.eff, h.rcpts, h.size, h.now)?
        {
            return Ok(Err(r));
        }
        let max = self.policy.max_pending_approvals;
        let pending = pending_count(tx, &h.agent.id)?;
        if pending >= max {
            return Ok(Err(Refusal::Limit {
                rule: "max_pending_approvals",
                limit: max,
                retry_after_secs: 300,
            }));
        }
        set_pending_count(tx, &h.agent.id, pending + 1)?;
        let id = queued.id.clone();
        let a = Approval {
            id: id.clone(),
            agent_id: h.agent.id.clone(),
            org_id: h.agent.org_id.clone(),
            status: ApprovalStatus::Pending,
            rule: h.rule.to_string(),
            reason: h.reason.to_string(),
            size: h.size,
            created_ms: h.now,
            expires_ms: h.now.saturating_add(self.policy.approval_ttl_ms),
            decided_ms: None,
            decided_by: None,
            note: None,
            queued,
        };
        tx.put_record(Tree::Approvals, id.as_bytes(), &a)?;
        tx.put(Tree::ApprovalsPending, &pending_key(&a.agent_id, &id), &[])?;
        tx.put(Tree::ApprovalExpiry, &expiry_key(a.expires_ms, &id), &[])?;
        holds::hold(tx, &id)?;
        tx.emit(&EventRecord::new(
            "message.held",
            &a.agent_id,
            json!({
                "message_id": id,
                "rule": a.rule,
                "reason": a.reason,
                "recipients": a.queued.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                "expires_at": rfc3339(a.expires_ms / 1000),
            }),
        ))?;
        Ok(Ok(()))
    }

    /// The approval record of one of `agent`'s messages, if it was ever held.
    pub fn approval_of(&self, agent_id: &str, id: &str) -> Result<Option<Approval>, QueueError> {
        let a: Option<Approval> = self.store.get_record(Tree::Approvals, id.as_bytes())?;
        Ok(a.filter(|a| a.agent_id == agent_id))
    }

    /// `GET /v1/approvals`: an admin sees every agent's (or `agent`'s), an agent with
    /// `mail:send` its own. Newest ids are not ordered by time; pages follow id order.
    pub fn approvals(&self, actor: &Actor, q: &ApprovalQuery) -> Result<Value, QueueError> {
        let action = "approval.list";
        let only_agent = if actor.is_admin() {
            match &q.agent {
                Some(a) => Some(
                    self.identity
                        .find_agent(a)?
                        .ok_or(QueueError::NotFound("agent"))?
                        .id,
                ),
                None => None,
            }
        } else {
            let me = actor.require(&self.audit, Scope::MailSend, action, "")?;
            if q.agent.as_deref().is_some_and(|a| a != me) {
                return Err(QueueError::NotFound("agent"));
            }
            Some(me.to_string())
        };
        let status = match q.status.as_deref().unwrap_or("pending") {
            "all" => None,
            s => Some(ApprovalStatus::parse(s).ok_or_else(|| {
                QueueError::Invalid(
                    "status: pending, approved, rejected, expired or all".to_string(),
                )
            })?),
        };
        if let Some(c) = &q.cursor {
            if !crate::util::is_id_of(c, "msg") {
                return Err(QueueError::Invalid("invalid cursor".into()));
            }
        }
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let mut items = Vec::new();
        let mut next = None;
        let mut take = |a: Approval| -> bool {
            if status.is_some_and(|s| s != a.status)
                || only_agent.as_deref().is_some_and(|ag| ag != a.agent_id)
            {
                return true;
            }
            if items.len() == limit {
                next = items
                    .last()
                    .and_then(|v: &Value| v["id"].as_str())
                    .map(str::to_string);
                return false;
            }
            items.push(a.to_json());
            true
        };
        let cursor = q.cursor.clone().unwrap_or_default();
        match (&only_agent, status) {
            // An agent's pending ones: its own index, not the whole table.
            (Some(agent), Some(ApprovalStatus::Pending)) => {
                let prefix = keys::prefix(&[agent]);
                let from = if cursor.is_empty() {
                    Bound::Included(prefix.clone())
                } else {
                    Bound::Excluded(pending_key(agent, &cursor))
                };
                for item in self
                    .store
                    .range(Tree::ApprovalsPending, from, Bound::Unbounded, false)
                {
                    let (k, _) = item?;
                    if !k.starts_with(&prefix) {
                        break;
                    }
                    let id = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
                    let Some(a) = self
                        .store
                        .get_record::<Approval>(Tree::Approvals, id.as_bytes())?
                    else {
                        continue;
                    };
                    if !take(a) {
                        break;
                    }
                }
            }
            _ => {
                let from = if cursor.is_empty() {
                    Bound::Unbounded
                } else {
                    Bound::Excluded(cursor.into_bytes())
                };
                for item in self
                    .store
                    .range(Tree::Approvals, from, Bound::Unbounded, false)
                {
                    let (_, v) = item?;
                    if !take(crate::store::decode::<Approval>(&v)?) {
                        break;
                    }
                }
            }
        }
        Ok(json!({"items": items, "next_cursor": next}))
    }
}
