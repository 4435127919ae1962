//! Agent reputation (issue 24 §6): a 0-100 score with the factors behind it, computed from
//! what the store already records (the agent's age, its queued mail and each recipient's
//! outcome, audited refusals and denials, revoked keys) by the pure function in [`score`].
//!
//! Two ways to read it: `GET /v1/agents/{id}/reputation` (an admin, or the agent itself) and,
//! with no key, `GET /agents/{local}/reputation.jwt`: a short-lived EdDSA JWT signed by the
//! operator (`iss` = the domain's did:web, keys in `/.well-known/did.json` and
//! `/.well-known/jwks.json`), not by the agent it describes. The public route is rate-limited
//! (`identity.reputation_jwt_per_minute`, server-wide), as each answer scans the agent's
//! history and signs.

pub mod score;

use crate::audit::{Audit, Filter, Outcome};
use crate::identity::{Actor, Agent, IdentityError, IdentityService};
use crate::queue::{QueuedMessage, RcptStatus};
use crate::store::{Store, Tree};
use crate::util::{new_id, now_millis, now_unix};
use score::{History, WINDOW_DAYS};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Lifetime of a reputation attestation.
pub const JWT_TTL_SECS: i64 = 3600;
/// Most audit entries counted per question (denials beyond it change nothing: capped).
const MAX_AUDIT_SCAN: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReputationError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("too many reputation requests; try again in a minute")]
    RateLimited,
}

pub struct ReputationService {
    store: Store,
    audit: Arc<Audit>,
    identity: Arc<IdentityService>,
    per_minute: u32,
    /// (minute, answers in it) for the public route.
    window: Mutex<(i64, u32)>,
}

impl ReputationService {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        identity: Arc<IdentityService>,
        per_minute: u32,
    ) -> Self {
        Self {
            store,
            audit,
            identity,
            per_minute,
            window: Mutex::new((0, 0)),
        }
    }

    /// The agent's history over the window, from the store.
    fn history(&self, agent: &Agent, now_ms: i64) -> Result<History, IdentityError> {
        let since = now_ms - WINDOW_DAYS * 86_400_000;
        let mut h = History {
            age_days: ((now_ms / 1000 - agent.created_at).max(0)) as f64 / 86_400.0,
            revoked: !agent.is_active(),
            ..Default::default()
        };
        let all = std::ops::Bound::Unbounded;
        for r in self.store.range(Tree::Queue, all.clone(), all, false) {
            let (_, v) = r.map_err(IdentityError::Store)?;
            let Ok(m) = crate::store::decode::<QueuedMessage>(&v) else {
                continue;
            };
            if m.agent_id != agent.id || m.created_ms < since {
                continue;
            }
            for rc in &m.recipients {
                match rc.status {
                    RcptStatus::Delivered => h.delivered += 1,
                    RcptStatus::PermanentFailure | RcptStatus::Bounced => h.bounced += 1,
                    // Delivered, then reported as unwanted: a final outcome of its own.
                    RcptStatus::Complained => h.complained += 1,
                    RcptStatus::TemporaryFailure => h.deferred += 1,
                    RcptStatus::Scheduled => h.pending += 1,
                    RcptStatus::Cancelled => {}
                }
                if rc.status.is_final() && rc.attempts > 1 {
                    h.deferred += 1;
                }
            }
        }
        let denied = Filter {
            agent: Some(agent.id.clone()),
            outcome: Some(Outcome::Denied),
            since: Some(since),
            ..Default::default()
        };
        let page = self
            .audit
            .query(&denied, MAX_AUDIT_SCAN, None)
            .map_err(IdentityError::Audit)?;
        for e in &page.items {
            if e.action.starts_with("mail.send") || e.action.starts_with("mail.reply") {
                h.policy_refusals += 1;
            } else {
                h.denied_requests += 1;
            }
        }
        h.revoked_keys = self
            .identity
            .agent_api_keys(&agent.id)?
            .iter()
            .filter(|k| k.revoked_at.is_some())
            .count() as u64;
        Ok(h)
    }

    fn report(&self, agent: &Agent) -> Result<Value, IdentityError> {
        let now = now_millis();
        let r = score::score(&self.history(agent, now)?);
        Ok(json!({
            "agent": agent.id,
            "did": self.identity.agent_did(agent),
            "score": r.score,
            "factors": r.factors,
            "window": {"days": WINDOW_DAYS, "since": crate::util::rfc3339(now / 1000 - WINDOW_DAYS * 86_400),
                       "until": crate::util::rfc3339(now / 1000)},
            "formula": "README: Reputation score",
        }))
    }

    /// `GET /v1/agents/{id}/reputation`: an admin, or the agent asking about itself.
    pub fn reputation(&self, actor: &Actor, id: &str) -> Result<Value, IdentityError> {
        let agent = self
            .identity
            .find_agent(id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        if actor.agent_id() != Some(agent.id.as_str()) {
            actor.require_admin(&self.audit, "agent.reputation", &agent.id)?;
        }
        self.report(&agent)
    }

    /// `GET [/orgs/{domain}]/agents/{local}/reputation.jwt`: no key needed, rate-limited.
    pub fn attestation(
        &self,
        domain: Option<&str>,
        local: &str,
    ) -> Result<String, ReputationError> {
        {
            let minute = now_unix() / 60;
            let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            if w.0 != minute {
                *w = (minute, 0);
            }
            if w.1 >= self.per_minute {
                return Err(ReputationError::RateLimited);
            }
            w.1 += 1;
        }
        let agent = self
            .identity
            .agent_by_did_path(domain, local)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let report = self.report(&agent)?;
        let now = now_unix();
        let claims = json!({
            "sub": report["did"],
            "iat": now,
            "nbf": now,
            "exp": now + JWT_TTL_SECS,
            "jti": new_id("rep"),
            "score": report["score"],
            "factors": report["factors"],
            "window": report["window"],
        });
        Ok(self.identity.operator_jwt(claims)?)
    }
}
