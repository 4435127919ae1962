use crate::audit::AuditError;
use crate::identity::{Denied, IdentityError};
use crate::store::StoreError;

/// Failures of the policy routes (reading and setting a policy). A send the policy refuses
/// is a [`super::Refusal`], carried by the queue's error.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Also another org's agent, or an agent the caller may not see: not disclosed.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A policy that does not parse or names a malformed pattern (400).
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}
