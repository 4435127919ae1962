//! IMAP4rev2 (RFC 9051, with IMAP4rev1 clients) over the agents' mailboxes (DESIGN §9).
//!
//! - `listener`: accepting within the connection caps; TLS from the first byte (`imaps`)
//!   or by STARTTLS.
//! - `conn`: the bytes of one connection: messages cut by imap-codec's fragmentizer within
//!   the limits, output buffered.
//! - `session`: the state machine (not authenticated → authenticated → selected →
//!   logout) and one file per command group; every command calls `MailboxService`, which
//!   checks scopes and audits, so IMAP, REST and MCP cannot disagree.
//! - `render`: ENVELOPE, BODYSTRUCTURE and body sections out of a stored raw message.
//! - `limits`: failed logins per address; sessions per agent.
//! - `search_text`: the subjects and addresses SEARCH compares, kept per message id.
//! - `extended`: the few command forms the codec does not parse yet (ESEARCH and
//!   LIST-EXTENDED return options).

mod conn;
pub mod extended;
mod limits;
mod listener;
pub mod render;
mod search_text;
mod session;

pub use listener::serve;

use crate::audit::{Audit, Denials};
use crate::config::ImapConfig;
use crate::identity::IdentityService;
use crate::mailbox::MailboxService;
use crate::metrics::Metrics;
use std::sync::Arc;

/// What every IMAP session shares.
pub struct Imap {
    pub hostname: String,
    pub config: ImapConfig,
    pub identity: Arc<IdentityService>,
    pub mailbox: Arc<MailboxService>,
    pub audit: Arc<Audit>,
    pub metrics: Arc<Metrics>,
    /// The per-source failure limiter shared with REST, MCP and SMTP.
    pub auth_limiter: Arc<Denials>,
    limits: limits::Limits,
    /// Searches reading message bodies that may run at once, across all sessions.
    search_slots: Arc<tokio::sync::Semaphore>,
    /// Subjects and addresses SEARCH compares, by message id (`imap.search_cache_messages`).
    search_texts: Arc<search_text::SearchTexts>,
}

impl Imap {
    pub fn new(
        hostname: String,
        config: ImapConfig,
        identity: Arc<IdentityService>,
        mailbox: Arc<MailboxService>,
        audit: Arc<Audit>,
        metrics: Arc<Metrics>,
        auth_limiter: Arc<Denials>,
    ) -> Imap {
        // Searches reading message bodies that may run at once (`imap.max_body_searches`):
        // a fraction of the blocking pool, which deliveries and durable commits need.
        let search_slots = Arc::new(tokio::sync::Semaphore::new(config.max_body_searches));
        let limits = limits::Limits::new(
            config.auth_failures_per_address_per_minute,
            config.max_connections_per_agent,
            config.max_folder_creates_per_hour,
        );
        let search_texts = Arc::new(search_text::SearchTexts::new(config.search_cache_messages));
        Imap {
            hostname,
            config,
            identity,
            mailbox,
            audit,
            metrics,
            auth_limiter,
            limits,
            search_slots,
            search_texts,
        }
    }
}
