//! Web Bot Auth (draft-meunier-web-bot-auth-architecture, over RFC 9421): an agent signs the
//! HTTP requests it makes with its identity key, so the sites it visits can tell which agent
//! of which operator is knocking — with the same key, revocation and audit as everything else.
//!
//! - `POST /v1/identity/http-signature` returns `Signature-Input`, `Signature` and
//!   `Signature-Agent` for the caller's own HTTP client to attach. Covered by default:
//!   `@authority` and `"signature-agent";key="sig1"` (what Cloudflare's verifier requires).
//! - Key directories (draft-meunier-http-message-signatures-directory): a JWKS per agent and
//!   one per org, each response signed (`tag="http-message-signatures-directory"`, covering
//!   `"@authority";req`). Built per request from the live agent table, so a revoked agent's
//!   key is gone from both at once.
//! - `POST /v1/identity/http-signature/verify` (in `webbot_verify.rs`) checks a received
//!   request for services that host no verifier of their own.

use super::httpsig::{self, Component, SigParams};
use super::sfv::{self, Bare};
use super::{Actor, Agent, IdentityError, IdentityService, Scope};
use crate::audit::Outcome;
use crate::util::{now_unix, random_bytes};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const TAG: &str = "web-bot-auth";
pub const DIRECTORY_TAG: &str = "http-message-signatures-directory";
pub const DIRECTORY_PATH: &str = ".well-known/http-message-signatures-directory";
pub const DIRECTORY_CONTENT_TYPE: &str = "application/http-message-signatures-directory+json";
const LABEL: &str = "sig1";
/// Default lifetime of a request signature; the longest is `identity.max_token_ttl_secs`.
const DEFAULT_EXPIRES_IN: u64 = 300;
/// A directory response signature's lifetime.
const DIRECTORY_SIG_SECS: i64 = 300;
/// An org directory lists every active agent, but signs with at most this many keys: each
/// signature opens a key in the vault, and the route is public.
const MAX_DIRECTORY_SIGNERS: usize = 8;
/// How long a built org directory is served again while no key or agent changed (a change
/// voids it at once): building one reads every agent and its keys, on a public route. It
/// bounds how late a key whose rotation overlap ended drops out, and stays well inside the
/// signatures' own lifetime.
const ORG_DIRECTORY_REUSE: std::time::Duration = std::time::Duration::from_secs(30);

/// The org directory last built: (identity epoch, built at, authority signed over, it).
/// Kept on one node only: a change made by another node sharing the store bumps no epoch
/// here (as with the authentication cache).
#[derive(Default)]
pub(super) struct DirectoryCache(
    std::sync::Mutex<Option<(u64, std::time::Instant, String, Directory)>>,
);

impl DirectoryCache {
    fn get(&self, epoch: u64, authority: &str) -> Option<Directory> {
        let held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (e, at, a, d) = held.as_ref()?;
        (*e == epoch && a == authority && at.elapsed() < ORG_DIRECTORY_REUSE).then(|| d.clone())
    }

    fn put(&self, epoch: u64, authority: String, d: &Directory) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((epoch, std::time::Instant::now(), authority, d.clone()));
    }
}

/// `POST /v1/identity/http-signature` (and the `identity_http_signature` tool).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSignatureRequest {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
    pub components: Option<Vec<String>>,
    pub expires_in: Option<u64>,
}

/// `POST /v1/identity/http-signature/verify`: the request as received, signature headers
/// included.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpVerifyRequest {
    pub method: String,
    pub url: String,
    pub headers: Map<String, Value>,
    /// Which signature to check; default: the one tagged `web-bot-auth`.
    pub label: Option<String>,
}

/// A signed key directory response.
#[derive(Debug, Clone)]
pub struct Directory {
    pub body: Value,
    /// `(Signature-Input, Signature)`; `None` when no key is left to sign with.
    pub signature: Option<(String, String)>,
}

pub(super) fn bad(m: impl Into<String>) -> IdentityError {
    IdentityError::BadRequest(m.into())
}

pub(super) fn header_pairs(
    headers: &Map<String, Value>,
) -> Result<Vec<(String, String)>, IdentityError> {
    if headers.len() > httpsig::MAX_HEADERS {
        return Err(bad(format!("at most {} headers", httpsig::MAX_HEADERS)));
    }
    headers
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(bad(format!("the value of header {k:?} must be a string"))),
        })
        .collect()
}

/// The JWK of a key in a directory: `kid` is its thumbprint, as `keyid` in signatures.
fn directory_jwk(public: &[u8; 32]) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": BASE64URL_NOPAD.encode(public),
        "kid": httpsig::jwk_thumbprint(public),
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// `host[:port]` as a client sent it in `Host`; anything else is not signed over.
fn sane_authority(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 261
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

impl IdentityService {
    /// The public base URL (`server.public_url`, else `https://<did host>`).
    pub fn public_origin(&self) -> String {
        match self.public_origin.get() {
            Some(o) => o.clone(),
            None => format!("https://{}", self.did_host.replace("%3A", ":")),
        }
    }

    /// Set once at start-up from `server.public_url` (ignored when empty or not a URL).
    pub fn set_public_origin(&self, url: &str) {
        if let Ok(u) = url::Url::parse(url) {
            if u.host_str().is_some() {
                let _ = self.public_origin.set(u.origin().ascii_serialization());
            }
        }
    }

    /// Where an agent's keys are listed (the `Signature-Agent` value).
    pub fn directory_url(&self, agent: &Agent) -> String {
        let origin = self.public_origin();
        match self.default_domain() {
            Some(d) if d != agent.domain => format!(
                "{origin}/orgs/{}/agents/{}/{DIRECTORY_PATH}",
                agent.domain, agent.local
            ),
            _ => format!("{origin}/agents/{}/{DIRECTORY_PATH}", agent.local),
        }
    }

    /// `POST /v1/identity/http-signature`. Scope `identity:sign`.
    pub async fn http_signature(
        &self,
        actor: &Actor,
        req: &HttpSignatureRequest,
    ) -> Result<Value, IdentityError> {
        let action = "identity.http_signature";
        let agent_id = actor.require(&self.audit, Scope::IdentitySign, action, &req.url)?;
        let agent = self
            .agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let mut headers = header_pairs(&req.headers)?;
        if let Some((n, _)) = headers.iter().find(|(n, _)| {
            ["signature", "signature-input", "signature-agent"]
                .contains(&n.to_ascii_lowercase().as_str())
        }) {
            return Err(bad(format!("{n} is set by legate, not by the caller")));
        }
        let agent_value = sfv::bare(&Bare::String(self.directory_url(&agent)));
        headers.push(("signature-agent".into(), format!("{LABEL}={agent_value}")));
        let parts = httpsig::request_parts(&req.method, &req.url, &headers).map_err(bad)?;
        let components = match &req.components {
            None => vec![
                Component::derived("@authority"),
                Component::parse(&format!("signature-agent;key={LABEL}")).map_err(bad)?,
            ],
            Some(list) => {
                if list.is_empty() || list.len() > httpsig::MAX_COMPONENTS {
                    return Err(bad(format!(
                        "components must list 1 to {} components",
                        httpsig::MAX_COMPONENTS
                    )));
                }
                list.iter()
                    .map(|c| Component::parse(c))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?
            }
        };
        let max = self.options().max_token_ttl_secs.min(3600);
        let ttl = req.expires_in.unwrap_or(DEFAULT_EXPIRES_IN.min(max));
        if ttl == 0 || ttl > max {
            return Err(bad(format!("expires_in must be between 1 and {max}")));
        }
        let custody = self.custody()?;
        let now = now_unix();
        // As with tokens: the keyid is inside what is signed, so a rotation in between is
        // caught (custody names the key it used) and the signature remade.
        for _ in 0..3 {
            let keys = custody.public_keys(agent_id).map_err(IdentityError::Keys)?;
            let current = keys
                .last()
                .ok_or_else(|| IdentityError::Keys("the agent has no identity key".into()))?;
            let params = SigParams {
                created: now,
                expires: now + ttl as i64,
                keyid: httpsig::jwk_thumbprint(&current.public),
                alg: "ed25519".into(),
                nonce: Some(BASE64URL_NOPAD.encode(&random_bytes::<64>())),
                tag: TAG.into(),
            };
            let params_text = params.serialize(&components);
            let base = httpsig::signature_base(&parts, &components, &params_text).map_err(bad)?;
            let (used, sig) = custody
                .sign(agent_id, base.as_bytes())
                .map_err(IdentityError::Keys)?;
            if used != current.kid {
                continue;
            }
            let covered: Vec<String> = components.iter().map(Component::id).collect();
            actor.audit(
                &self.audit,
                action,
                agent_id,
                Outcome::Ok,
                json!({"method": parts.method, "authority": httpsig::authority(&parts.url),
                       "path": parts.url.path(), "components": covered,
                       "keyid": params.keyid, "expires": params.expires,
                       "sha256": HEXLOWER.encode(&Sha256::digest(base.as_bytes()))}),
            )?;
            self.audit.commit().await?;
            return Ok(json!({
                "headers": {
                    "Signature-Input": format!("{LABEL}={params_text}"),
                    "Signature": format!("{LABEL}=:{}:", BASE64.encode(&sig)),
                    "Signature-Agent": format!("{LABEL}={agent_value}"),
                },
                "keyid": params.keyid,
                "created": params.created,
                "expires": params.expires,
                "signature_base": base,
            }));
        }
        Err(IdentityError::Keys(
            "the identity key kept changing while signing".into(),
        ))
    }

    /// Published keys of every active agent of the server's own domain.
    pub(super) fn org_keys(&self) -> Result<Vec<(String, [u8; 32])>, IdentityError> {
        let domain = self.default_domain().unwrap_or_default();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.page_agents(1000, cursor.as_deref())?;
            for a in page.iter().filter(|a| a.is_active() && a.domain == domain) {
                for k in self.identity_keys(&a.id)? {
                    out.push((a.id.clone(), k.public));
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// `GET [/orgs/{domain}]/agents/{local}/.well-known/http-message-signatures-directory`
    /// (`authority`: the request's Host, signed over when it is ours);
    /// `Deactivated` for a revoked agent (served 410, no keys).
    pub fn agent_directory(
        &self,
        domain: Option<&str>,
        local: &str,
        authority: &str,
    ) -> Result<Option<Directory>, IdentityError> {
        let agent = self
            .agent_by_did_path(domain, local)?
            .ok_or(IdentityError::NotFound("agent"))?;
        if !agent.is_active() {
            return Ok(None);
        }
        let keys = self.identity_keys(&agent.id)?;
        let body =
            json!({"keys": keys.iter().map(|k| directory_jwk(&k.public)).collect::<Vec<_>>()});
        let signers = vec![agent.id.clone()];
        let authority = self.directory_authority(authority);
        Ok(Some(self.sign_directory(body, &signers, &authority)))
    }

    /// `GET /.well-known/http-message-signatures-directory`: every active agent's keys.
    pub fn org_directory(&self, authority: &str) -> Result<Directory, IdentityError> {
        let reuse = !self.store.is_shared();
        // Read before the records: a change racing with this build voids what it caches.
        let epoch = self.auth_cache.epoch();
        let authority = self.directory_authority(authority);
        if reuse {
            if let Some(d) = self.org_directory.get(epoch, &authority) {
                return Ok(d);
            }
        }
        let d = self.build_org_directory(&authority)?;
        if reuse {
            self.org_directory.put(epoch, authority, &d);
        }
        Ok(d)
    }

    /// `authority`: what [`directory_authority`](Self::directory_authority) made of the Host.
    fn build_org_directory(&self, authority: &str) -> Result<Directory, IdentityError> {
        let keys = self.org_keys()?;
        let body = json!({"keys": keys.iter().map(|(_, k)| directory_jwk(k)).collect::<Vec<_>>()});
        let mut signers: Vec<String> = Vec::new();
        for (id, _) in &keys {
            if !signers.contains(id) && signers.len() < MAX_DIRECTORY_SIGNERS {
                signers.push(id.clone());
            }
        }
        Ok(self.sign_directory(body, &signers, authority))
    }

    /// The authority a directory is signed over for a request with `Host: authority`. Only
    /// our own: a Host of another name (a proxy fetching with `Host: evil.example`) must not
    /// get our agents to vouch that their keys are served there.
    fn directory_authority(&self, authority: &str) -> String {
        let ours = url::Url::parse(&self.public_origin())
            .map(|u| httpsig::authority(&u))
            .unwrap_or_else(|_| self.did_host.replace("%3A", ":"));
        if sane_authority(authority) && authority.eq_ignore_ascii_case(&ours) {
            authority.to_ascii_lowercase()
        } else {
            ours
        }
    }

    /// Signs a directory response with each signer's current key, covering
    /// `"@authority";req` (the draft's response signature). A failure to sign leaves that
    /// signature out rather than failing the directory: the keys are public either way.
    /// `authority` is already [`directory_authority`](Self::directory_authority)'s.
    fn sign_directory(&self, body: Value, signers: &[String], authority: &str) -> Directory {
        let Ok(custody) = self.custody() else {
            return Directory {
                body,
                signature: None,
            };
        };
        let now = now_unix();
        let (mut inputs, mut sigs) = (Vec::new(), Vec::new());
        for (i, id) in signers.iter().enumerate() {
            let Some(current) = custody.public_keys(id).ok().and_then(|k| k.last().cloned()) else {
                continue;
            };
            let label = format!("sig{}", i + 1);
            let params = format!(
                "(\"@authority\";req);created={now};expires={};keyid={};alg=\"ed25519\";tag=\"{DIRECTORY_TAG}\"",
                now + DIRECTORY_SIG_SECS,
                sfv::bare(&Bare::String(httpsig::jwk_thumbprint(&current.public)))
            );
            let base = format!("\"@authority\";req: {authority}\n\"@signature-params\": {params}");
            match custody.sign(id, base.as_bytes()) {
                Ok((kid, sig)) if kid == current.kid => {
                    inputs.push(format!("{label}={params}"));
                    sigs.push(format!("{label}=:{}:", BASE64.encode(&sig)));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot sign a key directory"),
            }
        }
        let signature = (!inputs.is_empty()).then(|| (inputs.join(", "), sigs.join(", ")));
        Directory { body, signature }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_we_sign_over() {
        for ok in ["a.test", "a.test:8080", "[::1]:80", "localhost"] {
            assert!(sane_authority(ok), "{ok}");
        }
        for bad in ["", "a b", "a\r\nx", "a/b", &"a".repeat(300)] {
            assert!(!sane_authority(bad), "{bad}");
        }
    }

    #[test]
    fn directory_keys_are_named_by_thumbprint() {
        let k = [7u8; 32];
        let j = directory_jwk(&k);
        assert_eq!(j["kid"], httpsig::jwk_thumbprint(&k));
        assert_eq!(super::super::multibase::parse_ed25519_jwk(&j), Some(k));
    }
}
