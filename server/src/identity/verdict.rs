//! The answer of `verify`: valid or not, and one stable reason code saying why.

use serde_json::{json, Value};

/// Why a signature or token did (not) verify. Codes are part of the API: clients branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ok,
    /// The signer is one of our agents and has been revoked, or a remote DID is deactivated.
    Revoked,
    Expired,
    /// `iat` (or `nbf`) lies in the future beyond the allowed clock skew.
    NotYetValid,
    BadSignature,
    /// The caller asked for an audience the token was not issued for.
    WrongAudience,
    /// The DID resolved but has no usable key by that id.
    UnknownKey,
    /// No such agent here, or the remote host has no document (404).
    UnknownDid,
    /// Not a did:web DID we can resolve.
    InvalidDid,
    /// Not a JWT, or its parts or claims do not decode.
    Malformed,
    UnsupportedAlgorithm,
    /// `iss`/`sub` disagree with the DID of `kid`, or a fetched document's `id` is not the DID.
    DidMismatch,
    /// The DID is on another host and remote resolution is switched off.
    RemoteResolutionDisabled,
    /// The remote document could not be fetched (network, TLS, timeout, size, redirects, JSON).
    ResolutionFailed,
    /// Not resolved: a received message whose From domain did not authenticate (no aligned
    /// DMARC pass) cannot be vouched for by any DID, so its host is not fetched from.
    FromNotAuthenticated,
}

impl Reason {
    pub fn code(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Revoked => "revoked",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::BadSignature => "bad_signature",
            Reason::WrongAudience => "wrong_audience",
            Reason::UnknownKey => "unknown_key",
            Reason::UnknownDid => "unknown_did",
            Reason::InvalidDid => "invalid_did",
            Reason::Malformed => "malformed",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::DidMismatch => "did_mismatch",
            Reason::RemoteResolutionDisabled => "remote_resolution_disabled",
            Reason::ResolutionFailed => "resolution_failed",
            Reason::FromNotAuthenticated => "from_not_authenticated",
        }
    }
}

/// The outcome of one verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub reason: Reason,
    /// The DID URL of the key that verified (or was named).
    pub kid: Option<String>,
    /// Token claims, present once the signature has been checked (even if expired).
    pub claims: Option<Value>,
    /// A human-readable detail for failures (never secret: about the input or the fetch).
    pub detail: Option<String>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.reason == Reason::Ok
    }

    pub fn fail(reason: Reason, detail: impl Into<String>) -> Verdict {
        Verdict {
            reason,
            kid: None,
            claims: None,
            detail: Some(detail.into()),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({ "valid": self.valid(), "reason": self.reason.code() });
        if let Some(k) = &self.kid {
            v["kid"] = json!(k);
        }
        if let Some(c) = &self.claims {
            v["claims"] = c.clone();
        }
        if let Some(d) = &self.detail {
            v["detail"] = json!(d);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let v = Verdict::fail(Reason::Revoked, "agent revoked").to_json();
        assert_eq!(
            v,
            json!({"valid": false, "reason": "revoked", "detail": "agent revoked"})
        );
        let ok = Verdict {
            reason: Reason::Ok,
            kid: Some("did:web:a#key-1".into()),
            claims: Some(json!({"sub": "x"})),
            detail: None,
        };
        assert_eq!(ok.to_json()["valid"], true);
        assert_eq!(ok.to_json()["claims"]["sub"], "x");
    }
}
