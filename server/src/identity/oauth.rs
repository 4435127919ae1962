//! OAuth 2.1 state for MCP clients: registered public clients (RFC 7591), and the grants a
//! human's consent creates — an authorization code (PKCE S256 only), then access and refresh
//! tokens, all bound to one agent, a subset of its scopes, the consenting human and the MCP
//! resource URL (the audience).
//!
//! Only hashes of codes and tokens are stored. Every use re-reads the grant, the client and
//! the agent (and its ancestors): revoking any of them holds on the very next request. A
//! refresh token is replaced on each use; presenting a replaced one again (a stolen copy
//! racing the client) ends the whole family of tokens of that consent (RFC 9700 §4.14.2).

use super::error::{AuthFailure, IdentityError};
use super::{Actor, IdentityService, Principal, ScopeSet};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::store::Tree;
use crate::util::now_unix;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

pub const ACCESS_PREFIX: &str = "lgat_";
const REFRESH_PREFIX: &str = "lgrt_";
const CODE_PREFIX: &str = "lgc_";
/// Redirect URIs one client may register, and their longest length.
const MAX_REDIRECTS: usize = 10;
const MAX_URI: usize = 2000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created_at: i64,
    #[serde(default)]
    pub last_used_at: Option<i64>,
    /// When a human first consented to it; a client never consented to expires
    /// (`oauth.unused_client_ttl`).
    #[serde(default)]
    pub consented_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum GrantKind {
    Code,
    Access,
    Refresh,
}

#[derive(Clone, Serialize, Deserialize)]
struct Grant {
    kind: GrantKind,
    client_id: String,
    agent_id: String,
    human_id: String,
    scopes: ScopeSet,
    /// The MCP resource URL the tokens are for (their audience).
    resource: String,
    /// All tokens of one consent share it; ending a family ends them all.
    family: String,
    created_at: i64,
    expires_at: i64,
    /// Codes: the PKCE S256 challenge and the redirect URI they were issued for.
    #[serde(default)]
    challenge: String,
    #[serde(default)]
    redirect_uri: String,
    /// Codes and refresh tokens: spent (kept until expiry to recognise a replay).
    #[serde(default)]
    used: bool,
}

/// What the token endpoint answers.
pub struct TokenPair {
    pub access: Zeroizing<String>,
    pub refresh: Zeroizing<String>,
    pub expires_in: u64,
    pub scopes: ScopeSet,
}

/// Lifetimes from `[oauth]`.
#[derive(Debug, Clone, Copy)]
pub struct OAuthLifetimes {
    pub code_secs: i64,
    pub access_secs: i64,
    pub refresh_secs: i64,
}

impl OAuthLifetimes {
    /// The `[oauth]` lifetimes.
    pub fn from_config(c: &crate::config::Config) -> Self {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        OAuthLifetimes {
            code_secs: secs(c.oauth.code_secs),
            access_secs: secs(c.oauth.access_token_secs),
            refresh_secs: secs(c.oauth.refresh_token_secs),
        }
    }
}

/// A refusal of the token endpoint, as RFC 6749 §5.2 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    InvalidGrant(&'static str),
    InvalidClient,
    InvalidRequest(&'static str),
}

fn digest(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn new_secret(prefix: &str) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "{prefix}{}",
        data_encoding::BASE64URL_NOPAD.encode(&crate::util::random_bytes::<32>())
    ))
}

/// `BASE64URL(SHA256(verifier))` against the stored challenge (RFC 7636 §4.6), with the
/// verifier's own rules (43 to 128 unreserved characters).
fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed =
        data_encoding::BASE64URL_NOPAD.encode(&sha2::Sha256::digest(verifier.as_bytes()));
    valid && subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// A redirect URI a public client may register: https anywhere, http only to loopback
/// (native apps, RFC 8252 §7.3), or a private-use scheme (`com.example.app:/cb`); no
/// fragment.
fn valid_redirect(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    if uri.len() > MAX_URI || u.fragment().is_some() {
        return false;
    }
    match u.scheme() {
        "https" => u.host_str().is_some(),
        "http" => matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => false,
        s => s.contains('.'),
    }
}

impl IdentityService {
    /// RFC 7591 dynamic registration of a public client (no secret). Anyone may register;
    /// a client can do nothing until a signed-in human consents. Registrations nobody
    /// consented to within `unused_ttl` seconds (0: never) are deleted first, so anonymous
    /// registrations cannot keep `max_clients` full.
    pub fn register_oauth_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        max_clients: usize,
        unused_ttl: u64,
        peer: &str,
    ) -> Result<OAuthClient, IdentityError> {
        if redirect_uris.is_empty() || redirect_uris.len() > MAX_REDIRECTS {
            return Err(IdentityError::Invalid(format!(
                "redirect_uris must list 1 to {MAX_REDIRECTS} URIs"
            )));
        }
        if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect(u)) {
            return Err(IdentityError::Invalid(format!(
                "redirect URI not allowed: {bad:.200} (https, http on loopback, or an app scheme)"
            )));
        }
        self.expire_unused_clients(unused_ttl)?;
        if self
            .store
            .scan_prefix(Tree::OAuthClients, &[])
            .take(max_clients)
            .count()
            >= max_clients
        {
            return Err(IdentityError::Conflict(
                "too many registered clients".into(),
            ));
        }
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        let client = OAuthClient {
            id: crate::util::new_id("oc"),
            name: if name.is_empty() {
                "MCP client".into()
            } else {
                name
            },
            redirect_uris: redirect_uris.to_vec(),
            created_at: now_unix(),
            last_used_at: None,
            consented_at: None,
        };
        self.store
            .put_record(Tree::OAuthClients, client.id.as_bytes(), &client)?;
        self.audit.append(NewEntry {
            actor: ActorRef::anonymous(peer),
            chain: vec![],
            action: "oauth.register".into(),
            target: client.id.clone(),
            outcome: Outcome::Ok,
            detail: serde_json::json!({"name": client.name, "redirect_uris": client.redirect_uris}),
        })?;
        Ok(client)
    }

    /// Deletes the clients registered more than `ttl` seconds ago that no human ever
    /// consented to (and that were never used). Returns how many.
    pub fn expire_unused_clients(&self, ttl: u64) -> Result<usize, IdentityError> {
        if ttl == 0 {
            return Ok(0);
        }
        let cutoff = now_unix().saturating_sub(i64::try_from(ttl).unwrap_or(i64::MAX));
        let mut doomed = Vec::new();
        for r in self.store.scan_prefix(Tree::OAuthClients, &[]) {
            let (k, v) = r?;
            let Ok(c) = crate::store::decode::<OAuthClient>(&v) else {
                continue;
            };
            if c.consented_at.is_none() && c.last_used_at.is_none() && c.created_at <= cutoff {
                doomed.push(k);
            }
        }
        for k in &doomed {
            self.store.remove(Tree::OAuthClients, k)?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                clients = doomed.len(),
                "expired OAuth clients nobody consented to"
            );
        }
        Ok(doomed.len())
    }

    pub fn oauth_client(&self, id: &str) -> Result<Option<OAuthClient>, IdentityError> {
        if id.is_empty() || id.len() > 100 {
            return Ok(None);
        }
        Ok(self.store.get_record(Tree::OAuthClients, id.as_bytes())?)
    }

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

    fn end_grants(&self, doomed: impl Fn(&Grant) -> bool) -> Result<usize, IdentityError> {
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

    /// Whether the grant's client still exists and its agent (and every ancestor) is active.
    fn check_live(&self, g: &Grant) -> Result<(Actor, OAuthClient), IdentityError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_with_a_well_formed_verifier() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        // RFC 7636 appendix B.
        assert!(pkce_ok(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_ok("short", "x"));
        assert!(!pkce_ok(&"a".repeat(129), "x"));
    }

    #[test]
    fn unconsented_registrations_expire_and_free_their_places() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let audit = std::sync::Arc::new(crate::audit::Audit::open(store.clone()).unwrap());
        let id = IdentityService::new(store, audit, "agents.test".into());
        let uris = vec!["http://127.0.0.1/cb".to_string()];
        let register = |name: &str| id.register_oauth_client(name, &uris, 2, 600, "test");
        let age = |c: &OAuthClient, consented: bool| {
            let mut c = c.clone();
            c.created_at -= 601;
            c.consented_at = consented.then_some(c.created_at);
            id.store
                .put_record(Tree::OAuthClients, c.id.as_bytes(), &c)
                .unwrap();
        };
        let old = register("old").unwrap();
        let kept = register("kept").unwrap();
        // Full, and nothing is old enough yet.
        assert!(matches!(register("x"), Err(IdentityError::Conflict(_))));
        age(&old, false);
        age(&kept, true);
        let new = register("new").unwrap();
        assert!(id.oauth_client(&old.id).unwrap().is_none());
        assert!(id.oauth_client(&kept.id).unwrap().is_some());
        assert!(id.oauth_client(&new.id).unwrap().is_some());
        // ttl 0 never expires anything.
        age(&new, false);
        assert_eq!(id.expire_unused_clients(0).unwrap(), 0);
        assert_eq!(id.expire_unused_clients(600).unwrap(), 1);
    }

    #[test]
    fn redirect_uris_are_https_loopback_or_app_schemes() {
        assert!(valid_redirect("https://claude.ai/api/mcp/auth_callback"));
        assert!(valid_redirect("http://127.0.0.1:33418/callback"));
        assert!(valid_redirect("http://localhost/cb"));
        assert!(valid_redirect("com.example.app:/oauth"));
        assert!(!valid_redirect("http://evil.test/cb"));
        assert!(!valid_redirect("javascript:alert(1)"));
        assert!(!valid_redirect("https://a.test/cb#frag"));
        assert!(!valid_redirect("not a uri"));
    }
}
