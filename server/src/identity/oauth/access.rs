//! Using grants: the actor an access token stands for (checked afresh on every request), and
//! the consents a human lists and revokes.

use super::*;

impl IdentityService {
    /// Whether the grant's client still exists and its agent (and every ancestor) is active.
    pub(super) fn check_live(&self, g: &Grant) -> Result<(Actor, OAuthClient), IdentityError> {
        let client = self
            .oauth_client(&g.client_id)?
            .ok_or(IdentityError::Unauthorized(AuthFailure::KeyRevoked))?;
        let agent = self
            .agent(&g.agent_id)?
            .ok_or(IdentityError::Unauthorized(AuthFailure::Unknown))?;
        if !agent.is_active() {
            return Err(IdentityError::Unauthorized(AuthFailure::AgentRevoked));
        }
        let scopes = self
            .effective_scopes(&agent, g.scopes)?
            .ok_or(IdentityError::Unauthorized(AuthFailure::AgentRevoked))?;
        Ok((
            Actor {
                principal: Principal::Agent {
                    id: agent.id.clone(),
                    address: agent.address(),
                    org_id: agent.org_id.clone(),
                },
                key_id: format!("oauth:{}", g.client_id),
                scopes,
                chain: agent.chain.clone(),
            },
            client,
        ))
    }

    /// An OAuth access token presented to `resource` (the MCP endpoint) -> the agent actor it
    /// stands for, checked afresh: the token, its audience and expiry, the client, the agent.
    pub fn oauth_actor(
        &self,
        token: &str,
        resource: &str,
        peer: &str,
    ) -> Result<Actor, IdentityError> {
        let refuse = |why: AuthFailure, g: Option<&Grant>| -> IdentityError {
            let actor = g.map_or_else(
                || ActorRef::anonymous(peer),
                |g| ActorRef::agent(&g.agent_id),
            );
            let _ = self.audit.auth_denied(
                peer,
                NewEntry {
                    actor,
                    chain: vec![],
                    action: "auth.denied".into(),
                    target: "oauth".into(),
                    outcome: Outcome::Denied,
                    detail: serde_json::json!({"reason": why.code(), "peer": peer}),
                },
            );
            IdentityError::Unauthorized(why)
        };
        let Some(g) = self
            .store
            .get_record::<Grant>(Tree::OAuthGrants, &digest(token))?
        else {
            return Err(refuse(AuthFailure::Unknown, None));
        };
        if g.kind != GrantKind::Access {
            return Err(refuse(AuthFailure::Unknown, None));
        }
        if g.expires_at <= now_unix() {
            return Err(refuse(AuthFailure::Expired, Some(&g)));
        }
        if g.resource != resource {
            return Err(refuse(AuthFailure::Unknown, Some(&g)));
        }
        let (actor, mut client) = match self.check_live(&g) {
            Ok(x) => x,
            Err(IdentityError::Unauthorized(why)) => return Err(refuse(why, Some(&g))),
            Err(e) => return Err(e),
        };
        let now = now_unix();
        if client.last_used_at.is_none_or(|t| now - t >= 60) {
            client.last_used_at = Some(now);
            if let Err(e) = self
                .store
                .put_record(Tree::OAuthClients, client.id.as_bytes(), &client)
            {
                tracing::warn!(error = %e, "could not record an OAuth client's use");
            }
        }
        Ok(actor)
    }

    /// The clients holding live grants for an agent, with their scopes (console).
    pub fn oauth_connections(
        &self,
        actor: &Actor,
        agent_id: &str,
    ) -> Result<Vec<(OAuthClient, ScopeSet)>, IdentityError> {
        actor.require_admin(&self.audit, "oauth.list", agent_id)?;
        let now = now_unix();
        let mut out: Vec<(OAuthClient, ScopeSet)> = Vec::new();
        for r in self.store.scan_prefix(Tree::OAuthGrants, &[]) {
            let (_, v) = r?;
            let Ok(g) = crate::store::decode::<Grant>(&v) else {
                continue;
            };
            if g.agent_id != agent_id || g.kind == GrantKind::Code || g.used || g.expires_at <= now
            {
                continue;
            }
            if let Some(e) = out.iter_mut().find(|(c, _)| c.id == g.client_id) {
                for s in g.scopes.iter() {
                    e.1.insert(s);
                }
            } else if let Some(c) = self.oauth_client(&g.client_id)? {
                out.push((c, g.scopes));
            }
        }
        Ok(out)
    }

    /// Ends every grant `client_id` holds for `agent_id` (console "disconnect").
    pub async fn revoke_oauth_connection(
        &self,
        actor: &Actor,
        agent_id: &str,
        client_id: &str,
    ) -> Result<usize, IdentityError> {
        actor.require_admin(&self.audit, "oauth.disconnect", agent_id)?;
        let n = self.end_grants(|g| g.agent_id == agent_id && g.client_id == client_id)?;
        actor.audit_on_agent(
            &self.audit,
            "oauth.disconnect",
            agent_id,
            Outcome::Ok,
            serde_json::json!({"client_id": client_id, "grants": n}),
        )?;
        self.audit.commit().await?;
        Ok(n)
    }
}
