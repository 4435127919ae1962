use crate::identity::Denied;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EventsError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Limit(String),
    #[error("at most {0} live streams at once (events.max_streams_per_caller)")]
    TooManyStreams(usize),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Vault(#[from] crate::vault::VaultError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error("{0}")]
    Internal(String),
}

impl<E> From<crate::store::TxError<E>> for EventsError
where
    EventsError: From<E>,
{
    fn from(e: crate::store::TxError<E>) -> Self {
        match e {
            crate::store::TxError::Abort(e) => e.into(),
            crate::store::TxError::Store(e) => e.into(),
        }
    }
}
