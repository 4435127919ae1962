//! Grants: the human's consent (an authorization code), its exchange for tokens, refresh with
//! replay detection (a replayed token ends its family), and RFC 7009 revocation.

use super::*;

impl IdentityService {
    /// The consent: the signed-in human lets `client_id` act as `agent_id` with `scopes`
    /// (a subset of the agent's) on `resource`. Returns the authorization code.
    #[allow(clippy::too_many_arguments)]
    pub async fn oauth_consent(
        &self,
        actor: &Actor,
        client_id: &str,
        agent_id: &str,
        scopes: ScopeSet,
        redirect_uri: &str,
        challenge: &str,
        resource: &str,
        life: OAuthLifetimes,
    ) -> Result<Zeroizing<String>, IdentityError> {
        actor.require_admin(&self.audit, "oauth.consent", client_id)?;
        let Principal::Human { id: human_id, .. } = &actor.principal else {
            return Err(IdentityError::Invalid("only humans consent".into()));
        };
        let client = self
            .oauth_client(client_id)?
            .ok_or(IdentityError::NotFound("client"))?;
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(IdentityError::Invalid(
                "redirect_uri is not registered".into(),
            ));
        }
        let agent = self
            .agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        if !agent.is_active() {
            return Err(IdentityError::Invalid("the agent is revoked".into()));
        }
        if scopes == ScopeSet::default() || !scopes.is_subset_of(agent.scopes) {
            return Err(IdentityError::Invalid(
                "pick at least one scope, all of them held by the agent".into(),
            ));
        }
        let now = now_unix();
        if client.consented_at.is_none() {
            let mut c = client.clone();
            c.consented_at = Some(now);
            self.store
                .put_record(Tree::OAuthClients, c.id.as_bytes(), &c)?;
        }
        // Spent and expired grants are kept only to recognise replays until they expire;
        // each consent sweeps the ones past expiry, so the tree stays the size of live use.
        self.end_grants(|g| g.expires_at <= now)?;
        let code = new_secret(CODE_PREFIX);
        let grant = Grant {
            kind: GrantKind::Code,
            client_id: client.id.clone(),
            agent_id: agent.id.clone(),
            human_id: human_id.clone(),
            scopes,
            resource: resource.to_string(),
            family: crate::util::new_id("of"),
            created_at: now,
            expires_at: now + life.code_secs,
            challenge: challenge.to_string(),
            redirect_uri: redirect_uri.to_string(),
            used: false,
        };
        self.store
            .put_record(Tree::OAuthGrants, &digest(&code), &grant)?;
        actor.audit_on_agent(
            &self.audit,
            "oauth.consent",
            &agent.id,
            Outcome::Ok,
            serde_json::json!({"client_id": client.id, "client_name": client.name, "scopes": scopes}),
        )?;
        self.audit.commit().await?;
        Ok(code)
    }

    fn issue_pair(&self, from: &Grant, life: OAuthLifetimes) -> Result<TokenPair, IdentityError> {
        let now = now_unix();
        let access = new_secret(ACCESS_PREFIX);
        let refresh = new_secret(REFRESH_PREFIX);
        let base = Grant {
            created_at: now,
            challenge: String::new(),
            redirect_uri: String::new(),
            used: false,
            ..from.clone()
        };
        let a = Grant {
            kind: GrantKind::Access,
            expires_at: now + life.access_secs,
            ..base.clone()
        };
        let r = Grant {
            kind: GrantKind::Refresh,
            expires_at: now + life.refresh_secs,
            ..base
        };
        self.store
            .put_record(Tree::OAuthGrants, &digest(&access), &a)?;
        self.store
            .put_record(Tree::OAuthGrants, &digest(&refresh), &r)?;
        Ok(TokenPair {
            access,
            refresh,
            expires_in: u64::try_from(life.access_secs).unwrap_or(0),
            scopes: from.scopes,
        })
    }

    /// Ends every grant of a family (a replayed code or refresh token, a revocation).
    fn end_family(&self, family: &str) -> Result<usize, IdentityError> {
        self.end_grants(|g| g.family == family)
    }

    pub(super) fn end_grants(
        &self,
        doomed: impl Fn(&Grant) -> bool,
    ) -> Result<usize, IdentityError> {
        let mut keys = Vec::new();
        for r in self.store.scan_prefix(Tree::OAuthGrants, &[]) {
            let (k, v) = r?;
            if crate::store::decode::<Grant>(&v).map_or(true, |g| doomed(&g)) {
                keys.push(k);
            }
        }
        for k in &keys {
            self.store.remove(Tree::OAuthGrants, k)?;
        }
        Ok(keys.len())
    }

    /// Marks a code or refresh token spent in one transaction: of two concurrent uses,
    /// exactly one wins; the loser (and any later replay) gets the grant back as spent.
    /// Marks the grant under `key` used, if `ok` (the presenter's client, redirect, PKCE
    /// and expiry all check out), and says whether it was used before. A presentation that
    /// fails `ok` spends nothing and is no replay: the caller's checks refuse it, and a thief
    /// holding a code or token without the rest cannot end the rightful client's grant.
    fn spend(
        &self,
        key: &[u8; 32],
        ok: impl Fn(&Grant) -> bool,
    ) -> Result<Option<(Grant, bool)>, IdentityError> {
        Ok(self
            .store
            .transact::<_, IdentityError>(&[Tree::OAuthGrants], |tx| {
                let Some(mut g) = tx.get_record::<Grant>(Tree::OAuthGrants, key)? else {
                    return Ok(None);
                };
                if !ok(&g) {
                    return Ok(Some((g, false)));
                }
                let was_used = g.used;
                if !was_used {
                    g.used = true;
                    tx.put_record(Tree::OAuthGrants, key, &g)?;
                }
                Ok(Some((g, was_used)))
            })?)
    }

    /// A spent code or token presented again: the whole family it began is revoked, and
    /// the attempt audited (best effort: the caller refuses it either way).
    fn replayed(&self, g: &Grant, reason: &str) {
        let _ = self.end_family(&g.family);
        let _ = self.grant_audit(
            g,
            "oauth.token",
            Outcome::Denied,
            serde_json::json!({ "reason": reason }),
        );
    }

    fn grant_audit(
        &self,
        g: &Grant,
        action: &str,
        outcome: Outcome,
        detail: serde_json::Value,
    ) -> Result<(), IdentityError> {
        let mut detail = detail;
        detail["client_id"] = serde_json::json!(g.client_id);
        detail[crate::audit::SUBJECT_AGENT] = serde_json::json!(g.agent_id);
        self.audit.append(NewEntry {
            actor: ActorRef::agent(&g.agent_id),
            chain: vec![],
            action: action.into(),
            target: g.agent_id.clone(),
            outcome,
            detail,
        })?;
        Ok(())
    }

    /// The token endpoint's `authorization_code` grant.
    pub async fn oauth_exchange(
        &self,
        client_id: &str,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        life: OAuthLifetimes,
    ) -> Result<TokenPair, GrantError> {
        let internal = |_| GrantError::InvalidGrant("server error");
        let client = self
            .oauth_client(client_id)
            .map_err(internal)?
            .ok_or(GrantError::InvalidClient)?;
        let now = now_unix();
        let presented = |g: &Grant| {
            g.kind == GrantKind::Code
                && g.client_id == client.id
                && g.expires_at > now
                && g.redirect_uri == redirect_uri
                && !verifier.is_empty()
                && pkce_ok(verifier, &g.challenge)
        };
        let Some((g, replay)) = self.spend(&digest(code), presented).map_err(internal)? else {
            return Err(GrantError::InvalidGrant("unknown code"));
        };
        if g.kind != GrantKind::Code || g.client_id != client.id {
            return Err(GrantError::InvalidGrant("unknown code"));
        }
        if replay {
            // A code presented twice: whatever the first use made is suspect too.
            self.replayed(&g, "code_replayed");
            return Err(GrantError::InvalidGrant("code already used"));
        }
        if g.expires_at <= now_unix() {
            return Err(GrantError::InvalidGrant("code expired"));
        }
        if g.redirect_uri != redirect_uri {
            return Err(GrantError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if verifier.is_empty() {
            return Err(GrantError::InvalidRequest(
                "code_verifier is required (PKCE)",
            ));
        }
        if !pkce_ok(verifier, &g.challenge) {
            let _ = self.grant_audit(
                &g,
                "oauth.token",
                Outcome::Denied,
                serde_json::json!({"reason": "pkce_mismatch"}),
            );
            return Err(GrantError::InvalidGrant(
                "code_verifier does not match the code_challenge",
            ));
        }
        self.check_live(&g)
            .map_err(|_| GrantError::InvalidGrant("the agent or client is no longer allowed"))?;
        let pair = self.issue_pair(&g, life).map_err(internal)?;
        self.grant_audit(
            &g,
            "oauth.token",
            Outcome::Ok,
            serde_json::json!({"grant": "authorization_code", "scopes": g.scopes}),
        )
        .map_err(internal)?;
        self.audit
            .commit()
            .await
            .map_err(|_| GrantError::InvalidGrant("server error"))?;
        Ok(pair)
    }

    /// The token endpoint's `refresh_token` grant: a new pair, the presented token spent.
    pub async fn oauth_refresh(
        &self,
        client_id: &str,
        refresh: &str,
        life: OAuthLifetimes,
    ) -> Result<TokenPair, GrantError> {
        let internal = |_| GrantError::InvalidGrant("server error");
        let client = self
            .oauth_client(client_id)
            .map_err(internal)?
            .ok_or(GrantError::InvalidClient)?;
        let now = now_unix();
        let presented = |g: &Grant| {
            g.kind == GrantKind::Refresh && g.client_id == client.id && g.expires_at > now
        };
        let Some((g, replay)) = self.spend(&digest(refresh), presented).map_err(internal)? else {
            return Err(GrantError::InvalidGrant("unknown refresh token"));
        };
        if g.kind != GrantKind::Refresh || g.client_id != client.id {
            return Err(GrantError::InvalidGrant("unknown refresh token"));
        }
        if replay {
            self.replayed(&g, "refresh_replayed");
            return Err(GrantError::InvalidGrant(
                "refresh token already used; the grant is revoked",
            ));
        }
        if g.expires_at <= now_unix() {
            return Err(GrantError::InvalidGrant("refresh token expired"));
        }
        self.check_live(&g)
            .map_err(|_| GrantError::InvalidGrant("the agent or client is no longer allowed"))?;
        let pair = self.issue_pair(&g, life).map_err(internal)?;
        self.grant_audit(
            &g,
            "oauth.token",
            Outcome::Ok,
            serde_json::json!({"grant": "refresh_token"}),
        )
        .map_err(internal)?;
        self.audit
            .commit()
            .await
            .map_err(|_| GrantError::InvalidGrant("server error"))?;
        Ok(pair)
    }

    /// RFC 7009: ends the family of the presented token when it belongs to `client_id`;
    /// unknown tokens are not an error (the endpoint answers 200 either way).
    pub fn oauth_revoke(&self, client_id: &str, token: &str) -> Result<(), IdentityError> {
        let Some(g) = self
            .store
            .get_record::<Grant>(Tree::OAuthGrants, &digest(token))?
        else {
            return Ok(());
        };
        if g.client_id != client_id {
            return Ok(());
        }
        self.end_family(&g.family)?;
        self.grant_audit(&g, "oauth.revoke", Outcome::Ok, serde_json::Value::Null)?;
        Ok(())
    }
}
