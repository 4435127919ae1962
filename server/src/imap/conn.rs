//! One IMAP connection's bytes: cutting the input into messages (lines and literals, by
//! imap-codec's fragmentizer) within the configured limits, answering literal
//! announcements, and buffering output. Knows nothing of commands.
//!
//! Limits hold before bytes are kept: a line longer than `max_line_bytes` ends the session
//! (there is no safe place to resume within it); a literal larger than the session may
//! send is refused when announced — a synchronising one is never sent by the client, a
//! non-synchronising one (LITERAL+) is read and dropped as it arrives.

use imap_codec::encode::Encoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::core::{LiteralMode, Tag};
use imap_codec::imap_types::response::{CommandContinuationRequest, Response};
use imap_codec::imap_types::IntoStatic;
use imap_codec::ResponseCodec;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A byte stream in clear or in TLS, as one type, so a session survives STARTTLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Output is written out once it holds this much, even mid-command (a FETCH of many
/// messages streams instead of piling up).
const FLUSH_AT: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("the client closed the connection")]
    Closed,
    #[error("the client was silent too long")]
    TimedOut,
    #[error("a command line longer than {0} bytes")]
    LineTooLong(usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the next message of the input turned out to be.
pub enum Incoming {
    /// Complete: decode it with [`Conn::frag`] and the codec of the session's state.
    Message,
    /// A literal larger than allowed was announced: answer `tag NO [TOOBIG]` (the
    /// message is already skipped or being dropped).
    TooBig(Option<Tag<'static>>),
}

pub struct Conn {
    io: Box<dyn Io>,
    pub frag: Fragmentizer,
    out: Vec<u8>,
    max_line: usize,
    /// The largest literal (and so message) this session may send now.
    max_literal: u32,
    literal_ceiling: u32,
    write_timeout: Duration,
    /// Bytes of the message being read: its lines and literals together stay within one
    /// literal and a few lines, whatever the number of literals.
    msg_bytes: usize,
    /// Before login: the input given to the fragmentizer and not yet parsed, so a raise of
    /// the limits can move it to a new fragmentizer (None after login).
    shadow: Option<VecDeque<u8>>,
    /// Input bytes read since the last complete fragment, and how many the fragment
    /// being read may take (a line; a line after an accepted literal also its length).
    pending: usize,
    allowance: usize,
    /// A non-synchronising literal over the limit is being read only to be dropped.
    dropping: Option<Option<Tag<'static>>>,
    read_buf: Box<[u8]>,
    /// Output buffers already written, kept for the command that asked
    /// ([`Conn::keep_spares`]): a bulk FETCH builds dozens of batches of a few hundred KiB,
    /// and a fresh allocation of that size is fresh pages from the kernel, each faulted in
    /// on first write (a fifth of the server's CPU in a 5,000-message FETCH).
    spares: Option<Spares>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Written buffers kept at most while a command keeps spares: one per batch in flight.
const MAX_SPARES: usize = 3;

/// The buffers [`Conn::keep_spares`] keeps, and the largest capacity worth keeping (a
/// batch's: a buffer grown by one large item is freed, not held for the command).
struct Spares {
    bufs: Vec<Vec<u8>>,
    max_capacity: usize,
}

impl Conn {
    /// `literal_ceiling` is the most any literal may ever be on this connection (the
    /// APPEND limit); `max_literal` what it may be now (small before login). The
    /// fragmentizer's own cap follows `max_literal` until [`Conn::set_max_literal`] raises
    /// it, so bytes a client sends before login can never make it hold more than that.
    ///
    /// `write_timeout`: a client that does not take our output this long is gone; without
    /// it, a peer that pipelines commands and never reads would hold its session (and the
    /// buffered answers) forever.
    pub fn new(
        io: Box<dyn Io>,
        max_line: usize,
        literal_ceiling: u32,
        max_literal: u32,
        write_timeout: Duration,
    ) -> Conn {
        Conn {
            io,
            write_timeout,
            frag: Fragmentizer::new(message_cap(max_line, max_literal)),
            literal_ceiling,
            msg_bytes: 0,
            shadow: Some(VecDeque::new()),
            out: Vec::with_capacity(4096),
            spares: None,
            max_line,
            max_literal,
            pending: 0,
            allowance: max_line,
            dropping: None,
            read_buf: vec![0; READ_CHUNK].into_boxed_slice(),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Raises the literal limit (at login), from the next message on. The first raise
    /// replaces the fragmentizer with one capped for the new limit and hands it the input
    /// not yet parsed (commands pipelined after LOGIN), which the shadow kept.
    pub fn set_max_literal(&mut self, max_literal: u32) {
        self.max_literal = max_literal.min(self.literal_ceiling);
        if let Some(rest) = self.shadow.take() {
            let mut frag = Fragmentizer::new(message_cap(self.max_line, self.max_literal));
            let (a, b) = rest.as_slices();
            frag.enqueue_bytes(a);
            frag.enqueue_bytes(b);
            self.frag = frag;
        }
    }

    /// The stream, for STARTTLS. Input already read past the STARTTLS command is dropped
    /// with this connection: bytes pipelined before the handshake are an injection attempt
    /// (RFC 9051 §11.1), never commands of the TLS session.
    pub fn into_io(self) -> Box<dyn Io> {
        self.io
    }

    /// Reads until the next message is complete, within `timeout` of silence.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<Incoming, ConnError> {
        loop {
            while let Some(f) = self.frag.progress() {
                if let Some(sh) = self.shadow.as_mut() {
                    sh.drain(..f.range().len().min(sh.len()));
                }
                self.pending = 0;
                self.allowance = self.max_line;
                self.msg_bytes += f.range().len();
                if self.msg_bytes > message_cap(self.max_line, self.max_literal) as usize
                    && self.dropping.is_none()
                {
                    self.frag.poison_message();
                    self.dropping = Some(self.frag.decode_tag().map(IntoStatic::into_static));
                }
                if let FragmentInfo::Line {
                    announcement: Some(LiteralAnnouncement { mode, length }),
                    ..
                } = f
                {
                    if length > self.max_literal {
                        let tag = self.frag.decode_tag().map(IntoStatic::into_static);
                        match mode {
                            LiteralMode::Sync => {
                                // The client waits for our `+` and will not send it.
                                self.frag.skip_message();
                                self.msg_bytes = 0;
                                self.dropping = None;
                                return Ok(Incoming::TooBig(tag));
                            }
                            LiteralMode::NonSync => {
                                self.frag.poison_message();
                                self.dropping.get_or_insert(tag);
                                self.allowance = length as usize + self.max_line;
                            }
                        }
                    } else {
                        self.allowance = length as usize + self.max_line;
                        if mode == LiteralMode::Sync {
                            self.continuation("Ready for literal data")?;
                            self.flush().await?;
                        }
                    }
                }
                if self.frag.is_message_complete() {
                    self.msg_bytes = 0;
                    if let Some(tag) = self.dropping.take() {
                        return Ok(Incoming::TooBig(tag));
                    }
                    return Ok(Incoming::Message);
                }
            }
            if self.pending > self.allowance {
                return Err(ConnError::LineTooLong(self.max_line));
            }
            self.flush().await?;
            let n = tokio::time::timeout(timeout, self.io.read(&mut self.read_buf))
                .await
                .map_err(|_| ConnError::TimedOut)??;
            if n == 0 {
                return Err(ConnError::Closed);
            }
            self.bytes_in += n as u64;
            self.pending += n;
            if let Some(sh) = self.shadow.as_mut() {
                sh.extend(&self.read_buf[..n]);
            }
            self.frag.enqueue_bytes(&self.read_buf[..n]);
        }
    }

    pub fn send(&mut self, r: &Response<'_>) {
        let bytes = ResponseCodec::default().encode(r).dump();
        self.out.extend_from_slice(&bytes);
    }

    /// Bytes already encoded (a FETCH response built in the blocking pool).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes already encoded and owned: taken over without a copy when nothing is buffered.
    pub fn send_owned(&mut self, bytes: Vec<u8>) {
        if self.out.is_empty() {
            self.out = bytes;
        } else {
            self.out.extend_from_slice(&bytes);
        }
    }

    pub fn continuation(&mut self, text: &str) -> Result<(), ConnError> {
        let c = CommandContinuationRequest::basic(None, text)
            .map_err(|_| std::io::Error::other("bad continuation text"))?;
        self.send(&Response::CommandContinuationRequest(c));
        Ok(())
    }

    /// Writes out once enough output piled up.
    pub async fn maybe_flush(&mut self) -> Result<(), ConnError> {
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// From now until [`Conn::drop_spares`], written output buffers of at most
    /// `max_capacity` bytes are kept for [`Conn::take_spare`].
    pub fn keep_spares(&mut self, max_capacity: usize) {
        self.spares = Some(Spares {
            bufs: Vec::new(),
            max_capacity,
        });
    }

    /// A written output buffer to build the next response in (empty, its capacity kept).
    pub fn take_spare(&mut self) -> Option<Vec<u8>> {
        self.spares.as_mut()?.bufs.pop()
    }

    /// Ends [`Conn::keep_spares`]: the kept buffers are freed.
    pub fn drop_spares(&mut self) {
        self.spares = None;
    }

    pub async fn flush(&mut self) -> Result<(), ConnError> {
        if !self.out.is_empty() {
            tokio::time::timeout(self.write_timeout, self.io.write_all(&self.out))
                .await
                .map_err(|_| ConnError::TimedOut)??;
            self.bytes_out += self.out.len() as u64;
            self.out.clear();
            // A buffer grown by one large response (or a FETCH batch taken over by
            // `send_owned`) is not kept for the session's life, only for its command.
            if self.out.capacity() > FLUSH_AT {
                let big = std::mem::replace(&mut self.out, Vec::with_capacity(4096));
                if let Some(s) = self
                    .spares
                    .as_mut()
                    .filter(|s| s.bufs.len() < MAX_SPARES && big.capacity() <= s.max_capacity)
                {
                    s.bufs.push(big);
                }
            }
        }
        tokio::time::timeout(self.write_timeout, self.io.flush())
            .await
            .map_err(|_| ConnError::TimedOut)??;
        Ok(())
    }

    /// Ends the connection so the client reads the last words: output flushed, our side
    /// shut, then whatever the client still sends read and dropped for a moment (closing
    /// with unread input makes the kernel send a reset, which can destroy the BYE before
    /// the client reads it).
    pub async fn finish(&mut self) {
        if self.flush().await.is_err() {
            return;
        }
        let _ = self.io.shutdown().await;
        let drain = async {
            let mut left = 1024 * 1024usize;
            while left > 0 {
                match self.io.read(&mut self.read_buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }

    /// Streams `len` bytes from a blocking reader straight to the client (a large message
    /// body is never held whole), after what is buffered.
    pub async fn stream_from(
        &mut self,
        mut reader: crate::store::BlobReader,
        len: u64,
    ) -> Result<(), ConnError> {
        self.flush().await?;
        let mut left = len;
        while left > 0 {
            let want = left.min(64 * 1024) as usize;
            let (r, chunk) = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut buf = vec![0u8; want];
                let mut got = 0;
                while got < want {
                    match reader.read(&mut buf[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) => return (reader, Err(e)),
                    }
                }
                buf.truncate(got);
                (reader, Ok(buf))
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            reader = r;
            let chunk = chunk?;
            if chunk.is_empty() {
                // The blob is shorter than its record says: the literal length is already
                // promised, so the connection cannot continue.
                return Err(std::io::Error::other("message body shorter than its size").into());
            }
            tokio::time::timeout(self.write_timeout, self.io.write_all(&chunk))
                .await
                .map_err(|_| ConnError::TimedOut)??;
            self.bytes_out += chunk.len() as u64;
            left = left.saturating_sub(chunk.len() as u64);
        }
        Ok(())
    }
}

/// The fragmentizer's cap on one message: its literal and some lines around it.
fn message_cap(max_line: usize, max_literal: u32) -> u32 {
    max_literal.saturating_add(u32::try_from(max_line.saturating_mul(4)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_written_batch_buffers_for_the_command_only_up_to_its_cap() {
        let (ours, mut theirs) = tokio::io::duplex(8 << 20);
        let mut c = Conn::new(
            Box::new(ours),
            8192,
            1 << 20,
            1 << 20,
            Duration::from_secs(5),
        );
        let batch = |cap: usize| {
            let mut b = Vec::with_capacity(cap);
            b.resize(FLUSH_AT + 1, b'x');
            b
        };
        // Not keeping: a written buffer is freed.
        c.send_owned(batch(FLUSH_AT * 2));
        c.flush().await.unwrap();
        assert!(c.take_spare().is_none());
        c.keep_spares(FLUSH_AT * 4);
        // Within the cap: kept, handed back empty with its capacity.
        c.send_owned(batch(FLUSH_AT * 2));
        c.flush().await.unwrap();
        // Grown past the cap by one large item: freed.
        c.send_owned(batch(FLUSH_AT * 8));
        c.flush().await.unwrap();
        let spare = c.take_spare().unwrap();
        assert!(spare.is_empty() && spare.capacity() >= FLUSH_AT * 2);
        assert!(spare.capacity() < FLUSH_AT * 8);
        assert!(c.take_spare().is_none());
        // At most MAX_SPARES, and none after the command.
        for _ in 0..MAX_SPARES + 2 {
            c.send_owned(batch(FLUSH_AT * 2));
            c.flush().await.unwrap();
        }
        let mut n = 0;
        while c.take_spare().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_SPARES);
        c.send_owned(batch(FLUSH_AT * 2));
        c.flush().await.unwrap();
        c.drop_spares();
        assert!(c.take_spare().is_none());
        // Everything written reached the peer.
        drop(c);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut got)
            .await
            .unwrap();
        assert_eq!(got.len(), (FLUSH_AT + 1) * (MAX_SPARES + 6));
    }
}
