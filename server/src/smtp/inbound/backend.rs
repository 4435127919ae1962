//! The seam between the SMTP front-end and the rest of legate.
//!
//! The session decides protocol matters (sequence, limits, relay rules, address syntax); the
//! backend decides matters of fact (is this an active agent, does SPF pass, is this key valid,
//! was the message stored). Keeping the seam this narrow lets the session be tested with a fake
//! and lets the application implement it once over identity, mailauth, mailbox and queue.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

/// Everything the front-end needs from the services.
///
/// Methods return `impl Future + Send` so sessions can run on any tokio worker; an
/// implementation may simply write `async fn`.
pub trait Backend: Send + Sync + 'static {
    /// What [`Backend::check_mail_from`] learned (e.g. the SPF result) and wants back at
    /// [`Backend::deliver`], so MAIL-time checks are not repeated.
    type MailData: Send + Sync + 'static;

    /// Decides a recipient. Called only for addresses that passed the session's syntax and
    /// relay-form checks. `Local` for an active agent of our domains (the session keeps the
    /// `+tag` in [`RcptAddress::tag`]; return it as `label` to keep it), `Remote` for another
    /// domain (the session refuses it unless `authenticated`), `Refuse` for unknown or revoked
    /// agents ([`Reply::unknown_user`]). `rcpt.domain` is empty for the bare `<postmaster>`
    /// form, which RFC 5321 §4.5.1 requires every server to accept.
    fn check_rcpt(
        &self,
        rcpt: &RcptAddress,
        authenticated: Option<&AuthedUser>,
    ) -> impl Future<Output = RcptVerdict> + Send;

    /// Evaluates the reverse-path at MAIL time (SPF lives here). On submission the session has
    /// already checked that it is the authenticated agent's own address.
    fn check_mail_from(
        &self,
        ctx: &MailCtx<'_>,
    ) -> impl Future<Output = MailVerdict<Self::MailData>> + Send;

    /// Checks a login: `username` is the agent address, `secret` an API key that must hold
    /// `mail:send`. `None` for any failure (no reason is given to the client). The session
    /// rate-limits failures per IP; `peer` is for the audit log.
    fn authenticate(
        &self,
        username: &str,
        secret: &str,
        peer: IpAddr,
    ) -> impl Future<Output = Option<AuthedUser>> + Send;

    /// Verifies, stores and acknowledges a complete message. The returned reply is sent as is:
    /// `250 2.0.0` only after the durable write, `451 4.3.0` when the write failed,
    /// `550 5.7.1` for a DMARC reject, `552 5.2.2` over quota. The backend prepends `Received`
    /// and `Authentication-Results` itself. `message` is the content exactly as received
    /// (un-dot-stuffed for DATA), at most `max_message_size` bytes.
    fn deliver(
        &self,
        envelope: Envelope<Self::MailData>,
        message: Vec<u8>,
    ) -> impl Future<Output = Reply> + Send;
}

/// An SMTP reply: basic code, RFC 3463 enhanced code, text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: (u8, u8, u8),
    /// One or more lines; `\n` separates lines of a multi-line reply.
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: (u8, u8, u8), text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// `250 2.0.0`: the message was stored.
    pub fn ok(text: impl Into<String>) -> Self {
        Self::new(250, (2, 0, 0), text)
    }

    /// `550 5.1.1`: no active agent has this address (also for revoked agents, so revocation
    /// is not disclosed).
    pub fn unknown_user() -> Self {
        Self::new(550, (5, 1, 1), "No such mailbox here")
    }

    /// `554 5.7.1`: another domain, and the client is not authenticated.
    pub fn relay_denied() -> Self {
        Self::new(554, (5, 7, 1), "Relay access denied")
    }

    /// `451 4.3.0`: something on our side failed; the sender should retry.
    pub fn temporary_failure() -> Self {
        Self::new(451, (4, 3, 0), "Temporary failure, please try again later")
    }

    /// `552 5.3.4`: larger than `max_message_size`.
    pub fn too_big() -> Self {
        Self::new(
            552,
            (5, 3, 4),
            "Message size exceeds fixed maximum message size",
        )
    }

    /// `552 5.2.2`: the recipient's mailbox is over quota.
    pub fn mailbox_full() -> Self {
        Self::new(552, (5, 2, 2), "Mailbox full")
    }

    /// `550 5.7.1` with a policy reason, e.g. a DMARC reject.
    pub fn policy_reject(text: impl Into<String>) -> Self {
        Self::new(550, (5, 7, 1), text)
    }

    /// A 2xx or 3xx reply.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the wire form. Text is stripped of control characters, so a backend or a
    /// client-supplied fragment cannot inject reply lines.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let (a, b, c) = self.enhanced;
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let clean: String = line.chars().filter(|c| !c.is_control()).collect();
            out.extend_from_slice(format!("{}{sep}{a}.{b}.{c} {clean}\r\n", self.code).as_bytes());
        }
    }
}

/// A recipient address after parsing: `local+tag@domain`, domain lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptAddress {
    /// The address as the client gave it (domain lower-cased), tag included.
    pub address: String,
    /// The local part without any `+tag`, case preserved.
    pub local: String,
    /// What followed the first `+` of the local part, kept as a label.
    pub tag: Option<String>,
    /// Lower-cased, trailing dot removed; empty for the bare `<postmaster>`.
    pub domain: String,
}

/// The backend's decision about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptVerdict {
    Local {
        agent_id: String,
        label: Option<String>,
    },
    Remote,
    Refuse(Reply),
}

/// Where an accepted recipient goes, as carried in the [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptTarget {
    Local {
        agent_id: String,
        label: Option<String>,
    },
    /// Another domain; only ever present when the envelope is authenticated.
    Remote,
}

/// One accepted recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub address: RcptAddress,
    pub target: RcptTarget,
}

/// The backend's decision about a reverse-path.
#[derive(Debug)]
pub enum MailVerdict<D> {
    Accept(D),
    Refuse(Reply),
}

/// A successful login, as the backend describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthedUser {
    pub agent_id: String,
    /// The only reverse-path this login may use (compared case-insensitively).
    pub address: String,
    /// Which API key was used, for the audit trail.
    pub key_id: String,
}

/// What the session knows when MAIL arrives.
#[derive(Clone, Copy, Debug)]
pub struct MailCtx<'a> {
    pub session_id: &'a str,
    pub peer: SocketAddr,
    pub helo: &'a str,
    /// The reverse-path; empty for the null sender `<>`.
    pub mail_from: &'a str,
    pub tls: bool,
    pub authenticated: Option<&'a AuthedUser>,
}

/// A complete transaction handed to [`Backend::deliver`].
#[derive(Debug)]
pub struct Envelope<D> {
    pub session_id: String,
    pub peer: SocketAddr,
    pub helo: String,
    pub tls: bool,
    pub authenticated: Option<AuthedUser>,
    pub mail_from: String,
    /// What `check_mail_from` returned.
    pub mail_data: D,
    pub rcpts: Vec<Recipient>,
    /// The client declared `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// The client declared `BODY=8BITMIME` (RFC 6152).
    pub eight_bit: bool,
    /// Received with BDAT (RFC 3030) rather than DATA.
    pub chunked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(
            wire(&Reply::unknown_user()),
            "550 5.1.1 No such mailbox here\r\n"
        );
        let r = Reply::new(250, (2, 0, 0), "one\ntwo");
        assert_eq!(wire(&r), "250-2.0.0 one\r\n250 2.0.0 two\r\n");
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let r = Reply::new(550, (5, 7, 1), "bad\r250 2.0.0 ok\u{0}");
        assert_eq!(wire(&r), "550 5.7.1 bad250 2.0.0 ok\r\n");
        assert!(!Reply::relay_denied().is_positive());
        assert!(Reply::ok("x").is_positive());
    }
}
