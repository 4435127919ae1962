//! RCPT TO: sequence, recipient limit, relay-form refusal, then the backend's decision, with the
//! relay rule applied here so no backend can make us an open relay by mistake.

use smtp_proto::RcptTo;

use super::address::{classify, AddrError};
use super::backend::{Backend, RcptTarget, RcptVerdict, Recipient, Reply};
use super::session::{Session, SessionStream, Step};

fn bad_destination(text: &str) -> Reply {
    Reply::new(550, (5, 1, 3), text)
}

impl<S: SessionStream, B: Backend> Session<S, B> {
    /// `line` is the raw command line, needed to see source routes and quotes that the parser
    /// normalises away.
    pub(super) async fn handle_rcpt(&mut self, to: RcptTo<String>, line: &[u8]) -> Step {
        let Some(tx) = &self.data.tx else {
            return self.refuse(Reply::new(503, (5, 5, 1), "Need MAIL command"));
        };
        if to.flags != 0 || to.orcpt.is_some() || to.rrvs != 0 {
            // DSN and RRVS are not advertised (RFC 5321 §4.1.1.11).
            return self.refuse(Reply::new(555, (5, 5, 4), "RCPT parameters not supported"));
        }
        if tx.rcpts.len() >= self.ctx.cfg.limits.max_recipients {
            // Not counted as an error: RFC 5321 §4.5.3.1.10 expects the client to send the
            // rest in another transaction.
            return self.reply(Reply::new(452, (4, 5, 3), "Too many recipients"));
        }
        let smtputf8 = tx.smtputf8;
        let classified = match classify(line, &to.address) {
            Ok(c) => c,
            Err(AddrError::Null) => {
                return self.refuse(Reply::new(501, (5, 1, 3), "Null recipient not allowed"))
            }
            Err(AddrError::SourceRoute) => {
                return self.refuse(bad_destination("Source routes are not accepted"))
            }
            Err(AddrError::Syntax) => {
                return self.refuse(Reply::new(501, (5, 1, 3), "Bad recipient address syntax"))
            }
        };
        if !smtputf8 && !classified.addr.address.is_ascii() {
            let text = "SMTPUTF8 required for a non-ASCII address";
            return self.refuse(Reply::new(553, (5, 6, 7), text));
        }
        let authed = self.data.authed.clone();
        if classified.routing && authed.is_none() {
            return self.refuse(bad_destination(
                "Routing syntax in addresses is not accepted",
            ));
        }

        let ctx = self.ctx.clone();
        let verdict = ctx
            .backend
            .check_rcpt(&classified.addr, authed.as_ref())
            .await;
        let target = match verdict {
            // Routing syntax is only ever passed on to another domain.
            RcptVerdict::Local { .. } | RcptVerdict::Refuse(_) if classified.routing => {
                return self.refuse(bad_destination(
                    "Routing syntax in addresses is not accepted",
                ));
            }
            RcptVerdict::Local { agent_id, label } => RcptTarget::Local { agent_id, label },
            RcptVerdict::Remote if authed.is_none() => {
                return self.refuse(Reply::relay_denied());
            }
            RcptVerdict::Remote => RcptTarget::Remote,
            RcptVerdict::Refuse(reply) => return self.refuse(reply),
        };
        if let Some(tx) = self.data.tx.as_mut() {
            let duplicate = tx.rcpts.iter().any(|r| {
                r.address
                    .address
                    .eq_ignore_ascii_case(&classified.addr.address)
            });
            if !duplicate {
                tx.rcpts.push(Recipient {
                    address: classified.addr,
                    target,
                });
            }
        }
        self.reply(Reply::new(250, (2, 1, 5), "Recipient OK"))
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::RcptTarget;
    use super::super::testkit::*;

    async fn in_transaction(opts: Opts) -> (Client, std::sync::Arc<FakeBackend>) {
        let (mut c, b) = start(opts).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        (c, b)
    }

    #[tokio::test]
    async fn unknown_revoked_and_tagged_recipients() {
        let (mut c, b) = in_transaction(Opts::mx()).await;
        c.cmd("RCPT TO:<nobody@a.test>", "550 5.1.1").await;
        c.cmd("RCPT TO:<revoked@a.test>", "550 5.1.1").await;
        c.cmd("RCPT TO:<alice+shop@A.TEST>", "250 2.1.5").await;
        c.cmd("RCPT TO:<alice+shop@a.test>", "250 2.1.5").await;
        c.cmd("DATA", "354").await;
        c.cmd("Subject: t\r\n\r\nhi\r\n.", "250 2.0.0").await;
        let d = b.deliveries();
        assert_eq!(d[0].rcpts.len(), 1, "duplicate recipient kept once");
        assert_eq!(
            d[0].rcpts[0].target,
            RcptTarget::Local {
                agent_id: "ag_alice".into(),
                label: Some("shop".into())
            }
        );
        assert_eq!(d[0].rcpts[0].address.local, "alice");
    }

    #[tokio::test]
    async fn no_open_relay() {
        let (mut c, b) = in_transaction(Opts::mx()).await;
        c.cmd("RCPT TO:<x@b.test>", "554 5.7.1").await;
        c.cmd("RCPT TO:<@a.test:x@b.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<@a.test:alice@a.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<x%b.test@a.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<alice%b.test@a.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<b.test!x@a.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<\"x@b.test\"@a.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<x@[192.0.2.1]>", "501 5.1.3").await;
        c.cmd("RCPT TO:<>", "501 5.1.3").await;
        c.cmd("DATA", "554 5.5.1").await;
        // Only the well-formed remote address was ever looked up.
        assert_eq!(b.rcpt_lookups(), vec!["x@b.test".to_string()]);
    }

    #[tokio::test]
    async fn routing_forms_never_reach_a_local_agent_even_with_auth() {
        let (mut c, b) = start(Opts::submission_tls()).await;
        c.cmd("EHLO client.test", "250").await;
        c.auth_plain("alice@a.test", "lg_good", "235").await;
        c.cmd("MAIL FROM:<alice@a.test>", "250").await;
        c.cmd("RCPT TO:<bob%b.test@a.test>", "550 5.1.3").await;
        c.cmd("RCPT TO:<@b.test:bob@a.test>", "550 5.1.3").await;
        // Another domain's own address syntax is that domain's business.
        c.cmd("RCPT TO:<user%host@b.test>", "250 2.1.5").await;
        c.cmd("RCPT TO:<carol@b.test>", "250 2.1.5").await;
        c.cmd("RCPT TO:<bob@a.test>", "250 2.1.5").await;
        c.cmd("DATA", "354").await;
        c.cmd("x\r\n.", "250").await;
        let rcpts = &b.deliveries()[0].rcpts;
        assert_eq!(rcpts.len(), 3);
        for r in rcpts {
            let local = matches!(r.target, RcptTarget::Local { .. });
            assert_eq!(local, r.address.address == "bob@a.test", "{r:?}");
        }
    }

    #[tokio::test]
    async fn postmaster_and_sequence() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("RCPT TO:<alice@a.test>", "503 5.5.1").await;
        c.cmd("MAIL FROM:<x@b.test>", "250").await;
        c.cmd("RCPT TO:<postmaster>", "250 2.1.5").await;
        c.cmd("RCPT TO:<alice@a.test> NOTIFY=NEVER", "555 5.5.4")
            .await;
    }

    #[tokio::test]
    async fn too_many_recipients_is_452_4_5_3() {
        let mut opts = Opts::mx();
        opts.cfg.limits.max_recipients = 2;
        let (mut c, _b) = in_transaction(opts).await;
        c.cmd("RCPT TO:<alice@a.test>", "250").await;
        c.cmd("RCPT TO:<bob@a.test>", "250").await;
        c.cmd("RCPT TO:<carol@a.test>", "452 4.5.3").await;
    }
}
