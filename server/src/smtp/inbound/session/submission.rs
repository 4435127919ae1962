//! Submission mode (587/465): the AUTH exchange and handing accepted mail to the outbound
//! queue as the authenticated agent. The MX side of the session never reaches this code.

use super::super::auth::{self as sasl, Sasl, SaslStep};
use super::super::reply::{self, Reply};
use super::super::Mode;
use super::{Session, State, Txn};
use crate::identity::Scope;
use smtp_proto::request::receiver::RequestReceiver;
use tokio::io::{AsyncRead, AsyncWrite};

/// The longest SASL response line (a PLAIN response with a long key fits many times over).
const MAX_SASL_LINE: usize = 12 * 1024;

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
                let agent = match login {
                    Ok(actor) => actor
                        .agent_id()
                        .and_then(|id| self.ctx.identity.agent(id).ok().flatten()),
                    Err(_) => None,
                };
                match agent {
                    Some(agent) => {
                        tracing::info!(agent = %agent.id, "submission login");
                        self.authed = Some(agent);
                        self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
                        next
                    }
                    None => {
                        let login = user.chars().take(254).collect::<String>();
                        let _ = self.ctx.audit.append(crate::audit::NewEntry {
                            actor: crate::audit::ActorRef::anonymous(&ip.to_string()),
                            chain: vec![],
                            action: "smtp.auth".into(),
                            target: login,
                            outcome: crate::audit::Outcome::Denied,
                            detail: serde_json::json!({"peer": ip.to_string(), "session": self.id}),
                        });
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

    /// End of a submitted message: into the outbound queue as the authenticated agent.
    pub(super) async fn submit(&mut self, helo: &str, txn: Txn) -> Reply {
        let Some(agent) = self.authed.clone() else {
            return Reply::new(530, "5.7.0", "Authentication required");
        };
        let mut raw = crate::util::received_header(
            Some(&format!("{helo} ({})", self.peer.ip())),
            &self.ctx.hostname,
            "ESMTPSA",
            &self.id,
            None,
            &crate::util::rfc2822(crate::util::now_unix()),
        )
        .into_bytes();
        raw.extend_from_slice(&txn.body);
        use crate::queue::QueueError as Q;
        match self
            .ctx
            .queue
            .enqueue(&agent, &txn.submit_rcpts, raw, None)
            .await
        {
            Ok(a) => {
                self.ctx
                    .metrics
                    .smtp_messages
                    .with_label_values(&["accepted", "submission"])
                    .inc();
                Reply::new(250, "2.0.0", format!("OK queued as {}", a.message.id))
            }
            Err(e) => {
                self.ctx
                    .metrics
                    .smtp_messages
                    .with_label_values(&["rejected", "submission"])
                    .inc();
                match e {
                    Q::TooLarge { .. } => Reply::new(552, "5.3.4", e.to_string()),
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
