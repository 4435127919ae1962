//! Submission mode (587/465): the AUTH exchange and handing accepted mail to the outbound
//! queue as the authenticated agent. The MX side of the session never reaches this code.

use super::super::auth::{self as sasl, Sasl, SaslStep};
use super::super::reply::{self, Reply};
use super::super::Mode;
use super::{Session, State, Txn};
use crate::audit::Outcome;
use crate::identity::{Actor, Agent, IdentityError, Scope};
use crate::mailbox::MailboxError;
use crate::metrics::SendStage;
use crate::queue::SendAudit;
use smtp_proto::request::receiver::RequestReceiver;
use tokio::io::{AsyncRead, AsyncWrite};

/// The longest SASL response line (a PLAIN response with a long key fits many times over).
const MAX_SASL_LINE: usize = 12 * 1024;

/// What a session logged in with. The key is kept (zeroized on drop, never logged) so every
/// transaction can go through the same `IdentityService::login` door as AUTH did: that is
/// the one check of key, agent, ancestors and scope, and a revocation empties its cache.
pub(in super::super) struct Credentials {
    user: zeroize::Zeroizing<String>,
    pass: zeroize::Zeroizing<String>,
    /// The actor of the latest successful check (key id and chain for audit entries).
    actor: Actor,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Reads (more of) one SASL response line and acts on it once it is whole.
    pub(super) async fn auth_line(
        &mut self,
        sasl: Sasl,
        mut line: zeroize::Zeroizing<Vec<u8>>,
        bytes: &mut std::slice::Iter<'_, u8>,
    ) -> State {
        let mut complete = false;
        for b in bytes.by_ref() {
            if *b == b'\n' {
                complete = true;
                break;
            }
            line.push(*b);
            if line.len() > MAX_SASL_LINE {
                break;
            }
        }
        if line.len() > MAX_SASL_LINE {
            self.reply(Reply::new(
                500,
                "5.5.6",
                "Authentication exchange line is too long",
            ));
            State::Command(RequestReceiver::default())
        } else if !complete {
            State::Auth(sasl, line)
        } else {
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            if text == b"*" {
                self.reply(Reply::new(501, "5.7.0", "Authentication cancelled"));
                State::Command(RequestReceiver::default())
            } else {
                let next = sasl::step(sasl, text);
                self.sasl(next).await
            }
        }
    }

    /// Starts AUTH (RFC 4954): only in submission mode, only under TLS, once per session,
    /// outside a transaction, and not from an IP that failed too often.
    pub(super) async fn auth_start(&mut self, mechanism: u64, initial: String) -> State {
        let initial = zeroize::Zeroizing::new(initial);
        let next = State::Command(RequestReceiver::default());
        if self.mode != Mode::Submission {
            self.reply(Reply::new(
                503,
                "5.5.1",
                "AUTH is only offered on the submission ports",
            ));
            return next;
        }
        if !self.secure {
            self.reply(Reply::new(
                530,
                "5.7.0",
                "Must issue a STARTTLS command first",
            ));
            return next;
        }
        if self.helo.is_none() {
            self.reply(reply::bad_sequence("Send EHLO first"));
            return next;
        }
        if self.authed.is_some() {
            self.reply(reply::bad_sequence("Already authenticated"));
            return next;
        }
        if self.txn.is_some() {
            self.reply(reply::bad_sequence(
                "AUTH is not allowed during a mail transaction",
            ));
            return next;
        }
        if self.ctx.auth_limiter.is_blocked(self.peer.ip()) {
            return self.too_many_failures();
        }
        let empty = zeroize::Zeroizing::new(Vec::new());
        match mechanism {
            smtp_proto::AUTH_PLAIN if initial.is_empty() => {
                self.out.extend_from_slice(b"334 \r\n");
                State::Auth(Sasl::Plain, empty)
            }
            smtp_proto::AUTH_PLAIN => {
                let step = sasl::step(Sasl::Plain, initial.as_bytes());
                self.sasl(step).await
            }
            smtp_proto::AUTH_LOGIN if initial.is_empty() => {
                self.out
                    .extend_from_slice(sasl::LOGIN_USER_CHALLENGE.as_bytes());
                State::Auth(Sasl::LoginUser, empty)
            }
            smtp_proto::AUTH_LOGIN => {
                let step = sasl::step(Sasl::LoginUser, initial.as_bytes());
                self.sasl(step).await
            }
            _ => {
                self.reply(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
                next
            }
        }
    }

    async fn sasl(&mut self, step: SaslStep) -> State {
        let next = State::Command(RequestReceiver::default());
        match step {
            SaslStep::Continue(sasl, challenge) => {
                self.out.extend_from_slice(challenge.as_bytes());
                State::Auth(sasl, zeroize::Zeroizing::new(Vec::new()))
            }
            SaslStep::Malformed => {
                self.reply(Reply::new(
                    501,
                    "5.5.2",
                    "Cannot decode the authentication response",
                ));
                next
            }
            SaslStep::Credentials { user, pass } => {
                let ip = self.peer.ip();
                let login = self
                    .ctx
                    .identity
                    .login(&user, &pass, Scope::MailSend, &ip.to_string());
                // A refused login is audited by `login` itself (`auth.denied`, with the
                // reason and peer): one entry per failure, through the one door, so the
                // identity layer's per-source aggregation of denials applies to SMTP too.
                let found = match login {
                    Ok(actor) => actor
                        .agent_id()
                        .and_then(|id| self.ctx.identity.agent(id).ok().flatten())
                        .map(|agent| (actor, agent)),
                    Err(_) => None,
                };
                match found {
                    Some((actor, agent)) => {
                        tracing::info!(agent = %agent.id, "submission login");
                        let detail =
                            serde_json::json!({"peer": ip.to_string(), "session": self.id});
                        if let Err(e) = actor.audit(
                            &self.ctx.audit,
                            "smtp.auth",
                            &agent.id,
                            Outcome::Ok,
                            detail,
                        ) {
                            tracing::error!(error = %e, "could not audit a submission login");
                        }
                        self.authed = Some(agent);
                        self.credentials = Some(Credentials { user, pass, actor });
                        self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
                        next
                    }
                    None => {
                        if self.ctx.auth_limiter.is_blocked(ip) {
                            return self.too_many_failures();
                        }
                        self.reply(Reply::new(
                            535,
                            "5.7.8",
                            "Authentication credentials invalid",
                        ));
                        next
                    }
                }
            }
        }
    }

    fn too_many_failures(&mut self) -> State {
        self.reply(Reply::new(
            421,
            "4.7.0",
            "Too many failed logins from your address; try again later",
        ));
        State::Closed
    }

    /// Re-validates the session's login (key, agent, ancestors, `mail:send`) for a new
    /// transaction. A refusal is the reply to send before the session ends: `535` when the
    /// credentials no longer hold, `454` when the check itself failed.
    pub(super) fn recheck_login(&mut self) -> Result<Agent, Reply> {
        let Some(c) = self.credentials.as_mut() else {
            return Err(Reply::new(530, "5.7.0", "Authentication required"));
        };
        let ip = self.peer.ip().to_string();
        let revoked = || {
            Reply::new(
                535,
                "5.7.8",
                "Authentication credentials are no longer valid; closing the session",
            )
        };
        match self
            .ctx
            .identity
            .login(&c.user, &c.pass, Scope::MailSend, &ip)
        {
            Ok(actor) => {
                let agent = actor
                    .agent_id()
                    .and_then(|id| self.ctx.identity.agent(id).ok().flatten())
                    .filter(|a| a.is_active())
                    .ok_or_else(revoked)?;
                c.actor = actor;
                self.authed = Some(agent.clone());
                Ok(agent)
            }
            Err(e @ (IdentityError::Store(_) | IdentityError::Audit(_))) => {
                tracing::warn!(error = %e, "cannot re-check a submission login");
                Err(Reply::new(
                    454,
                    "4.7.0",
                    "Temporary authentication failure; closing the session",
                ))
            }
            Err(_) => {
                tracing::info!(session = self.id, "submission login revoked mid-session");
                self.authed = None;
                self.credentials = None;
                Err(revoked())
            }
        }
    }

    /// End of a submitted message: into the outbound queue as the authenticated agent.
    /// The message must name exactly one author, the agent itself (RFC 5322 §3.6 counts
    /// are checked before this): what receivers show and what DMARC aligns with our
    /// signature.
    /// `ended`: when the end of data arrived (the send's `accept` stage runs from there to
    /// the queue).
    pub(super) async fn submit(
        &mut self,
        helo: &str,
        txn: Txn,
        body: Vec<u8>,
        ended: std::time::Instant,
    ) -> Reply {
        // Checked again at the point of use: DATA can take minutes after MAIL FROM, and a
        // key revoked meanwhile must not queue this message.
        let agent = match self.recheck_login() {
            Ok(agent) => agent,
            Err(r) => {
                self.end_after_reply = true;
                return r;
            }
        };
        let me = agent.address().to_ascii_lowercase();
        let from = super::super::headers::from_addresses(&body);
        if from.len() != 1 || from[0] != me {
            return self.refuse_message(
                "from_not_sender",
                Reply::new(
                    550,
                    "5.7.1",
                    format!("The From header must be exactly <{me}>"),
                ),
            );
        }
        let mut raw = crate::util::received_header(
            Some(&format!("{helo} ({})", self.peer.ip())),
            &self.ctx.hostname,
            "ESMTPSA",
            &self.id,
            None,
            &crate::util::rfc2822(crate::util::now_unix()),
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        self.ctx.metrics.send_stages.done(SendStage::Accept, ended);
        // `recheck_login` succeeded, so the session has its credentials.
        let Some(c) = &self.credentials else {
            return reply::temp_failure();
        };
        // Like a REST send: who, with which key, how many recipients, which message;
        // recorded with the message, durable by the same commit.
        let audit = SendAudit {
            actor: &c.actor,
            action: "mail.send",
            extra: serde_json::json!({
                "via": "smtp", "peer": self.peer.ip().to_string(), "session": self.id,
            }),
            best_effort: true,
            sent_copy: true,
        };
        use crate::queue::QueueError as Q;
        match self
            .ctx
            .queue
            .enqueue(&agent, &txn.submit_rcpts, raw, None, audit)
            .await
        {
            Ok(a) => {
                self.ctx
                    .metrics
                    .smtp_messages
                    .with_label_values(&["accepted", "submission"])
                    .inc();
                match &a.held {
                    // Accepted, waiting for a human's approval (`first_contact = hold`).
                    Some((rule, _)) => Reply::new(
                        250,
                        "2.0.0",
                        format!("OK held for approval ({rule}) as {}", a.message.id),
                    ),
                    None => Reply::new(250, "2.0.0", format!("OK queued as {}", a.message.id)),
                }
            }
            Err(e) => {
                self.ctx
                    .metrics
                    .smtp_messages
                    .with_label_values(&["rejected", "submission"])
                    .inc();
                match e {
                    Q::Mailbox(MailboxError::InsufficientStorage) => reply::insufficient_storage(),
                    Q::TooLarge { .. } => Reply::new(552, "5.3.4", e.to_string()),
                    Q::Policy(r @ crate::policy::Refusal::Limit { .. }) => {
                        Reply::new(452, "4.5.3", r.to_string())
                    }
                    Q::Policy(r) => Reply::new(550, "5.7.1", r.to_string()),
                    Q::Recipient(m) => Reply::new(550, "5.1.1", m),
                    Q::Invalid(m) => Reply::new(550, "5.7.1", m),
                    Q::NotFound(_) | Q::Denied(_) => {
                        Reply::new(550, "5.7.1", "The sending agent is not active")
                    }
                    e if e.is_temporary() => reply::temp_failure(),
                    e => Reply::new(554, "5.3.0", e.to_string()),
                }
            }
        }
    }
}
