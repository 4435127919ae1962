//! Identity and audit tools: `identity_whoami`, `identity_sign`, `identity_verify`,
//! `identity_token`, `identity_reputation`, `audit_list`. Same service calls and JSON as
//! `/v1/whoami`, `/v1/identity/*`, `/v1/agents/{id}/reputation` and `/v1/audit`.

use super::server::{ok, requires, Caller, LegateMcp};
use crate::identity::{b64_field, AuditParams, HttpSignatureRequest, Scope, VerifyRequest};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{schemars, tool, tool_router, ErrorData};
use serde::Deserialize;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignArgs {
    /// The bytes to sign, base64 (standard or URL-safe, padding optional).
    pub data_b64: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyArgs {
    /// An identity token (JWT) to check. Give either `token` (with optional `audience`) or
    /// `did` + `data_b64` + `signature_b64`.
    pub token: Option<String>,
    /// With `token`: the audience the token must have been issued for.
    pub audience: Option<String>,
    /// With a detached signature: the signer's DID (did:web), e.g. from the sender.
    pub did: Option<String>,
    /// The signed bytes, base64.
    pub data_b64: Option<String>,
    /// The Ed25519 signature, base64.
    pub signature_b64: Option<String>,
    /// Optional key id (`did#key-...`) when the signer has several keys.
    pub kid: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenArgs {
    /// Who the token is for: the service or agent that will verify it (its URL or DID).
    pub audience: String,
    /// Lifetime in seconds (server default when omitted; capped by the server).
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditArgs {
    /// Admin tokens only: one agent's entries (id or address). Agents always see their own.
    pub agent: Option<String>,
    /// An exact action (`vault.totp`) or a prefix ending in `.` or `*` (`mail.*`).
    pub action: Option<String>,
    /// `ok`, `denied` or `error`.
    pub outcome: Option<String>,
    /// RFC 3339 or unix seconds: entries at or after.
    pub since: Option<String>,
    /// RFC 3339 or unix seconds: entries at or before.
    pub until: Option<String>,
    /// Page size (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSignatureArgs {
    /// The HTTP method of the request you are about to make (GET, POST, ...).
    pub method: String,
    /// The full request URL (https://site.example/path?query).
    pub url: String,
    /// Headers of that request that the signature should be able to cover, name -> value.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Components to cover (RFC 9421), e.g. ["@authority", "@path", "content-type",
    /// "signature-agent;key=sig1"]. Default: @authority and the Signature-Agent member.
    pub components: Option<Vec<String>>,
    /// Seconds the signature stays valid (default 300).
    pub expires_in: Option<u64>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReputationArgs {
    /// The agent (id or address); default: this agent. Another agent's needs an admin key.
    pub agent: Option<String>,
}

#[tool_router(router = identity_tools, vis = "pub(super)")]
impl LegateMcp {
    #[tool(
        description = "Who am I: this agent's email address, did:web identifier, the scopes of the \
        API key in use, and the delegation chain back to the authorising human. Call it first to \
        learn your own address (to give to websites) and which tools you may use.",
        annotations(title = "Who am I", read_only_hint = true, open_world_hint = false)
    )]
    async fn identity_whoami(&self, Caller(actor): Caller) -> Result<CallToolResult, ErrorData> {
        ok(self.s.identity.whoami(&actor))
    }

    #[tool(
        description = "This agent's sending reputation: a 0-100 score and the factors behind \
        it (age, volume, delivered/deferred/bounced/complained rates, DMARC results, refused \
        sends, denied requests, revoked keys) over the stated window; the same record always \
        gives the same score. Others can check it, signed by the operator, at \
        /agents/{local}/reputation.jwt. Returns {score, factors, window, did}.",
        annotations(title = "Reputation", read_only_hint = true, open_world_hint = false)
    )]
    async fn identity_reputation(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<ReputationArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let id = match a.agent.or_else(|| actor.agent_id().map(str::to_string)) {
            Some(id) => id,
            None => {
                return ok::<crate::identity::IdentityError>(Err(
                    crate::identity::IdentityError::NotFound("agent"),
                ))
            }
        };
        ok(self.s.reputation.reputation(&actor, &id))
    }

    #[tool(
        description = "Sign bytes with this agent's Ed25519 identity key. Use it to prove to \
        another party that data comes from you. Returns the signature (base64), the key id \
        (kid) and your DID; the other party verifies with identity_verify or your published \
        DID document.",
        meta = requires(Scope::IdentitySign),
        annotations(title = "Sign data", read_only_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn identity_sign(
        &self,
        Caller(actor): Caller,
        Parameters(args): Parameters<SignArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let data = match b64_field("data_b64", &args.data_b64) {
            Ok(d) => d,
            Err(e) => return ok::<_>(Err(e)),
        };
        ok(self
            .s
            .identity
            .sign(&actor, &data)
            .await
            .map(|s| s.to_json()))
    }

    #[tool(
        description = "Check an identity token (JWT) or a detached Ed25519 signature from \
        another agent. Give either {token, audience?} or {did, data_b64, signature_b64, kid?}. \
        Returns {valid, reason, ...}: `reason` is a stable code (ok, expired, revoked, \
        bad_signature, wrong_audience, unknown_did, ...). Remote did:web documents may be fetched.",
        meta = requires(Scope::IdentityVerify),
        annotations(title = "Verify token or signature", read_only_hint = true, open_world_hint = true)
    )]
    async fn identity_verify(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<VerifyArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let req = VerifyRequest {
            token: a.token,
            audience: a.audience,
            did: a.did,
            data_b64: a.data_b64,
            signature_b64: a.signature_b64,
            kid: a.kid,
        };
        ok(self
            .s
            .identity
            .verify(&actor, &req)
            .await
            .map(|v| v.to_json()))
    }

    #[tool(
        description = "Issue a short-lived identity token (JWT, EdDSA) that proves to `audience` \
        that you are this agent, including your delegation chain (`act` claim). Hand the token \
        to the service that asked; it verifies it against your DID document. Returns {token, \
        expires_at, ...}.",
        meta = requires(Scope::IdentitySign),
        annotations(title = "Issue identity token", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn identity_token(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<TokenArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let r = self
            .s
            .identity
            .issue_token(&actor, &a.audience, a.ttl_seconds)
            .await;
        ok(r.map(|t| t.to_json()))
    }

    #[tool(
        description = "Sign an HTTP request you are about to make (RFC 9421 HTTP Message \
        Signatures, Web Bot Auth profile) with this agent's Ed25519 key, so the website can tell \
        which agent is calling and check it against your published key directory. Returns \
        {headers: {Signature-Input, Signature, Signature-Agent}}: add all three to the request, \
        unchanged, before it expires (default 300 s).",
        meta = requires(Scope::IdentitySign),
        annotations(title = "Sign HTTP request", read_only_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn identity_http_signature(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<HttpSignatureArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let req = HttpSignatureRequest {
            method: a.method,
            url: a.url,
            headers: a
                .headers
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
            components: a.components,
            expires_in: a.expires_in,
        };
        ok(self.s.identity.http_signature(&actor, &req).await)
    }

    #[tool(
        description = "Read this agent's own audit trail, newest first: every action taken with \
        its keys (mail read, vault access, signatures, denied attempts) with time, outcome and \
        delegation chain. Filter by action/outcome/time; page with `cursor`. Returns {items, \
        next_cursor}.",
        annotations(title = "Audit trail", read_only_hint = true, open_world_hint = false)
    )]
    async fn audit_list(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<AuditArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let p = AuditParams {
            agent: a.agent,
            actor: None,
            action: a.action,
            outcome: a.outcome,
            since: a.since,
            until: a.until,
            limit: a.limit,
            cursor: a.cursor,
        };
        ok(self.s.identity.audit_trail(&actor, &p))
    }
}
