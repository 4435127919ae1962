//! One SMTP session: an explicit state machine over any byte stream.
//!
//! Input is processed as it arrives and replies are queued, then written when the input
//! buffer is exhausted, so pipelined commands (RFC 2920) get their replies in one write.

mod request;
mod submission;
mod transaction;

pub(super) use super::txn::Txn;

use super::auth::Sasl;
use super::data::{has_bare_newline, DataReader};
use super::line::{CommandLines, Line};
use super::presence::Presence;
use super::reply::{self, Reply};
use super::{Inbound, Mode};
use crate::identity::Agent;
use request::{owned, parse_error};
use smtp_proto::request::receiver::{BdatReceiver, RequestReceiver};
use smtp_proto::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Where the session is in the protocol.
enum State {
    /// Reading commands.
    Command(RequestReceiver),
    /// Inside DATA, until `<CRLF>.<CRLF>` (and nothing else: see `data`).
    Data(DataReader),
    /// Inside a BDAT chunk.
    Bdat(BdatReceiver),
    /// Reading a SASL response line (submission AUTH), bytes so far.
    Auth(Sasl, zeroize::Zeroizing<Vec<u8>>),
    /// QUIT received or the session must end.
    Closed,
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
    /// The login it used, re-checked at every MAIL so a revocation ends the session.
    credentials: Option<submission::Credentials>,
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
    /// How the listener sees this session (idle or busy) and can shed it at its cap.
    presence: Arc<Presence>,
    /// The reply being made ends the session (a login revoked since AUTH).
    end_after_reply: bool,
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
            credentials: None,
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
            presence: Arc::new(Presence::default()),
            end_after_reply: false,
        }
    }

    /// Shares the listener's view of this connection.
    pub(super) fn with_presence(mut self, presence: Arc<Presence>) -> Self {
        self.presence = presence;
        self
    }

    /// Writes the queued replies. Bounded by the command timeout: a client that pipelines
    /// commands but never reads its replies would otherwise park the session in this write
    /// forever, holding a connection slot while looking busy (never shed as idle).
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let write = async {
                self.stream.write_all(&self.out).await?;
                self.stream.flush().await
            };
            tokio::time::timeout(self.ctx.limits.command_timeout, write)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
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
                // A clean close (TLS close_notify, then FIN), bounded for a peer that
                // never reads.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(5), self.stream.shutdown())
                        .await;
                return Ended::Done;
            }
            let timeout = match self.state {
                State::Command(_) | State::Auth(..) => self.ctx.limits.command_timeout,
                _ => {
                    let started = self.txn.as_ref().and_then(|t| t.body_started);
                    let left = started.map_or(self.ctx.limits.data_deadline, |t| {
                        self.ctx.limits.data_deadline.saturating_sub(t.elapsed())
                    });
                    self.ctx.limits.data_timeout.min(left)
                }
            };
            // Idle = waiting for a command with no transaction open: what the listener may
            // shed at its connection cap. Waiting for a command inside a transaction becomes
            // sheddable after a grace period; a client mid-message is busy.
            match (&self.state, &self.txn) {
                (State::Command(_), None) => self.presence.idle(),
                (State::Command(_), Some(_)) => self.presence.quiet_in_transaction(),
                _ => self.presence.busy(),
            }
            let presence = self.presence.clone();
            let n = tokio::select! {
                _ = presence.evicted() => {
                    self.reply(Reply::new(421, "4.7.0", format!("{hostname} Too many connections; closing idle session")));
                    let _ = self.flush().await;
                    return Ended::Done;
                }
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
            self.presence.busy();
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
                let done = self.take_body(|sink, bytes| rx.ingest(bytes, sink), bytes);
                if rx.saw_bare_newline() {
                    if let Some(t) = self.txn.as_mut() {
                        t.bare_newline = true;
                    }
                }
                if done {
                    let r = self.end_of_message().await;
                    self.reply(r);
                    self.after_message()
                } else {
                    State::Data(rx)
                }
            }
            State::Bdat(mut rx) => {
                let before = bytes.as_slice();
                let done = self.take_body(|sink, bytes| rx.ingest(bytes, sink), bytes);
                if let Some(t) = self.txn.as_mut() {
                    let chunk = &before[..before.len() - bytes.as_slice().len()];
                    if has_bare_newline(chunk, &mut t.bdat_prev) {
                        t.bare_newline = true;
                    }
                }
                if !done {
                    State::Bdat(rx)
                } else if self.txn.is_none() {
                    // The chunk of a refused BDAT: read and dropped, already answered.
                    State::Command(RequestReceiver::default())
                } else if rx.is_last {
                    let r = self.end_of_message().await;
                    self.reply(r);
                    self.after_message()
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

    /// The state after a message's reply: commands again, or closed when the reply ended
    /// the session (a login revoked while the message arrived).
    fn after_message(&mut self) -> State {
        if std::mem::take(&mut self.end_after_reply) {
            State::Closed
        } else {
            State::Command(RequestReceiver::default())
        }
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
        // At most one read buffer's worth passes through here at a time; the body itself
        // accumulates in the spool (memory up to the threshold, then a file).
        let mut chunk = Vec::new();
        let before = bytes.as_slice();
        let done = ingest(&mut chunk, bytes);
        if let Some(t) = self.txn.as_mut() {
            let consumed = &before[..before.len() - bytes.as_slice().len()];
            let refused = t.too_big || t.lines.overlong();
            if t.lines.feed(consumed, max_line) || refused {
                t.body.discard();
            } else if t.body.len() + chunk.len() > max {
                t.too_big = true;
                t.body.discard();
            } else {
                t.body.push(&chunk);
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
                if std::mem::take(&mut self.end_after_reply) {
                    return State::Closed;
                }
            }
            Request::Rcpt { to } => {
                let r = self.rcpt(&to.address);
                self.reply(r);
            }
            Request::Data => match self.ready_for_data() {
                Ok(()) if self.txn.as_ref().is_some_and(|t| t.chunked) => {
                    self.txn = None;
                    self.reply(reply::bad_sequence(
                        "DATA cannot follow BDAT; the transaction is reset",
                    ));
                }
                Ok(()) => {
                    self.start_body(false);
                    self.reply(Reply::new(
                        354,
                        "",
                        "Start mail input; end with <CRLF>.<CRLF>",
                    ));
                    return State::Data(DataReader::default());
                }
                Err(r) => self.reply(r),
            },
            Request::Bdat {
                chunk_size,
                is_last,
            } => match self.ready_for_data() {
                Ok(()) => {
                    self.start_body(true);
                    return State::Bdat(BdatReceiver::new(chunk_size, is_last));
                }
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
}
