//! The durable outbound queue (DESIGN §5): messages and per-recipient state written in one
//! transaction before anyone is told "accepted", a worker that delivers through a
//! [`Transport`], retries on the DESIGN schedule, and DSNs on permanent failure.

mod admin;
pub mod approvals;
mod breaker;
pub mod compose;
mod drafts;
pub mod dsn;
mod enqueue;
mod error;
pub mod feedback;
mod fresh;
pub mod longlines;
pub mod model;
mod notice;
pub use notice::QueueNotifier;
mod recorder;
mod reply;
mod service;
mod settings;
mod signing;
pub mod transport;
mod worker;

pub use admin::QueueQuery;
pub use approvals::{Approval, ApprovalQuery, ApprovalStatus};
pub use compose::{AttachmentIn, Mailbox, SendRequest};
pub use drafts::{Draft, DraftFields, DraftPatch};
pub use error::QueueError;
pub use model::{QueuedMessage, RcptStatus, Recipient};
pub use reply::ReplyRequest;
pub use service::{Accepted, QueueService, SendAudit};
pub use settings::QueueSettings;
pub use transport::{BoxFuture, DeliveryReport, Envelope, RcptOutcome, TlsLevel, Transport};
