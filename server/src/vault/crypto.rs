//! AES-256-GCM envelope primitives: 32-byte keys, sealed boxes, and the AAD that binds a
//! ciphertext to its owner, its record and its purpose.

use super::VaultError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroizing;

/// A 32-byte AES-256 key (root key, agent key or data key). Zeroized on drop, never printed.
#[derive(Clone)]
pub struct Key32(Zeroizing<[u8; 32]>);

impl Key32 {
    pub fn random() -> Self {
        Key32(Zeroizing::new(crate::util::random_bytes()))
    }
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(Key32(Zeroizing::new(arr)))
    }
    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

/// What a ciphertext is for; part of its AAD, so a box cannot be replayed as another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    AgentKeyWrap = 1,
    DataKeyWrap = 2,
    CredentialPayload = 3,
    IdentityKey = 4,
    DkimKey = 5,
    KeyCheck = 6,
    WebhookSecret = 7,
    /// A human's console TOTP seed (`vault::human_totp`).
    HumanTotp = 8,
    /// The private key of the ACME-issued TLS certificate (`vault::acme`).
    AcmeCertKey = 9,
    /// The ACME account credentials (`vault::acme`).
    AcmeAccount = 10,
}

/// A nonce and ciphertext (with tag).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(with = "serde_bytes")]
    pub nonce: [u8; 12],
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// Unambiguous AAD: version, purpose, then length-prefixed owner and record ids.
fn aad(owner: &str, record: &str, purpose: Purpose) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + owner.len() + record.len());
    out.push(1);
    out.push(purpose as u8);
    for part in [owner, record] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Encrypts with a fresh random 96-bit nonce.
pub fn seal(key: &Key32, owner: &str, record: &str, purpose: Purpose, plaintext: &[u8]) -> Sealed {
    let cipher = Aes256Gcm::new(key.bytes().into());
    let nonce: [u8; 12] = crate::util::random_bytes();
    let aad = aad(owner, record, purpose);
    // AES-GCM encryption fails only for plaintexts over 64 GiB, which nothing here makes.
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    Sealed { nonce, ciphertext }
}

/// Decrypts and authenticates; any mismatch of key, owner, record, purpose or bytes fails.
pub fn open(
    key: &Key32,
    owner: &str,
    record: &str,
    purpose: Purpose,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let cipher = Aes256Gcm::new(key.bytes().into());
    let aad = aad(owner, record, purpose);
    cipher
        .decrypt(
            &Nonce::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Decrypt)
}

/// Wraps a key under another key.
pub fn wrap(kek: &Key32, owner: &str, record: &str, purpose: Purpose, key: &Key32) -> Sealed {
    seal(kek, owner, record, purpose, key.bytes())
}

pub fn unwrap(
    kek: &Key32,
    owner: &str,
    record: &str,
    purpose: Purpose,
    sealed: &Sealed,
) -> Result<Key32, VaultError> {
    let raw = open(kek, owner, record, purpose, sealed)?;
    Key32::from_bytes(&raw).ok_or(VaultError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = Key32::random();
        let a = seal(&k, "ag_1", "cr_1", Purpose::CredentialPayload, b"hunter2");
        let b = seal(&k, "ag_1", "cr_1", Purpose::CredentialPayload, b"hunter2");
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
        let p = open(&k, "ag_1", "cr_1", Purpose::CredentialPayload, &a).unwrap();
        assert_eq!(p.as_slice(), b"hunter2");
    }

    #[test]
    fn aad_binds_owner_record_and_purpose() {
        let k = Key32::random();
        let s = seal(&k, "ag_1", "cr_1", Purpose::CredentialPayload, b"x");
        assert!(open(&k, "ag_2", "cr_1", Purpose::CredentialPayload, &s).is_err());
        assert!(open(&k, "ag_1", "cr_2", Purpose::CredentialPayload, &s).is_err());
        assert!(open(&k, "ag_1", "cr_1", Purpose::DataKeyWrap, &s).is_err());
        // ambiguity: ("ag_1c", "r_1") must not equal ("ag_1", "cr_1")
        assert!(open(&k, "ag_1c", "r_1", Purpose::CredentialPayload, &s).is_err());
        assert!(open(
            &Key32::random(),
            "ag_1",
            "cr_1",
            Purpose::CredentialPayload,
            &s
        )
        .is_err());
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(open(&k, "ag_1", "cr_1", Purpose::CredentialPayload, &t).is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let k = Key32::from_bytes(&[0xAB; 32]).unwrap();
        let d = format!("{k:?}");
        assert!(!d.contains("171") && !d.to_lowercase().contains("ab, "));
        assert!(d.contains("redacted"));
    }
}
