//! Using and ending connections: the agent's access token (refreshed here, never the refresh
//! token itself), the owners' list, and revocation at the provider before the tokens are
//! destroyed.

use super::model::{Connection, Status};
use super::provider::{ClientAuth, TokenFailure};
use super::{ConnectionsError, ConnectionsService};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::identity::{Actor, Agent, Scope};
use crate::util::now_unix;
use crate::vault::oauth::OauthSecrets;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// What `POST /v1/vault/{name}/token` answers.
pub struct AccessToken {
    pub access_token: Zeroizing<String>,
    pub token_type: String,
    /// Seconds left; none when the provider gave no lifetime.
    pub expires_in: Option<i64>,
}

impl AccessToken {
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token.as_str(),
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        })
    }
}

impl ConnectionsService {
    /// The live connection named `name` of an agent.
    fn by_name(&self, agent_id: &str, name: &str) -> Result<Connection, ConnectionsError> {
        let all = self.connections_of(agent_id)?;
        all.iter()
            .find(|c| c.name == name && c.status.is_live())
            .or_else(|| all.iter().rev().find(|c| c.name == name))
            .cloned()
            .ok_or(ConnectionsError::NotFound("connection"))
    }

    /// `POST /v1/vault/{name}/token` (the agent, `vault:read`): a usable access token,
    /// refreshed first when it is (nearly) expired. One request per connection at a time
    /// refreshes, so a rotated refresh token is never lost to a race.
    pub async fn token(&self, actor: &Actor, name: &str) -> Result<AccessToken, ConnectionsError> {
        let action = "connection.token";
        let agent_id = actor
            .require(&self.audit, Scope::VaultRead, action, name)?
            .to_string();
        crate::vault::credential::validate_name(name).map_err(ConnectionsError::BadRequest)?;
        let agent = self
            .identity
            .agent(&agent_id)?
            .ok_or(ConnectionsError::NotFound("agent"))?;
        let found = self.by_name(&agent_id, name)?;
        let lock = self.lock_for(&found.id);
        let _held = lock.lock().await;
        // Read again under the lock: another request may just have refreshed or failed it.
        let conn = self.get(&agent_id, &found.id)?;
        let mut user = actor.clone();
        user.chain = conn.chain(&agent.chain);
        match conn.status {
            Status::Active => {}
            Status::NeedsConsent => {
                self.denied_use(&user, &conn, "needs_consent")?;
                return Err(ConnectionsError::NeedsConsent(conn.name.clone()));
            }
            s => {
                self.denied_use(&user, &conn, "not_active")?;
                return Err(ConnectionsError::NotActive(format!(
                    "the connection {} is {}",
                    conn.name,
                    serde_json::to_value(s)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )));
            }
        }
        let mut secrets = self.vault.oauth_open(&agent_id, &conn.name)?;
        let now = now_unix();
        let skew = self.settings.refresh_skew_secs as i64;
        let fresh = secrets.access_token.is_some()
            && secrets.access_expires_at.is_none_or(|e| e - now > skew);
        let mut refreshed = false;
        let mut rotated = false;
        if !fresh {
            let Some(refresh) = secrets.refresh_token.clone() else {
                self.needs_consent(
                    &user,
                    &agent,
                    conn,
                    "the access token expired and there is no refresh token",
                )
                .await?;
                return Err(ConnectionsError::NeedsConsent(name.to_string()));
            };
            let auth = ClientAuth {
                client_id: &conn.client_id,
                client_secret: secrets.client_secret.as_deref().map(|s| s.as_str()),
                method: &conn.endpoints.token_auth,
            };
            let answer = self
                .provider
                .token(
                    &conn.endpoints.token_endpoint,
                    &auth,
                    &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
                )
                .await;
            match answer {
                Ok(t) => {
                    secrets.access_expires_at =
                        t.expires_in.map(|s| now + s.clamp(0, 10 * 365 * 86400));
                    if t.token_type.is_some() {
                        secrets.token_type = t.token_type;
                    }
                    secrets.access_token = Some(t.access_token);
                    if let Some(r) = t.refresh_token {
                        rotated = r.as_str() != refresh.as_str();
                        secrets.refresh_token = Some(r);
                    }
                    // Stored before anything is handed out: a rotated refresh token is the
                    // only way back in, and the old one is already spent.
                    self.vault
                        .oauth_put(&agent_id, &conn.name, None, &secrets, false)?;
                    refreshed = true;
                }
                Err(TokenFailure::InvalidGrant(m)) => {
                    self.needs_consent(&user, &agent, conn, &m).await?;
                    return Err(ConnectionsError::NeedsConsent(name.to_string()));
                }
                Err(TokenFailure::Other(m)) => {
                    user.audit(
                        &self.audit,
                        action,
                        name,
                        Outcome::Error,
                        json!({"connection": conn.id, "granted_by": conn.granted_by_email, "reason": m}),
                    )?;
                    return Err(ConnectionsError::Provider(format!(
                        "refreshing failed: {m}"
                    )));
                }
            }
        }
        let access = secrets
            .access_token
            .clone()
            .ok_or_else(|| ConnectionsError::Provider("no access token".into()))?;
        user.audit(
            &self.audit,
            action,
            name,
            Outcome::Ok,
            json!({"connection": conn.id, "granted_by": conn.granted_by_email,
                   "refreshed": refreshed, "rotated": rotated,
                   (crate::audit::SUBJECT_AGENT): agent_id}),
        )?;
        if refreshed {
            self.audit.commit().await?;
        }
        Ok(AccessToken {
            access_token: access,
            token_type: secrets
                .token_type
                .clone()
                .unwrap_or_else(|| "Bearer".into()),
            expires_in: secrets.access_expires_at.map(|e| (e - now_unix()).max(0)),
        })
    }

    fn denied_use(
        &self,
        user: &Actor,
        conn: &Connection,
        why: &str,
    ) -> Result<(), ConnectionsError> {
        user.audit(
            &self.audit,
            "connection.token",
            &conn.name,
            Outcome::Denied,
            json!({"connection": conn.id, "granted_by": conn.granted_by_email, "reason": why}),
        )?;
        Ok(())
    }

    /// The provider refused the refresh token: the connection needs a new consent, its dead
    /// tokens go, and the granting human is told by mail.
    async fn needs_consent(
        &self,
        user: &Actor,
        agent: &Agent,
        mut conn: Connection,
        why: &str,
    ) -> Result<(), ConnectionsError> {
        let mut secrets = self.vault.oauth_open(&conn.agent_id, &conn.name)?;
        secrets.access_token = None;
        secrets.refresh_token = None;
        secrets.access_expires_at = None;
        self.vault
            .oauth_put(&conn.agent_id, &conn.name, None, &secrets, false)?;
        conn.status = Status::NeedsConsent;
        conn.last_error = Some(why.to_string());
        conn.updated_at = now_unix();
        self.put(&conn)?;
        user.audit(
            &self.audit,
            "connection.needs_consent",
            &conn.name,
            Outcome::Error,
            json!({"connection": conn.id, "granted_by": conn.granted_by_email, "reason": why,
                   (crate::audit::SUBJECT_AGENT): conn.agent_id}),
        )?;
        self.audit.commit().await?;
        if let Some(n) = self.notifier.get() {
            let subject = format!(
                "Connection {} of {} needs your consent again",
                conn.name,
                agent.address()
            );
            let text =
                format!(
                "The connected account \"{}\" of the agent {} ({}) stopped working: the provider \
                 refused its refresh token ({}).\n\nYou granted it on {}. To restore it, remove \
                 the connection (DELETE /v1/agents/{}/connections/{}) and connect it again \
                 (POST /v1/agents/{}/connections).\n",
                conn.name,
                agent.address(),
                agent.id,
                why,
                conn.granted_at.map(crate::util::rfc3339).unwrap_or_default(),
                agent.id,
                conn.id,
                agent.id,
            );
            if let Err(e) = n
                .notify(&conn.granted_by_email, &subject, &text, &agent.id)
                .await
            {
                tracing::warn!(error = %e, connection = %conn.id, "could not send the needs-consent notice");
            }
        }
        Ok(())
    }

    /// `GET /v1/agents/{id}/connections`: each with its granting human, scopes and status.
    pub fn list(&self, actor: &Actor, agent: &str) -> Result<Vec<Value>, ConnectionsError> {
        let a = self
            .identity
            .require_owner_or_admin(actor, agent, "connection.list")?;
        Ok(self
            .connections_of(&a.id)?
            .iter()
            .map(Connection::to_json)
            .collect())
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

    /// Revokes at the provider (refresh token first: most providers end the whole grant
    /// with it), then removes the credential and records the outcome.
    async fn end(
        &self,
        mut conn: Connection,
        secrets: Option<OauthSecrets>,
    ) -> Result<Connection, ConnectionsError> {
        let mut confirmed = None;
        if let (Some(endpoint), Some(s)) = (&conn.endpoints.revocation_endpoint, &secrets) {
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
            confirmed = any.then_some(all_ok);
        }
        self.vault.oauth_remove(&conn.agent_id, &conn.name)?;
        let now = now_unix();
        conn.status = Status::Revoked;
        conn.revoked_at = Some(now);
        conn.updated_at = now;
        conn.provider_revoked = confirmed;
        self.put(&conn)?;
        Ok(conn)
    }

    /// An agent is being revoked: every live connection of it, with its secrets read before
    /// the vault is shredded, and marked revoked.
    pub(super) fn take_all(
        &self,
        agent: &Agent,
    ) -> Result<Vec<(Connection, Option<OauthSecrets>)>, String> {
        let conns = self.connections_of(&agent.id).map_err(|e| e.to_string())?;
        Ok(conns
            .into_iter()
            .filter(|c| c.status.is_live())
            .map(|c| {
                let s = self.vault.oauth_open(&agent.id, &c.name).ok();
                (c, s)
            })
            .collect())
    }

    pub(super) async fn revoke_taken(
        &self,
        agent: &Agent,
        taken: Vec<(Connection, Option<OauthSecrets>)>,
    ) {
        for (c, s) in taken {
            let chain = c.chain(&agent.chain);
            let r = self.end(c, s).await;
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
        let taken = self.take_all(agent)?;
        self.revoke_taken(agent, taken).await;
        Ok(())
    }
}
