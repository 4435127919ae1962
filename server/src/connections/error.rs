//! Connection errors. No variant carries a token or a secret; provider messages are cut and
//! stripped of control characters before they are kept.

use crate::audit::AuditError;
use crate::identity::{Denied, IdentityError};
use crate::store::StoreError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionsError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Malformed input: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but refused: 422.
    #[error("{0}")]
    Invalid(String),
    /// The `state` of a callback is unknown, used already, or expired.
    #[error("{0}")]
    InvalidState(&'static str),
    /// The callback's `iss` does not name the connection's provider (RFC 9207).
    #[error("{0}")]
    IssuerMismatch(&'static str),
    /// The provider refused the refresh token: a human must grant the connection again.
    #[error("the connection {0} needs a new consent: its granting human was told")]
    NeedsConsent(String),
    /// The connection is not usable now (pending, failed or revoked).
    #[error("{0}")]
    NotActive(String),
    /// The provider failed or answered something unusable.
    #[error("the provider: {0}")]
    Provider(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl<E: Into<ConnectionsError>> From<crate::store::TxError<E>> for ConnectionsError {
    fn from(e: crate::store::TxError<E>) -> Self {
        match e {
            crate::store::TxError::Abort(e) => e.into(),
            crate::store::TxError::Store(s) => ConnectionsError::Store(s),
        }
    }
}

/// A provider's text made safe to keep and show: printable ASCII, at most 200 characters.
pub fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(200)
        .collect()
}
