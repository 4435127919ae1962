//! STARTTLS (RFC 3207) as a type change: `Session<S>` becomes `Session<TlsStream<S>>`.
//!
//! Nothing learned before the handshake survives it: greeting, login and transaction are
//! dropped, and so is every byte the client pipelined after STARTTLS, which would otherwise be
//! read as commands of the protected session (the 2011 command-injection bug class).

use tokio_rustls::server::TlsStream;

use super::backend::{Backend, Reply};
use super::session::{Conn, Session, SessionData, SessionStream, State, Step};
use super::SmtpError;

impl<S: SessionStream, B: Backend> Session<S, B> {
    pub(super) fn handle_starttls(&mut self) -> Step {
        if self.conn.tls {
            return self.refuse(Reply::new(503, (5, 5, 1), "TLS is already active"));
        }
        if self.ctx.tls.is_none() {
            return self.refuse(Reply::new(502, (5, 5, 1), "STARTTLS not available"));
        }
        self.reply(Reply::new(220, (2, 0, 0), "Ready to start TLS"));
        self.input.clear();
        Step::StartTls
    }

    /// Performs the server handshake and returns the session over TLS, in the state of a
    /// connection that has just been greeted.
    pub(crate) async fn into_tls(self) -> Result<Session<TlsStream<S>, B>, SmtpError> {
        let Session {
            stream,
            ctx,
            conn,
            shutdown,
            data,
            ..
        } = self;
        let Some(acceptor) = ctx.tls.clone() else {
            return Err(SmtpError::TlsRequired);
        };
        let handshake = acceptor.accept(stream);
        let stream = tokio::time::timeout(ctx.cfg.timeouts.tls_handshake, handshake)
            .await
            .map_err(|_| SmtpError::HandshakeTimeout)??;
        tracing::debug!("STARTTLS handshake done");
        let conn = Conn { tls: true, ..conn };
        let data = SessionData {
            errors: data.errors,
            ..SessionData::default()
        };
        Ok(Session {
            stream,
            ctx,
            conn,
            shutdown,
            state: State::Command,
            data,
            input: Default::default(),
            output: Vec::new(),
        })
    }
}

/// Runs a session to its end, upgrading it once if the client asks for STARTTLS.
pub(crate) async fn drive<S: SessionStream, B: Backend>(mut session: Session<S, B>) {
    use tokio::io::AsyncWriteExt;
    match session.run().await {
        Ok(Step::StartTls) => match session.into_tls().await {
            Ok(mut tls) => {
                // Over TLS, STARTTLS is refused, so only `Close` or an error can come back.
                if let Err(err) = tls.run().await {
                    tracing::debug!(error = %err, "session ended with an error");
                }
                let _ = tls.stream.shutdown().await;
            }
            Err(err) => tracing::debug!(error = %err, "STARTTLS handshake failed"),
        },
        Ok(_) => {
            let _ = session.stream.shutdown().await;
        }
        Err(err) => tracing::debug!(error = %err, "session ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn starttls_then_a_transaction_over_tls() {
        let (mut c, b) = start(Opts::mx().with_tls_available()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("STARTTLS", "220 2.0.0").await;
        let mut t = c.upgrade().await;
        // Pre-TLS state is gone: a transaction needs EHLO and MAIL again.
        t.cmd("MAIL FROM:<x@b.test>", "503 5.5.1").await;
        let r = t.cmd("EHLO client.test", "250").await;
        assert!(!r.contains("STARTTLS"), "{r}");
        t.cmd("STARTTLS", "503 5.5.1").await;
        t.cmd("MAIL FROM:<x@b.test>", "250").await;
        t.cmd("RCPT TO:<alice@a.test>", "250").await;
        t.cmd("DATA", "354").await;
        t.cmd("over tls\r\n.", "250 2.0.0").await;
        t.cmd("QUIT", "221").await;
        let d = b.deliveries();
        assert!(d[0].tls);
        assert_eq!(d[0].body, b"over tls\r\n");
    }

    #[tokio::test]
    async fn commands_pipelined_after_starttls_are_discarded() {
        let (mut c, b) = start(Opts::mx().with_tls_available()).await;
        c.cmd("EHLO client.test", "250").await;
        c.send("STARTTLS\r\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<alice@a.test>\r\n")
            .await;
        c.expect("220 2.0.0").await;
        let mut t = c.upgrade().await;
        t.cmd("EHLO client.test", "250").await;
        // Had the injected MAIL survived, this would be a nested MAIL (503).
        t.cmd("MAIL FROM:<x@b.test>", "250 2.1.0").await;
        t.cmd("DATA", "554 5.5.1").await;
        assert!(b.deliveries().is_empty());
    }

    #[tokio::test]
    async fn submission_starttls_then_auth_then_send() {
        let (mut c, b) = start(Opts::submission().with_tls_available()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("STARTTLS", "220").await;
        let mut t = c.upgrade().await;
        let r = t.cmd("EHLO client.test", "250").await;
        assert!(r.contains("AUTH PLAIN LOGIN"), "{r}");
        t.auth_plain("alice@a.test", "lg_good", "235 2.7.0").await;
        t.cmd("MAIL FROM:<alice@a.test>", "250").await;
        t.cmd("RCPT TO:<carol@b.test>", "250 2.1.5").await;
        t.cmd("DATA", "354").await;
        t.cmd("hello\r\n.", "250 2.0.0").await;
        let d = b.deliveries();
        assert_eq!(d[0].authenticated.as_ref().unwrap().agent_id, "ag_alice");
    }

    #[tokio::test]
    async fn starttls_without_a_certificate_is_502() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("STARTTLS", "502 5.5.1").await;
    }
}
