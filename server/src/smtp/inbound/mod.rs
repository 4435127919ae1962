//! The inbound MTA (DESIGN §5): accept mail for our agents, verify it, store it durably, and
//! only then say 250.
//!
//! `listener` accepts connections within limits; `session` is the per-connection state
//! machine, generic over its stream; `deliver` does the end-of-data work against the
//! services. Parsing is smtp-proto's.

pub mod auth;
mod deliver;
mod line;
mod listener;
pub mod reply;
mod session;

pub use listener::{serve, serve_as, Kind};
pub use session::Session;

use crate::audit::Audit;
use crate::config::SmtpConfig;
use crate::identity::IdentityService;
use crate::mailauth::MailAuth;
use crate::mailbox::MailboxService;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// Everything a session needs, shared by all sessions.
pub struct Inbound {
    pub hostname: String,
    pub limits: Limits,
    pub identity: Arc<IdentityService>,
    pub mailbox: Arc<MailboxService>,
    pub mailauth: MailAuth,
    pub audit: Arc<Audit>,
    pub metrics: Arc<Metrics>,
    /// Submission hands accepted mail to the outbound queue.
    pub queue: Arc<crate::queue::QueueService>,
    /// Failed AUTH attempts per IP, shared by both submission listeners.
    pub auth_limiter: Arc<crate::audit::Denials>,
}

/// What a listener serves: MX (port 25: mail for our agents, no AUTH) or submission (587
/// with STARTTLS, 465 with implicit TLS: AUTH required, mail to anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Mx,
    Submission,
}

/// Limits from `[smtp]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Longest command or text line, CRLF included (RFC 5321 §4.5.3.1.4–6).
    pub max_line_length: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Errors from one client before it is disconnected (Postfix's hard limit is 20 too).
    pub max_errors: u32,
}

impl From<&SmtpConfig> for Limits {
    fn from(c: &SmtpConfig) -> Self {
        Self {
            max_message_size: c.max_message_size,
            max_recipients: c.max_recipients,
            max_line_length: c.max_line_length,
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            command_timeout: Duration::from_secs(c.command_timeout_secs),
            data_timeout: Duration::from_secs(c.data_timeout_secs),
            max_errors: 20,
        }
    }
}
