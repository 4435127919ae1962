//! The durable outbound queue (DESIGN §5): messages and per-recipient state written in one
//! transaction before anyone is told "accepted", a worker that delivers through a
//! [`Transport`], retries on the DESIGN schedule, and DSNs on permanent failure.

pub mod transport;

pub use transport::{BoxFuture, DeliveryReport, Envelope, RcptOutcome, Transport};
