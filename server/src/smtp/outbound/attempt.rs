//! What one delivery attempt is and how it ends: the types and verdicts the session, the
//! mail transaction and the connection pool share. Apart from all three, so each of them
//! depends on this module and none on another's internals (no import circle).

use super::client::SessionError;
use super::observe::{Observer, TlsOutcome};
use super::policy::{Failure, TlsPolicy};
use super::reply::{Class, Reply};
use super::tls::TlsClient;
use super::SmtpTimeouts;
use crate::queue::transport::{Envelope, RcptOutcome, TlsLevel};
use rustls::pki_types::ServerName;

/// Everything one attempt needs, borrowed from the transport and the envelope.
pub(crate) struct Job<'a> {
    pub env: &'a Envelope,
    /// The message as stored (its length is the SIZE we declare).
    pub raw: &'a [u8],
    /// `data::encode(raw)`: stuffed, CRLF, terminated.
    pub body: &'a [u8],
    pub eight_bit: bool,
    /// Our EHLO name.
    pub hostname: &'a str,
    /// What the session must reach (no policy, a route's, MTA-STS, DANE).
    pub policy: &'a TlsPolicy,
    /// False on the plaintext retry after a failed opportunistic handshake.
    pub try_tls: bool,
    pub tls: &'a TlsClient,
    /// The MX (or next hop) name the certificate is checked against.
    pub server_name: ServerName<'static>,
    /// Where TLS outcomes are counted and reported.
    pub observer: &'a Observer,
    /// `mx.b.test [127.0.0.1]`, for diagnostics.
    pub remote: &'a str,
    pub timeouts: SmtpTimeouts,
}

impl Job<'_> {
    pub fn require_tls(&self) -> bool {
        self.policy.requires_tls()
    }

    /// Reports what this session reached, or how it failed its policy.
    pub fn observe(&self, result: Result<TlsLevel, &Failure>) {
        self.observer.record(&TlsOutcome {
            domain: &self.env.domain,
            mx: self.remote,
            policy: self.policy.source,
            result,
        });
    }
}

/// How an attempt on one address ended.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The transaction ran (whatever its outcome): one outcome per recipient, and the TLS
    /// level of the session that carried it.
    Done(Vec<RcptOutcome>, TlsLevel),
    /// This host could not take the message before a transaction began; the outcome
    /// applies to every recipient if no other host does better.
    NextHost(RcptOutcome),
    /// Opportunistic TLS failed in the handshake: the same address deserves a try in
    /// clear text, as postfix does at `may`.
    RetryWithoutTls(RcptOutcome),
}

/// What EHLO told us.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caps {
    pub pipelining: bool,
    pub starttls: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    /// `Some(limit)` when SIZE was advertised; 0 means no fixed limit (RFC 1870 §4).
    pub size: Option<usize>,
}

pub(crate) fn temporary(reply: String) -> RcptOutcome {
    RcptOutcome::Temporary { reply }
}

/// A non-success reply as a recipient outcome, by its first digit (RFC 5321 §4.2.1). A 2xx
/// or 3xx where a failure was expected, or a code outside the RFC, is not a verdict from
/// the server, so it stays temporary.
pub(crate) fn failure(reply: &Reply) -> RcptOutcome {
    match reply.class() {
        Some(Class::Permanent) => RcptOutcome::Permanent {
            reply: reply.text.clone(),
        },
        Some(Class::Transient) => temporary(reply.text.clone()),
        _ => temporary(format!("451 4.5.0 unexpected reply: {}", reply.text)),
    }
}

/// A connection-level failure described as a reply: `451 4.4.2 mx.b.test [..]: timeout
/// waiting at DATA`.
pub(crate) fn lost(job: &Job<'_>, e: &SessionError) -> RcptOutcome {
    temporary(format!("451 4.4.2 {}: {e}", job.remote))
}
