//! Inbound SMTP: the listener and the session state machine for MX (25), submission with
//! STARTTLS (587) and submission over implicit TLS (465).
//!
//! The flow reads top to bottom: [`serve`] accepts connections under the total and per-IP
//! limits and spawns one session each; a session (`session.rs`) is an explicit state enum driven
//! by framed input; each verb group has its own file (`ehlo.rs`, `mail.rs`, `rcpt.rs`, `data.rs`,
//! `auth.rs`, `starttls.rs`). Wire parsing is smtp-proto's; this module only frames lines and
//! decides.
//!
//! Everything that needs the rest of legate (who is a local agent, SPF, password checks,
//! storing a message) is behind the [`Backend`] trait, so this module can be built and tested
//! alone, and the application implements the trait once over its services.
//!
//! Reply codes chosen where the RFCs leave a choice (all documented here so operators and tests
//! agree):
//! - line longer than `max_line_length`: `500 5.5.2` (RFC 5321 §4.5.3.1.10 names 500 "Line too
//!   long"; RFC 3463 X.5.2: the command could not be interpreted).
//! - unknown command `500 5.5.1`; bad arguments `501 5.5.4`; bad sender syntax `501 5.1.7`;
//!   bad recipient syntax `501 5.1.3`; parameter of an extension we do not offer `555 5.5.4`.
//! - relay-attack address forms — source routes (`<@a.test:x@b.test>`), the percent hack
//!   (`x%b.test@a.test`), bang paths (`b.test!x@a.test`) and quoted local parts holding `@` —
//!   are refused with `550 5.1.3` ("bad destination mailbox address syntax") without asking the
//!   backend, so they are never looked up or treated as local. Only an authenticated sender may
//!   use `%`, `!` or quoted `@` in an address of *another* domain (that is that domain's
//!   business); source routes are refused for everyone (RFC 5321 Appendix C allows it). A
//!   well-formed address of another domain without AUTH gets `554 5.7.1` (relay denied).

mod address;
mod auth;
mod backend;
mod data;
mod ehlo;
mod input;
mod limits;
mod listener;
mod mail;
mod rcpt;
mod session;
mod starttls;
#[cfg(test)]
mod testkit;

use std::sync::Arc;
use std::time::Duration;

pub use backend::{
    AuthedUser, Backend, Envelope, MailCtx, MailVerdict, RcptAddress, RcptTarget, RcptVerdict,
    Recipient, Reply,
};
pub use listener::serve;

/// Which port a listener serves; it decides what a session offers and requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail for our agents from the world. No AUTH is offered, so nothing received
    /// here can be relayed.
    Mx,
    /// Port 587: submission; STARTTLS, then AUTH, then MAIL FROM the authenticated agent.
    Submission,
    /// Port 465: submission over TLS from the first byte (RFC 8314).
    ImplicitTls,
}

impl Mode {
    /// Whether sessions must authenticate before MAIL.
    pub fn is_submission(self) -> bool {
        matches!(self, Mode::Submission | Mode::ImplicitTls)
    }
}

/// Size and count limits from config. Defaults follow RFC 5321 §4.5.3.1 minimums or common
/// practice where the RFC gives none.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest message accepted, in bytes, advertised as `SIZE` and enforced while reading.
    pub max_message_size: usize,
    /// Recipients per message; RFC 5321 §4.5.3.1.8 requires at least 100.
    pub max_recipients: usize,
    /// Longest command line, CRLF included. RFC 5321 sets 512 as the floor; 4096 leaves room
    /// for AUTH initial responses and long parameter lists.
    pub max_line_length: usize,
    /// Simultaneous connections on one listener.
    pub max_connections: usize,
    /// Simultaneous connections from one IPv4 address or IPv6 /64.
    pub max_connections_per_ip: usize,
    /// Refused commands tolerated in one session before `421` and close.
    pub max_errors: u32,
    /// Failed logins from one IP within `auth_failure_window` before further AUTH is refused.
    pub max_auth_failures: u32,
    /// Window over which failed logins are counted.
    pub auth_failure_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 4096,
            max_connections: 1000,
            max_connections_per_ip: 20,
            max_errors: 10,
            max_auth_failures: 5,
            auth_failure_window: Duration::from_secs(10 * 60),
        }
    }
}

/// Timeouts, server side of RFC 5321 §4.5.3.2.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Waiting for the next command (§4.5.3.2.7, at least 5 minutes).
    pub command: Duration,
    /// Waiting for each read of message content (§4.5.3.2.5's data block, 3 minutes).
    pub data_block: Duration,
    /// Bound on the backend's processing after the end of data. The client gives up after 10
    /// minutes (§4.5.3.2.6), so a reply later than that is useless; past it we answer
    /// `451 4.3.0` (the sender retries; a duplicate is possible, a loss is not).
    pub data_termination: Duration,
    /// TLS handshake, for STARTTLS and implicit TLS.
    pub tls_handshake: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(5 * 60),
            data_block: Duration::from_secs(3 * 60),
            data_termination: Duration::from_secs(10 * 60),
            tls_handshake: Duration::from_secs(60),
        }
    }
}

/// Everything a listener's sessions are configured with.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our name in the greeting and EHLO reply (`server.hostname`).
    pub hostname: String,
    pub mode: Mode,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// After shutdown is signalled, how long in-flight sessions may finish before they are
    /// dropped.
    pub shutdown_grace: Duration,
}

impl SessionConfig {
    /// Defaults for one listener.
    pub fn new(hostname: impl Into<String>, mode: Mode) -> Self {
        Self {
            hostname: hostname.into(),
            mode,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Why a listener or session stopped abnormally. Sessions log these; none reaches the client.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    #[error("implicit TLS mode needs a TLS configuration")]
    TlsRequired,
}

/// What every session of one listener shares.
pub(crate) struct Context<B> {
    pub(crate) cfg: Arc<SessionConfig>,
    pub(crate) backend: Arc<B>,
    /// `None` when no certificate is configured: STARTTLS is then not offered.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Failed logins per IP, shared by all sessions of the listener.
    pub(crate) auth_failures: limits::AuthLimiter,
}

impl<B> Context<B> {
    pub(crate) fn new(
        cfg: Arc<SessionConfig>,
        backend: Arc<B>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let auth_failures =
            limits::AuthLimiter::new(cfg.limits.max_auth_failures, cfg.limits.auth_failure_window);
        Self {
            cfg,
            backend,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            auth_failures,
        }
    }
}
