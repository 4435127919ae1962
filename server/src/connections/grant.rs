//! Starting a grant (`POST /v1/agents/{id}/connections`) and completing it at the callback
//! (`GET /connections/callback`). The `state` is 256 random bits, stored only as its SHA-256,
//! bound to one connection, single use and expiring; the PKCE verifier is sealed in the
//! connection's vault credential, so neither a store dump nor the browser's URL is enough to
//! finish someone else's grant.

use super::model::{Connection, Endpoints, NewConnection, PendingGrant, Status};
use super::provider::{new_state, pkce, ClientAuth, TokenFailure};
use super::{ConnectionsError, ConnectionsService};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::identity::Actor;
use crate::store::{Tree, TxFail};
use crate::util::{new_id, now_unix};
use crate::vault::oauth::OauthSecrets;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Longest `state` or `code` a callback accepts.
const MAX_PARAM: usize = 4096;

fn state_key(state: &str) -> Vec<u8> {
    Sha256::digest(state.as_bytes()).to_vec()
}

/// What the callback was given.
pub struct Callback<'a> {
    pub state: Option<&'a str>,
    pub code: Option<&'a str>,
    pub error: Option<&'a str>,
    /// RFC 9207's issuer identification.
    pub iss: Option<&'a str>,
}

impl ConnectionsService {
    /// Starts a grant; returns the connection and the URL to send the human to.
    pub async fn start(
        &self,
        actor: &Actor,
        agent: &str,
        input: NewConnection,
        origin: &str,
    ) -> Result<(Connection, String), ConnectionsError> {
        let action = "connection.create";
        let a = self.identity.require_owner_or_admin(actor, agent, action)?;
        input.validate()?;
        if !a.is_active() {
            return Err(ConnectionsError::Invalid("the agent is revoked".into()));
        }
        let (human_id, email) = actor
            .human()
            .ok_or_else(|| ConnectionsError::Invalid("only a human grants a connection".into()))?;
        self.prune_expired().await;
        let live = self.connections_of(&a.id)?;
        if live.iter().filter(|c| c.status.is_live()).count() >= self.settings.max_per_agent {
            return Err(ConnectionsError::Invalid(format!(
                "an agent has at most {} connections",
                self.settings.max_per_agent
            )));
        }
        let endpoints = match &input.issuer {
            Some(iss) => {
                if let Some(r) = &input.revocation_endpoint {
                    self.provider.check_url("revocation_endpoint", r)?;
                }
                self.provider
                    .discover(iss, input.revocation_endpoint.as_deref())
                    .await?
            }
            None => {
                let e = Endpoints {
                    issuer: None,
                    authorization_endpoint: input
                        .authorization_endpoint
                        .clone()
                        .unwrap_or_default(),
                    token_endpoint: input.token_endpoint.clone().unwrap_or_default(),
                    revocation_endpoint: input.revocation_endpoint.clone(),
                    token_auth: "client_secret_basic".into(),
                    metadata_issuer: None,
                    iss_parameter: false,
                };
                self.provider.check_endpoints(&e)?;
                e
            }
        };
        let redirect_uri = format!("{}/connections/callback", origin.trim_end_matches('/'));
        let (verifier, challenge) = pkce();
        let state = new_state();
        let now = now_unix();
        let conn = Connection {
            id: new_id("cn"),
            agent_id: a.id.clone(),
            name: input.name.clone(),
            endpoints,
            client_id: input.client_id.clone(),
            scopes: input.scopes.clone(),
            redirect_uri,
            granted_by: human_id.to_string(),
            granted_by_email: email.to_string(),
            status: Status::Pending,
            created_at: now,
            granted_at: None,
            updated_at: now,
            revoked_at: None,
            provider_revoked: None,
            last_error: None,
        };
        let mut auth_url = self.provider.check_url(
            "authorization_endpoint",
            &conn.endpoints.authorization_endpoint,
        )?;
        auth_url
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &conn.client_id)
            .append_pair("redirect_uri", &conn.redirect_uri)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if !conn.scopes.is_empty() {
            auth_url
                .query_pairs_mut()
                .append_pair("scope", &conn.scopes.join(" "));
        }
        let secrets = OauthSecrets {
            client_secret: input.client_secret.clone(),
            code_verifier: Some(verifier),
            ..Default::default()
        };
        let shown_url = conn
            .endpoints
            .issuer
            .clone()
            .unwrap_or_else(|| conn.endpoints.token_endpoint.clone());
        // The credential first: a name already taken fails here, before anything else exists.
        self.vault
            .oauth_put(&a.id, &conn.name, Some(shown_url), &secrets, true)?;
        let pending = PendingGrant {
            agent_id: a.id.clone(),
            connection_id: conn.id.clone(),
            expires_at: now + self.settings.pending_grant_secs as i64,
        };
        let ck = Self::conn_key(&a.id, &conn.id);
        let sk = state_key(&state);
        self.store.transact::<_, ConnectionsError>(
            &[Tree::Connections, Tree::ConnectionGrants],
            |tx| {
                tx.put_record(Tree::Connections, &ck, &conn)?;
                tx.put_record(Tree::ConnectionGrants, &sk, &pending)?;
                Ok(())
            },
        )?;
        actor.audit_on_agent(
            &self.audit,
            action,
            &a.id,
            Outcome::Ok,
            json!({"connection": conn.id, "name": conn.name, "scopes": conn.scopes,
                   "issuer": conn.endpoints.issuer, "token_endpoint": conn.endpoints.token_endpoint}),
        )?;
        self.audit.commit().await?;
        Ok((conn, auth_url.to_string()))
    }

    /// `GET /connections/callback`: consumes the state (once), exchanges the code and seals
    /// the tokens. The human's browser lands here; the human is the one who started it.
    pub async fn complete(&self, cb: Callback<'_>) -> Result<Connection, ConnectionsError> {
        let state = cb
            .state
            .filter(|s| !s.is_empty() && s.len() <= MAX_PARAM)
            .ok_or(ConnectionsError::InvalidState(
                "the callback has no valid state",
            ))?;
        for v in [cb.code, cb.error, cb.iss].into_iter().flatten() {
            if v.len() > MAX_PARAM || v.chars().any(char::is_control) {
                return Err(ConnectionsError::BadRequest(
                    "callback parameters must be printable and at most 4096 characters".into(),
                ));
            }
        }
        let sk = state_key(state);
        // Taken and removed in one transaction: a replayed state finds nothing.
        let pending = self
            .store
            .transact::<_, ConnectionsError>(&[Tree::ConnectionGrants], |tx| {
                let p = tx.get_record::<PendingGrant>(Tree::ConnectionGrants, &sk)?;
                if p.is_none() {
                    return Err(TxFail::Abort(ConnectionsError::InvalidState(
                        "unknown or already used state",
                    )));
                }
                tx.remove(Tree::ConnectionGrants, &sk)?;
                Ok(p)
            })?
            .ok_or(ConnectionsError::InvalidState(
                "unknown or already used state",
            ))?;
        let lock = self.lock_for(&pending.connection_id);
        let _held = lock.lock().await;
        let mut conn = self.get(&pending.agent_id, &pending.connection_id)?;
        if conn.status != Status::Pending {
            return Err(ConnectionsError::InvalidState(
                "this grant is no longer pending",
            ));
        }
        // Before anything else, an error answer included: a response from another provider
        // (a mix-up) must not be taken for this one's (RFC 9207 §2.4).
        if let Err(why) = conn.endpoints.check_iss(cb.iss) {
            self.fail(&mut conn, why).await?;
            return Err(ConnectionsError::IssuerMismatch(why));
        }
        if !self
            .identity
            .may_delegate(&conn.agent_id, &conn.granted_by)?
        {
            let why = "the human who started this grant no longer owns the agent";
            self.fail(&mut conn, why).await?;
            return Err(ConnectionsError::InvalidState(why));
        }
        if pending.expires_at < now_unix() {
            self.fail(&mut conn, "consent not given in time").await?;
            return Err(ConnectionsError::InvalidState(
                "the grant expired; start a new one",
            ));
        }
        if let Some(e) = cb.error {
            self.fail(&mut conn, &super::error::clean(e)).await?;
            return Err(ConnectionsError::Invalid(format!(
                "the provider reported {:?}; nothing was connected",
                super::error::clean(e)
            )));
        }
        let code = cb
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConnectionsError::BadRequest("the callback has no code".into()))?;
        let mut secrets = self.vault.oauth_open(&conn.agent_id, &conn.name)?;
        let verifier = secrets
            .code_verifier
            .take()
            .ok_or(ConnectionsError::InvalidState(
                "this grant is no longer pending",
            ))?;
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
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", &conn.redirect_uri),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        let t = match answer {
            Ok(t) => t,
            Err(TokenFailure::InvalidGrant(m) | TokenFailure::Other(m)) => {
                self.fail(&mut conn, &m).await?;
                return Err(ConnectionsError::Provider(format!(
                    "the code exchange failed: {m}"
                )));
            }
        };
        let now = now_unix();
        secrets.access_expires_at = t.expires_in.map(|s| now + s.clamp(0, 10 * 365 * 86400));
        secrets.token_type = t.token_type.clone();
        secrets.access_token = Some(t.access_token);
        secrets.refresh_token = t.refresh_token;
        let has_refresh = secrets.refresh_token.is_some();
        self.vault
            .oauth_put(&conn.agent_id, &conn.name, None, &secrets, false)
            .map_err(ConnectionsError::from)?;
        conn.status = Status::Active;
        conn.granted_at = Some(now);
        conn.updated_at = now;
        self.put(&conn)?;
        self.audit.append(NewEntry {
            actor: ActorRef::human(&conn.granted_by),
            chain: vec![format!("human:{}", conn.granted_by_email)],
            action: "connection.grant".into(),
            target: conn.agent_id.clone(),
            outcome: Outcome::Ok,
            detail: json!({"connection": conn.id, "name": conn.name, "scopes": conn.scopes,
                           "refresh_token": has_refresh,
                           (crate::audit::SUBJECT_AGENT): conn.agent_id}),
        })?;
        self.audit.commit().await?;
        Ok(conn)
    }

    /// A grant that will not complete: its credential goes, the record says why.
    async fn fail(&self, conn: &mut Connection, why: &str) -> Result<(), ConnectionsError> {
        self.vault.oauth_remove(&conn.agent_id, &conn.name)?;
        conn.status = Status::Failed;
        conn.last_error = Some(why.to_string());
        conn.updated_at = now_unix();
        self.put(conn)?;
        self.audit.append(NewEntry {
            actor: ActorRef::human(&conn.granted_by),
            chain: vec![format!("human:{}", conn.granted_by_email)],
            action: "connection.grant".into(),
            target: conn.agent_id.clone(),
            outcome: Outcome::Error,
            detail: json!({"connection": conn.id, "name": conn.name, "reason": why,
                           (crate::audit::SUBJECT_AGENT): conn.agent_id}),
        })?;
        self.audit.commit().await?;
        Ok(())
    }

    /// Grants nobody consented to in time: their state is dropped and their connection
    /// failed, so the name is free again.
    pub(super) async fn prune_expired(&self) {
        let now = now_unix();
        let expired: Vec<(Vec<u8>, PendingGrant)> = self
            .store
            .scan_prefix(Tree::ConnectionGrants, &[])
            .filter_map(|r| r.ok())
            .filter_map(|(k, v)| Some((k, crate::store::decode::<PendingGrant>(&v).ok()?)))
            .filter(|(_, p)| p.expires_at < now)
            .collect();
        for (k, p) in expired {
            if self.store.remove(Tree::ConnectionGrants, &k).is_err() {
                continue;
            }
            if let Ok(mut c) = self.get(&p.agent_id, &p.connection_id) {
                if c.status == Status::Pending {
                    if let Err(e) = self.fail(&mut c, "consent not given in time").await {
                        tracing::warn!(error = %e, "could not expire a pending connection");
                    }
                }
            }
        }
    }
}
