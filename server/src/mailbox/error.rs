//! Mailbox errors. Front-ends map them: SMTP `QuotaExceeded` -> `552 5.2.2`,
//! `InsufficientStorage` -> `452 4.3.1`, any storage failure -> `451 4.3.0`; REST through
//! `From<MailboxError> for ApiError`.

use crate::audit::AuditError;
use crate::identity::{Denied, IdentityError};
use crate::store::{StoreError, TxError};

#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Also the answer for another agent's message: its existence is not disclosed.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("mailbox full: {used} of {quota} bytes used, {incoming} more do not fit")]
    QuotaExceeded {
        used: u64,
        quota: u64,
        incoming: u64,
    },
    /// The data filesystem is below `storage.min_free_mb` (`store::space`): new mail waits
    /// until space is freed (SMTP 452 4.3.1, HTTP 507). Temporary by nature; the amounts
    /// are the operator's business and go to the log, not to the client.
    #[error("insufficient storage: the server is short of disk space; try again later")]
    InsufficientStorage,
    #[error("unknown folder \"{0}\" (every agent has INBOX, Sent, Junk, Trash, Drafts and Archive; others once created)")]
    UnknownFolder(String),
    /// A request value that parses but is not acceptable (422).
    #[error("{0}")]
    Invalid(String),
    /// The agent already holds `api.max_waits_per_agent` concurrent waits (429).
    #[error("this agent already has {0} waits open; end one or wait less often")]
    TooManyWaits(usize),
    /// A request value that does not parse (400): a cursor or a timestamp.
    #[error("{0}")]
    BadRequest(String),
    /// The caller, authenticated again at the end of a long request (`wait`), no longer is:
    /// its key or agent was revoked meanwhile. Front-ends answer it as they answer a failed
    /// authentication (401).
    /// The recipient's allow or block list refused the sender (SMTP `550 5.7.1`); the text
    /// is safe to give the sending server.
    #[error("{0}")]
    SenderRefused(&'static str),
    /// A delivery hook refused the message inside the transaction (the queue's send policy);
    /// the hook's owner carries the reason and answers it, this is never shown as it is.
    #[error("refused by the delivery hook")]
    HookRefused,
    #[error(transparent)]
    Identity(IdentityError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl MailboxError {
    /// True when trying again later may succeed (SMTP 4xx, not 5xx).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            MailboxError::Store(_) | MailboxError::Audit(_) | MailboxError::InsufficientStorage
        )
    }
}

impl From<TxError<MailboxError>> for MailboxError {
    fn from(e: TxError<MailboxError>) -> Self {
        match e {
            TxError::Abort(e) => e,
            TxError::Store(s) => MailboxError::Store(s),
        }
    }
}
