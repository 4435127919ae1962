//! One SMTP session: an explicit state machine over any byte stream.
//!
//! Input is processed as it arrives and replies are queued, then written when the input
//! buffer is exhausted, so pipelined commands (RFC 2920) get their replies in one write.

mod request;
mod submission;

use super::auth::Sasl;
use super::line::{BodyLines, CommandLines, Line};
use super::reply::{self, Reply};
use super::{Inbound, Mode};
use crate::identity::envelope::{check_rcpt, Checked};
use crate::identity::Agent;
use crate::mailauth::{AuthStatus, SpfResult, SpfScope};
use request::{owned, parse_error};
use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, RequestReceiver};
use smtp_proto::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Where the session is in the protocol.
enum State {
    /// Reading commands.
    Command(RequestReceiver),
    /// Inside DATA, until `<CRLF>.<CRLF>`.
    Data(DataReceiver),
    /// Inside a BDAT chunk.
    Bdat(BdatReceiver),
    /// Reading a SASL response line (submission AUTH), bytes so far.
    Auth(Sasl, zeroize::Zeroizing<Vec<u8>>),
    /// QUIT received or the session must end.
    Closed,
}

/// An accepted recipient.
pub(super) struct Rcpt {
    pub address: String,
    pub agent: Agent,
    pub tag: Option<String>,
}

/// The transaction begun by MAIL.
pub(super) struct Txn {
    pub mail_from: String,
    pub spf: SpfResult,
    pub rcpts: Vec<Rcpt>,
    /// Submission: recipients anywhere, checked by the queue.
    pub submit_rcpts: Vec<String>,
    pub body: Vec<u8>,
    /// The message outgrew the size limit: keep reading to its end, then refuse.
    pub too_big: bool,
    /// A body line outgrew `max_line_length`: keep reading to its end, then refuse.
    pub lines: BodyLines,
}

/// How a session ended: done, or asking to continue over TLS (STARTTLS is a type change:
/// the caller wraps the stream and starts a fresh session with no state carried over).
pub enum Ended<S> {
    Done,
    StartTls(S, tokio_rustls::TlsAcceptor),
}

pub struct Session<S> {
    stream: S,
    ctx: Arc<Inbound>,
    mode: Mode,
    /// The agent that authenticated (submission only).
    authed: Option<Agent>,
    /// Offered as STARTTLS while the session is in clear text.
    tls: Option<tokio_rustls::TlsAcceptor>,
    secure: bool,
    upgrade: bool,
    peer: SocketAddr,
    id: String,
    state: State,
    helo: Option<String>,
    txn: Option<Txn>,
    out: Vec<u8>,
    errors: u32,
    /// Cuts command lines within `max_line_length` before smtp-proto parses them.
    lines: CommandLines,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// A clear-text session; `tls` enables STARTTLS.
    pub fn new(
        stream: S,
        ctx: Arc<Inbound>,
        peer: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Self {
        let ctx_line_max = ctx.limits.max_line_length;
        Self {
            stream,
            ctx,
            mode: Mode::Mx,
            authed: None,
            tls,
            secure: false,
            upgrade: false,
            peer,
            id: crate::util::new_id("smtp"),
            state: State::Command(RequestReceiver::default()),
            helo: None,
            txn: None,
            out: Vec::new(),
            errors: 0,
            lines: CommandLines::new(ctx_line_max),
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    fn reply(&mut self, r: Reply) {
        if !r.is_positive() && r.code != 354 {
            self.errors += 1;
        }
        r.write_to(&mut self.out);
    }

    /// A submission session (587 or 465): AUTH, then mail to anywhere as the agent.
    pub fn submission(mut self) -> Self {
        self.mode = Mode::Submission;
        self
    }

    /// Marks a session as running over TLS (after STARTTLS or on an implicit-TLS port).
    pub fn secured(mut self) -> Self {
        self.secure = true;
        self.tls = None;
        self
    }

    /// Runs the session to its end: QUIT, a timeout, too many errors, a dead peer,
    /// shutdown (`421 4.3.0`), or STARTTLS (returned to the caller to wrap the stream).
    /// `greet`: send the 220 banner (not after STARTTLS, RFC 3207 §4.2).
    pub async fn run(mut self, shutdown: CancellationToken, greet: bool) -> Ended<S> {
        let hostname = self.ctx.hostname.clone();
        if greet {
            self.out
                .extend_from_slice(format!("220 {hostname} ESMTP legate\r\n").as_bytes());
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if self.flush().await.is_err() {
                return Ended::Done;
            }
            if self.upgrade {
                // Bytes pipelined after STARTTLS were dropped with the buffer (RFC 3207 §5).
                return match self.tls.take() {
                    Some(acceptor) => Ended::StartTls(self.stream, acceptor),
                    None => Ended::Done,
                };
            }
            if matches!(self.state, State::Closed) {
                return Ended::Done;
            }
            let timeout = match self.state {
                State::Command(_) => self.ctx.limits.command_timeout,
                _ => self.ctx.limits.data_timeout,
            };
            let n = tokio::select! {
                r = tokio::time::timeout(timeout, self.stream.read(&mut buf)) => match r {
                    Ok(Ok(0)) | Ok(Err(_)) => return Ended::Done,
                    Ok(Ok(n)) => n,
                    Err(_) => {
                        self.reply(Reply::new(421, "4.4.2", format!("{hostname} Timeout, closing connection")));
                        let _ = self.flush().await;
                        return Ended::Done;
                    }
                },
                _ = shutdown.cancelled() => {
                    self.reply(Reply::new(421, "4.3.0", format!("{hostname} Server shutting down")));
                    let _ = self.flush().await;
                    return Ended::Done;
                }
            };
            let mut bytes = buf[..n].iter();
            while !bytes.as_slice().is_empty() && !matches!(self.state, State::Closed) {
                self.step(&mut bytes).await;
                if self.errors >= self.ctx.limits.max_errors {
                    self.reply(Reply::new(
                        421,
                        "4.7.0",
                        "Too many errors, closing connection",
                    ));
                    self.state = State::Closed;
                }
            }
        }
    }

    /// Consumes as much input as the current state can use.
    async fn step(&mut self, bytes: &mut std::slice::Iter<'_, u8>) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        self.state = match state {
            State::Command(mut rx) => match self.lines.next(bytes) {
                Line::Partial => State::Command(rx),
                Line::TooLong => {
                    self.reply(Reply::new(500, "5.5.2", "Line too long"));
                    State::Command(rx)
                }
                // Only whole lines reach the parser, so it never holds a partial one.
                Line::Whole(line) => match rx.ingest(&mut line.iter()).map(owned) {
                    Ok(req) => {
                        drop(rx);
                        self.command(req).await
                    }
                    Err(e) => {
                        self.reply(parse_error(&e));
                        State::Command(RequestReceiver::default())
                    }
                },
            },
            State::Data(mut rx) => {
                if self.take_body(|sink, bytes| rx.ingest(bytes, sink), bytes) {
                    let r = self.end_of_message().await;
                    self.reply(r);
                    State::Command(RequestReceiver::default())
                } else {
                    State::Data(rx)
                }
            }
            State::Bdat(mut rx) => {
                let done = self.take_body(|sink, bytes| rx.ingest(bytes, sink), bytes);
                if !done {
                    State::Bdat(rx)
                } else if self.txn.is_none() {
                    // The chunk of a refused BDAT: read and dropped, already answered.
                    State::Command(RequestReceiver::default())
                } else if rx.is_last {
                    let r = self.end_of_message().await;
                    self.reply(r);
                    State::Command(RequestReceiver::default())
                } else {
                    let size = self.txn.as_ref().map_or(0, |t| t.body.len());
                    self.reply(Reply::new(250, "2.0.0", format!("{size} bytes received")));
                    State::Command(RequestReceiver::default())
                }
            }
            State::Auth(sasl, line) => self.auth_line(sasl, line, bytes).await,
            State::Closed => State::Closed,
        };
    }

    /// Feeds message bytes into the transaction (or, without one, into nothing), enforcing
    /// the size limit without ever buffering past it. Returns whether the body is complete.
    fn take_body(
        &mut self,
        mut ingest: impl FnMut(&mut Vec<u8>, &mut std::slice::Iter<'_, u8>) -> bool,
        bytes: &mut std::slice::Iter<'_, u8>,
    ) -> bool {
        let max = self.ctx.limits.max_message_size;
        let max_line = self.ctx.limits.max_line_length;
        let mut scratch = Vec::new();
        let sink = match self.txn.as_mut() {
            Some(t) => &mut t.body,
            None => &mut scratch,
        };
        let before = bytes.as_slice();
        let done = ingest(sink, bytes);
        if let Some(t) = self.txn.as_mut() {
            let consumed = &before[..before.len() - bytes.as_slice().len()];
            if t.lines.feed(consumed, max_line) && !t.body.is_empty() {
                t.body = Vec::new();
            }
            if t.body.len() > max {
                t.too_big = true;
                t.body = Vec::new();
            }
        }
        done
    }

    async fn command(&mut self, req: Request<String>) -> State {
        let next = State::Command(RequestReceiver::default());
        match req {
            Request::Ehlo { host } => {
                self.helo = Some(host);
                self.txn = None;
                let h = &self.ctx.hostname;
                let size = self.ctx.limits.max_message_size;
                let starttls = if self.tls.is_some() {
                    "250-STARTTLS\r\n"
                } else {
                    ""
                };
                let auth = if self.mode == Mode::Submission && self.secure {
                    "250-AUTH PLAIN LOGIN\r\n"
                } else {
                    ""
                };
                self.out.extend_from_slice(
                    format!(
                        "250-{h} Hello {}\r\n250-PIPELINING\r\n250-SIZE {size}\r\n250-8BITMIME\r\n\
                         250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n{starttls}{auth}250 CHUNKING\r\n",
                        self.peer.ip()
                    )
                    .as_bytes(),
                );
            }
            Request::Helo { host } => {
                self.helo = Some(host);
                self.txn = None;
                let h = self.ctx.hostname.clone();
                self.out
                    .extend_from_slice(format!("250 {h}\r\n").as_bytes());
            }
            Request::Lhlo { .. } => self.reply(Reply::new(500, "5.5.1", "LHLO is for LMTP")),
            Request::Mail { from } => {
                let r = self.mail(from.address, from.size).await;
                self.reply(r);
            }
            Request::Rcpt { to } => {
                let r = self.rcpt(&to.address);
                self.reply(r);
            }
            Request::Data => match self.ready_for_data() {
                Ok(()) => {
                    self.reply(Reply::new(
                        354,
                        "",
                        "Start mail input; end with <CRLF>.<CRLF>",
                    ));
                    return State::Data(DataReceiver::new());
                }
                Err(r) => self.reply(r),
            },
            Request::Bdat {
                chunk_size,
                is_last,
            } => match self.ready_for_data() {
                Ok(()) => return State::Bdat(BdatReceiver::new(chunk_size, is_last)),
                Err(r) => {
                    // The chunk still arrives: read and drop it so the stream stays in sync.
                    self.reply(r);
                    self.txn = None;
                    return State::Bdat(BdatReceiver::new(chunk_size, is_last));
                }
            },
            Request::Rset => {
                self.txn = None;
                self.reply(reply::ok("Reset"));
            }
            Request::Noop { .. } => self.reply(reply::ok("OK")),
            Request::Quit => {
                let h = self.ctx.hostname.clone();
                self.reply(Reply::new(221, "2.0.0", format!("{h} Bye")));
                return State::Closed;
            }
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                "2.1.5",
                "Cannot VRFY; send mail and it will be delivered if the address exists",
            )),
            Request::Expn { .. } => self.reply(Reply::new(502, "5.5.1", "EXPN is not supported")),
            Request::Help { .. } => self.reply(Reply::new(214, "2.0.0", "See RFC 5321")),
            Request::StartTls => {
                if self.secure {
                    self.reply(reply::bad_sequence("Already running TLS"));
                } else if self.tls.is_none() {
                    self.reply(Reply::new(454, "4.7.0", "TLS not available"));
                } else {
                    self.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
                    self.upgrade = true;
                    return State::Closed;
                }
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth_start(mechanism, initial_response).await,
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.reply(Reply::new(502, "5.5.1", "Command not implemented"))
            }
        }
        next
    }

    async fn mail(&mut self, from: String, size: usize) -> Reply {
        let Some(helo) = self.helo.clone() else {
            return reply::bad_sequence("Send EHLO or HELO first");
        };
        if self.txn.is_some() {
            return reply::bad_sequence("Nested MAIL command");
        }
        if size > self.ctx.limits.max_message_size {
            return Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        if self.mode == Mode::Submission {
            let Some(agent) = &self.authed else {
                return Reply::new(530, "5.7.0", "Authentication required");
            };
            let me = agent.address();
            if !from.eq_ignore_ascii_case(&me) {
                return Reply::new(553, "5.7.1", format!("Sender address must be <{me}>"));
            }
            self.txn = Some(Txn {
                mail_from: me,
                spf: SpfResult {
                    result: AuthStatus::None,
                    scope: SpfScope::MailFrom,
                    domain: String::new(),
                    identity: from,
                    explanation: None,
                },
                rcpts: Vec::new(),
                submit_rcpts: Vec::new(),
                body: Vec::new(),
                too_big: false,
                lines: BodyLines::default(),
            });
            return Reply::new(250, "2.1.0", "Sender OK");
        }
        let spf = self
            .ctx
            .mailauth
            .check_spf_mail_from(self.peer.ip(), &helo, &self.ctx.hostname, &from)
            .await;
        self.ctx
            .metrics
            .auth_results
            .with_label_values(&["spf", spf.result.as_str()])
            .inc();
        self.txn = Some(Txn {
            mail_from: from,
            spf,
            rcpts: Vec::new(),
            submit_rcpts: Vec::new(),
            body: Vec::new(),
            too_big: false,
            lines: BodyLines::default(),
        });
        Reply::new(250, "2.1.0", "Sender OK")
    }

    fn rcpt(&mut self, to: &str) -> Reply {
        let max = self.ctx.limits.max_recipients;
        let Some(txn) = self.txn.as_mut() else {
            return reply::bad_sequence("Send MAIL first");
        };
        if txn.rcpts.len() + txn.submit_rcpts.len() >= max {
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        // A bare `<postmaster>` is the server domain's postmaster (RFC 5321 §4.5.1).
        let to = &self.ctx.identity.qualify_rcpt(to);
        let (local, domain, tag) = match check_rcpt(to) {
            Checked::Address { local, domain, tag } => (local, domain, tag),
            Checked::Refused(why) => {
                return Reply::new(554, "5.7.1", format!("Relay access denied: {why}"))
            }
        };
        if self.mode == Mode::Submission {
            return match self.ctx.queue.plan_recipient(to, 0) {
                Ok(r) => {
                    txn.submit_rcpts.push(r.address);
                    Reply::new(250, "2.1.5", "Recipient OK")
                }
                Err(e) if e.is_temporary() => Reply::new(451, "4.3.0", "Temporary lookup failure"),
                Err(e) => Reply::new(550, "5.1.1", e.to_string()),
            };
        }
        if !self.ctx.identity.is_local_domain(&domain) {
            return Reply::new(554, "5.7.1", "Relay access denied");
        }
        let address = format!("{local}@{domain}");
        // postmaster@ and abuse@ fall back to the operator mailbox (identity::roles).
        match self.ctx.identity.rcpt_agent(&address) {
            Ok(Some(agent)) if agent.is_active() => {
                if let Err(e) = self.ctx.mailbox.check_quota(&agent.id, 0) {
                    if !e.is_temporary() {
                        return Reply::new(552, "5.2.2", "Mailbox full");
                    }
                }
                txn.rcpts.push(super::session::Rcpt {
                    address,
                    agent,
                    tag,
                });
                Reply::new(250, "2.1.5", "Recipient OK")
            }
            Ok(_) => Reply::new(550, "5.1.1", "No such user here"),
            Err(_) => Reply::new(451, "4.3.0", "Temporary lookup failure"),
        }
    }

    fn ready_for_data(&self) -> Result<(), Reply> {
        match &self.txn {
            None => Err(reply::bad_sequence("Send MAIL first")),
            Some(t) if t.rcpts.is_empty() && t.submit_rcpts.is_empty() => {
                Err(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => Ok(()),
        }
    }

    async fn end_of_message(&mut self) -> Reply {
        let Some(txn) = self.txn.take() else {
            return reply::bad_sequence("No transaction");
        };
        if txn.too_big {
            self.ctx
                .metrics
                .smtp_messages
                .with_label_values(&["rejected", "size"])
                .inc();
            return Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        if txn.lines.overlong() {
            self.ctx
                .metrics
                .smtp_messages
                .with_label_values(&["rejected", "line_length"])
                .inc();
            return Reply::new(500, "5.5.2", "Line too long");
        }
        let helo = self.helo.clone().unwrap_or_default();
        if self.mode == Mode::Submission {
            return self.submit(&helo, txn).await;
        }
        super::deliver::deliver(&self.ctx, self.peer, &helo, &self.id, self.secure, txn).await
    }
}
