//! The credential vault and key custody (DESIGN §3).
//!
//! Envelope encryption: a root key wraps one key per agent, which wraps one data key per
//! credential, which seals the payload; all AES-256-GCM with fresh nonces and AAD binding each
//! box to (owner, record, purpose). Raw key material never leaves this module: other modules
//! get operations (sign, public keys, DKIM signers, TOTP codes).

mod acme;
mod anchor;
pub mod credential;
pub mod crypto;
mod custody;
mod error;
mod human_totp;
pub mod oauth;
pub mod otpauth;
mod rootkey;
mod rotate;
mod service;
pub mod totp;
mod verp;
mod webhook;

pub use credential::{CredentialInput, CredentialKind, CredentialMeta, CredentialView};
pub use custody::{published_dkim, DkimAlgorithm, DkimKeyRecord, PublicIdentityKey};
pub use error::VaultError;
pub use rootkey::{create_file as create_key_file, load_file as load_key_file, RootKeySource};
pub use rotate::{rotate_master, rotate_master_files};
pub use totp::TotpCode;

use crate::audit::Audit;
use crate::identity::{Agent, IdentityKey, KeyCustody, LifecycleHook};
use crate::metrics::Metrics;
use crate::store::Store;
use crypto::Key32;
use std::path::Path;
use std::sync::Arc;

pub struct VaultService {
    store: Store,
    audit: Arc<Audit>,
    metrics: Arc<Metrics>,
    /// Behind a lock so a running server can rotate it: operations that seal or open under
    /// it hold [`VaultService::root`] for their whole read-seal-write (see `rotate`).
    root: std::sync::RwLock<Key32>,
    /// Unwrapped agent keys (zeroized when dropped). Emptied for an agent when it is
    /// shredded; saves a record read and an unwrap on every credential operation.
    keks: std::sync::RwLock<std::collections::HashMap<String, Key32>>,
    /// Decoded credential records (metadata and ciphertext only; no secret in the clear),
    /// dropped on every write to the record.
    records: service::RecordCache,
}

impl VaultService {
    /// Resolves the root key (config file, `LEGATE_MASTER_KEY`, or a dev key in the data
    /// directory) and proves it opens this vault.
    pub fn open(
        store: Store,
        audit: Arc<Audit>,
        metrics: Arc<Metrics>,
        key_file: &str,
        data_dir: &Path,
    ) -> Result<(Self, RootKeySource), VaultError> {
        let env = std::env::var("LEGATE_MASTER_KEY").ok();
        let (root, source) = rootkey::resolve(key_file, env.as_deref(), data_dir)?;
        rootkey::verify(&store, &root)?;
        Ok((
            Self {
                store,
                audit,
                metrics,
                root: std::sync::RwLock::new(root),
                keks: Default::default(),
                records: Default::default(),
            },
            source,
        ))
    }

    /// With an explicit root key (rotation, tests).
    pub fn with_root(
        store: Store,
        audit: Arc<Audit>,
        metrics: Arc<Metrics>,
        root: Key32,
    ) -> Result<Self, VaultError> {
        rootkey::verify(&store, &root)?;
        Ok(Self {
            store,
            audit,
            metrics,
            root: std::sync::RwLock::new(root),
            keks: Default::default(),
            records: Default::default(),
        })
    }
}

impl VaultService {
    /// The root key, read-locked: hold the guard across everything that must see one key
    /// (open a record, seal and write a new one), so a rotation never falls in between.
    fn root(&self) -> std::sync::RwLockReadGuard<'_, Key32> {
        self.root.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Gives every new agent its vault key and identity key; shreds both on revocation.
pub struct VaultHook(pub Arc<VaultService>);

impl LifecycleHook for VaultHook {
    fn agent_created(&self, agent: &Agent) -> Result<(), String> {
        self.0
            .create_agent_key(&agent.id)
            .map_err(|e| e.to_string())?;
        self.0
            .new_identity_key(&agent.id, None)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn agent_revoked(&self, agent: &Agent) -> Result<(), String> {
        self.0
            .shred(&agent.id)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Identity's view of the identity keys held here: operations, never key bytes.
impl KeyCustody for VaultService {
    fn public_keys(&self, agent_id: &str) -> Result<Vec<IdentityKey>, String> {
        Ok(self
            .identity_public_keys(agent_id)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|k| IdentityKey {
                kid: k.kid,
                public: k.public,
                created_at: k.created_at,
                retire_at: k.retire_at,
            })
            .collect())
    }

    fn sign(&self, agent_id: &str, data: &[u8]) -> Result<(String, [u8; 64]), String> {
        self.identity_sign(agent_id, data)
            .map_err(|e| e.to_string())
    }

    fn rotate(&self, agent_id: &str, overlap_secs: i64) -> Result<IdentityKey, String> {
        let k = self
            .new_identity_key(agent_id, Some(overlap_secs))
            .map_err(|e| e.to_string())?;
        Ok(IdentityKey {
            kid: k.kid,
            public: k.public,
            created_at: k.created_at,
            retire_at: k.retire_at,
        })
    }
}

#[cfg(test)]
mod tests;
