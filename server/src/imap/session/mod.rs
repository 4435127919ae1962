//! One IMAP session: the state machine and the command loop. Each command group lives in
//! its own file; every one of them acts through `MailboxService` (scopes, audit, one
//! transaction per change) and reports through [`Reply`].

mod auth;
mod fetch;
mod fetch_items;
mod folders;
mod idle;
mod reply;
mod search;
mod search_keys;
mod selected;
mod seqset;
mod write;

pub(super) use reply::Reply;

use super::conn::{Conn, ConnError, Incoming, Io};
use super::limits::AgentSlot;
use super::Imap;
use crate::identity::Actor;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;
use selected::Selected;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// Protocol errors (BAD) a session may make before it is dropped.
const MAX_ERRORS: u32 = 50;

/// How a session ended: done, or continuing over TLS (STARTTLS changes the stream; the
/// caller runs a fresh session on the encrypted one).
pub(super) enum Ended {
    Done,
    StartTls(Box<dyn Io>, tokio_rustls::TlsAcceptor),
}

/// Who logged in, and the credentials re-checked before every command so that a revoked
/// key or agent ends the session at once.
pub(super) struct Authed {
    pub actor: Actor,
    pub agent: String,
    login: String,
    key: Zeroizing<String>,
    _slot: AgentSlot,
}

/// RFC 9051 §3: the connection's state.
pub(super) enum State {
    NotAuthenticated,
    Authenticated(Box<Authed>),
    Selected(Box<Authed>, Box<Selected>),
    Logout,
}

/// What the command loop does after a command.
pub(super) enum Flow {
    Continue,
    Logout,
    StartTls,
}

/// Extensions the client turned on with ENABLE (or by using them).
#[derive(Default, Clone, Copy)]
pub(super) struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
    pub rev2: bool,
}

pub(super) struct Session {
    ctx: Arc<Imap>,
    conn: Conn,
    peer: SocketAddr,
    id: String,
    secure: bool,
    /// STARTTLS, while the session is in clear text and a certificate exists.
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: State,
    enabled: Enabled,
    errors: u32,
    started: Instant,
    /// Options of the current command the codec does not parse (`extended`).
    ext: super::extended::Extended,
    /// The current command's tag (ESEARCH names it).
    current_tag: Option<String>,
    /// Failed LOGIN/AUTHENTICATE attempts on this connection: past a few it is closed, so
    /// one connection cannot keep guessing (the limiters count across connections).
    failed_logins: u32,
}

impl Session {
    pub(super) fn new(
        io: Box<dyn Io>,
        ctx: Arc<Imap>,
        peer: SocketAddr,
        secure: bool,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Session {
        let ceiling = u32::try_from(ctx.config.max_append_bytes).unwrap_or(u32::MAX);
        // Literals before login: `imap.pre_auth_literal_bytes`; after it the APPEND limit.
        let conn = Conn::new(
            io,
            ctx.config.max_line_bytes,
            ceiling,
            ctx.config.pre_auth_literal_bytes.min(ceiling),
            std::time::Duration::from_secs(ctx.config.write_timeout_secs),
        );
        Session {
            ctx,
            conn,
            peer,
            id: crate::util::new_id("imap"),
            secure,
            tls,
            state: State::NotAuthenticated,
            enabled: Enabled::default(),
            errors: 0,
            started: Instant::now(),
            ext: Default::default(),
            current_tag: None,
            failed_logins: 0,
        }
    }

    fn authed(&self) -> Option<&Authed> {
        match &self.state {
            State::Authenticated(a) | State::Selected(a, _) => Some(a),
            _ => None,
        }
    }

    /// Plain-text logins are refused until TLS, unless the operator said otherwise.
    fn login_allowed(&self) -> bool {
        self.secure || self.ctx.config.danger_allow_plaintext_login
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken, greet: bool) -> Ended {
        if greet {
            let caps = self.capabilities();
            let text = format!("{} IMAP ready", self.ctx.hostname);
            if let Ok(s) = Status::ok(None, Some(Code::Capability(caps)), text) {
                self.conn.send(&Response::Status(s));
            }
        }
        let ended = loop {
            let timeout = match self.state {
                State::NotAuthenticated => {
                    let limit = Duration::from_secs(self.ctx.config.pre_auth_timeout_secs);
                    limit.saturating_sub(self.started.elapsed())
                }
                _ => Duration::from_secs(self.ctx.config.idle_timeout_secs),
            };
            let next = tokio::select! {
                r = self.conn.next_message(timeout) => r,
                _ = shutdown.cancelled() => {
                    self.bye(None, "Server shutting down");
                    break Ended::Done;
                }
            };
            let flow = match next {
                Ok(Incoming::Message) => self.one_command().await,
                Ok(Incoming::TooBig(tag)) => {
                    let max = self.ctx.config.max_append_bytes;
                    self.tagged_or_bye(
                        tag,
                        Reply::no(format!("Literal too large (the limit is {max} bytes)"))
                            .code(Code::TooBig),
                    );
                    Flow::Continue
                }
                Err(ConnError::TimedOut) => {
                    self.bye(None, "Autologout; idle for too long");
                    break Ended::Done;
                }
                Err(ConnError::LineTooLong(n)) => {
                    self.bye(None, &format!("Command line longer than {n} bytes"));
                    break Ended::Done;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "connection ended");
                    break Ended::Done;
                }
            };
            if self.failed_logins >= self.ctx.config.max_failed_logins_per_connection {
                self.bye(None, "Too many failed logins");
                break Ended::Done;
            }
            if self.errors >= MAX_ERRORS {
                self.bye(None, "Too many errors");
                break Ended::Done;
            }
            match flow {
                Flow::Continue => {}
                Flow::Logout => break Ended::Done,
                Flow::StartTls => {
                    if self.conn.flush().await.is_err() {
                        break Ended::Done;
                    }
                    let Some(acceptor) = self.tls.take() else {
                        break Ended::Done;
                    };
                    self.count_bytes();
                    return Ended::StartTls(self.conn.into_io(), acceptor);
                }
            }
            if matches!(self.state, State::Logout) {
                break Ended::Done;
            }
        };
        self.conn.finish().await;
        self.count_bytes();
        ended
    }

    fn count_bytes(&mut self) {
        let m = &self.ctx.metrics.imap_bytes;
        m.with_label_values(&["in"]).inc_by(self.conn.bytes_in);
        m.with_label_values(&["out"]).inc_by(self.conn.bytes_out);
        self.conn.bytes_in = 0;
        self.conn.bytes_out = 0;
    }

    /// Decodes and runs the message the connection holds.
    async fn one_command(&mut self) -> Flow {
        let cmd = match super::extended::rewrite(self.conn.frag.message_bytes()) {
            Some((bytes, ext)) => {
                use imap_codec::decode::Decoder;
                match CommandCodec::default().decode(&bytes) {
                    Ok((b"", c)) => {
                        self.ext = ext;
                        c.into_static()
                    }
                    _ => return self.undecodable_text(super::extended::diagnose(&bytes)),
                }
            }
            None => {
                let decoded = self
                    .conn
                    .frag
                    .decode_message(&CommandCodec::default())
                    .map(IntoStatic::into_static)
                    .map_err(|e| self.why_undecodable(e));
                match decoded {
                    Ok(c) => c,
                    Err(why) => return self.undecodable_text(why),
                }
            }
        };
        let name = cmd.body.name();
        let tag = cmd.tag.clone();
        self.current_tag = Some(tag.inner().to_string());
        // Every command of an authenticated session first proves the login still holds.
        if self.authed().is_some() {
            if let Err(flow) = self.recheck().await {
                return flow;
            }
        }
        // RFC 9051 §7.5.1: no EXPUNGE while answering a command that numbers messages by
        // sequence (FETCH, STORE, SEARCH, COPY, MOVE without UID): the client's numbers
        // must stay right until it asks in a way that allows renumbering.
        let expunge_ok = !matches!(
            &cmd.body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
                | CommandBody::Copy { uid: false, .. }
                | CommandBody::Move { uid: false, .. }
        );
        let (reply, flow) = self.dispatch(cmd).await;
        // What others changed meanwhile, before the tagged answer, after any command.
        if matches!(flow, Flow::Continue) {
            self.sync_if_rung(expunge_ok).await;
        }
        self.ctx
            .metrics
            .imap_commands
            .with_label_values(&[name, reply.status_label()])
            .inc();
        if reply.is_bad() {
            self.errors += 1;
        }
        self.finish(tag, reply);
        flow
    }

    /// The session's state after a command, then its tagged answer.
    fn finish(&mut self, tag: Tag<'static>, reply: Reply) {
        if let Some(s) = reply.into_status(Some(tag)) {
            self.conn.send(&Response::Status(s));
        }
    }

    fn why_undecodable(
        &self,
        e: imap_codec::fragmentizer::DecodeMessageError<'_, CommandCodec>,
    ) -> String {
        use imap_codec::decode::CommandDecodeError;
        use imap_codec::fragmentizer::DecodeMessageError as D;
        match e {
            D::DecodingFailure(CommandDecodeError::Failed) | D::DecodingRemainder { .. } => {
                super::extended::diagnose(self.conn.frag.message_bytes())
            }
            D::DecodingFailure(_) => "Incomplete command".to_string(),
            D::MessageTooLong { .. } => "Command too long".to_string(),
            D::MessagePoisoned { .. } => "Command refused".to_string(),
        }
    }

    fn undecodable_text(&mut self, why: String) -> Flow {
        self.errors += 1;
        let tag = self.conn.frag.decode_tag().map(IntoStatic::into_static);
        self.ctx
            .metrics
            .imap_commands
            .with_label_values(&["UNPARSED", "bad"])
            .inc();
        self.tagged_or_bye_bad(tag, why);
        Flow::Continue
    }

    fn tagged_or_bye(&mut self, tag: Option<Tag<'static>>, reply: Reply) {
        match tag {
            Some(t) => self.finish(t, reply),
            None => {
                if let Some(s) = reply.into_untagged() {
                    self.conn.send(&Response::Status(s));
                }
            }
        }
    }

    fn tagged_or_bye_bad(&mut self, tag: Option<Tag<'static>>, why: String) {
        self.tagged_or_bye(tag, Reply::bad(why));
    }

    fn bye(&mut self, code: Option<Code<'static>>, text: &str) {
        if let Ok(s) = Status::bye(code, text.to_string()) {
            self.conn.send(&Response::Status(s));
        }
        self.state = State::Logout;
    }

    fn data(&mut self, d: Data<'_>) {
        self.conn.send(&Response::Data(d));
    }

    /// Re-validates the login (key, agent, ancestors, `mail:read`). A revoked one gets
    /// `BYE` before the command runs.
    async fn recheck(&mut self) -> Result<(), Flow> {
        let Some(a) = self.authed() else {
            return Ok(());
        };
        let peer = self.peer.ip().to_string();
        let r = self
            .ctx
            .identity
            .login(&a.login, &a.key, crate::identity::Scope::MailRead, &peer);
        match r {
            Ok(actor) => {
                match &mut self.state {
                    State::Authenticated(a) | State::Selected(a, _) => a.actor = actor,
                    _ => {}
                }
                Ok(())
            }
            Err(crate::identity::IdentityError::Unauthorized(_))
            | Err(crate::identity::IdentityError::Denied(_)) => {
                tracing::info!("login revoked; ending the IMAP session");
                self.bye(None, "Your credentials are no longer valid");
                Err(Flow::Logout)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-check an IMAP login");
                self.bye(
                    Some(Code::Other(
                        imap_codec::imap_types::response::CodeOther::unvalidated(
                            b"UNAVAILABLE".as_slice(),
                        ),
                    )),
                    "Temporary failure; try again later",
                );
                Err(Flow::Logout)
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command<'static>) -> (Reply, Flow) {
        use CommandBody as C;
        let authed = self.authed().is_some();
        let selected = matches!(self.state, State::Selected(..));
        let tag = cmd.tag;
        let r = match cmd.body {
            C::Capability => {
                let caps = self.capabilities();
                self.data(Data::Capability(caps));
                Reply::ok("CAPABILITY completed")
            }
            C::Noop => {
                self.sync(true).await;
                Reply::ok("NOOP completed")
            }
            C::Logout => {
                self.bye(None, "Logging out");
                return (Reply::ok("LOGOUT completed"), Flow::Logout);
            }
            C::Id { .. } => {
                self.id_response();
                Reply::ok("ID completed")
            }
            C::StartTLS => {
                if authed || self.secure || self.tls.is_none() {
                    Reply::bad("STARTTLS is not available now")
                } else {
                    self.finish(tag, Reply::ok("Begin TLS negotiation now"));
                    return (Reply::none(), Flow::StartTls);
                }
            }
            C::Login { username, password } if !authed => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = Zeroizing::new(
                    String::from_utf8_lossy(password.declassify().as_ref()).into_owned(),
                );
                self.login(user, pass).await
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } if !authed => {
                let ir = initial_response.map(|s| Zeroizing::new(s.declassify().to_vec()));
                self.authenticate(&tag, mechanism, ir).await
            }
            C::Login { .. } | C::Authenticate { .. } => Reply::bad("Already authenticated"),
            _ if !authed => Reply::bad("Log in first"),
            C::Enable { capabilities } => self.enable(capabilities),
            C::Select {
                mailbox,
                parameters,
            } => self.select(&tag, mailbox, parameters, false).await,
            C::Examine {
                mailbox,
                parameters,
            } => self.select(&tag, mailbox, parameters, true).await,
            C::Create { mailbox } => self.create(mailbox).await,
            C::Delete { mailbox } => self.delete(mailbox).await,
            C::Rename { from, to } => self.rename(from, to).await,
            C::Subscribe { mailbox } => self.subscribe(mailbox, true),
            C::Unsubscribe { mailbox } => self.subscribe(mailbox, false),
            C::List {
                reference,
                mailbox_wildcard,
            } => self.list(reference, mailbox_wildcard, false).await,
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(reference, mailbox_wildcard, true).await,
            C::Namespace => {
                self.namespace();
                Reply::ok("NAMESPACE completed")
            }
            C::Status {
                mailbox,
                item_names,
            } => self.status(mailbox, &item_names).await,
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(mailbox, flags, date, message).await,
            C::Idle => return self.idle(tag).await,
            C::GetQuota { root } => self.get_quota(root.as_ref()),
            C::GetQuotaRoot { mailbox } => self.get_quota_root(mailbox).await,
            C::SetQuota { .. } => Reply::no("Quotas are set by the operator").code(cannot()),
            C::Unselect if selected => self.close(false).await,
            C::Close if selected => self.close(true).await,
            _ if !selected => Reply::bad("Select a mailbox first"),
            C::Check => {
                self.sync(true).await;
                Reply::ok("CHECK completed")
            }
            C::Expunge => self.expunge(None).await,
            C::ExpungeUid { sequence_set } => self.expunge(Some(sequence_set)).await,
            C::Search {
                charset,
                criteria,
                uid,
            } => self.search(charset, criteria, uid, None).await,
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.fetch(sequence_set, macro_or_item_names, uid, modifiers)
                    .await
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                self.store(sequence_set, kind, response, flags, uid, modifiers)
                    .await
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.transfer(sequence_set, mailbox, uid, false).await,
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.transfer(sequence_set, mailbox, uid, true).await,
            _ => Reply::bad("Command not supported"),
        };
        (r, Flow::Continue)
    }
}

/// `NO [CANNOT]`: the operation is not possible here (RFC 5530).
pub(super) fn cannot() -> Code<'static> {
    other_code("CANNOT")
}

pub(super) fn other_code(name: &'static str) -> Code<'static> {
    Code::Other(imap_codec::imap_types::response::CodeOther::unvalidated(
        name.as_bytes(),
    ))
}
