//! DATA and BDAT (CHUNKING, RFC 3030), and handing the finished transaction to the backend.
//!
//! The size cap holds while reading: DATA content is fed to smtp-proto's `DataReceiver` at
//! most a little past the cap; once over, the rest is read and thrown away with its
//! `DummyDataReceiver` (the client must still reach the end of data before it can hear our
//! 552). A BDAT chunk that would pass the cap is never buffered either: its bytes are skipped.

use smtp_proto::request::receiver::{BdatReceiver, DataReceiver, DummyDataReceiver};

use super::backend::{Backend, Envelope, Reply};
use super::session::{Session, SessionStream, State, Step, Wait};
use super::SmtpError;

/// DATA content in progress.
pub(crate) enum DataIn {
    Receiving(DataReceiver),
    /// Over the cap: read to the end, keep nothing.
    Discarding(DummyDataReceiver),
}

/// A BDAT chunk in progress.
pub(crate) enum BdatIn {
    Receiving {
        rx: BdatReceiver,
        size: usize,
    },
    /// A refused chunk's bytes still have to be read; then `reply` is sent.
    Skipping {
        left: usize,
        reply: Reply,
        count_error: bool,
    },
}

impl<S: SessionStream, B: Backend> Session<S, B> {
    /// The refusal for DATA/BDAT in the wrong place, if any.
    fn content_refusal(&self) -> Option<Reply> {
        match &self.data.tx {
            None => Some(Reply::new(503, (5, 5, 1), "Need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => {
                Some(Reply::new(554, (5, 5, 1), "No valid recipients"))
            }
            Some(_) => None,
        }
    }

    pub(super) fn handle_data(&mut self) -> Step {
        if let Some(reply) = self.content_refusal() {
            return self.refuse(reply);
        }
        if self.data.tx.as_ref().is_some_and(|tx| tx.chunked) {
            return self.refuse(Reply::new(503, (5, 5, 1), "DATA cannot follow BDAT"));
        }
        self.reply_raw("354 Start mail input; end with <CRLF>.<CRLF>");
        self.state = State::Data(DataIn::Receiving(DataReceiver::new()));
        Step::Continue
    }

    pub(super) fn handle_bdat(&mut self, size: usize, last: bool) -> Step {
        let max = self.ctx.cfg.limits.max_message_size;
        let skip = |reply, count_error| {
            State::Bdat(BdatIn::Skipping {
                left: size,
                reply,
                count_error,
            })
        };
        self.state = if let Some(reply) = self.content_refusal() {
            skip(reply, true)
        } else if let Some(tx) = self.data.tx.as_mut() {
            if tx.body.len().saturating_add(size) > max {
                self.data.tx = None;
                skip(Reply::too_big(), false)
            } else {
                tx.chunked = true;
                State::Bdat(BdatIn::Receiving {
                    rx: BdatReceiver::new(size, last),
                    size,
                })
            }
        } else {
            skip(Reply::new(503, (5, 5, 1), "Need MAIL command"), true)
        };
        Step::Continue
    }

    pub(super) async fn step_data(&mut self, din: DataIn) -> Result<Step, SmtpError> {
        let max = self.ctx.cfg.limits.max_message_size;
        let mut scratch = Vec::new();
        let body = match self.data.tx.as_mut() {
            Some(tx) => &mut tx.body,
            None => &mut scratch,
        };
        let pending = self.input.pending();
        let (din, done, consumed) = match din {
            DataIn::Receiving(mut rx) => {
                // Output never exceeds input, so this keeps the body within max + 2 bytes.
                let room = (max + 2).saturating_sub(body.len()).max(1);
                let slice = &pending[..pending.len().min(room)];
                let mut iter = slice.iter();
                let done = rx.ingest(&mut iter, body);
                let consumed = slice.len() - iter.as_slice().len();
                // One transient byte over is the CR of a final CRLF that `ingest` pops.
                if !done && body.len() > max + 1 {
                    *body = Vec::new();
                    (
                        DataIn::Discarding(DummyDataReceiver::new_data(&rx)),
                        false,
                        consumed,
                    )
                } else {
                    (DataIn::Receiving(rx), done, consumed)
                }
            }
            DataIn::Discarding(mut rx) => {
                let mut iter = pending.iter();
                let done = rx.ingest(&mut iter);
                let consumed = pending.len() - iter.as_slice().len();
                (DataIn::Discarding(rx), done, consumed)
            }
        };
        self.input.consume(consumed);
        if !done {
            self.state = State::Data(din);
            if self.input.pending().is_empty() {
                return self.fill(Wait::Data).await;
            }
            return Ok(Step::Continue);
        }
        let over = match din {
            DataIn::Discarding(_) => true,
            DataIn::Receiving(_) => self.data.tx.as_ref().is_some_and(|t| t.body.len() > max),
        };
        if over {
            self.data.tx = None;
            return Ok(self.reply(Reply::too_big()));
        }
        Ok(self.deliver().await)
    }

    pub(super) async fn step_bdat(&mut self, bin: BdatIn) -> Result<Step, SmtpError> {
        match bin {
            BdatIn::Receiving { mut rx, size } => {
                let mut scratch = Vec::new();
                let body = match self.data.tx.as_mut() {
                    Some(tx) => &mut tx.body,
                    None => &mut scratch,
                };
                let pending = self.input.pending();
                let mut iter = pending.iter();
                let done = rx.ingest(&mut iter, body);
                let consumed = pending.len() - iter.as_slice().len();
                self.input.consume(consumed);
                if !done {
                    self.state = State::Bdat(BdatIn::Receiving { rx, size });
                    return self.fill(Wait::Data).await;
                }
                if rx.is_last {
                    return Ok(self.deliver().await);
                }
                let text = format!("{size} octets received");
                Ok(self.reply(Reply::new(250, (2, 0, 0), text)))
            }
            BdatIn::Skipping {
                left,
                reply,
                count_error,
            } => {
                let n = left.min(self.input.pending().len());
                self.input.consume(n);
                let left = left - n;
                if left > 0 {
                    self.state = State::Bdat(BdatIn::Skipping {
                        left,
                        reply,
                        count_error,
                    });
                    return self.fill(Wait::Data).await;
                }
                Ok(if count_error {
                    self.refuse(reply)
                } else {
                    self.reply(reply)
                })
            }
        }
    }

    /// Hands the transaction to the backend and relays its reply. The transaction ends here
    /// whatever the outcome; the session's greeting and login remain.
    async fn deliver(&mut self) -> Step {
        let Some(tx) = self.data.tx.take() else {
            return self.refuse(Reply::new(503, (5, 5, 1), "Need MAIL command"));
        };
        let envelope = Envelope {
            session_id: self.conn.id.clone(),
            peer: self.conn.peer,
            helo: self.data.helo.clone().unwrap_or_default(),
            tls: self.conn.tls,
            authenticated: self.data.authed.clone(),
            mail_from: tx.mail_from,
            mail_data: tx.mail_data,
            rcpts: tx.rcpts,
            smtputf8: tx.smtputf8,
            eight_bit: tx.eight_bit,
            chunked: tx.chunked,
        };
        let ctx = self.ctx.clone();
        let limit = ctx.cfg.timeouts.data_termination;
        let reply = match tokio::time::timeout(limit, ctx.backend.deliver(envelope, tx.body)).await
        {
            Ok(reply) => reply,
            Err(_) => {
                tracing::warn!("backend did not finish delivery in time");
                Reply::temporary_failure()
            }
        };
        tracing::debug!(code = reply.code, "end of data");
        self.reply(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    async fn ready(opts: Opts) -> (Client, std::sync::Arc<FakeBackend>) {
        let (mut c, b) = start(opts).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("RCPT TO:<alice@a.test>", "250").await;
        (c, b)
    }

    #[tokio::test]
    async fn full_transaction_with_dot_stuffing() {
        let (mut c, b) = ready(Opts::mx()).await;
        c.cmd("DATA", "354").await;
        c.send("Subject: hi\r\n\r\n..leading dot\r\n..\r\nlast\r\n")
            .await;
        let r = c.cmd(".", "250 2.0.0").await;
        assert!(r.contains("accepted"), "{r}");
        let d = b.deliveries();
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].body,
            b"Subject: hi\r\n\r\n.leading dot\r\n.\r\nlast\r\n"
        );
        assert_eq!(d[0].mail_from, "x@b.test");
        assert_eq!(d[0].mail_data, "spf=pass");
        assert!(!d[0].tls && !d[0].chunked);
        // The session continues with a new transaction.
        c.cmd("MAIL FROM:<y@b.test>", "250").await;
    }

    #[tokio::test]
    async fn bare_lf_dot_does_not_end_data() {
        // SMTP smuggling: only <CRLF>.<CRLF> ends the content, so nothing after a "\n.\r\n"
        // or "\r.\r\n" can start a second, forged transaction.
        let (mut c, b) = ready(Opts::mx()).await;
        c.cmd("DATA", "354").await;
        c.send("a\n.\r\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n")
            .await;
        c.send("b\r.\r\nforged\r\n").await;
        c.cmd(".", "250 2.0.0").await;
        c.cmd("NOOP", "250").await;
        let d = b.deliveries();
        assert_eq!(d.len(), 1);
        assert!(d[0].body.windows(9).any(|w| w == b"MAIL FROM"));
        assert!(d[0].body.ends_with(b"forged\r\n"));
    }

    #[tokio::test]
    async fn pipelined_transaction_in_one_write() {
        let (mut c, b) = start(Opts::mx()).await;
        c.send(
            "EHLO client.test\r\nMAIL FROM:<x@b.test>\r\nRCPT TO:<alice@a.test>\r\n\
             RCPT TO:<nobody@a.test>\r\nRCPT TO:<bob@a.test>\r\nDATA\r\n",
        )
        .await;
        c.expect("250").await;
        c.expect("250 2.1.0").await;
        c.expect("250 2.1.5").await;
        c.expect("550 5.1.1").await;
        c.expect("250 2.1.5").await;
        c.expect("354").await;
        c.send("body\r\n.\r\nQUIT\r\n").await;
        c.expect("250 2.0.0").await;
        c.expect("221").await;
        assert_eq!(b.deliveries()[0].rcpts.len(), 2);
    }

    #[tokio::test]
    async fn body_sent_with_data_in_one_packet() {
        let (mut c, b) = ready(Opts::mx()).await;
        c.send("DATA\r\nline\r\n.\r\nNOOP\r\n").await;
        c.expect("354").await;
        c.expect("250 2.0.0").await;
        c.expect("250").await;
        assert_eq!(b.deliveries()[0].body, b"line\r\n");
    }

    #[tokio::test]
    async fn oversize_data_is_read_to_the_end_then_552() {
        let (mut c, b) = ready(Opts::mx()).await;
        c.cmd("DATA", "354").await;
        let line = format!("{}\r\n", "x".repeat(998));
        for _ in 0..1100 {
            c.send(&line).await;
        }
        c.cmd(".", "552 5.3.4").await;
        assert!(b.deliveries().is_empty());
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
    }

    #[tokio::test]
    async fn message_of_exactly_the_cap_is_accepted() {
        let mut opts = Opts::mx();
        opts.cfg.limits.max_message_size = 10;
        let (mut c, b) = ready(opts).await;
        c.cmd("DATA", "354").await;
        c.send("12345678\r\n").await;
        c.cmd(".", "250 2.0.0").await;
        assert_eq!(b.deliveries()[0].body.len(), 10);
    }

    #[tokio::test]
    async fn bdat_chunks_and_last() {
        let (mut c, b) = ready(Opts::mx()).await;
        c.send("BDAT 7\r\nSubject").await;
        c.expect("250 2.0.0 7 octets").await;
        c.send("BDAT 10\r\n: x\r\n\r\n.\r\n").await;
        c.expect("250 2.0.0").await;
        c.send("BDAT 0 LAST\r\n").await;
        c.expect("250 2.0.0").await;
        let d = b.deliveries();
        assert_eq!(
            d[0].body, b"Subject: x\r\n\r\n.\r\n",
            "BDAT content is not unstuffed"
        );
        assert!(d[0].chunked);
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("RCPT TO:<alice@a.test>", "250").await;
        c.send("BDAT 3 LAST\r\nabc").await;
        c.expect("250 2.0.0").await;
        assert_eq!(b.deliveries()[1].body, b"abc");
    }

    #[tokio::test]
    async fn bdat_refusals_still_consume_the_chunk() {
        let (mut c, b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.send("BDAT 6\r\nRSET\r\n").await;
        c.expect("503 5.5.1").await;
        c.cmd("NOOP", "250").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("RCPT TO:<alice@a.test>", "250").await;
        c.send("BDAT 2000000 LAST\r\n").await;
        c.send_bytes(&vec![b'x'; 2_000_000]).await;
        c.expect("552 5.3.4").await;
        c.cmd("DATA", "503 5.5.1").await;
        assert!(b.deliveries().is_empty());
    }

    #[tokio::test]
    async fn data_after_bdat_is_a_bad_sequence() {
        let (mut c, _b) = ready(Opts::mx()).await;
        c.send("BDAT 2\r\nab").await;
        c.expect("250").await;
        c.cmd("DATA", "503 5.5.1").await;
    }

    #[tokio::test]
    async fn backend_reply_is_relayed() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("RCPT TO:<full@a.test>", "250").await;
        c.cmd("DATA", "354").await;
        c.cmd("x\r\n.", "552 5.2.2").await;
    }
}
