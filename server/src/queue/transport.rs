//! The seam between the queue and the network: the queue decides *what* to deliver and
//! *when*; a [`Transport`] (the SMTP client in `smtp::outbound`, wired by `app`) decides *how*.
//! Keeping the trait here lets the queue stay below the front-ends in the dependency order
//! and lets its tests use a scripted transport.

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// One delivery attempt: every recipient here shares the destination `domain`.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Envelope sender (`MAIL FROM`); empty for bounces (`<>`).
    pub mail_from: String,
    /// Recipients, all at `domain`, in the order outcomes are reported.
    pub rcpts: Vec<String>,
    /// The destination domain (lower case, no trailing dot).
    pub domain: String,
}

/// What happened to one recipient. `reply` is the remote server's reply (code, enhanced
/// code and text, e.g. `550 5.1.1 No such user`) or our own diagnosis when no server
/// answered (e.g. `451 4.4.1 connection refused by mx.b.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Delivered { reply: String },
    Temporary { reply: String },
    Permanent { reply: String },
}

impl RcptOutcome {
    pub fn reply(&self) -> &str {
        match self {
            RcptOutcome::Delivered { reply }
            | RcptOutcome::Temporary { reply }
            | RcptOutcome::Permanent { reply } => reply,
        }
    }
}

/// How well the connection that carried (or tried to carry) a message was protected, in
/// increasing order (DESIGN §14): policy (MTA-STS, DANE, `require_tls` routes) decides the
/// minimum, and the delivery record keeps what was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsLevel {
    /// Clear text.
    None,
    /// Encrypted, the server's certificate not authenticated (RFC 7435).
    Opportunistic,
    /// Encrypted, the certificate chain and the MX host name checked against trusted roots.
    Verified,
    /// Encrypted, the certificate matched a DNSSEC-secure TLSA record (RFC 7672).
    Dane,
}

impl TlsLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsLevel::None => "none",
            TlsLevel::Opportunistic => "opportunistic",
            TlsLevel::Verified => "verified",
            TlsLevel::Dane => "dane",
        }
    }
}

/// The result of one attempt for every recipient of an [`Envelope`].
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    /// The host that answered last (`mx.b.test [127.0.0.1]`), for DSN `Remote-MTA`.
    pub remote_host: Option<String>,
    /// The protection of the session with `remote_host`; `None` when no session got far
    /// enough to know.
    pub tls: Option<TlsLevel>,
    /// One outcome per recipient, same order as `Envelope::rcpts`.
    pub outcomes: Vec<RcptOutcome>,
}

impl DeliveryReport {
    /// Every recipient gets the same outcome (a connection-level failure).
    pub fn all(env: &Envelope, outcome: RcptOutcome, remote_host: Option<String>) -> Self {
        Self {
            remote_host,
            tls: None,
            outcomes: vec![outcome; env.rcpts.len()],
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Delivers one envelope to its domain. Never panics and never errors: every failure is a
/// per-recipient [`RcptOutcome`], temporary unless the destination said it is permanent.
pub trait Transport: Send + Sync {
    fn deliver<'a>(&'a self, env: &'a Envelope, raw: &'a [u8]) -> BoxFuture<'a, DeliveryReport>;
}
