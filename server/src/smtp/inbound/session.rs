//! The session: an explicit state enum over a generic stream, and the command dispatch.
//!
//! `State` says what the next input bytes are (a command line, message content, a SASL
//! response); where the client is in a transaction lives in `SessionData` (`helo`, `tx` and its
//! recipients), which is what sequence checks read. Each verb group is an `impl Session` block
//! in its own file. The stream is generic so STARTTLS is a type change (`starttls.rs`) and tests
//! drive sessions over in-memory pipes.
//!
//! Replies are appended to `output` and written when the session needs more input (or closes),
//! which is what PIPELINING (RFC 2920) asks: a batch of commands gets its replies in one write.

use std::net::SocketAddr;
use std::sync::Arc;

use smtp_proto::{Error as ParseError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::auth::SaslIn;
use super::backend::{AuthedUser, Backend, Recipient, Reply};
use super::data::{BdatIn, DataIn};
use super::input::{Input, Line};
use super::{Context, SmtpError};

/// What a session can run over: TCP, TLS over TCP, or an in-memory pipe in tests.
pub(crate) trait SessionStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> SessionStream for T {}

/// What the next input is.
pub(crate) enum State {
    /// Nothing sent yet: the 220 greeting is due. Absent after STARTTLS (RFC 3207: no new
    /// greeting; the client starts again with EHLO).
    Greeting,
    /// A command line.
    Command,
    /// Message content after `354`, up to `<CRLF>.<CRLF>`.
    Data(DataIn),
    /// A BDAT chunk of known length.
    Bdat(BdatIn),
    /// A SASL response line during AUTH.
    Auth(SaslIn),
}

/// What the session tells its driver after a step.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Continue,
    Close,
    /// `220 Ready to start TLS` was queued: the driver performs the handshake.
    StartTls,
}

/// Which timeout a read is under.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    /// Waiting for a command (or SASL response): shutdown interrupts it.
    Command,
    /// Inside message content: shutdown lets it finish (within the grace period).
    Data,
}

/// Facts about the connection that do not change with the protocol state.
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) id: String,
    pub(crate) tls: bool,
}

/// One mail transaction, from MAIL to the end of data.
pub(crate) struct Transaction<D> {
    pub(crate) mail_from: String,
    pub(crate) mail_data: D,
    pub(crate) rcpts: Vec<Recipient>,
    pub(crate) smtputf8: bool,
    pub(crate) eight_bit: bool,
    /// BDAT was used; DATA may no longer follow.
    pub(crate) chunked: bool,
    /// Content so far; never more than `max_message_size` (+1 transient byte during DATA).
    pub(crate) body: Vec<u8>,
}

/// What the client has told us. All of it is discarded on STARTTLS except the error count.
pub(crate) struct SessionData<D> {
    pub(crate) helo: Option<String>,
    pub(crate) authed: Option<AuthedUser>,
    pub(crate) tx: Option<Transaction<D>>,
    /// Refused commands so far; past `max_errors` the session ends with 421.
    pub(crate) errors: u32,
}

impl<D> Default for SessionData<D> {
    fn default() -> Self {
        Self {
            helo: None,
            authed: None,
            tx: None,
            errors: 0,
        }
    }
}

pub(crate) struct Session<S, B: Backend> {
    pub(crate) stream: S,
    pub(crate) ctx: Arc<Context<B>>,
    pub(crate) conn: Conn,
    pub(crate) shutdown: CancellationToken,
    pub(crate) state: State,
    pub(crate) data: SessionData<B::MailData>,
    pub(crate) input: Input,
    pub(crate) output: Vec<u8>,
}

/// Outcome of one read, computed before acting so the borrows of the read end first.
enum Got {
    Read(Result<Result<usize, std::io::Error>, tokio::time::error::Elapsed>),
    Shutdown,
}

impl<S: SessionStream, B: Backend> Session<S, B> {
    pub(crate) fn new(
        stream: S,
        ctx: Arc<Context<B>>,
        conn: Conn,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            stream,
            ctx,
            conn,
            shutdown,
            state: State::Greeting,
            data: SessionData::default(),
            input: Input::default(),
            output: Vec::new(),
        }
    }

    /// Runs until the session closes or asks for a TLS handshake; pending replies are written
    /// before returning.
    pub(crate) async fn run(&mut self) -> Result<Step, SmtpError> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Command);
            let step = match state {
                State::Greeting => {
                    let greeting = format!("220 {} ESMTP legate\r\n", self.ctx.cfg.hostname);
                    self.output.extend_from_slice(greeting.as_bytes());
                    Step::Continue
                }
                State::Command => self.step_command().await?,
                State::Data(din) => self.step_data(din).await?,
                State::Bdat(bin) => self.step_bdat(bin).await?,
                State::Auth(sasl) => self.step_auth(sasl).await?,
            };
            if step != Step::Continue {
                self.flush().await?;
                return Ok(step);
            }
        }
    }

    async fn step_command(&mut self) -> Result<Step, SmtpError> {
        match self.input.next_line(self.ctx.cfg.limits.max_line_length) {
            // Zeroized because an AUTH line may carry a credential.
            Line::Complete(line) => Ok(self.command(&Zeroizing::new(line)).await),
            Line::TooLong => Ok(self.refuse(Reply::new(500, (5, 5, 2), "Line too long"))),
            Line::Incomplete => self.fill(Wait::Command).await,
        }
    }

    async fn command(&mut self, line: &[u8]) -> Step {
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(err) => return self.refuse(parse_error_reply(err)),
        };
        tracing::trace!(command = request.name(), "smtp command");
        match request {
            Request::Ehlo { host } => self.handle_ehlo(host, true),
            Request::Helo { host } => self.handle_ehlo(host, false),
            Request::Mail { from } => self.handle_mail(from).await,
            Request::Rcpt { to } => self.handle_rcpt(to, line).await,
            Request::Data => self.handle_data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.handle_bdat(chunk_size, is_last),
            Request::Auth {
                mechanism,
                initial_response,
            } => {
                self.handle_auth(mechanism, Zeroizing::new(initial_response))
                    .await
            }
            Request::StartTls => self.handle_starttls(),
            Request::Rset => {
                self.data.tx = None;
                self.reply(Reply::new(250, (2, 0, 0), "OK"))
            }
            Request::Noop { .. } => self.reply(Reply::new(250, (2, 0, 0), "OK")),
            Request::Vrfy { .. } => self.reply(Reply::new(
                252,
                (2, 1, 5),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                (2, 0, 0),
                "legate SMTP, see RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP \
                 QUIT VRFY STARTTLS AUTH",
            )),
            Request::Quit => {
                let text = format!("{} closing connection", self.ctx.cfg.hostname);
                self.reply(Reply::new(221, (2, 0, 0), text));
                Step::Close
            }
            Request::Expn { .. }
            | Request::Lhlo { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => {
                self.refuse(Reply::new(502, (5, 5, 1), "Command not implemented"))
            }
        }
    }

    /// Queues a reply.
    pub(crate) fn reply(&mut self, reply: Reply) -> Step {
        reply.write_to(&mut self.output);
        Step::Continue
    }

    /// Queues a line without an enhanced code (RFC 2034 exempts 220 and EHLO; 334 and 354 are
    /// intermediate replies that carry none).
    pub(crate) fn reply_raw(&mut self, line: &str) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// Queues a refusal and counts it; too many end the session with 421 instead.
    pub(crate) fn refuse(&mut self, reply: Reply) -> Step {
        self.data.errors += 1;
        if self.data.errors > self.ctx.cfg.limits.max_errors {
            tracing::info!(errors = self.data.errors, "too many errors, closing");
            let text = format!(
                "{} Too many errors, closing connection",
                self.ctx.cfg.hostname
            );
            self.reply(Reply::new(421, (4, 7, 0), text));
            return Step::Close;
        }
        tracing::debug!(code = reply.code, text = %reply.text, "refused");
        self.reply(reply)
    }

    /// Writes queued replies, then reads more input under the given timeout.
    pub(crate) async fn fill(&mut self, wait: Wait) -> Result<Step, SmtpError> {
        self.flush().await?;
        let timeouts = &self.ctx.cfg.timeouts;
        let (limit, interruptible) = match wait {
            Wait::Command => (timeouts.command, true),
            Wait::Data => (timeouts.data_block, false),
        };
        let got = {
            let stream = &mut self.stream;
            let buf = self.input.prepare_read();
            let shutdown = &self.shutdown;
            tokio::select! {
                read = tokio::time::timeout(limit, stream.read_buf(buf)) => Got::Read(read),
                () = shutdown.cancelled(), if interruptible => Got::Shutdown,
            }
        };
        let hostname = &self.ctx.cfg.hostname;
        match got {
            Got::Shutdown => {
                let text = format!("{hostname} Server shutting down");
                self.reply(Reply::new(421, (4, 3, 0), text));
                Ok(Step::Close)
            }
            Got::Read(Err(_elapsed)) => {
                tracing::debug!("timeout");
                let text = format!("{hostname} Timeout, closing connection");
                self.reply(Reply::new(421, (4, 4, 2), text));
                Ok(Step::Close)
            }
            Got::Read(Ok(Ok(0))) => {
                // The peer closed; nobody is left to read replies.
                self.output.clear();
                Ok(Step::Close)
            }
            Got::Read(Ok(Ok(_))) => Ok(Step::Continue),
            Got::Read(Ok(Err(err))) => Err(err.into()),
        }
    }

    /// Writes queued replies. Bounded by the command timeout so a client that stops reading
    /// cannot hold the session forever.
    pub(crate) async fn flush(&mut self) -> Result<(), SmtpError> {
        if self.output.is_empty() {
            return Ok(());
        }
        let limit = self.ctx.cfg.timeouts.command;
        let stream = &mut self.stream;
        let output = &self.output;
        let write = async {
            stream.write_all(output).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limit, write).await {
            Ok(result) => result?,
            Err(_) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
        self.output.clear();
        Ok(())
    }
}

/// The reply for a line smtp-proto could not parse.
fn parse_error_reply(err: ParseError) -> Reply {
    match err {
        ParseError::UnknownCommand => Reply::new(500, (5, 5, 1), "Command unrecognized"),
        ParseError::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, (5, 1, 3), "Bad recipient address syntax")
        }
        ParseError::SyntaxError { syntax } => {
            Reply::new(501, (5, 5, 4), format!("Syntax: {syntax}"))
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, (5, 5, 4), format!("Invalid parameter {param}"))
        }
        ParseError::UnsupportedParameter { param } => {
            let shown: String = param.chars().take(64).collect();
            Reply::new(555, (5, 5, 4), format!("Unsupported parameter {shown}"))
        }
        ParseError::NeedsMoreData { .. }
        | ParseError::ResponseTooLong
        | ParseError::InvalidResponse { .. } => Reply::new(500, (5, 5, 2), "Syntax error"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;

    #[test]
    fn parse_errors_map_to_documented_codes() {
        let codes = |e| {
            let r = parse_error_reply(e);
            (r.code, r.enhanced)
        };
        assert_eq!(codes(ParseError::UnknownCommand), (500, (5, 5, 1)));
        assert_eq!(codes(ParseError::InvalidRecipientAddress), (501, (5, 1, 3)));
        assert_eq!(
            codes(ParseError::UnsupportedParameter { param: "X".into() }),
            (555, (5, 5, 4))
        );
    }

    #[tokio::test]
    async fn greeting_misc_verbs_and_quit() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("NOOP", "250 2.0.0").await;
        c.cmd("VRFY alice", "252 2.1.5").await;
        c.cmd("EXPN list", "502 5.5.1").await;
        c.cmd("HELP", "214 2.0.0").await;
        c.cmd("RSET", "250 2.0.0").await;
        c.cmd("FOO bar", "500 5.5.1").await;
        c.cmd("QUIT", "221 2.0.0").await;
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn too_many_errors_closes_with_421() {
        let mut opts = Opts::mx();
        opts.cfg.limits.max_errors = 3;
        let (mut c, _b) = start(opts).await;
        for _ in 0..3 {
            c.cmd("BOGUS", "500 5.5.1").await;
        }
        c.cmd("BOGUS", "421 4.7.0").await;
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn overlong_line_is_500_5_5_2_and_session_continues() {
        let mut opts = Opts::mx();
        opts.cfg.limits.max_line_length = 64;
        let (mut c, _b) = start(opts).await;
        let long = format!("NOOP {}", "x".repeat(200));
        c.cmd(&long, "500 5.5.2").await;
        c.cmd("NOOP", "250").await;
    }

    #[tokio::test]
    async fn command_timeout_sends_421() {
        let mut opts = Opts::mx();
        opts.cfg.timeouts.command = std::time::Duration::from_millis(100);
        let (mut c, _b) = start(opts).await;
        c.cmd("EHLO client.test", "250").await;
        let reply = c.read_reply().await;
        assert!(reply.starts_with("421 4.4.2"), "{reply}");
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn shutdown_tells_idle_sessions_421() {
        let opts = Opts::mx();
        let token = opts.shutdown.clone();
        let (mut c, _b) = start(opts).await;
        c.cmd("EHLO client.test", "250").await;
        token.cancel();
        let reply = c.read_reply().await;
        assert!(reply.starts_with("421 4.3.0"), "{reply}");
        c.expect_closed().await;
    }

    #[tokio::test]
    async fn garbage_never_panics() {
        // A small deterministic generator: no extra crates, reproducible failures.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let words: [&[u8]; 12] = [
            b"MAIL FROM:<",
            b"RCPT TO:<",
            b"BDAT ",
            b"DATA",
            b"AUTH PLAIN ",
            b"\r\n",
            b"@",
            b">",
            b"\"",
            b"STARTTLS",
            b" LAST",
            b"EHLO ",
        ];
        for _ in 0..40 {
            let mut opts = Opts::submission_tls();
            opts.cfg.limits.max_errors = 1000;
            opts.cfg.timeouts.command = std::time::Duration::from_millis(50);
            opts.cfg.timeouts.data_block = std::time::Duration::from_millis(50);
            let (mut c, _b) = start(opts).await;
            let mut junk = Vec::new();
            for _ in 0..200 {
                let r = next();
                if r % 3 == 0 {
                    junk.extend_from_slice(words[(r >> 8) as usize % words.len()]);
                } else {
                    junk.push((r >> 16) as u8);
                }
            }
            c.send_bytes(&junk).await;
            // The session must end (timeout or 421), not panic: the task finishes cleanly.
            c.drain_until_closed().await;
            c.assert_task_ok().await;
        }
    }
}
