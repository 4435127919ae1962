//! Agent reputation (issue 24 §6): a 0-100 score with the factors behind it, computed from
//! what the store already records (the agent's age, its queued mail and each recipient's
//! outcome, audited refusals and denials, revoked keys) by the pure function in [`score`].
//!
//! Two ways to read it: `GET /v1/agents/{id}/reputation` (an admin, or the agent itself) and,
//! with no key, `GET /agents/{local}/reputation.jwt`: a short-lived EdDSA JWT signed by the
//! operator (`iss` = the domain's did:web, keys in `/.well-known/did.json` and
//! `/.well-known/jwks.json`), not by the agent it describes. The public route is rate-limited
//! per client address (`identity.reputation_jwt_per_minute`, see `limit`), as each answer
//! reads the agent's history and signs.
//!
//! The mail outcomes come from per-agent day buckets kept as queue records are written
//! (`tally`), never from a scan of the whole queue: the window is whole UTC days, the
//! current one and the `WINDOW_DAYS - 1` before it.

mod limit;
pub mod score;
pub mod tally;

use crate::audit::{Audit, Filter, Outcome};
use crate::identity::{Actor, Agent, IdentityError, IdentityService};
use crate::store::Store;
use crate::util::{new_id, now_millis, now_unix};
use score::{History, WINDOW_DAYS};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

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
    /// The public route's answers per client and minute.
    limit: limit::PerClient,
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
            limit: limit::PerClient::new(per_minute),
        }
    }

    /// Counts queue records written before the per-agent tally existed (once per store;
    /// at start, before mail is accepted).
    pub fn backfill(&self) -> Result<usize, crate::store::StoreError> {
        tally::backfill(&self.store)
    }

    /// The first instant of the window at `now_ms`: 00:00 UTC, `WINDOW_DAYS - 1` days ago.
    pub fn window_start_ms(now_ms: i64) -> i64 {
        (tally::day_of(now_ms) as i64 - (WINDOW_DAYS - 1)).max(0) * tally::DAY_MS
    }

    /// The agent's history over the window, from the store.
    fn history(&self, agent: &Agent, now_ms: i64) -> Result<History, IdentityError> {
        let since = Self::window_start_ms(now_ms);
        let t = tally::since(&self.store, &agent.id, tally::day_of(since))
            .map_err(IdentityError::Store)?;
        let mut h = History {
            age_days: ((now_ms / 1000 - agent.created_at).max(0)) as f64 / 86_400.0,
            revoked: !agent.is_active(),
            delivered: t.delivered,
            deferred: t.deferred,
            bounced: t.bounced,
            complained: t.complained,
            pending: t.pending,
            ..Default::default()
        };
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
            "window": {"days": WINDOW_DAYS, "since": crate::util::rfc3339(Self::window_start_ms(now) / 1000),
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

    /// `GET [/orgs/{domain}]/agents/{local}/reputation.jwt`: no key needed, rate-limited per
    /// client address (`client`: the peer of the request).
    pub fn attestation(
        &self,
        domain: Option<&str>,
        local: &str,
        client: Option<IpAddr>,
    ) -> Result<String, ReputationError> {
        if !self.limit.allow(client, now_unix() / 60) {
            return Err(ReputationError::RateLimited);
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
