//! Private keys the vault keeps on behalf of other modules (DESIGN §3): agents' Ed25519
//! identity keys and each domain's DKIM keys. Both are sealed under the root key at rest, and
//! in memory they are exposed as operations — `sign`, `public_key`, a mail-auth signing key
//! object — never as bytes.

use std::fmt;

use data_encoding::{BASE64, HEXLOWER};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::generate::DkimKeyPair;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::der::{rsa_pkcs1_public_to_spki, rsa_pkcs1_to_pkcs8};
use super::envelope::{open_with, seal_with, Aad, Purpose, Sealed};
use super::error::VaultError;
use super::keys::RootKey;
use crate::util::random_bytes;

/// DKIM RSA modulus size: 2048 is what receivers expect today (RFC 8301 requires >= 1024,
/// recommends 2048; larger keys do not fit a single DNS TXT string comfortably).
const RSA_BITS: usize = 2048;

/// An agent's Ed25519 identity key (DID verification method, JWT `EdDSA` signer).
pub struct IdentityKey {
    /// `SigningKey` zeroizes itself on drop.
    signing: SigningKey,
}

impl IdentityKey {
    pub fn generate() -> Self {
        let seed = Zeroizing::new(random_bytes::<32>());
        Self {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Seals the 32-byte seed under the root key, bound to `owner_id` (the agent id).
    pub fn seal(&self, root: &RootKey, owner_id: &str) -> Result<Sealed, VaultError> {
        let seed = Zeroizing::new(self.signing.to_bytes());
        seal_with(root.bytes(), &identity_aad(owner_id), seed.as_slice())
    }

    pub fn open(root: &RootKey, owner_id: &str, sealed: &Sealed) -> Result<Self, VaultError> {
        let plain = open_with(root.bytes(), &identity_aad(owner_id), sealed)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if plain.len() != seed.len() {
            return Err(VaultError::Corrupt {
                what: "identity key",
            });
        }
        seed.copy_from_slice(&plain);
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Pure Ed25519 (RFC 8032) over `message`; for a JWT, `message` is the signing input
    /// `base64url(header) "." base64url(claims)` and the result is the `EdDSA` signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

/// Checks an Ed25519 signature strictly (rejecting malleable and small-order forms), for
/// `identity_verify` and tests. Needs no private key, so it is a free function.
pub fn verify_ed25519(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public_key)
        .and_then(|key| key.verify_strict(message, &Signature::from_bytes(signature)))
        .is_ok()
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public_key", &HEXLOWER.encode(&self.public_key()))
            .field("secret", &"[redacted]")
            .finish()
    }
}

fn identity_aad(owner_id: &str) -> Aad<'_> {
    Aad {
        agent_id: owner_id,
        record_id: "identity-ed25519",
        purpose: Purpose::IdentityKey,
    }
}

/// The two DKIM signatures every outbound message carries (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DkimAlgorithm {
    Ed25519,
    Rsa,
}

impl DkimAlgorithm {
    fn record_id(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "dkim-ed25519",
            DkimAlgorithm::Rsa => "dkim-rsa",
        }
    }
}

/// A domain's DKIM key pairs. Private halves are PKCS#8 DER, held only here.
pub struct DkimKeys {
    domain: String,
    ed25519_pkcs8: Zeroizing<Vec<u8>>,
    rsa_pkcs8: Zeroizing<Vec<u8>>,
    /// Raw 32-byte key, as RFC 8463 puts it in `p=`.
    ed25519_public: Vec<u8>,
    /// SubjectPublicKeyInfo DER, as RFC 6376 puts it in `p=`.
    rsa_public: Vec<u8>,
}

/// What the store keeps for a domain: both private keys sealed under the root key, each
/// bound to the domain and its algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedDkimKeys {
    pub domain: String,
    pub ed25519: Sealed,
    pub rsa: Sealed,
}

impl DkimKeys {
    /// New Ed25519 and RSA-2048 pairs. RSA generation takes a noticeable moment (up to
    /// seconds in a debug build): call it from `spawn_blocking` in async code.
    pub fn generate(domain: &str) -> Result<Self, VaultError> {
        let gen_err = |what| {
            move |e: mail_auth::Error| VaultError::KeyGeneration {
                what,
                reason: e.to_string(),
            }
        };
        let ed25519 =
            Zeroizing::new(Ed25519Key::generate_pkcs8().map_err(gen_err("DKIM Ed25519"))?);
        let (rsa_pkcs1, _) = DkimKeyPair::generate_rsa(RSA_BITS)
            .map_err(gen_err("DKIM RSA"))?
            .into_inner();
        let rsa_pkcs1 = Zeroizing::new(rsa_pkcs1);
        Self::from_private(domain, ed25519, rsa_pkcs1_to_pkcs8(&rsa_pkcs1))
    }

    pub fn seal(&self, root: &RootKey) -> Result<SealedDkimKeys, VaultError> {
        Ok(SealedDkimKeys {
            domain: self.domain.clone(),
            ed25519: seal_with(
                root.bytes(),
                &dkim_aad(&self.domain, DkimAlgorithm::Ed25519),
                &self.ed25519_pkcs8,
            )?,
            rsa: seal_with(
                root.bytes(),
                &dkim_aad(&self.domain, DkimAlgorithm::Rsa),
                &self.rsa_pkcs8,
            )?,
        })
    }

    pub fn open(root: &RootKey, sealed: &SealedDkimKeys) -> Result<Self, VaultError> {
        let domain = sealed.domain.as_str();
        let ed25519 = open_with(
            root.bytes(),
            &dkim_aad(domain, DkimAlgorithm::Ed25519),
            &sealed.ed25519,
        )?;
        let rsa = open_with(
            root.bytes(),
            &dkim_aad(domain, DkimAlgorithm::Rsa),
            &sealed.rsa,
        )?;
        Self::from_private(domain, ed25519, rsa)
    }

    /// Parses both private keys (so a bad key fails here, not at the first send) and derives
    /// the public halves from them rather than trusting stored copies.
    fn from_private(
        domain: &str,
        ed25519_pkcs8: Zeroizing<Vec<u8>>,
        rsa_pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, VaultError> {
        let ed25519_public = ed25519_signer(&ed25519_pkcs8)?.public_key();
        let rsa_public = rsa_pkcs1_public_to_spki(&rsa_signer(&rsa_pkcs8)?.public_key());
        Ok(Self {
            domain: domain.to_owned(),
            ed25519_pkcs8,
            rsa_pkcs8,
            ed25519_public,
            rsa_public,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The TXT record value to publish at `<selector>._domainkey.<domain>`.
    pub fn public_key_record(&self, algorithm: DkimAlgorithm) -> String {
        match algorithm {
            DkimAlgorithm::Ed25519 => format!(
                "v=DKIM1; k=ed25519; p={}",
                BASE64.encode(&self.ed25519_public)
            ),
            DkimAlgorithm::Rsa => format!("v=DKIM1; k=rsa; p={}", BASE64.encode(&self.rsa_public)),
        }
    }

    /// A mail-auth signing key for `DkimSigner::from_key(..)`. The object holds the parsed
    /// key inside the crypto library; the DER bytes never leave this module.
    pub fn signing_key(&self, algorithm: DkimAlgorithm) -> Result<DkimKey, VaultError> {
        Ok(match algorithm {
            DkimAlgorithm::Ed25519 => DkimKey::Ed25519(ed25519_signer(&self.ed25519_pkcs8)?),
            DkimAlgorithm::Rsa => DkimKey::Rsa(rsa_signer(&self.rsa_pkcs8)?),
        })
    }
}

impl fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKeys")
            .field("domain", &self.domain)
            .field("private_keys", &"[redacted]")
            .finish()
    }
}

fn ed25519_signer(pkcs8: &[u8]) -> Result<Ed25519Key, VaultError> {
    Ed25519Key::from_pkcs8_der(pkcs8).map_err(|e| VaultError::KeyDecode {
        what: "DKIM Ed25519",
        reason: e.to_string(),
    })
}

fn rsa_signer(pkcs8: &[u8]) -> Result<RsaKey<Sha256>, VaultError> {
    RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8))).map_err(
        |e| VaultError::KeyDecode {
            what: "DKIM RSA",
            reason: e.to_string(),
        },
    )
}

fn dkim_aad(domain: &str, algorithm: DkimAlgorithm) -> Aad<'_> {
    Aad {
        agent_id: domain,
        record_id: algorithm.record_id(),
        purpose: Purpose::DkimKey,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use mail_auth::common::crypto::{Algorithm, SigningKey as _};
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;

    use super::*;

    /// RSA generation is the slow part; one pair serves every test.
    fn dkim() -> &'static DkimKeys {
        static KEYS: OnceLock<DkimKeys> = OnceLock::new();
        KEYS.get_or_init(|| DkimKeys::generate("agents.example.com").unwrap())
    }

    #[test]
    fn identity_key_seals_signs_and_binds_owner() {
        let root = RootKey::generate();
        let key = IdentityKey::generate();
        let sig = key.sign(b"hello");
        assert!(verify_ed25519(&key.public_key(), b"hello", &sig));
        assert!(!verify_ed25519(&key.public_key(), b"hellO", &sig));

        let sealed = key.seal(&root, "ag_1").unwrap();
        let back = IdentityKey::open(&root, "ag_1", &sealed).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.sign(b"hello"), sig); // Ed25519 is deterministic
        assert!(IdentityKey::open(&root, "ag_2", &sealed).is_err());
        assert!(IdentityKey::open(&RootKey::generate(), "ag_1", &sealed).is_err());
        assert_ne!(IdentityKey::generate().public_key(), key.public_key());
    }

    #[test]
    fn dkim_records_verify_signatures_from_the_signing_keys() {
        let keys = dkim();
        let data = b"from:bill@example.com\r\nsubject:hi\r\n".as_slice();
        for (alg, mail_alg, k) in [
            (
                DkimAlgorithm::Ed25519,
                Algorithm::Ed25519Sha256,
                "k=ed25519",
            ),
            (DkimAlgorithm::Rsa, Algorithm::RsaSha256, "k=rsa"),
        ] {
            let record = keys.public_key_record(alg);
            assert!(record.starts_with(&format!("v=DKIM1; {k}; p=")), "{record}");
            let domain_key = DomainKey::parse(record.as_bytes()).unwrap();
            let signer = keys.signing_key(alg).unwrap();
            assert_eq!(signer.algorithm(), mail_alg);
            let sig = signer.sign(data).unwrap();
            domain_key.p.verify_bytes(data, &sig, mail_alg).unwrap();
            assert!(domain_key.p.verify_bytes(b"other", &sig, mail_alg).is_err());
        }
        // The RSA record carries a 2048-bit SubjectPublicKeyInfo (~294 bytes of DER).
        assert_eq!(keys.rsa_public.len(), 294);
        assert_eq!(keys.ed25519_public.len(), 32);
    }

    #[test]
    fn dkim_keys_seal_and_open_bound_to_domain() {
        let root = RootKey::generate();
        let keys = dkim();
        let sealed = keys.seal(&root).unwrap();
        let back = DkimKeys::open(&root, &sealed).unwrap();
        assert_eq!(back.domain(), "agents.example.com");
        for alg in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
            assert_eq!(back.public_key_record(alg), keys.public_key_record(alg));
        }
        let mut moved = sealed.clone();
        moved.domain = "evil.example".into();
        assert!(DkimKeys::open(&root, &moved).is_err());
        let mut swapped = sealed.clone();
        std::mem::swap(&mut swapped.ed25519, &mut swapped.rsa);
        assert!(DkimKeys::open(&root, &swapped).is_err());
        assert!(DkimKeys::open(&RootKey::generate(), &sealed).is_err());
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(
            serde_json::from_str::<SealedDkimKeys>(&json).unwrap(),
            sealed
        );
    }

    #[test]
    fn debug_hides_private_keys() {
        let keys = dkim();
        let dbg = format!("{keys:?}");
        assert!(dbg.contains("[redacted]") && dbg.contains("agents.example.com"));
        for der in [&keys.ed25519_pkcs8, &keys.rsa_pkcs8] {
            assert!(!dbg.contains(&BASE64.encode(der)));
            assert!(!dbg.contains(&HEXLOWER.encode(&der[der.len() - 16..])));
        }
        let id = IdentityKey::generate();
        let dbg = format!("{id:?}");
        let seed = id.signing.to_bytes();
        assert!(dbg.contains("[redacted]"));
        assert!(!dbg.contains(&HEXLOWER.encode(&seed)) && !dbg.contains(&format!("{seed:?}")));
        assert!(!dbg.contains(&BASE64.encode(&seed)));
    }
}
