use crate::audit::AuditError;
use crate::identity::{Denied, IdentityError};
use crate::mailbox::MailboxError;
use crate::store::{StoreError, TxError};
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Not found, or another agent's: existence is not disclosed.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A request that parses but cannot be sent (422; SMTP 5xx).
    #[error("{0}")]
    Invalid(String),
    /// A field that would end up in a header is malformed or would add header lines
    /// (CR, LF, NUL): 422 `invalid_header`, the message names the field.
    #[error("{0}")]
    InvalidHeader(String),
    /// A recipient address we refuse (relay forms, unknown local agent): 422 / `550`.
    #[error("{0}")]
    Recipient(String),
    /// The thing changed or is busy (a draft being sent, or edited meanwhile): 409.
    #[error("{0}")]
    Conflict(String),
    /// The agent's send policy refused the message (`policy`): 429 `send_limit` or 403
    /// `policy_denied`; SMTP `452 4.5.3` or `550 5.7.1`.
    #[error("{0}")]
    Policy(crate::policy::Refusal),
    #[error("message too large: {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// DKIM keys could not be used: nothing unsigned is ever sent.
    #[error("signing failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl QueueError {
    /// True when trying again later may succeed (SMTP 4xx rather than 5xx).
    pub fn is_temporary(&self) -> bool {
        match self {
            QueueError::Mailbox(m) => m.is_temporary(),
            QueueError::Store(_)
            | QueueError::Audit(_)
            | QueueError::Signing(_)
            | QueueError::Vault(_) => true,
            QueueError::Identity(e) => {
                matches!(e, IdentityError::Store(_) | IdentityError::Audit(_))
            }
            _ => false,
        }
    }
}

impl From<crate::policy::PolicyError> for QueueError {
    fn from(e: crate::policy::PolicyError) -> Self {
        use crate::policy::PolicyError as P;
        match e {
            P::Denied(d) => QueueError::Denied(d),
            P::NotFound(what) => QueueError::NotFound(what),
            P::BadRequest(m) => QueueError::Invalid(m),
            P::Identity(i) => QueueError::Identity(i),
            P::Store(s) => QueueError::Store(s),
            P::Audit(a) => QueueError::Audit(a),
        }
    }
}

impl From<TxError<QueueError>> for QueueError {
    fn from(e: TxError<QueueError>) -> Self {
        match e {
            TxError::Abort(e) => e,
            TxError::Store(s) => QueueError::Store(s),
        }
    }
}
