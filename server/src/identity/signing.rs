//! Signing and verifying bytes with agents' identity keys, key rotation, and the public
//! documents (did.json, jwks.json) that let anyone check those signatures.

use super::custody::IdentityKey;
use super::did;
use super::token::ed25519_verify;
use super::verdict::{Reason, Verdict};
use super::{Actor, IdentityError, IdentityService, Scope};
use crate::audit::Outcome;
use crate::util::rfc3339;
use data_encoding::{BASE64, BASE64URL, BASE64URL_NOPAD, BASE64_NOPAD, HEXLOWER};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Longest overlap a rotation may give the old key (the default is a day).
pub const MAX_ROTATION_OVERLAP_SECS: i64 = 90 * 24 * 3600;
pub const DEFAULT_ROTATION_OVERLAP_SECS: i64 = 24 * 3600;

/// A signature made by `sign`.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signer's DID.
    pub did: String,
    /// DID URL of the key that signed.
    pub kid: String,
    pub signature: [u8; 64],
}

impl Signed {
    pub fn to_json(&self) -> Value {
        json!({
            "signature_b64": BASE64.encode(&self.signature),
            "kid": self.kid,
            "did": self.did,
            "alg": "Ed25519",
        })
    }
}

/// A public document, or the marker that the agent behind it is revoked.
#[derive(Debug, Clone, PartialEq)]
pub enum PublicDoc {
    Active(Value),
    /// Serve with 410 Gone.
    Deactivated(Value),
}

/// Base64 as clients send it: standard or URL-safe alphabet, padded or not.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    [&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD]
        .iter()
        .find_map(|e| e.decode(s.as_bytes()).ok())
}

impl IdentityService {
    /// `POST /v1/identity/sign`: Ed25519 over `data` with the caller's current identity key.
    /// Scope `identity:sign`. The audit records the SHA-256 of what was signed.
    pub async fn sign(&self, actor: &Actor, data: &[u8]) -> Result<Signed, IdentityError> {
        let action = "identity.sign";
        let agent_id = actor.require(&self.audit, Scope::IdentitySign, action, "")?;
        let agent = self
            .agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let (kid, signature) = self
            .custody()?
            .sign(agent_id, data)
            .map_err(IdentityError::Keys)?;
        let did = self.agent_did(&agent);
        let signed = Signed {
            kid: format!("{did}#{kid}"),
            did,
            signature,
        };
        actor.audit(
            &self.audit,
            action,
            agent_id,
            Outcome::Ok,
            json!({"kid": signed.kid, "bytes": data.len(),
                   "sha256": HEXLOWER.encode(&Sha256::digest(data))}),
        )?;
        self.audit.commit().await?;
        Ok(signed)
    }

    /// `POST /v1/identity/verify {did, data_b64, signature_b64}`: whether `did` signed `data`
    /// (with key `kid` when given, else any key it authorises). Scope `identity:verify`.
    pub async fn verify_signature(
        &self,
        actor: &Actor,
        did_str: &str,
        data: &[u8],
        signature: &[u8],
        kid: Option<&str>,
    ) -> Result<Verdict, IdentityError> {
        let action = "identity.verify";
        actor.require(&self.audit, Scope::IdentityVerify, action, did_str)?;
        let verdict = self.check_signature(did_str, data, signature, kid).await;
        actor.audit(
            &self.audit,
            action,
            did_str,
            Outcome::Ok,
            json!({"kind": "signature", "valid": verdict.valid(), "reason": verdict.reason.code(),
                   "kid": verdict.kid, "sha256": HEXLOWER.encode(&Sha256::digest(data))}),
        )?;
        Ok(verdict)
    }

    async fn check_signature(
        &self,
        did_str: &str,
        data: &[u8],
        signature: &[u8],
        kid: Option<&str>,
    ) -> Verdict {
        let keys = match self.resolve_keys(did_str).await {
            Ok(k) => k,
            Err(v) => return v,
        };
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return Verdict::fail(Reason::Malformed, "an Ed25519 signature is 64 bytes");
        };
        // A bare fragment ("key-1") is relative to the DID.
        let want = kid.map(|k| {
            if k.starts_with("did:") {
                k.to_string()
            } else {
                format!("{did_str}#{}", k.trim_start_matches('#'))
            }
        });
        let candidates: Vec<_> = keys
            .iter()
            .filter(|k| want.as_deref().is_none_or(|w| k.is_named(w)))
            .collect();
        if candidates.is_empty() {
            return Verdict::fail(Reason::UnknownKey, "the DID publishes no such key");
        }
        match candidates
            .iter()
            .find(|k| ed25519_verify(&k.public, data, &sig))
        {
            Some(k) => Verdict {
                reason: Reason::Ok,
                kid: Some(k.id.clone()),
                claims: None,
                detail: None,
            },
            None => Verdict::fail(Reason::BadSignature, "the signature does not verify"),
        }
    }

    /// `legate agent rotate-key`: a new current identity key; the old ones stay published
    /// (and verify) for `overlap_secs`, then drop out of did.json and jwks.json. Admin only.
    pub async fn rotate_identity_key(
        &self,
        actor: &Actor,
        agent: &str,
        overlap_secs: i64,
    ) -> Result<IdentityKey, IdentityError> {
        let action = "agent.rotate_key";
        actor.require_admin(&self.audit, action, agent)?;
        let agent = self
            .find_agent(agent)?
            .ok_or(IdentityError::NotFound("agent"))?;
        if !agent.is_active() {
            return Err(IdentityError::Invalid("the agent is revoked".into()));
        }
        if !(0..=MAX_ROTATION_OVERLAP_SECS).contains(&overlap_secs) {
            return Err(IdentityError::Invalid(format!(
                "overlap_secs must be between 0 and {MAX_ROTATION_OVERLAP_SECS}"
            )));
        }
        let key = self
            .custody()?
            .rotate(&agent.id, overlap_secs)
            .map_err(IdentityError::Keys)?;
        // A new key is published: the org key directory built before it is void.
        self.invalidate_auth();
        actor.audit_on_agent(
            &self.audit,
            action,
            &agent.id,
            Outcome::Ok,
            json!({"kid": format!("{}#{}", self.agent_did(&agent), key.kid),
                   "overlap_secs": overlap_secs}),
        )?;
        self.audit.commit().await?;
        Ok(key)
    }

    /// Published keys of an agent, for the DID document and JWKS.
    pub fn identity_keys(&self, agent_id: &str) -> Result<Vec<IdentityKey>, IdentityError> {
        self.custody()?
            .public_keys(agent_id)
            .map_err(IdentityError::Keys)
    }

    /// `GET /agents/{local}/did.json`.
    pub fn did_document(&self, local: &str) -> Result<PublicDoc, IdentityError> {
        self.did_document_in(None, local)
    }

    /// `GET /orgs/{domain}/agents/{local}/did.json` (`domain` set), or the short form.
    pub fn did_document_in(
        &self,
        domain: Option<&str>,
        local: &str,
    ) -> Result<PublicDoc, IdentityError> {
        let agent = self
            .agent_by_did_path(domain, local)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let did = self.agent_did(&agent);
        if !agent.is_active() {
            let when = rfc3339(agent.revoked_at.unwrap_or_default());
            return Ok(PublicDoc::Deactivated(did::deactivated_result(&did, &when)));
        }
        let keys = self.identity_keys(&agent.id)?;
        let mut doc = did::agent_document(&did, &self.domain_did(), &agent.address(), &keys);
        // The A2A agent card (issue 25 §4), found from the DID like any other service.
        if let Some(services) = doc["service"].as_array_mut() {
            services.push(serde_json::json!({
                "id": format!("{did}#agent-card"),
                "type": "AgentCard",
                "serviceEndpoint": self.agent_card_url(&agent),
            }));
        }
        Ok(PublicDoc::Active(doc))
    }

    /// `GET /agents/{local}/jwks.json`.
    pub fn jwks(&self, local: &str) -> Result<PublicDoc, IdentityError> {
        self.jwks_in(None, local)
    }

    /// `GET /orgs/{domain}/agents/{local}/jwks.json` (`domain` set), or the short form.
    pub fn jwks_in(&self, domain: Option<&str>, local: &str) -> Result<PublicDoc, IdentityError> {
        let agent = self
            .agent_by_did_path(domain, local)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let did = self.agent_did(&agent);
        if !agent.is_active() {
            let when = rfc3339(agent.revoked_at.unwrap_or_default());
            return Ok(PublicDoc::Deactivated(did::deactivated_result(&did, &when)));
        }
        Ok(PublicDoc::Active(did::jwks(
            &did,
            &self.identity_keys(&agent.id)?,
        )))
    }

    /// `GET /.well-known/did.json`.
    pub fn domain_did_document(&self) -> Value {
        let origin = format!("https://{}", self.did_host.replace("%3A", ":"));
        self.with_operator_keys(did::domain_document(&self.domain_did(), &origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_every_dialect() {
        let want = vec![0xfb, 0xff, 0x01];
        for s in ["+/8B", "-_8B", " +/8B "] {
            assert_eq!(decode_b64(s), Some(want.clone()), "{s}");
        }
        assert_eq!(decode_b64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_b64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_b64("not base64!"), None);
    }
}
