//! The inbound MTA (DESIGN §5): accept mail for our agents, verify it, store it durably, and
//! only then say 250.
//!
//! `listener` accepts connections within limits; `session` is the per-connection state
//! machine, generic over its stream; `deliver` does the end-of-data work against the
//! services. Commands are parsed by smtp-proto; DATA bodies by `data` (strict about the
//! end-of-data mark, against SMTP smuggling) into a `spool` that keeps large bodies on disk.

pub mod auth;
mod data;
mod deliver;
mod headers;
mod line;
mod listener;
mod presence;
pub mod rejected;
pub mod reply;
mod session;
mod spool;
mod txn;

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
    /// Mail to `dmarc-reports@` and `tls-reports@` is handed to the reports service.
    pub reports: Arc<crate::reports::ReportsService>,
    /// Failed AUTH attempts per IP, shared by both submission listeners.
    pub auth_limiter: Arc<crate::audit::Denials>,
    /// Audit entries for refused messages, at most one per source IP per interval.
    pub rejections: rejected::RejectionAudit,
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
    /// The whole body must arrive within this (slowloris guard).
    pub data_deadline: Duration,
    /// Errors from one client before it is disconnected (Postfix's hard limit is 20 too).
    pub max_errors: u32,
    /// Bodies past this many bytes wait in a temporary file, not in memory.
    pub spool_threshold: usize,
    /// Where those files are made (under the data directory: `/tmp` may be memory too).
    pub spool_dir: std::path::PathBuf,
    /// `smtp.max_processing_bytes`, in KiB permits: what finishing messages may hold in
    /// memory at once, over all sessions of all listeners.
    pub processing: ProcessingBudget,
}

/// The shared budget of message bytes being finished (read back from the spool, parsed,
/// stored). Without it, a thousand connections ending 25 MiB messages at the same moment
/// would hold 25 GB; with it they take turns.
#[derive(Debug, Clone)]
pub struct ProcessingBudget {
    permits: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
}

impl ProcessingBudget {
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        let total = usize::try_from(total_kib).unwrap_or(usize::MAX);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(
                total.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            total_kib,
        }
    }

    /// Waits until `bytes` fit (a message larger than the whole budget waits for all of it).
    pub async fn reserve(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let want = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        self.permits.clone().acquire_many_owned(want).await.ok()
    }
}

impl Limits {
    /// Sets the directory message bodies are spooled to.
    pub fn with_spool_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.spool_dir = dir;
        self
    }
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
            data_deadline: Duration::from_secs(c.data_deadline_secs),
            max_errors: 20,
            spool_threshold: c.spool_threshold_bytes,
            spool_dir: std::env::temp_dir(),
            processing: ProcessingBudget::new(c.max_processing_bytes),
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::ProcessingBudget;

    #[tokio::test]
    async fn messages_take_turns_within_the_budget() {
        let b = ProcessingBudget::new(100 * 1024);
        let first = b.reserve(60 * 1024).await.expect("permit");
        // 60 + 60 KiB do not fit in 100: the second waits until the first is done.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), b.reserve(60 * 1024)).await;
        assert!(waiting.is_err(), "the second message waited");
        drop(first);
        let _second = b.reserve(60 * 1024).await.expect("permit");
        // Larger than the whole budget: runs alone once everything else is done.
        drop(_second);
        assert!(b.reserve(10 * 1024 * 1024).await.is_some());
    }
}
