//! Deciding held sends: approve (the signed bytes are queued as they are), reject, expire.

use super::*;

impl QueueService {
    /// `POST /v1/approvals/{id}/approve` (admins): queues the held message's signed bytes
    /// as they are. The send policy is judged again (every rule but the hold) and the send
    /// counted now; a refusal leaves the approval pending (for example until the hourly
    /// cap's window ends).
    pub async fn approve(
        &self,
        actor: &Actor,
        id: &str,
        note: Option<&str>,
    ) -> Result<Value, QueueError> {
        let action = "approval.approve";
        actor.require_admin(&self.audit, action, id)?;
        let note = check_note(note)?;
        let a = self.pending(id)?;
        let Some(agent) = self.identity.agent(&a.agent_id)?.filter(|g| g.is_active()) else {
            return Err(QueueError::Conflict(
                "the sending agent is no longer active; reject the message instead".into(),
            ));
        };
        let eff = self.policy.effective(&agent)?;
        let rcpts: Vec<Rcpt<'_>> = a
            .queued
            .recipients
            .iter()
            .map(|r| Rcpt {
                address: &r.address,
                domain: &r.domain,
            })
            .collect();
        let now = now_millis();
        if let Err(r) = self
            .policy
            .precheck(&agent, &eff, true, &rcpts, a.size, now)?
        {
            return Err(self.refused_release(actor, id, r).await);
        }
        let approver = actor.chain.first().cloned().unwrap_or_default();
        let mut trees = DECIDE_TREES.to_vec();
        trees.extend([Tree::Queue, Tree::QueueSchedule, Tree::ReputationTally]);
        trees.extend(crate::policy::TX_TREES);
        let r = self.store.transact(&trees, |tx| {
            let Some(mut cur) = tx.get_record::<Approval>(Tree::Approvals, id.as_bytes())? else {
                return Err(TxFail::Abort(QueueError::NotFound("approval")));
            };
            if cur.status != ApprovalStatus::Pending {
                return Err(TxFail::Abort(already(cur.status)));
            }
            if let Err(r) = self
                .policy
                .admit_in(tx, &agent, &eff, true, &rcpts, cur.size, now)?
            {
                return Err(TxFail::Abort(QueueError::Policy(r)));
            }
            let mut q = cur.queued.clone();
            for r in &mut q.recipients {
                *r = Recipient::new(
                    r.address.clone(),
                    r.domain.clone(),
                    r.local_agent.clone(),
                    now,
                );
            }
            crate::reputation::tally::record_change(tx, None, Some(&q))?;
            tx.put_record(Tree::Queue, id.as_bytes(), &q)?;
            tx.put(Tree::QueueSchedule, &schedule_key(now, id), &[])?;
            tx.emit(&EventRecord::new(
                "message.sent",
                &q.agent_id,
                json!({
                    "message_id": id,
                    "recipients": q.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                    "approved_by": approver,
                }),
            ))?;
            decide(tx, &mut cur, ApprovalStatus::Approved, &approver, note, now)?;
            Ok(cur)
        });
        let decided = match r {
            Ok(a) => a,
            Err(crate::store::TxError::Abort(QueueError::Policy(r))) => {
                return Err(self.refused_release(actor, id, r).await)
            }
            Err(e) => return Err(e.into()),
        };
        actor.audit_on_agent(
            &self.audit,
            action,
            &decided.agent_id,
            Outcome::Ok,
            json!({"message_id": id, "note": note}),
        )?;
        // The send itself, as the agent's, with the approving human in its chain.
        let mut chain = decided.queued.chain.clone();
        chain.push(format!("approved-by:{approver}"));
        self.audit.append(NewEntry {
            actor: ActorRef::agent(&decided.agent_id),
            chain,
            action: "mail.send".into(),
            target: id.to_string(),
            outcome: Outcome::Ok,
            detail: json!({
                "message_id": decided.queued.message_id,
                "recipients": decided.queued.recipients.len(),
                "approved_by": approver,
                (crate::audit::SUBJECT_AGENT): decided.agent_id,
            }),
        })?;
        self.audit.commit().await?;
        self.metrics
            .queue_events
            .with_label_values(&["queued"])
            .inc_by(decided.queued.recipients.len() as u64);
        self.nudge();
        Ok(decided.to_json())
    }

    /// `POST /v1/approvals/{id}/reject` (admins): the message is never sent; the agent is
    /// told.
    pub async fn reject(
        &self,
        actor: &Actor,
        id: &str,
        note: Option<&str>,
    ) -> Result<Value, QueueError> {
        let action = "approval.reject";
        actor.require_admin(&self.audit, action, id)?;
        let note = check_note(note)?;
        self.pending(id)?;
        let by = actor.chain.first().cloned().unwrap_or_default();
        let a = self.close(id, ApprovalStatus::Rejected, &by, note, now_millis())?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &a.agent_id,
            Outcome::Ok,
            json!({"message_id": id, "note": note}),
        )?;
        self.audit.commit().await?;
        Ok(a.to_json())
    }

    /// Expires every pending approval whose time is up (the queue worker calls this on its
    /// rounds). Returns how many expired.
    pub fn expire_approvals(&self, now: i64) -> Result<usize, QueueError> {
        let mut due = Vec::new();
        for item in self.store.range(
            Tree::ApprovalExpiry,
            Bound::Unbounded,
            Bound::Excluded(expiry_key(now + 1, "")),
            false,
        ) {
            let (k, _) = item?;
            match k.get(9..).map(|id| String::from_utf8_lossy(id).to_string()) {
                Some(id) => due.push((k, id)),
                None => {
                    let _ = self.store.remove(Tree::ApprovalExpiry, &k);
                }
            }
            if due.len() >= 256 {
                break;
            }
        }
        let mut n = 0;
        for (k, id) in due {
            match self.close(&id, ApprovalStatus::Expired, "system", None, now) {
                Ok(a) => {
                    n += 1;
                    let _ = self.audit.append(NewEntry {
                        actor: ActorRef::system(),
                        chain: a.queued.chain.clone(),
                        action: "approval.expire".into(),
                        target: id.clone(),
                        outcome: Outcome::Ok,
                        detail: json!({"message_id": id, (crate::audit::SUBJECT_AGENT): a.agent_id}),
                    });
                }
                // Decided meanwhile (another node, an admin): only the stale key goes.
                Err(QueueError::Conflict(_)) | Err(QueueError::NotFound(_)) => {
                    self.store.remove(Tree::ApprovalExpiry, &k)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn pending(&self, id: &str) -> Result<Approval, QueueError> {
        if !crate::util::is_id_of(id, "msg") {
            return Err(QueueError::NotFound("approval"));
        }
        let a: Approval = self
            .store
            .get_record(Tree::Approvals, id.as_bytes())?
            .ok_or(QueueError::NotFound("approval"))?;
        if a.status != ApprovalStatus::Pending {
            return Err(already(a.status));
        }
        Ok(a)
    }

    /// Rejects or expires `id` in one transaction that finds it pending: the bytes' hold is
    /// released and the agent told (`message.rejected`).
    fn close(
        &self,
        id: &str,
        status: ApprovalStatus,
        by: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<Approval, QueueError> {
        let a = self.store.transact(&DECIDE_TREES, |tx| {
            let Some(mut cur) = tx.get_record::<Approval>(Tree::Approvals, id.as_bytes())? else {
                return Err(TxFail::Abort(QueueError::NotFound("approval")));
            };
            if cur.status != ApprovalStatus::Pending {
                return Err(TxFail::Abort(already(cur.status)));
            }
            decide(tx, &mut cur, status, by, note, now)?;
            holds::release(tx, id)?;
            tx.emit(&EventRecord::new(
                "message.rejected",
                &cur.agent_id,
                json!({
                    "message_id": id,
                    "approval": status.as_str(),
                    "reason": match status {
                        ApprovalStatus::Expired => "no human approved the message in time".to_string(),
                        _ => format!("a human rejected the message{}", note.map(|n| format!(": {n}")).unwrap_or_default()),
                    },
                    "recipients": cur.queued.recipients.iter().map(|r| &r.address).collect::<Vec<_>>(),
                }),
            ))?;
            Ok(cur)
        })?;
        Ok(a)
    }

    /// A release the policy refused: audited as a denied approval naming the rule.
    async fn refused_release(&self, actor: &Actor, id: &str, r: Refusal) -> QueueError {
        let detail = json!({"message_id": id, "rule": r.rule(), "reason": r.to_string()});
        if let Err(e) = actor.audit(&self.audit, "approval.approve", id, Outcome::Denied, detail) {
            tracing::error!(error = %e, "could not audit a refused release");
        }
        let _ = self.audit.commit().await;
        QueueError::Policy(r)
    }
}
