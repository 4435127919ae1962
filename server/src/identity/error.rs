//! Identity errors, and the shared "denied" type every service returns for scope failures.

use super::scope::Scope;
use crate::audit::AuditError;
use crate::store::StoreError;

/// Why authentication failed. The code is safe to show: it says which rule refused the key,
/// never anything about other keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    Unknown,
    Expired,
    KeyRevoked,
    AgentRevoked,
    /// The bootstrap admin token, after another admin token was created.
    Superseded,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing_credentials",
            AuthFailure::Malformed => "malformed_credentials",
            AuthFailure::Unknown => "invalid_credentials",
            AuthFailure::Expired => "key_expired",
            AuthFailure::KeyRevoked => "key_revoked",
            AuthFailure::AgentRevoked => "agent_revoked",
            AuthFailure::Superseded => "key_superseded",
        }
    }
}

/// An authenticated caller asked for something it may not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this action requires the scope {0}")]
    MissingScope(Scope),
    #[error("this action is for agents; admin tokens cannot perform it")]
    AgentOnly,
    #[error("this action requires an admin token")]
    AdminOnly,
    #[error("{0}")]
    Other(String),
}

impl Denied {
    pub fn required_scope(&self) -> Option<Scope> {
        match self {
            Denied::MissingScope(s) => Some(*s),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("authentication failed: {}", .0.code())]
    Unauthorized(AuthFailure),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A malformed parameter (bad cursor, unparsable time): HTTP 400 rather than 422.
    #[error("{0}")]
    BadRequest(String),
    /// A rate was exceeded: HTTP 429, with when to try again.
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Hook(String),
    /// Key custody (the vault) failed an identity-key operation.
    #[error("identity key: {0}")]
    Keys(String),
}

impl<E: Into<IdentityError>> From<crate::store::TxError<E>> for IdentityError {
    fn from(e: crate::store::TxError<E>) -> Self {
        match e {
            crate::store::TxError::Abort(e) => e.into(),
            crate::store::TxError::Store(s) => IdentityError::Store(s),
        }
    }
}
