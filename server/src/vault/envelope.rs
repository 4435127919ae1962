//! Envelope encryption: root key -> agent key (KEK) -> data key (DEK) -> payload.
//!
//! Every layer is AES-256-GCM with a fresh random 96-bit nonce. The associated data binds each
//! ciphertext to who owns it (agent id), which record it is (credential id, or a fixed name for
//! keys) and what it is (the [`Purpose`]). A ciphertext copied to another agent's record, to
//! another credential, or into a field of another kind therefore fails to open instead of
//! decrypting to something plausible.
//!
//! Random nonces are safe here because no key encrypts many messages: a DEK seals one
//! credential version, a KEK wraps one agent's DEKs, and the root key wraps a few keys per
//! agent — far below the 2^32 messages per key at which random 96-bit nonces start to risk
//! a collision.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::VaultError;
use super::keys::{AgentKey, DataKey, RootKey};
use crate::util::random_bytes;

/// Version of the AAD encoding; bump it if the layout below ever changes, so old and new
/// encodings can never be confused.
const AAD_VERSION: u8 = 1;

/// Fixed record ids for the keys that are not credentials.
const AGENT_KEY_RECORD: &str = "agent-key";

/// What a ciphertext holds. Part of the AAD, so a sealed TOTP seed can never be opened as a
/// credential payload (or a wrapped key as data) even under the same key and ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// An agent key (KEK) wrapped by the root key.
    AgentKeyWrap,
    /// A credential's data key (DEK) wrapped by its agent key.
    DataKeyWrap,
    /// A credential's secret fields, sealed by its DEK.
    CredentialPayload,
    /// A credential's TOTP parameters (the seed), sealed by its DEK.
    TotpSeed,
    /// An agent's Ed25519 identity key, sealed by the root key.
    IdentityKey,
    /// A domain's DKIM private key, sealed by the root key.
    DkimKey,
    /// The known-plaintext record that detects a wrong root key at start-up.
    KeyCheck,
}

impl Purpose {
    /// The byte that stands for this purpose in the AAD. Stable forever: stored ciphertexts
    /// depend on it.
    fn code(self) -> u8 {
        match self {
            Purpose::AgentKeyWrap => 1,
            Purpose::DataKeyWrap => 2,
            Purpose::CredentialPayload => 3,
            Purpose::TotpSeed => 4,
            Purpose::IdentityKey => 5,
            Purpose::DkimKey => 6,
            Purpose::KeyCheck => 7,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::AgentKeyWrap => "agent key",
            Purpose::DataKeyWrap => "data key",
            Purpose::CredentialPayload => "credential payload",
            Purpose::TotpSeed => "totp seed",
            Purpose::IdentityKey => "identity key",
            Purpose::DkimKey => "dkim key",
            Purpose::KeyCheck => "root key check",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The associated data of one ciphertext.
///
/// `agent_id` is the owner: an agent id, or the mail domain for DKIM keys, or empty for the
/// root key check. `record_id` is the credential id, or a fixed name for keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    pub agent_id: &'a str,
    pub record_id: &'a str,
    pub purpose: Purpose,
}

impl Aad<'_> {
    /// `version || purpose || len(agent_id) as u32 BE || agent_id || len(record_id) as u32 BE
    /// || record_id`. Length prefixes make the encoding injective: ("ab", "c") and ("a", "bc")
    /// produce different bytes, which plain concatenation would not.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 8 + self.agent_id.len() + self.record_id.len());
        out.push(AAD_VERSION);
        out.push(self.purpose.code());
        for field in [self.agent_id, self.record_id] {
            // Ids are short; a field over 4 GiB cannot exist in memory next to its ciphertext.
            let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }
}

/// One AES-256-GCM ciphertext with its nonce. The tag is the last 16 bytes of `ciphertext`.
/// This is what the store keeps; it reveals nothing but the plaintext's length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Encrypts `plaintext` under `key` with a fresh nonce. The key is borrowed as an array so
/// that no copy of it outlives this call except inside the cipher, which is dropped here.
pub(super) fn seal_with(
    key: &[u8; 32],
    aad: &Aad<'_>,
    plaintext: &[u8],
) -> Result<Sealed, VaultError> {
    let cipher = Aes256Gcm::new(key.into());
    let nonce: [u8; 12] = random_bytes();
    let aad_bytes = aad.encode();
    let ciphertext = cipher
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad: &aad_bytes,
            },
        )
        .map_err(|_| VaultError::Encrypt {
            purpose: aad.purpose,
        })?;
    Ok(Sealed { nonce, ciphertext })
}

/// Decrypts and authenticates; the plaintext comes back in a buffer that is wiped on drop.
pub(super) fn open_with(
    key: &[u8; 32],
    aad: &Aad<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let cipher = Aes256Gcm::new(key.into());
    let aad_bytes = aad.encode();
    cipher
        .decrypt(
            (&sealed.nonce).into(),
            Payload {
                msg: &sealed.ciphertext,
                aad: &aad_bytes,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Decrypt {
            purpose: aad.purpose,
        })
}

/// Opens a sealed 32-byte key.
fn open_key(
    key: &[u8; 32],
    aad: &Aad<'_>,
    sealed: &Sealed,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    let plain = open_with(key, aad, sealed)?;
    let mut out = Zeroizing::new([0u8; 32]);
    if plain.len() != out.len() {
        return Err(VaultError::Corrupt {
            what: aad.purpose.name(),
        });
    }
    out.copy_from_slice(&plain);
    Ok(out)
}

/// Wraps an agent's key under the root key, bound to that agent.
pub fn wrap_agent_key(
    root: &RootKey,
    agent_id: &str,
    key: &AgentKey,
) -> Result<Sealed, VaultError> {
    seal_with(root.bytes(), &agent_key_aad(agent_id), key.bytes())
}

/// Unwraps an agent key. Fails if the blob belongs to another agent or the root key differs.
pub fn unwrap_agent_key(
    root: &RootKey,
    agent_id: &str,
    sealed: &Sealed,
) -> Result<AgentKey, VaultError> {
    open_key(root.bytes(), &agent_key_aad(agent_id), sealed).map(AgentKey::from_bytes)
}

fn agent_key_aad(agent_id: &str) -> Aad<'_> {
    Aad {
        agent_id,
        record_id: AGENT_KEY_RECORD,
        purpose: Purpose::AgentKeyWrap,
    }
}

/// Wraps a credential's data key under its agent's key, bound to (agent, credential).
pub fn wrap_data_key(
    kek: &AgentKey,
    agent_id: &str,
    cred_id: &str,
    key: &DataKey,
) -> Result<Sealed, VaultError> {
    seal_with(kek.bytes(), &data_key_aad(agent_id, cred_id), key.bytes())
}

/// Unwraps a credential's data key.
pub fn unwrap_data_key(
    kek: &AgentKey,
    agent_id: &str,
    cred_id: &str,
    sealed: &Sealed,
) -> Result<DataKey, VaultError> {
    open_key(kek.bytes(), &data_key_aad(agent_id, cred_id), sealed).map(DataKey::from_bytes)
}

fn data_key_aad<'a>(agent_id: &'a str, cred_id: &'a str) -> Aad<'a> {
    Aad {
        agent_id,
        record_id: cred_id,
        purpose: Purpose::DataKeyWrap,
    }
}

/// Seals a credential's payload (or TOTP seed, per `purpose`) under its data key.
pub fn seal_payload(
    dek: &DataKey,
    agent_id: &str,
    cred_id: &str,
    purpose: Purpose,
    plaintext: &[u8],
) -> Result<Sealed, VaultError> {
    let aad = Aad {
        agent_id,
        record_id: cred_id,
        purpose,
    };
    seal_with(dek.bytes(), &aad, plaintext)
}

/// Opens what [`seal_payload`] sealed; every id and the purpose must match.
pub fn open_payload(
    dek: &DataKey,
    agent_id: &str,
    cred_id: &str,
    purpose: Purpose,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let aad = Aad {
        agent_id,
        record_id: cred_id,
        purpose,
    };
    open_with(dek.bytes(), &aad, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Purpose = Purpose::CredentialPayload;

    #[test]
    fn aad_encoding_is_unambiguous() {
        let a = Aad {
            agent_id: "ab",
            record_id: "c",
            purpose: P,
        }
        .encode();
        let b = Aad {
            agent_id: "a",
            record_id: "bc",
            purpose: P,
        }
        .encode();
        assert_ne!(a, b);
        assert_eq!(a, [1, 3, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c']);
        let c = Aad {
            agent_id: "ab",
            record_id: "c",
            purpose: Purpose::TotpSeed,
        }
        .encode();
        assert_ne!(a, c);
    }

    #[test]
    fn payload_round_trips() {
        let dek = DataKey::generate();
        let sealed = seal_payload(&dek, "ag_1", "cr_1", P, b"hunter2").unwrap();
        assert_eq!(sealed.ciphertext.len(), 7 + 16);
        let plain = open_payload(&dek, "ag_1", "cr_1", P, &sealed).unwrap();
        assert_eq!(plain.as_slice(), b"hunter2");
    }

    #[test]
    fn moved_ciphertext_fails_to_open() {
        let dek = DataKey::generate();
        let sealed = seal_payload(&dek, "ag_1", "cr_1", P, b"hunter2").unwrap();
        assert!(open_payload(&dek, "ag_2", "cr_1", P, &sealed).is_err());
        assert!(open_payload(&dek, "ag_1", "cr_2", P, &sealed).is_err());
        let err = open_payload(&dek, "ag_1", "cr_1", Purpose::TotpSeed, &sealed).unwrap_err();
        assert!(matches!(
            err,
            VaultError::Decrypt {
                purpose: Purpose::TotpSeed
            }
        ));
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let dek = DataKey::generate();
        let sealed = seal_payload(&dek, "ag_1", "cr_1", P, b"hunter2").unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(
                open_payload(&dek, "ag_1", "cr_1", P, &bad).is_err(),
                "byte {i}"
            );
        }
        let mut bad_nonce = sealed.clone();
        bad_nonce.nonce[0] ^= 0x80;
        assert!(open_payload(&dek, "ag_1", "cr_1", P, &bad_nonce).is_err());
        let mut truncated = sealed.clone();
        truncated.ciphertext.truncate(10);
        assert!(open_payload(&dek, "ag_1", "cr_1", P, &truncated).is_err());
        let other = DataKey::generate();
        assert!(open_payload(&other, "ag_1", "cr_1", P, &sealed).is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let dek = DataKey::generate();
        let a = seal_payload(&dek, "ag_1", "cr_1", P, b"same").unwrap();
        let b = seal_payload(&dek, "ag_1", "cr_1", P, b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn key_hierarchy_round_trips_and_binds_owner() {
        let root = RootKey::generate();
        let kek = AgentKey::generate();
        let wrapped = wrap_agent_key(&root, "ag_1", &kek).unwrap();
        let back = unwrap_agent_key(&root, "ag_1", &wrapped).unwrap();
        assert_eq!(back.bytes(), kek.bytes());
        assert!(unwrap_agent_key(&root, "ag_2", &wrapped).is_err());
        assert!(unwrap_agent_key(&RootKey::generate(), "ag_1", &wrapped).is_err());

        let dek = DataKey::generate();
        let wrapped_dek = wrap_data_key(&kek, "ag_1", "cr_1", &dek).unwrap();
        let back = unwrap_data_key(&kek, "ag_1", "cr_1", &wrapped_dek).unwrap();
        assert_eq!(back.bytes(), dek.bytes());
        assert!(unwrap_data_key(&kek, "ag_1", "cr_2", &wrapped_dek).is_err());
        assert!(unwrap_data_key(&kek, "ag_2", "cr_1", &wrapped_dek).is_err());
        // A wrapped agent key is not a wrapped data key, even under the same key bytes.
        assert!(open_payload(&back, "ag_1", "cr_1", Purpose::DataKeyWrap, &wrapped_dek).is_err());
    }

    #[test]
    fn sealed_debug_hides_bytes_and_serde_round_trips() {
        let dek = DataKey::generate();
        let sealed = seal_payload(&dek, "a", "b", P, b"x").unwrap();
        let dbg = format!("{sealed:?}");
        assert!(dbg.contains("ciphertext_len: 17"));
        let json = serde_json::to_string(&sealed).unwrap();
        let back: Sealed = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sealed);
    }
}
