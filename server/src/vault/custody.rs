//! Key custody: agents' Ed25519 identity keys and per-domain DKIM keys, sealed under the root
//! key. Other modules get operations (sign, public keys, a ready DKIM signer), never bytes.

use super::crypto::{self, Purpose, Sealed};
use super::{VaultError, VaultService};
use crate::store::{keys, Store, Tree};
use crate::util::now_unix;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// One identity key of an agent. Several exist during a rotation overlap.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityKeyRecord {
    /// Key id, the DID URL fragment (`key-1`, `key-2`, ...).
    pub kid: String,
    #[serde(with = "serde_bytes")]
    pub public: [u8; 32],
    pub created_at: i64,
    /// After this time the key is no longer published; before it, it still verifies.
    pub retire_at: Option<i64>,
    sealed: Sealed,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IdentityKeys {
    keys: Vec<IdentityKeyRecord>,
}

/// A public identity key as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicIdentityKey {
    pub kid: String,
    pub public: [u8; 32],
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    Ed25519,
    Rsa,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DkimKeyRecord {
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// Public key bytes as stored (raw Ed25519, PKCS#1 RSA); [`Self::published_key`] is
    /// what goes in `p=`.
    #[serde(with = "serde_bytes")]
    pub public: Vec<u8>,
    pub created_at: i64,
    /// Retired selectors stay published (so mail in flight verifies) but sign nothing.
    pub retired_at: Option<i64>,
    sealed: Sealed,
}

impl DkimKeyRecord {
    /// The key bytes of `p=`: raw Ed25519 (RFC 8463), and RSA as SubjectPublicKeyInfo, the
    /// form every verifier reads (see `mailauth::spki`).
    pub fn published_key(&self) -> Vec<u8> {
        match self.algorithm {
            DkimAlgorithm::Ed25519 => self.public.clone(),
            DkimAlgorithm::Rsa => crate::mailauth::spki::rsa_spki(&self.public),
        }
    }

    /// The TXT record value for `<selector>._domainkey.<domain>`: the same value the DNS
    /// plan publishes.
    pub fn txt(&self) -> String {
        let k = match self.algorithm {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        };
        format!(
            "v=DKIM1; k={k}; p={}",
            data_encoding::BASE64.encode(&self.published_key())
        )
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DkimKeys {
    keys: Vec<DkimKeyRecord>,
}

fn identity_key(agent_id: &str) -> Vec<u8> {
    keys::join(&["agent", agent_id, "identity"])
}

/// The DKIM selectors of `domain` as stored, without the root key: the public halves are kept
/// in the clear beside the sealed private ones, so `legate dns plan` can print the records
/// from the data directory alone (no master key, no admin, nothing written).
pub fn published_dkim(store: &Store, domain: &str) -> Result<Vec<DkimKeyRecord>, VaultError> {
    Ok(dkim_set(store, domain)?.keys)
}

fn dkim_set(store: &Store, domain: &str) -> Result<DkimKeys, VaultError> {
    Ok(store
        .get_record(Tree::KeyCustody, &dkim_key(domain))?
        .unwrap_or_default())
}

fn dkim_key(domain: &str) -> Vec<u8> {
    keys::join(&["domain", domain, "dkim"])
}

impl VaultService {
    /// Makes a new identity key for an agent (first key at creation; next key at rotation).
    /// `overlap_secs`: how long older keys stay published; `None` keeps them indefinitely.
    pub fn new_identity_key(
        &self,
        agent_id: &str,
        overlap_secs: Option<i64>,
    ) -> Result<PublicIdentityKey, VaultError> {
        let root = self.root();
        let k = identity_key(agent_id);
        let mut set: IdentityKeys = self
            .store
            .get_record(Tree::KeyCustody, &k)?
            .unwrap_or_default();
        let now = now_unix();
        set.keys.retain(|r| r.retire_at.is_none_or(|t| t > now));
        if let Some(o) = overlap_secs {
            for r in set.keys.iter_mut().filter(|r| r.retire_at.is_none()) {
                r.retire_at = Some(now + o);
            }
        }
        let n = set
            .keys
            .iter()
            .filter_map(|r| r.kid.strip_prefix("key-")?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        let kid = format!("key-{n}");
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(crate::util::random_bytes());
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = sk.verifying_key().to_bytes();
        let sealed = crypto::seal(&root, agent_id, &kid, Purpose::IdentityKey, seed.as_ref());
        let rec = IdentityKeyRecord {
            kid: kid.clone(),
            public,
            created_at: now,
            retire_at: None,
            sealed,
        };
        set.keys.push(rec);
        self.store.put_record(Tree::KeyCustody, &k, &set)?;
        Ok(PublicIdentityKey {
            kid,
            public,
            created_at: now,
            retire_at: None,
        })
    }

    /// Published identity keys, newest last (retired ones dropped).
    pub fn identity_public_keys(
        &self,
        agent_id: &str,
    ) -> Result<Vec<PublicIdentityKey>, VaultError> {
        let set: IdentityKeys = self
            .store
            .get_record(Tree::KeyCustody, &identity_key(agent_id))?
            .unwrap_or_default();
        let now = now_unix();
        Ok(set
            .keys
            .into_iter()
            .filter(|r| r.retire_at.is_none_or(|t| t > now))
            .map(|r| PublicIdentityKey {
                kid: r.kid,
                public: r.public,
                created_at: r.created_at,
                retire_at: r.retire_at,
            })
            .collect())
    }

    /// Signs with the agent's current (newest) identity key; returns (kid, signature).
    pub fn identity_sign(
        &self,
        agent_id: &str,
        data: &[u8],
    ) -> Result<(String, [u8; 64]), VaultError> {
        let root = self.root();
        let set: IdentityKeys = self
            .store
            .get_record(Tree::KeyCustody, &identity_key(agent_id))?
            .ok_or(VaultError::Shredded)?;
        let rec = set.keys.last().ok_or(VaultError::Shredded)?;
        let seed = crypto::open(&root, agent_id, &rec.kid, Purpose::IdentityKey, &rec.sealed)?;
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.as_slice()
                .try_into()
                .map_err(|_| VaultError::Decrypt)?,
        );
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok((rec.kid.clone(), sk.sign(data).to_bytes()))
    }

    /// Removes every identity key of an agent (revocation).
    pub(super) fn destroy_identity_keys(&self, agent_id: &str) -> Result<(), VaultError> {
        self.store
            .remove(Tree::KeyCustody, &identity_key(agent_id))?;
        Ok(())
    }

    /// Makes sure `domain` has an active Ed25519 and RSA-2048 key; returns every record.
    pub fn ensure_dkim(
        &self,
        domain: &str,
        selector_prefix: &str,
    ) -> Result<Vec<DkimKeyRecord>, VaultError> {
        let root = self.root();
        self.ensure_dkim_locked(&root, domain, selector_prefix)
    }

    /// [`Self::ensure_dkim`] under a root-key guard the caller holds (never take it twice:
    /// a waiting rotation would deadlock a second read lock).
    fn ensure_dkim_locked(
        &self,
        root: &crypto::Key32,
        domain: &str,
        selector_prefix: &str,
    ) -> Result<Vec<DkimKeyRecord>, VaultError> {
        let mut set = self.dkim_set(domain)?;
        let mut changed = false;
        for alg in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
            if !set
                .keys
                .iter()
                .any(|k| k.algorithm == alg && k.retired_at.is_none())
            {
                let n = set.keys.len() + 1;
                let suffix = if alg == DkimAlgorithm::Ed25519 {
                    "ed"
                } else {
                    "rsa"
                };
                let selector = format!("{selector_prefix}{n}{suffix}");
                set.keys
                    .push(Self::generate_dkim(root, domain, &selector, alg)?);
                changed = true;
            }
        }
        if changed {
            self.store
                .put_record(Tree::KeyCustody, &dkim_key(domain), &set)?;
        }
        Ok(set.keys)
    }

    /// Adds new selectors for both algorithms and retires the current ones (still published).
    pub fn rotate_dkim(
        &self,
        domain: &str,
        selector_prefix: &str,
    ) -> Result<Vec<DkimKeyRecord>, VaultError> {
        // Held across the read-modify-write: a rotation between the two would have this
        // write put back keys sealed under the retired root key.
        let root = self.root();
        let mut set = self.dkim_set(domain)?;
        let now = now_unix();
        for k in set.keys.iter_mut().filter(|k| k.retired_at.is_none()) {
            k.retired_at = Some(now);
        }
        self.store
            .put_record(Tree::KeyCustody, &dkim_key(domain), &set)?;
        self.ensure_dkim_locked(&root, domain, selector_prefix)
    }

    fn dkim_set(&self, domain: &str) -> Result<DkimKeys, VaultError> {
        dkim_set(&self.store, domain)
    }

    /// Unpublishes a retired selector. An active one is refused: the domain would sign with
    /// a key no receiver can find.
    pub fn remove_dkim(
        &self,
        domain: &str,
        selector: &str,
    ) -> Result<Vec<DkimKeyRecord>, VaultError> {
        // See `rotate_dkim`: the guard spans the read-modify-write.
        let _root = self.root();
        let mut set = self.dkim_set(domain)?;
        match set.keys.iter().find(|k| k.selector == selector) {
            None => return Err(VaultError::NotFound),
            Some(k) if k.retired_at.is_none() => {
                return Err(VaultError::Invalid(format!(
                    "selector {selector} is active; run `legate dkim rotate` first"
                )))
            }
            Some(_) => {}
        }
        set.keys.retain(|k| k.selector != selector);
        self.store
            .put_record(Tree::KeyCustody, &dkim_key(domain), &set)?;
        Ok(set.keys)
    }

    pub fn dkim_records(&self, domain: &str) -> Result<Vec<DkimKeyRecord>, VaultError> {
        Ok(self.dkim_set(domain)?.keys)
    }

    fn generate_dkim(
        root: &crypto::Key32,
        domain: &str,
        selector: &str,
        alg: DkimAlgorithm,
    ) -> Result<DkimKeyRecord, VaultError> {
        let pair = match alg {
            DkimAlgorithm::Ed25519 => mail_auth::dkim::generate::DkimKeyPair::generate_ed25519(),
            DkimAlgorithm::Rsa => mail_auth::dkim::generate::DkimKeyPair::generate_rsa(2048),
        }
        .map_err(|e| VaultError::Crypto(e.to_string()))?;
        let (private, public) = pair.into_inner();
        let private = Zeroizing::new(private);
        Ok(DkimKeyRecord {
            selector: selector.into(),
            algorithm: alg,
            public,
            created_at: now_unix(),
            retired_at: None,
            sealed: crypto::seal(root, domain, selector, Purpose::DkimKey, &private),
        })
    }

    /// Signers for every active DKIM key of `domain`, ready for `mailauth::dkim_sign`.
    pub fn dkim_signers(
        &self,
        domain: &str,
    ) -> Result<Vec<crate::mailauth::DkimSigning>, VaultError> {
        let root = self.root();
        use crate::mailauth::{DkimSigning, Ed25519Key, RsaSha256Key};
        let mut out = Vec::new();
        for k in self
            .dkim_records(domain)?
            .into_iter()
            .filter(|k| k.retired_at.is_none())
        {
            let der = crypto::open(&root, domain, &k.selector, Purpose::DkimKey, &k.sealed)?;
            let err = |e: mail_auth::Error| VaultError::Crypto(e.to_string());
            let signer = match k.algorithm {
                DkimAlgorithm::Ed25519 => DkimSigning::new(
                    domain,
                    &k.selector,
                    Ed25519Key::from_pkcs8_der(&der).map_err(err)?,
                ),
                DkimAlgorithm::Rsa => DkimSigning::new(
                    domain,
                    &k.selector,
                    RsaSha256Key::from_pkcs1_der(&der)
                        .map_err(|e| VaultError::Crypto(e.to_string()))?,
                ),
            };
            out.push(signer);
        }
        Ok(out)
    }
}

/// Re-seals every private key in one custody record under a new root key (master rotation).
/// Returns the new record bytes, or `None` for keys that hold no sealed material.
pub(super) fn reseal_record(
    key: &[u8],
    bytes: &[u8],
    old: &crypto::Key32,
    new: &crypto::Key32,
) -> Result<Option<Vec<u8>>, VaultError> {
    let text = String::from_utf8_lossy(key).to_string();
    let parts: Vec<&str> = text.split('\0').collect();
    match parts.as_slice() {
        ["agent", owner, "identity"] => {
            let mut set: IdentityKeys = crate::store::decode(bytes)?;
            for r in &mut set.keys {
                let p = crypto::open(old, owner, &r.kid, Purpose::IdentityKey, &r.sealed)?;
                r.sealed = crypto::seal(new, owner, &r.kid, Purpose::IdentityKey, &p);
            }
            Ok(Some(crate::store::encode(&set)?))
        }
        ["domain", owner, "dkim"] => {
            let mut set: DkimKeys = crate::store::decode(bytes)?;
            for r in &mut set.keys {
                let p = crypto::open(old, owner, &r.selector, Purpose::DkimKey, &r.sealed)?;
                r.sealed = crypto::seal(new, owner, &r.selector, Purpose::DkimKey, &p);
            }
            Ok(Some(crate::store::encode(&set)?))
        }
        ["webhook", owner, "secrets"] => Ok(Some(super::webhook::reseal(owner, bytes, old, new)?)),
        ["human", owner, "totp"] => Ok(Some(super::human_totp::reseal(owner, bytes, old, new)?)),
        ["acme", record, "key"] => super::acme::reseal(record, bytes, old, new),
        _ => Ok(None),
    }
}
