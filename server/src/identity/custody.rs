//! The key operations identity needs from whoever holds agents' private keys (the vault).
//!
//! Identity sits below the vault in the dependency order (the vault takes identity's
//! [`super::Actor`]), so it names what it needs as a trait and the vault registers itself at
//! start-up, as with [`super::LifecycleHook`]. Private keys never cross this boundary.

/// A published Ed25519 identity key of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityKey {
    /// The DID URL fragment (`key-1`, `key-2`, ...).
    pub kid: String,
    pub public: [u8; 32],
    pub created_at: i64,
    /// When a rotated-out key stops being published; `None` for the current key.
    pub retire_at: Option<i64>,
}

pub trait KeyCustody: Send + Sync {
    /// Keys still published, oldest first; the last one is the one that signs.
    fn public_keys(&self, agent_id: &str) -> Result<Vec<IdentityKey>, String>;
    /// Signs with the current key; returns its kid and the signature.
    fn sign(&self, agent_id: &str, data: &[u8]) -> Result<(String, [u8; 64]), String>;
    /// Makes a new current key; older keys stay published for `overlap_secs` more.
    fn rotate(&self, agent_id: &str, overlap_secs: i64) -> Result<IdentityKey, String>;
}
