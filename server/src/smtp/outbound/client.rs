//! The client end of one SMTP connection: write commands, read replies, each bounded by the
//! RFC 5321 §4.5.3.2 timeout of the stage it belongs to. Generic over the stream so the
//! same code runs before and after STARTTLS.

use super::reply::{Reply, ReplyParser, WireError};
use super::SmtpTimeouts;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// QUIT is a courtesy: never wait long for its answer.
const QUIT_WAIT: Duration = Duration::from_secs(10);
/// Writes of the message body go out in blocks of this size, each with the data-block
/// timeout, so a server that reads slowly but steadily is not cut off.
const BODY_BLOCK: usize = 64 * 1024;
/// One socket read.
const READ_CHUNK: usize = 8 * 1024;

/// Any stream a session runs over: TCP, or TLS over it after STARTTLS. One type for both
/// lets a session be parked for reuse whichever it is.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
pub(crate) type BoxStream = Box<dyn Stream>;

/// Where the session is; it chooses the timeout and names the step in diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Mail,
    Rcpt,
    Data,
    Body,
    DataEnd,
    Quit,
}

impl Stage {
    fn timeout(self, t: &SmtpTimeouts) -> Duration {
        match self {
            Stage::Greeting => t.greeting,
            // RFC 5321 gives EHLO and STARTTLS no figure; they are commands like MAIL.
            Stage::Ehlo | Stage::Helo | Stage::StartTls | Stage::Mail => t.mail,
            Stage::Rcpt => t.rcpt,
            Stage::Data => t.data_init,
            Stage::Body => t.data_block,
            Stage::DataEnd => t.data_end,
            Stage::Quit => t.mail.min(QUIT_WAIT),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body => "message body",
            Stage::DataEnd => "end of data",
            Stage::Quit => "QUIT",
        }
    }
}

/// A connection-level failure: no usable reply came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("timeout waiting at {}", .0.name())]
    Timeout(Stage),
    #[error("connection closed at {}", .0.name())]
    Closed(Stage),
    #[error("I/O error at {stage}: {msg}", stage = .0.name(), msg = .1)]
    Io(Stage, String),
    #[error("at {stage}: {err}", stage = .0.name(), err = .1)]
    Wire(Stage, WireError),
    #[error("server sent data ahead of the TLS handshake")]
    Injected,
}

impl SessionError {
    /// The step the session was at; `None` for a failure outside the mail transaction.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            SessionError::Timeout(s) | SessionError::Closed(s) => Some(*s),
            SessionError::Io(s, _) | SessionError::Wire(s, _) => Some(*s),
            SessionError::Injected => None,
        }
    }
}

pub(crate) struct Client<S> {
    stream: S,
    parser: ReplyParser,
    timeouts: SmtpTimeouts,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Client<S> {
    pub fn new(stream: S, timeouts: SmtpTimeouts) -> Self {
        Self {
            stream,
            parser: ReplyParser::default(),
            timeouts,
        }
    }

    pub async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), SessionError> {
        let limit = stage.timeout(&self.timeouts);
        let blocks = bytes.chunks(BODY_BLOCK);
        for block in blocks {
            match tokio::time::timeout(limit, self.stream.write_all(block)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(SessionError::Io(stage, e.to_string())),
                Err(_) => return Err(SessionError::Timeout(stage)),
            }
        }
        match tokio::time::timeout(limit, self.stream.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SessionError::Io(stage, e.to_string())),
            Err(_) => Err(SessionError::Timeout(stage)),
        }
    }

    /// One reply, within the stage's timeout as a whole (a server dripping one byte at a
    /// time does not get to reset the clock).
    pub async fn read(&mut self, stage: Stage) -> Result<Reply, SessionError> {
        let limit = stage.timeout(&self.timeouts);
        tokio::time::timeout(limit, self.read_reply(stage))
            .await
            .unwrap_or(Err(SessionError::Timeout(stage)))
    }

    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, SessionError> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => return Err(SessionError::Wire(stage, e)),
            }
            let n = self
                .stream
                .read(&mut buf)
                .await
                .map_err(|e| SessionError::Io(stage, e.to_string()))?;
            if n == 0 {
                return Err(SessionError::Closed(stage));
            }
            self.parser.feed(buf.get(..n).unwrap_or_default());
        }
    }

    pub async fn command(&mut self, stage: Stage, line: &str) -> Result<Reply, SessionError> {
        self.write(stage, line.as_bytes()).await?;
        self.read(stage).await
    }

    /// Best effort: the transaction's outcome is already known.
    pub async fn quit(mut self) {
        if self.write(Stage::Quit, b"QUIT\r\n").await.is_ok() {
            let _ = self.read(Stage::Quit).await;
        }
        let limit = Stage::Quit.timeout(&self.timeouts);
        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
    }

    /// Whether the server sent bytes nobody asked for yet (a session with these must not be
    /// reused: they would be read as the next command's reply).
    pub fn has_pending(&self) -> bool {
        self.parser.has_pending()
    }

    /// The raw stream for the TLS handshake after `220` to STARTTLS. Bytes the server sent
    /// after that 220 would be read as if they came over TLS; refusing them closes the
    /// plaintext injection hole (the client side of CVE-2011-0411).
    pub fn into_stream(self) -> Result<S, SessionError> {
        if self.parser.has_pending() {
            return Err(SessionError::Injected);
        }
        Ok(self.stream)
    }
}
