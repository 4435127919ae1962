//! DKIM signing for outbound mail (DESIGN §5: every message is signed twice, ed25519-sha256
//! and rsa-sha256, because many receivers still ignore Ed25519).
//!
//! The private keys stay in the vault: it builds key objects (`Ed25519Key`, `RsaSha256Key`)
//! from sealed DER and hands them over inside a `DkimSigning`, whose `Debug` never prints
//! key material.

use super::DkimPrivateKey;
use super::MailAuthError;
use mail_auth::common::crypto::SigningKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use mail_auth::AuthenticatedMessage;

/// The headers covered by our signatures. mail-auth lists absent ones in `h=` too
/// ("over-signing"), so a Cc or Reply-To added in transit breaks the signature.
pub const SIGNED_HEADERS: [&str; 12] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    // The agent's own signature (identity::mailsig): DKIM vouches that the domain sent it.
    "Agent-Signature",
];

/// One signing identity: `d=`, `s=` and the key, ready to sign (relaxed/relaxed).
pub struct DkimSigning {
    domain: String,
    selector: String,
    algorithm: &'static str,
    signer: DkimSigner<DkimPrivateKey, Done>,
}

impl DkimSigning {
    /// `key` is an `Ed25519Key` or an `RsaSha256Key` (or a `DkimPrivateKey` holding either).
    pub fn new(domain: &str, selector: &str, key: impl Into<DkimPrivateKey>) -> Self {
        let key = key.into();
        let algorithm = key.algorithm().name();
        let signer = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS)
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Self {
            domain: domain.to_string(),
            selector: selector.to_string(),
            algorithm,
            signer,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// `ed25519-sha256` or `rsa-sha256`.
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }
}

impl std::fmt::Debug for DkimSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimSigning")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Returns the `DKIM-Signature` headers (CRLF-terminated, in signer order) to prepend to
/// `raw`. Each signature covers the original message only, so the order does not matter.
/// RSA signing costs milliseconds: async callers should use `spawn_blocking`.
pub fn dkim_sign(raw: &[u8], signers: &[DkimSigning]) -> Result<String, MailAuthError> {
    if signers.is_empty() {
        return Err(MailAuthError::NoSigners);
    }
    // RFC 6376 §5.4: From must be signed; refuse rather than emit a useless signature.
    let has_from = AuthenticatedMessage::parse(raw).is_some_and(|m| {
        m.raw_parsed_headers()
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(b"from"))
    });
    if !has_from {
        return Err(MailAuthError::Sign("message has no From header".into()));
    }
    let mut headers = String::new();
    for signing in signers {
        let signature = signing
            .signer
            .sign(raw)
            .map_err(|e| MailAuthError::Sign(e.to_string()))?;
        headers.push_str(&signature.to_header());
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ed25519_key, message, rsa_key};
    use super::*;

    #[test]
    fn signs_with_both_algorithms_and_chosen_headers() {
        let signers = [
            DkimSigning::new("example.com", "ed", ed25519_key().0),
            DkimSigning::new("example.com", "rsa", rsa_key().0),
        ];
        assert_eq!(signers[0].algorithm(), "ed25519-sha256");
        assert_eq!(signers[1].algorithm(), "rsa-sha256");
        let headers = dkim_sign(message("example.com", "hello").as_bytes(), &signers).unwrap();
        assert_eq!(headers.matches("DKIM-Signature:").count(), 2);
        assert!(headers.ends_with("\r\n"));
        let unfolded = headers.replace("\r\n\t", "").replace("\r\n ", "");
        assert!(unfolded.contains("a=ed25519-sha256"));
        assert!(unfolded.contains("a=rsa-sha256"));
        assert!(unfolded.contains("c=relaxed/relaxed"));
        assert!(unfolded.contains("d=example.com"));
        assert!(unfolded.contains("s=ed;") || unfolded.contains("s=ed\r"));
        // Every listed header is in h=, present or not: mail-auth over-signs the absent ones
        // (here Cc, In-Reply-To, References, Reply-To), so none can be added in transit.
        let h = unfolded
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let signed: Vec<String> = h
            .split(':')
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        for name in SIGNED_HEADERS {
            assert!(
                signed.contains(&name.to_ascii_lowercase()),
                "{name} not in {h}"
            );
        }
    }

    #[test]
    fn refuses_without_signers_or_from() {
        let raw = message("example.com", "hello");
        assert!(matches!(
            dkim_sign(raw.as_bytes(), &[]),
            Err(MailAuthError::NoSigners)
        ));
        let signers = [DkimSigning::new("example.com", "ed", ed25519_key().0)];
        let no_from = "To: b@example.net\r\nSubject: x\r\n\r\nbody\r\n";
        assert!(matches!(
            dkim_sign(no_from.as_bytes(), &signers),
            Err(MailAuthError::Sign(_))
        ));
        assert!(dkim_sign(b"", &signers).is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = format!(
            "{:?}",
            DkimSigning::new("example.com", "ed", ed25519_key().0)
        );
        assert!(s.contains("[redacted]") && s.contains("example.com"));
    }
}
