//! Using connections: the agent's access token (refreshed here, never the refresh token
//! itself), the needs-consent path and the owners' list. Ending them is `revoke`.

use super::model::{Connection, Status};
use super::provider::{ClientAuth, TokenFailure};
use super::{ConnectionsError, ConnectionsService};
use crate::audit::Outcome;
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
        if !agent.is_active() {
            return Err(ConnectionsError::Identity(
                crate::identity::IdentityError::Unauthorized(
                    crate::identity::AuthFailure::AgentRevoked,
                ),
            ));
        }
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
        // The granting human was removed as an owner since: what they delegated ends here,
        // revoked at the provider like a deleted connection.
        if !self.identity.may_delegate(&agent_id, &conn.granted_by)? {
            let secrets = self.vault.oauth_open(&agent_id, &conn.name).ok();
            let name = conn.name.clone();
            let ended = self.end(conn, secrets).await?;
            user.audit_on_agent(
                &self.audit,
                "connection.revoke",
                &agent_id,
                Outcome::Ok,
                json!({"connection": ended.id, "name": ended.name, "reason": "granter_removed",
                       "granted_by": ended.granted_by_email,
                       "provider_revoked": ended.provider_revoked}),
            )?;
            self.audit.commit().await?;
            return Err(ConnectionsError::NotActive(format!(
                "the connection {name} was granted by a human who no longer owns this agent; \
                 it is revoked, and an owner must connect it again"
            )));
        }
        let mut secrets = self.vault.oauth_open(&agent_id, &conn.name)?;
        let now = now_unix();
        let skew = self.settings.refresh_skew_secs as i64;
        let stale = |s: &OauthSecrets| {
            s.access_token.is_none() || s.access_expires_at.is_some_and(|e| e - now <= skew)
        };
        // The lock above covers this node's requests; a refresh is also one at a time across
        // the nodes sharing the store, and the tokens are read again once it is this one's
        // turn (the node before may have refreshed them). Held until this request ends.
        let _turn = if stale(&secrets) {
            let turn = self.refresh_turn(&conn.id).await?;
            secrets = self.vault.oauth_open(&agent_id, &conn.name)?;
            Some(turn)
        } else {
            None
        };
        let fresh = !stale(&secrets);
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
                    let fresh = OauthSecrets {
                        client_secret: secrets.client_secret.clone(),
                        access_token: Some(t.access_token.clone()),
                        refresh_token: t.refresh_token.clone(),
                        ..Default::default()
                    };
                    // Revoked while the provider answered (and the revocation could not wait
                    // for this lock): these new tokens were never read by it, so they are
                    // revoked here rather than left live at the provider.
                    if !self.still_live(&agent_id, &conn.id) {
                        self.revoke_fresh(&conn, &fresh).await;
                        return Err(ConnectionsError::NotActive(format!(
                            "the connection {} was revoked",
                            conn.name
                        )));
                    }
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
                    if let Err(e) = self
                        .vault
                        .oauth_put(&agent_id, &conn.name, None, &secrets, false)
                    {
                        // Not kept (the vault was shredded meanwhile): not left live either.
                        self.revoke_fresh(&conn, &fresh).await;
                        return Err(e.into());
                    }
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

    /// Whether the agent is active and the connection live, read now.
    fn still_live(&self, agent_id: &str, cid: &str) -> bool {
        let agent_ok = matches!(self.identity.agent(agent_id), Ok(Some(a)) if a.is_active());
        agent_ok && self.get(agent_id, cid).is_ok_and(|c| c.status.is_live())
    }

    /// Revokes tokens just obtained that will not be kept (bounded by the revocation
    /// timeout; a failure is logged: there is nobody else to tell).
    async fn revoke_fresh(&self, conn: &Connection, fresh: &OauthSecrets) {
        let wait = std::time::Duration::from_secs(self.settings.revoke_timeout_secs);
        let r = tokio::time::timeout(wait, self.revoke_at_provider(conn, Some(fresh))).await;
        if !matches!(r, Ok(Some(true))) {
            tracing::warn!(connection = %conn.id, "tokens refreshed during a revocation may remain live at the provider");
        }
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
}
