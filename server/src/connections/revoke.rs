//! Ending connections: one (`DELETE /v1/agents/{id}/connections/{cid}`) or all of a revoked
//! agent's. The tokens are revoked at the provider (RFC 7009) where it offers that, then
//! destroyed. Each connection's refresh lock is held from the read of its tokens to their
//! destruction, so a refresh in flight finishes (and stores the rotated tokens, which are
//! then the ones revoked) before, and none starts after. An agent's connections are revoked
//! at their providers concurrently, each within `connections.revoke_timeout_secs`.

use super::model::{Connection, Status};
use super::provider::ClientAuth;
use super::{ConnectionsError, ConnectionsService};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::identity::{Actor, Agent};
use crate::util::now_unix;
use crate::vault::oauth::OauthSecrets;
use serde_json::json;
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// A live connection taken for revocation: its tokens as read under its lock, and the lock
/// (none when it could not be had: see [`ConnectionsService::take_all_now`]).
pub(super) type Taken = (
    Connection,
    Option<OauthSecrets>,
    Option<OwnedMutexGuard<()>>,
);

impl ConnectionsService {
    fn revoke_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.revoke_timeout_secs)
    }

    /// `DELETE /v1/agents/{id}/connections/{cid}`: revoked at the provider where it offers
    /// that, then the tokens are destroyed.
    pub async fn revoke(
        &self,
        actor: &Actor,
        agent: &str,
        cid: &str,
    ) -> Result<Connection, ConnectionsError> {
        let action = "connection.revoke";
        let a = self.identity.require_owner_or_admin(actor, agent, action)?;
        let lock = self.lock_for(cid);
        let _held = lock.lock().await;
        let conn = self.get(&a.id, cid)?;
        if !conn.status.is_live() {
            return Ok(conn);
        }
        let secrets = self.vault.oauth_open(&a.id, &conn.name).ok();
        let conn = self.end(conn, secrets).await?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &a.id,
            Outcome::Ok,
            json!({"connection": conn.id, "name": conn.name, "granted_by": conn.granted_by_email,
                   "provider_revoked": conn.provider_revoked}),
        )?;
        self.audit.commit().await?;
        Ok(conn)
    }

    /// Revokes a connection's tokens at its provider (refresh token first: most providers
    /// end the whole grant with it). `None`: nothing to revoke there (no endpoint, no token);
    /// otherwise whether every revocation was confirmed.
    pub(super) async fn revoke_at_provider(
        &self,
        conn: &Connection,
        secrets: Option<&OauthSecrets>,
    ) -> Option<bool> {
        let (Some(endpoint), Some(s)) = (&conn.endpoints.revocation_endpoint, secrets) else {
            return None;
        };
        let auth = ClientAuth {
            client_id: &conn.client_id,
            client_secret: s.client_secret.as_deref().map(|x| x.as_str()),
            method: &conn.endpoints.token_auth,
        };
        let mut all_ok = true;
        let mut any = false;
        for (tok, hint) in [
            (&s.refresh_token, "refresh_token"),
            (&s.access_token, "access_token"),
        ] {
            if let Some(t) = tok {
                any = true;
                if let Err(e) = self.provider.revoke(endpoint, &auth, t, hint).await {
                    tracing::warn!(connection = %conn.id, error = %e, "revocation at the provider failed");
                    all_ok = false;
                }
            }
        }
        any.then_some(all_ok)
    }

    /// Revokes at the provider (within the revocation timeout), then removes the credential
    /// and records the outcome.
    pub(super) async fn end(
        &self,
        mut conn: Connection,
        secrets: Option<OauthSecrets>,
    ) -> Result<Connection, ConnectionsError> {
        let confirmed = match tokio::time::timeout(
            self.revoke_timeout(),
            self.revoke_at_provider(&conn, secrets.as_ref()),
        )
        .await
        {
            Ok(c) => c,
            Err(_) => {
                tracing::warn!(connection = %conn.id, "revocation at the provider timed out");
                Some(false)
            }
        };
        self.vault.oauth_remove(&conn.agent_id, &conn.name)?;
        let now = now_unix();
        conn.status = Status::Revoked;
        conn.revoked_at = Some(now);
        conn.updated_at = now;
        conn.provider_revoked = confirmed;
        self.put(&conn)?;
        Ok(conn)
    }

    /// An agent is being revoked: every live connection of it, each read under its refresh
    /// lock (waited for, at most the revocation timeout: a refresh in flight stores its
    /// rotated tokens first), and the locks kept until the tokens are destroyed.
    pub(super) async fn take_all(&self, agent: &Agent) -> Result<Vec<Taken>, String> {
        let conns = self.connections_of(&agent.id).map_err(|e| e.to_string())?;
        let wait = self.revoke_timeout();
        let takes = conns
            .into_iter()
            .filter(|c| c.status.is_live())
            .map(|c| async move {
                let lock = self.lock_for(&c.id);
                let guard = tokio::time::timeout(wait, lock.lock_owned()).await.ok();
                if guard.is_none() {
                    tracing::warn!(connection = %c.id, "a refresh held the connection too long; revoking what is stored");
                }
                self.read_taken(agent, c, guard)
            });
        Ok(futures::future::join_all(takes)
            .await
            .into_iter()
            .flatten()
            .collect())
    }

    /// [`take_all`](Self::take_all) where waiting is impossible (a synchronous hook on a
    /// current-thread runtime, the command line): a lock held by a refresh in flight is not
    /// waited for; that refresh finds the agent revoked and revokes what it obtained itself
    /// (`tokens::token`).
    pub(super) fn take_all_now(&self, agent: &Agent) -> Result<Vec<Taken>, String> {
        let conns = self.connections_of(&agent.id).map_err(|e| e.to_string())?;
        Ok(conns
            .into_iter()
            .filter(|c| c.status.is_live())
            .filter_map(|c| {
                let guard = self.lock_for(&c.id).try_lock_owned().ok();
                self.read_taken(agent, c, guard)
            })
            .collect())
    }

    /// A connection read again (under its lock when held) with its tokens; none when it is
    /// no longer live.
    fn read_taken(
        &self,
        agent: &Agent,
        c: Connection,
        guard: Option<OwnedMutexGuard<()>>,
    ) -> Option<Taken> {
        let c = self.get(&agent.id, &c.id).unwrap_or(c);
        if !c.status.is_live() {
            return None;
        }
        let s = self.vault.oauth_open(&agent.id, &c.name).ok();
        Some((c, s, guard))
    }

    /// Revokes the taken connections at their providers, all at once, and records each.
    pub(super) async fn revoke_taken(&self, agent: &Agent, taken: Vec<Taken>) {
        let ends = taken.into_iter().map(|(c, s, guard)| async move {
            let chain = c.chain(&agent.chain);
            let r = self.end(c, s).await;
            drop(guard);
            (chain, r)
        });
        for (chain, r) in futures::future::join_all(ends).await {
            let (outcome, detail) = match &r {
                Ok(c) => (
                    Outcome::Ok,
                    json!({"connection": c.id, "name": c.name, "granted_by": c.granted_by_email,
                    "provider_revoked": c.provider_revoked, "reason": "agent_revoked",
                    (crate::audit::SUBJECT_AGENT): agent.id}),
                ),
                Err(e) => (
                    Outcome::Error,
                    json!({"reason": "agent_revoked", "error": e.to_string(),
                    (crate::audit::SUBJECT_AGENT): agent.id}),
                ),
            };
            if let Err(e) = self.audit.append(NewEntry {
                actor: ActorRef::system(),
                chain,
                action: "connection.revoke".into(),
                target: agent.id.clone(),
                outcome,
                detail,
            }) {
                tracing::error!(error = %e, "could not audit a connection revocation");
            }
        }
        if let Err(e) = self.audit.commit().await {
            tracing::error!(error = %e, "could not commit connection revocations");
        }
    }

    pub(super) async fn revoke_all(&self, agent: &Agent) -> Result<(), String> {
        let taken = self.take_all(agent).await?;
        self.revoke_taken(agent, taken).await;
        Ok(())
    }
}
