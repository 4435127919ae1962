//! Checking received Web Bot Auth signatures (`POST /v1/identity/http-signature/verify`): the
//! RFC 9421 signature against the key directory its `Signature-Agent` names — ours from the
//! store, another host's fetched within the did:web fetch limits.

use super::httpsig::{self, Component, RequestParts};
use super::sfv::{self, Bare};
use super::token::ed25519_verify;
use super::verdict::{Reason, Verdict};
use super::webbot::{bad, header_pairs, HttpVerifyRequest, DIRECTORY_PATH, TAG};
use super::{Actor, Agent, IdentityError, IdentityService, Scope};
use crate::audit::Outcome;
use crate::util::now_unix;
use serde_json::{json, Value};

/// Clock skew tolerated for `created` in the future.
const LEEWAY_SECS: i64 = 60;

impl IdentityService {
    /// `POST /v1/identity/http-signature/verify`. Scope `identity:verify`.
    pub async fn verify_http_signature(
        &self,
        actor: &Actor,
        req: &HttpVerifyRequest,
    ) -> Result<Verdict, IdentityError> {
        let action = "identity.verify";
        actor.require(&self.audit, Scope::IdentityVerify, action, &req.url)?;
        let headers = header_pairs(&req.headers)?;
        let parts = httpsig::request_parts(&req.method, &req.url, &headers).map_err(bad)?;
        let verdict = self
            .check_http_signature(&parts, req.label.as_deref())
            .await;
        actor.audit(
            &self.audit,
            action,
            &req.url,
            Outcome::Ok,
            json!({"kind": "http_signature", "valid": verdict.valid(),
                   "reason": verdict.reason.code(), "kid": verdict.kid}),
        )?;
        Ok(verdict)
    }

    async fn check_http_signature(&self, req: &RequestParts, label: Option<&str>) -> Verdict {
        let malformed = |d: String| Verdict::fail(Reason::Malformed, d);
        let (Some(input), Some(sig)) = (req.header("signature-input"), req.header("signature"))
        else {
            return malformed("the request has no Signature-Input and Signature headers".into());
        };
        let r = match httpsig::received(input, sig, label, TAG) {
            Ok(r) => r,
            Err(e) => return malformed(e),
        };
        let p = |n: &str| sfv::param(&r.params, n);
        let (Some(Bare::Integer(created)), Some(Bare::Integer(expires)), Some(Bare::String(keyid))) =
            (p("created"), p("expires"), p("keyid"))
        else {
            return malformed("created, expires and keyid are required".into());
        };
        if p("tag") != Some(&Bare::String(TAG.into())) {
            return malformed(format!("the signature is not tagged {TAG}"));
        }
        if p("alg").is_some_and(|a| *a != Bare::String("ed25519".into())) {
            return Verdict::fail(Reason::UnsupportedAlgorithm, "only ed25519 is accepted");
        }
        let bare_target = r
            .components
            .iter()
            .any(|c| c.key.is_none() && (c.name == "@authority" || c.name == "@target-uri"));
        if !bare_target {
            return malformed("the signature must cover @authority or @target-uri".into());
        }
        let agent_cover = Component {
            name: "signature-agent".into(),
            key: Some(r.label.clone()),
        };
        if req.header("signature-agent").is_some() && !r.components.contains(&agent_cover) {
            return malformed(format!("the signature must cover {}", agent_cover.id()));
        }
        let now = now_unix();
        if now >= *expires {
            return Verdict::fail(Reason::Expired, "the signature has expired");
        }
        if *created > now + LEEWAY_SECS || created > expires {
            return Verdict::fail(Reason::NotYetValid, "created lies in the future");
        }
        let base = match httpsig::signature_base(req, &r.components, &r.params_text) {
            Ok(b) => b,
            Err(e) => return malformed(e),
        };
        let Ok(signature) = <[u8; 64]>::try_from(r.signature.as_slice()) else {
            return malformed("an Ed25519 signature is 64 bytes".into());
        };
        let directory = match agent_cover.value(req) {
            Ok(v) => match sfv::parse_item(&v) {
                Ok(sfv::Item {
                    value: Bare::String(u),
                    ..
                }) => u,
                _ => return malformed("the Signature-Agent member is not a URL string".into()),
            },
            Err(_) => {
                return Verdict::fail(
                    Reason::UnknownKey,
                    "no Signature-Agent member names the key directory",
                )
            }
        };
        let (keys, who) = match self.directory_keys(&directory).await {
            Ok(k) => k,
            Err(v) => return v,
        };
        let Some(key) = keys.iter().find(|k| httpsig::jwk_thumbprint(k) == *keyid) else {
            return Verdict::fail(
                Reason::UnknownKey,
                "the key directory does not list this keyid (rotated out or revoked?)",
            );
        };
        if !ed25519_verify(key, base.as_bytes(), &signature) {
            return Verdict::fail(Reason::BadSignature, "the signature does not verify");
        }
        let covered: Vec<String> = r.components.iter().map(Component::id).collect();
        let mut claims = json!({"label": r.label, "keyid": keyid, "created": created,
            "expires": expires, "components": covered, "signature_agent": directory});
        if let Some(a) = &who {
            claims["did"] = json!(self.agent_did(a));
            claims["address"] = json!(a.address());
            claims["chain"] = json!(self.public_chain(a));
        }
        Verdict {
            reason: Reason::Ok,
            kid: who.map(|a| format!("{}#{keyid}", self.agent_did(&a))),
            claims: Some(claims),
            detail: None,
        }
    }

    /// The keys a `Signature-Agent` directory lists: ours straight from the store, another
    /// host's fetched within the did:web fetch limits.
    async fn directory_keys(&self, url: &str) -> Result<(Vec<[u8; 32]>, Option<Agent>), Verdict> {
        let u = url::Url::parse(url)
            .map_err(|_| Verdict::fail(Reason::Malformed, "Signature-Agent is not a URL"))?;
        let ours = url::Url::parse(&self.public_origin()).ok();
        if ours.is_some_and(|o| o.origin() == u.origin()) {
            return self.local_directory_keys(u.path());
        }
        let opts = self.options();
        if !opts.remote_did_resolution {
            return Err(Verdict::fail(
                Reason::RemoteResolutionDisabled,
                "fetching other hosts' key directories is switched off",
            ));
        }
        let fetcher = self
            .fetcher()
            .map_err(|e| Verdict::fail(Reason::ResolutionFailed, e))?;
        let doc = match fetcher.fetch(url).await {
            Ok(super::fetch::Fetched::Document(d)) => d,
            Ok(super::fetch::Fetched::Gone) => {
                return Err(Verdict::fail(
                    Reason::Revoked,
                    format!("{url} answered 410"),
                ))
            }
            Ok(super::fetch::Fetched::NotFound) => {
                return Err(Verdict::fail(
                    Reason::UnknownKey,
                    format!("{url} answered 404"),
                ))
            }
            Err(e) => return Err(Verdict::fail(Reason::ResolutionFailed, e)),
        };
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .map(|ks| {
                ks.iter()
                    .filter_map(super::multibase::parse_ed25519_jwk)
                    .collect()
            })
            .unwrap_or_default();
        Ok((keys, None))
    }

    fn local_directory_keys(&self, path: &str) -> Result<(Vec<[u8; 32]>, Option<Agent>), Verdict> {
        let internal = |e: IdentityError| {
            tracing::error!(error = %e, "local key directory lookup failed");
            Verdict::fail(Reason::ResolutionFailed, "internal error")
        };
        let segs: Vec<&str> = path
            .trim_start_matches('/')
            .strip_suffix(DIRECTORY_PATH)
            .map(|p| p.split('/').filter(|s| !s.is_empty()).collect())
            .ok_or_else(|| Verdict::fail(Reason::UnknownKey, "not a key directory URL"))?;
        let agent = match segs.as_slice() {
            ["agents", local] => self.agent_by_did_path(None, local),
            ["orgs", domain, "agents", local] => self.agent_by_did_path(Some(domain), local),
            [] => {
                let keys = self.org_keys().map_err(internal)?;
                return Ok((keys.into_iter().map(|(_, k)| k).collect(), None));
            }
            _ => return Err(Verdict::fail(Reason::UnknownKey, "not a key directory URL")),
        }
        .map_err(internal)?
        .ok_or_else(|| Verdict::fail(Reason::UnknownDid, "no such agent on this host"))?;
        if !agent.is_active() {
            return Err(Verdict::fail(Reason::Revoked, "the agent has been revoked"));
        }
        let keys = self.identity_keys(&agent.id).map_err(internal)?;
        Ok((keys.into_iter().map(|k| k.public).collect(), Some(agent)))
    }
}
