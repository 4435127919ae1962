//! Identity tokens (DESIGN §8): JWTs an agent presents to a third party to prove who it is and
//! on whose behalf it acts, verifiable by any JWT library from its DID document or JWKS alone.
//!
//! Header: `{"alg": "EdDSA", "typ": "JWT", "kid": "<agent DID>#key-N"}`. Claims:
//!
//! ```json
//! {
//!   "iss": "did:web:agents.acme.com:agents:kid",      // = sub: the agent speaks for itself
//!   "sub": "did:web:agents.acme.com:agents:kid",
//!   "aud": "https://api.example.com",                 // exactly as requested
//!   "iat": 1767225600, "exp": 1767226500,             // exp - iat <= 3600
//!   "jti": "tok_...",
//!   "email": "kid@agents.acme.com",
//!   "scope": "mail:read identity:sign",               // the key's effective scopes (RFC 8693 §4.2)
//!   "act": {                                          // RFC 8693 §4.1, immediate actor outermost
//!     "sub": "agent:parent@agents.acme.com",
//!     "act": { "sub": "org:acme", "act": { "sub": "human:alice@acme.com" } }
//!   }
//! }
//! ```
//!
//! `act` is the delegation chain minus its last link (the subject itself), innermost = the
//! authorising human; each `sub` is the chain link verbatim (`kind:id`).
//!
//! Tokens are signed here (base64url header and claims, Ed25519 through key custody) so the
//! private key never leaves the vault and no JOSE library is needed on the signing side.

use super::did::{self, VerificationKey};
use super::verdict::{Reason, Verdict};
use super::{Actor, IdentityError, IdentityService, Scope};
use crate::audit::Outcome;
use crate::util::{new_id, now_unix};
use data_encoding::BASE64URL_NOPAD;
use serde_json::{json, Value};

/// Used when the caller gives no lifetime.
pub const DEFAULT_TTL_SECS: u64 = 900;
/// Clock skew tolerated for `iat`/`nbf` in the future. `exp` gets none.
const LEEWAY_SECS: i64 = 60;
/// Refuse to parse anything longer (ours are well under 2 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
const MAX_AUDIENCE_LEN: usize = 1024;

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    /// DID URL of the signing key.
    pub kid: String,
    pub jti: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl IssuedToken {
    pub fn to_json(&self) -> Value {
        json!({
            "token": self.token,
            "token_type": "JWT",
            "kid": self.kid,
            "jti": self.jti,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "expires_in": self.expires_at - self.issued_at,
        })
    }
}

/// The RFC 8693 `act` claim for a delegation chain (authorising human first, subject last).
pub fn act_claim(chain: &[String]) -> Option<Value> {
    let actors = chain.split_last().map(|(_, a)| a).unwrap_or_default();
    actors.iter().fold(None, |inner, link| {
        let mut node = json!({ "sub": link });
        if let Some(i) = inner {
            node["act"] = i;
        }
        Some(node)
    })
}

fn b64_json(v: &Value) -> String {
    BASE64URL_NOPAD.encode(v.to_string().as_bytes())
}

/// A decoded, not yet verified, compact JWS.
pub(super) struct Jwt<'a> {
    pub(super) header: Value,
    pub(super) claims: Value,
    /// `header.payload` as received: what the signature covers.
    pub(super) signing_input: &'a str,
    pub(super) signature: [u8; 64],
}

fn decode_part(part: &str) -> Option<Value> {
    let bytes = BASE64URL_NOPAD.decode(part.as_bytes()).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.is_object().then_some(v)
}

pub(super) fn parse(token: &str) -> Result<Jwt<'_>, Verdict> {
    let malformed = |why: &str| Verdict::fail(Reason::Malformed, why);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("the token is too long"));
    }
    let (signing_input, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| malformed("not a compact JWS (header.payload.signature)"))?;
    let (h, p) = signing_input
        .split_once('.')
        .filter(|(_, p)| !p.contains('.'))
        .ok_or_else(|| malformed("not a compact JWS (header.payload.signature)"))?;
    let header = decode_part(h).ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let claims = decode_part(p).ok_or_else(|| malformed("the claims are not base64url JSON"))?;
    let signature: [u8; 64] = BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| malformed("the signature is not 64 base64url bytes"))?;
    Ok(Jwt {
        header,
        claims,
        signing_input,
        signature,
    })
}

/// Ed25519 verification in strict mode (no small-order keys, canonical signatures).
pub(super) fn ed25519_verify(key: &[u8; 32], data: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
        return false;
    };
    vk.verify_strict(data, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

fn audience_matches(aud: Option<&Value>, want: &str) -> bool {
    match aud {
        Some(Value::String(a)) => a == want,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(want)),
        _ => false,
    }
}

fn int_claim(claims: &Value, name: &str) -> Result<Option<i64>, Verdict> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| Verdict::fail(Reason::Malformed, format!("{name} is not a number"))),
    }
}

/// Checks claims that only mean something once the signature is good.
fn check_claims(claims: &Value, audience: Option<&str>, now: i64) -> Result<(), Verdict> {
    let exp = int_claim(claims, "exp")?
        .ok_or_else(|| Verdict::fail(Reason::Malformed, "the token has no exp"))?;
    if now >= exp {
        return Err(Verdict::fail(Reason::Expired, "the token has expired"));
    }
    for name in ["iat", "nbf"] {
        if int_claim(claims, name)?.is_some_and(|t| t > now + LEEWAY_SECS) {
            return Err(Verdict::fail(
                Reason::NotYetValid,
                format!("{name} is in the future"),
            ));
        }
    }
    if let Some(want) = audience {
        if !audience_matches(claims.get("aud"), want) {
            return Err(Verdict::fail(
                Reason::WrongAudience,
                "the token was issued for another audience",
            ));
        }
    }
    Ok(())
}

impl IdentityService {
    /// `POST /v1/identity/token`: a token for `audience`, valid `ttl_secs` (default
    /// [`DEFAULT_TTL_SECS`], at most `identity.max_token_ttl_secs`). Scope `identity:sign`.
    pub async fn issue_token(
        &self,
        actor: &Actor,
        audience: &str,
        ttl_secs: Option<u64>,
    ) -> Result<IssuedToken, IdentityError> {
        let action = "identity.token";
        let agent_id = actor.require(&self.audit, Scope::IdentitySign, action, audience)?;
        if audience.trim().is_empty()
            || audience.len() > MAX_AUDIENCE_LEN
            || audience.chars().any(char::is_control)
        {
            return Err(IdentityError::Invalid(format!(
                "audience must be 1 to {MAX_AUDIENCE_LEN} printable characters"
            )));
        }
        let max = self.options().max_token_ttl_secs.min(3600);
        let ttl = ttl_secs.unwrap_or(DEFAULT_TTL_SECS.min(max));
        if ttl == 0 || ttl > max {
            return Err(IdentityError::Invalid(format!(
                "ttl_seconds must be between 1 and {max}"
            )));
        }
        let agent = self
            .agent(agent_id)?
            .ok_or(IdentityError::NotFound("agent"))?;
        let did = self.agent_did(&agent);
        let custody = self.custody()?;
        let now = now_unix();
        let jti = new_id("tok");
        let mut claims = json!({
            "iss": did,
            "sub": did,
            "aud": audience,
            "iat": now,
            "exp": now + ttl as i64,
            "jti": jti,
            "email": agent.address(),
            "scope": actor.scopes.names().join(" "),
        });
        if let Some(act) = act_claim(&actor.chain) {
            claims["act"] = act;
        }
        // The kid goes into the signed header, so it is read before signing; a rotation in
        // between is detected (custody reports which key signed) and the token rebuilt.
        for _ in 0..3 {
            let keys = custody.public_keys(agent_id).map_err(IdentityError::Keys)?;
            let current = keys
                .last()
                .ok_or_else(|| IdentityError::Keys("the agent has no identity key".into()))?;
            let kid = format!("{did}#{}", current.kid);
            let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
            let input = format!("{}.{}", b64_json(&header), b64_json(&claims));
            let (used, sig) = custody
                .sign(agent_id, input.as_bytes())
                .map_err(IdentityError::Keys)?;
            if used != current.kid {
                continue;
            }
            let issued = IssuedToken {
                token: format!("{input}.{}", BASE64URL_NOPAD.encode(&sig)),
                kid,
                jti: jti.clone(),
                issued_at: now,
                expires_at: now + ttl as i64,
            };
            actor.audit(
                &self.audit,
                action,
                agent_id,
                Outcome::Ok,
                json!({"aud": audience, "jti": jti, "exp": issued.expires_at, "kid": issued.kid}),
            )?;
            self.audit.commit().await?;
            return Ok(issued);
        }
        Err(IdentityError::Keys(
            "the identity key kept changing while signing".into(),
        ))
    }

    /// `POST /v1/identity/verify {token}`: checks an identity token, ours or another host's.
    /// Scope `identity:verify`. `audience`, when given, must be among the token's `aud`.
    pub async fn verify_token(
        &self,
        actor: &Actor,
        token: &str,
        audience: Option<&str>,
    ) -> Result<Verdict, IdentityError> {
        let action = "identity.verify";
        actor.require(&self.audit, Scope::IdentityVerify, action, "token")?;
        let verdict = self.check_token(token, audience).await;
        let iss = verdict
            .kid
            .as_deref()
            .map(|k| did::split_did_url(k).0.to_string())
            .unwrap_or_default();
        actor.audit(
            &self.audit,
            action,
            &iss,
            Outcome::Ok,
            json!({"kind": "token", "valid": verdict.valid(), "reason": verdict.reason.code(),
                   "kid": verdict.kid, "jti": verdict.claims.as_ref().and_then(|c| c.get("jti"))}),
        )?;
        Ok(verdict)
    }

    async fn check_token(&self, token: &str, audience: Option<&str>) -> Verdict {
        let jwt = match parse(token.trim()) {
            Ok(j) => j,
            Err(v) => return v,
        };
        let kid = jwt
            .header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let with_kid = |mut v: Verdict| {
            v.kid = kid.clone();
            v
        };
        if jwt.header.get("alg").and_then(Value::as_str) != Some("EdDSA") {
            return with_kid(Verdict::fail(
                Reason::UnsupportedAlgorithm,
                "only alg EdDSA (Ed25519) identity tokens are accepted",
            ));
        }
        if jwt.header.get("crit").is_some() {
            return with_kid(Verdict::fail(
                Reason::Malformed,
                "critical header extensions are not supported",
            ));
        }
        let Some(kid_str) = kid.as_deref() else {
            return Verdict::fail(Reason::Malformed, "the header has no kid");
        };
        let (did_str, frag) = did::split_did_url(kid_str);
        if frag.is_none_or(str::is_empty) {
            return with_kid(Verdict::fail(
                Reason::Malformed,
                "kid must be a DID URL (did:web:...#key)",
            ));
        }
        let iss = jwt.claims.get("iss").and_then(Value::as_str).unwrap_or("");
        let sub = jwt.claims.get("sub").and_then(Value::as_str).unwrap_or("");
        if !did::same_did_url(iss, did_str) || !did::same_did_url(sub, did_str) {
            return with_kid(Verdict::fail(
                Reason::DidMismatch,
                "iss and sub must be the DID the kid belongs to",
            ));
        }
        let keys: Vec<VerificationKey> = match self.resolve_keys(did_str).await {
            Ok(k) => k,
            Err(v) => return with_kid(v),
        };
        let Some(key) = keys.iter().find(|k| k.is_named(kid_str)) else {
            return with_kid(Verdict::fail(
                Reason::UnknownKey,
                "the DID document does not publish this kid (rotated out?)",
            ));
        };
        if !ed25519_verify(&key.public, jwt.signing_input.as_bytes(), &jwt.signature) {
            return with_kid(Verdict::fail(
                Reason::BadSignature,
                "the signature does not verify",
            ));
        }
        let mut v = match check_claims(&jwt.claims, audience, now_unix()) {
            Ok(()) => Verdict {
                reason: Reason::Ok,
                kid: None,
                claims: None,
                detail: None,
            },
            Err(v) => v,
        };
        v.kid = kid;
        v.claims = Some(jwt.claims);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(links: &[&str]) -> Vec<String> {
        links.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn act_nests_the_immediate_actor_outermost() {
        let c = chain(&["human:a", "org:o", "agent:p@x", "agent:k@x"]);
        assert_eq!(
            act_claim(&c).unwrap(),
            json!({"sub": "agent:p@x", "act": {"sub": "org:o", "act": {"sub": "human:a"}}})
        );
        assert_eq!(
            act_claim(&chain(&["human:a", "org:o", "agent:x"])).unwrap(),
            json!({"sub": "org:o", "act": {"sub": "human:a"}})
        );
        assert_eq!(act_claim(&chain(&["agent:alone"])), None);
        assert_eq!(act_claim(&[]), None);
    }

    #[test]
    fn parse_refuses_malformed_tokens() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "e30.e30.AAAA",
            "bm90anNvbg.e30.AAAA",
        ] {
            let v = parse(bad).err().unwrap();
            assert_eq!(v.reason, Reason::Malformed, "{bad}");
        }
        let sig = BASE64URL_NOPAD.encode(&[0u8; 64]);
        let ok = format!("e30.eyJhIjoxfQ.{sig}");
        let j = parse(&ok).ok().unwrap();
        assert_eq!(j.claims["a"], 1);
        assert_eq!(j.signing_input, "e30.eyJhIjoxfQ");
        assert!(parse(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_err());
    }

    #[test]
    fn claims_are_checked_after_the_signature() {
        let now = 1_000_000;
        let c = json!({"exp": now + 10, "iat": now, "aud": "svc"});
        assert!(check_claims(&c, Some("svc"), now).is_ok());
        assert!(check_claims(&c, None, now).is_ok());
        assert_eq!(
            check_claims(&c, Some("other"), now).unwrap_err().reason,
            Reason::WrongAudience
        );
        assert_eq!(
            check_claims(&c, None, now + 10).unwrap_err().reason,
            Reason::Expired
        );
        let future = json!({"exp": now + 999, "iat": now + 120});
        assert_eq!(
            check_claims(&future, None, now).unwrap_err().reason,
            Reason::NotYetValid
        );
        assert_eq!(
            check_claims(&json!({"iat": now}), None, now)
                .unwrap_err()
                .reason,
            Reason::Malformed
        );
        let multi = json!({"exp": now + 10, "aud": ["a", "svc"]});
        assert!(check_claims(&multi, Some("svc"), now).is_ok());
    }

    #[test]
    fn strict_ed25519() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        use ed25519_dalek::Signer;
        let sig = sk.sign(b"hi").to_bytes();
        let pk = sk.verifying_key().to_bytes();
        assert!(ed25519_verify(&pk, b"hi", &sig));
        assert!(!ed25519_verify(&pk, b"ho", &sig));
        // the identity point is a small-order key: refused outright
        let mut small = [0u8; 32];
        small[0] = 1;
        assert!(!ed25519_verify(&small, b"hi", &sig));
    }
}
