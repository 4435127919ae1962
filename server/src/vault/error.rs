//! Vault errors. No variant carries secret material; messages are safe to show.

use crate::audit::AuditError;
use crate::identity::Denied;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("credential not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("the root key does not open this vault (wrong master key?)")]
    WrongRootKey,
    #[error("root key: {0}")]
    RootKey(String),
    #[error("decryption failed")]
    Decrypt,
    #[error("this agent's vault has been destroyed (agent revoked)")]
    Shredded,
    #[error("key operation failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl<E: Into<VaultError>> From<crate::store::TxError<E>> for VaultError {
    fn from(e: crate::store::TxError<E>) -> Self {
        match e {
            crate::store::TxError::Abort(e) => e.into(),
            crate::store::TxError::Store(s) => VaultError::Store(s),
        }
    }
}
