//! The circuit breaker (issue 24, item 5): each agent's recent recipient outcomes and the
//! complaints against its mail, in one store record per agent, updated in a transaction per
//! observation (so two nodes recording outcomes for one agent never lose one). When the
//! hard-bounce rate over the window, or the complaints since the last resume, reach the
//! configured thresholds, the agent's sending pauses until an admin resumes it. The record
//! also keeps lifetime totals: history a reputation score can read.

use super::{PolicyError, PolicyService};
use crate::audit::Outcome;
use crate::config::BreakerConfig;
use crate::identity::Actor;
use crate::store::{StoreError, Tree, Tx, TxFail, TxStoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What happened to one recipient of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    Delivered,
    /// A permanent failure saying the address does not (or no longer) exist(s).
    HardBounce,
    /// A complaint (ARF) against the message.
    Complaint,
}

/// Why and since when an agent's sending is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub since_ms: i64,
    /// `hard_bounce_rate` or `complaints`.
    pub rule: String,
    pub reason: String,
}

/// One recent outcome: `message id/recipient index`, and whether it hard-bounced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    pub key: String,
    pub bounced: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// The last `window` outcomes, oldest first.
    #[serde(default)]
    pub recent: Vec<Recent>,
    /// Complaints since the last resume.
    #[serde(default)]
    pub complaints: u64,
    #[serde(default)]
    pub paused: Option<Pause>,
    /// Lifetime totals (never reset by a resume).
    #[serde(default)]
    pub delivered_total: u64,
    #[serde(default)]
    pub bounced_total: u64,
    #[serde(default)]
    pub complained_total: u64,
    #[serde(default)]
    pub trips_total: u64,
}

/// A reply that says the address is bad (RFC 3463 class 5.1.x, or a 5.2.1 disabled
/// mailbox; without an enhanced code, 550/551/553): what counts as a hard bounce. Policy
/// refusals (5.7.x), full mailboxes and expiry in our queue do not.
pub fn is_hard_bounce(reply: &str) -> bool {
    let mut words = reply.split_whitespace();
    let code = words.next().unwrap_or("");
    if !code.starts_with('5') {
        return false;
    }
    match words.next() {
        Some(enh) if enh.starts_with("5.") && enh.split('.').count() == 3 => {
            enh.starts_with("5.1.") || enh == "5.2.1"
        }
        _ => matches!(code, "550" | "551" | "553"),
    }
}

impl BreakerState {
    /// Records `obs` for `key`; returns the pause this observation caused, if any.
    pub fn observe(
        &mut self,
        key: &str,
        obs: Observation,
        cfg: &BreakerConfig,
        now_ms: i64,
    ) -> Option<Pause> {
        match obs {
            Observation::Complaint => {
                self.complaints += 1;
                self.complained_total += 1;
            }
            Observation::Delivered | Observation::HardBounce => {
                let bounced = obs == Observation::HardBounce;
                if bounced {
                    self.bounced_total += 1;
                } else {
                    self.delivered_total += 1;
                }
                // A bounce arriving after the delivery was recorded turns that outcome
                // over rather than counting the recipient twice.
                match self.recent.iter_mut().find(|r| r.key == key) {
                    Some(r) => r.bounced |= bounced,
                    None => self.recent.push(Recent {
                        key: key.to_string(),
                        bounced,
                    }),
                }
                let window = cfg.window.max(1);
                if self.recent.len() > window {
                    let extra = self.recent.len() - window;
                    self.recent.drain(..extra);
                }
            }
        }
        if !cfg.enabled || self.paused.is_some() {
            return None;
        }
        let pause = if self.complaints >= cfg.max_complaints {
            Some((
                "complaints",
                format!(
                    "{} complaint(s) about this agent's mail since it last resumed",
                    self.complaints
                ),
            ))
        } else {
            let n = self.recent.len();
            let bounced = self.recent.iter().filter(|r| r.bounced).count();
            let over = bounced > 0
                && n >= cfg.min_sends.max(1)
                && (bounced as u64) * 100 >= u64::from(cfg.max_hard_bounce_percent) * n as u64;
            over.then(|| {
                (
                    "hard_bounce_rate",
                    format!(
                        "{bounced} of its last {n} recipients hard-bounced (threshold {}%)",
                        cfg.max_hard_bounce_percent
                    ),
                )
            })
        };
        let (rule, reason) = pause?;
        let p = Pause {
            since_ms: now_ms,
            rule: rule.into(),
            reason,
        };
        self.trips_total += 1;
        self.paused = Some(p.clone());
        Some(p)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "paused": self.paused.as_ref().map(|p| json!({
                "since": crate::util::rfc3339(p.since_ms / 1000),
                "rule": p.rule,
                "reason": p.reason,
            })),
            "recent_outcomes": self.recent.len(),
            "recent_hard_bounces": self.recent.iter().filter(|r| r.bounced).count(),
            "complaints_since_resume": self.complaints,
            "delivered_total": self.delivered_total,
            "bounced_total": self.bounced_total,
            "complained_total": self.complained_total,
            "trips_total": self.trips_total,
        })
    }
}

/// The breaker records one store transaction observes, each read once and written once
/// when it ends (`finish`): the delivery recorder observes every outcome of a batch of
/// deliveries in the batch's own transaction, so a delivery costs one transaction, not two,
/// and a batch of one agent's deliveries reads and writes its record once, not per message.
/// Make one per run of the transaction body (a retried run starts afresh).
pub struct BreakerBatch<'c> {
    cfg: &'c BreakerConfig,
    now_ms: i64,
    /// By agent: its record as changed so far, or `None` when the stored one is unreadable
    /// (then nothing is observed for it: an outcome is never refused for the breaker).
    states: BTreeMap<String, Option<BreakerState>>,
}

impl<'c> BreakerBatch<'c> {
    pub fn new(cfg: &'c BreakerConfig, now_ms: i64) -> Self {
        Self {
            cfg,
            now_ms,
            states: BTreeMap::new(),
        }
    }

    /// Records `obs` of recipient `key` for `agent_id`; returns the pause it caused, if any.
    pub fn observe(
        &mut self,
        tx: &Tx<'_>,
        agent_id: &str,
        key: &str,
        obs: Observation,
    ) -> Result<Option<Pause>, TxStoreError> {
        if !self.states.contains_key(agent_id) {
            let st = match tx.get(Tree::BreakerState, agent_id.as_bytes())? {
                None => Some(BreakerState::default()),
                Some(v) => match crate::store::decode::<BreakerState>(&v) {
                    Ok(st) => Some(st),
                    Err(e) => {
                        tracing::warn!(error = %e, agent = agent_id, "unreadable breaker record; outcomes not counted");
                        None
                    }
                },
            };
            self.states.insert(agent_id.to_string(), st);
        }
        Ok(match self.states.get_mut(agent_id) {
            Some(Some(st)) => st.observe(key, obs, self.cfg, self.now_ms),
            _ => None,
        })
    }

    /// Writes every record observed (in the same transaction).
    pub fn finish(self, tx: &Tx<'_>) -> Result<(), TxStoreError> {
        for (agent, st) in &self.states {
            if let Some(st) = st {
                tx.put_record(Tree::BreakerState, agent.as_bytes(), st)?;
            }
        }
        Ok(())
    }
}

impl PolicyService {
    /// The thresholds a [`BreakerBatch`] observes with; `None` under `danger_unchecked`
    /// (no breaker is kept).
    pub fn breaker_config(&self) -> Option<&BreakerConfig> {
        (!self.unchecked).then_some(&self.breaker)
    }

    /// Whether a trip mails the owning human (`breaker.notify_owner`).
    pub fn breaker_notifies(&self) -> bool {
        self.breaker.notify_owner
    }

    /// The agent's breaker record (absent: nothing observed yet).
    pub fn breaker(&self, agent_id: &str) -> Result<BreakerState, StoreError> {
        Ok(self
            .store
            .get_record(Tree::BreakerState, agent_id.as_bytes())?
            .unwrap_or_default())
    }

    /// Records one outcome for `agent_id` in its own transaction (a report that arrives
    /// after delivery; delivery outcomes go through a [`BreakerBatch`] in the recorder's).
    /// Returns the pause it caused (the caller audits it and notifies the owner).
    pub fn observe(
        &self,
        agent_id: &str,
        key: &str,
        obs: Observation,
    ) -> Result<Option<Pause>, StoreError> {
        let now = crate::util::now_millis();
        let r = self.store.transact::<_, ()>(&[Tree::BreakerState], |tx| {
            let mut batch = BreakerBatch::new(&self.breaker, now);
            let p = batch.observe(tx, agent_id, key, obs)?;
            batch.finish(tx)?;
            Ok(p)
        });
        match r {
            Ok(p) => Ok(p),
            Err(crate::store::TxError::Store(e)) => Err(e),
            Err(crate::store::TxError::Abort(())) => Ok(None),
        }
    }

    /// `GET /v1/agents/{id}/breaker`: an admin, the agent itself, or its parent with
    /// `identity:sign`, as for the send policy.
    pub fn breaker_json(&self, actor: &Actor, id: &str) -> Result<Value, PolicyError> {
        let agent = self.target(actor, id, "agent.breaker.get", false)?;
        let mut v = self.breaker(&agent.id)?.to_json();
        v["agent_id"] = agent.id.clone().into();
        Ok(v)
    }

    /// `POST /v1/agents/{id}/resume` (admins): lifts a pause and starts the window afresh.
    pub async fn resume(&self, actor: &Actor, id: &str) -> Result<Value, PolicyError> {
        let action = "agent.resume";
        actor.require_admin(&self.audit, action, id)?;
        let agent = self
            .identity
            .find_agent(id)?
            .ok_or(PolicyError::NotFound("agent"))?;
        let was = self
            .store
            .transact::<_, ()>(&[Tree::BreakerState], |tx| {
                let mut st: BreakerState = tx
                    .get_record(Tree::BreakerState, agent.id.as_bytes())?
                    .unwrap_or_default();
                let was = st.paused.take();
                st.recent.clear();
                st.complaints = 0;
                tx.put_record(Tree::BreakerState, agent.id.as_bytes(), &st)?;
                Ok::<_, TxFail<()>>(was)
            })
            .map_err(|e| match e {
                crate::store::TxError::Store(e) => PolicyError::Store(e),
                crate::store::TxError::Abort(()) => PolicyError::NotFound("agent"),
            })?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &agent.id,
            Outcome::Ok,
            json!({"was_paused": was.is_some(), "rule": was.as_ref().map(|p| p.rule.clone())}),
        )?;
        self.audit.commit().await?;
        let mut v = self.breaker(&agent.id)?.to_json();
        v["agent_id"] = agent.id.clone().into();
        v["resumed"] = was.is_some().into();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_bounces_are_told_from_other_failures() {
        assert!(is_hard_bounce("550 5.1.1 No such user"));
        assert!(is_hard_bounce("550 5.2.1 Mailbox disabled"));
        assert!(is_hard_bounce("550 User unknown"));
        assert!(!is_hard_bounce("550 5.7.1 Policy refusal"));
        assert!(!is_hard_bounce("552 5.2.2 Mailbox full"));
        assert!(!is_hard_bounce("554 4.4.7 Message expired in queue"));
        assert!(!is_hard_bounce("451 4.3.0 Try later"));
        assert!(!is_hard_bounce(""));
    }

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            window: 10,
            min_sends: 4,
            max_hard_bounce_percent: 50,
            max_complaints: 2,
            ..Default::default()
        }
    }

    #[test]
    fn the_bounce_rate_trips_at_the_threshold_and_not_before() {
        let c = cfg();
        let mut s = BreakerState::default();
        assert_eq!(s.observe("m1/0", Observation::HardBounce, &c, 1), None);
        assert_eq!(s.observe("m2/0", Observation::Delivered, &c, 2), None);
        assert_eq!(s.observe("m3/0", Observation::Delivered, &c, 3), None);
        // 2 of 4 = 50 %: trips.
        let p = s.observe("m4/0", Observation::HardBounce, &c, 4).unwrap();
        assert_eq!(p.rule, "hard_bounce_rate");
        assert_eq!(p.since_ms, 4);
        // Paused: no second trip.
        assert_eq!(s.observe("m5/0", Observation::HardBounce, &c, 5), None);
        assert_eq!(s.trips_total, 1);
    }

    #[test]
    fn a_late_bounce_turns_its_delivery_over_and_complaints_trip() {
        let c = cfg();
        let mut s = BreakerState::default();
        for k in ["a/0", "b/0", "c/0", "d/0"] {
            s.observe(k, Observation::Delivered, &c, 1);
        }
        assert_eq!(s.observe("a/0", Observation::HardBounce, &c, 2), None);
        assert_eq!(s.recent.len(), 4, "the same recipient, not a fifth outcome");
        assert!(s.observe("b/0", Observation::HardBounce, &c, 3).is_some());
        let mut s = BreakerState::default();
        assert_eq!(s.observe("a/0", Observation::Complaint, &c, 1), None);
        let p = s.observe("a/0", Observation::Complaint, &c, 2).unwrap();
        assert_eq!(p.rule, "complaints");
        // Disabled: recorded, never paused.
        let off = BreakerConfig {
            enabled: false,
            ..cfg()
        };
        let mut s = BreakerState::default();
        for _ in 0..5 {
            assert_eq!(s.observe("x/0", Observation::Complaint, &off, 1), None);
        }
        assert_eq!(s.complained_total, 5);
    }

    #[test]
    fn the_window_keeps_only_the_last_outcomes() {
        let c = BreakerConfig {
            enabled: false,
            window: 3,
            ..Default::default()
        };
        let mut s = BreakerState::default();
        for i in 0..5 {
            s.observe(&format!("m{i}/0"), Observation::Delivered, &c, 1);
        }
        let keys: Vec<&str> = s.recent.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["m2/0", "m3/0", "m4/0"]);
    }
}
