//! SMTP front-ends. `inbound` is the MX side (port 25); submission and the outbound client
//! come with the outbound work.

pub mod inbound;
