//! Accountable sending (DESIGN §15, issue 24): the send policy of each agent — caps per hour
//! and per day, recipients per message and per day, recipient domains, message size and
//! first contact. The queue asks [`PolicyService`] once per send, before anything is stored,
//! and again inside the transaction that queues the message, where the counters are updated:
//! counters live in the store, so they survive restarts and hold on several nodes. The
//! org's suppression list (`suppress`) is judged in the same place.

mod admit;
pub mod breaker;
mod error;
mod model;
mod pattern;
mod service;
mod suppress;

pub use admit::{Counters, Rcpt};
pub use breaker::{is_hard_bounce, BreakerBatch, BreakerState, Observation, Pause};
pub use error::PolicyError;
pub use model::{Effective, Refusal, SendPolicy};
pub use pattern::DomainPattern;
pub use service::{PolicyService, TX_TREES};
pub use suppress::{parse_address, suppression_key, Suppression};
