//! SMTP front-ends: `inbound` is the MX side (port 25) and submission (587/465); `outbound`
//! is the client the queue delivers through.

pub mod inbound;
pub mod outbound;
