//! MAIL FROM: sequence, submission rules, parameters, declared size, then the backend's SPF
//! decision.

use smtp_proto::{MailFrom, MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_SMTPUTF8};

use super::backend::{Backend, MailCtx, MailVerdict, Reply};
use super::session::{Session, SessionStream, Step, Transaction};

/// Body and UTF-8 flags are the parameters of extensions we advertise; any other flag is a
/// parameter we did not offer.
const SUPPORTED_FLAGS: u64 = MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8;

impl<S: SessionStream, B: Backend> Session<S, B> {
    pub(super) async fn handle_mail(&mut self, from: MailFrom<String>) -> Step {
        if let Some(step) = self.need_helo() {
            return step;
        }
        if self.data.tx.is_some() {
            return self.refuse(Reply::new(503, (5, 5, 1), "Nested MAIL command"));
        }
        if self.ctx.cfg.mode.is_submission() && self.data.authed.is_none() {
            return self.refuse(Reply::new(530, (5, 7, 0), "Authentication required"));
        }
        if let Some(param) = unsupported_param(&from) {
            let text = format!("Parameter {param} not supported");
            return self.refuse(Reply::new(555, (5, 5, 4), text));
        }
        if from.size > self.ctx.cfg.limits.max_message_size {
            return self.refuse(Reply::too_big());
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            // RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 parameter.
            let text = "SMTPUTF8 required for a non-ASCII address";
            return self.refuse(Reply::new(553, (5, 6, 7), text));
        }
        if let Some(user) = &self.data.authed {
            if !from.address.eq_ignore_ascii_case(&user.address) {
                let text = "Sender address is not the authenticated agent's address";
                return self.refuse(Reply::new(553, (5, 7, 1), text));
            }
        }

        let ctx = self.ctx.clone();
        let helo = self.data.helo.clone().unwrap_or_default();
        let mail_ctx = MailCtx {
            session_id: &self.conn.id,
            peer: self.conn.peer,
            helo: &helo,
            mail_from: &from.address,
            tls: self.conn.tls,
            authenticated: self.data.authed.as_ref(),
        };
        let verdict = ctx.backend.check_mail_from(&mail_ctx).await;
        match verdict {
            MailVerdict::Accept(mail_data) => {
                self.data.tx = Some(Transaction {
                    mail_from: from.address,
                    mail_data,
                    rcpts: Vec::new(),
                    smtputf8,
                    eight_bit: from.flags & MAIL_BODY_8BITMIME != 0,
                    chunked: false,
                    body: Vec::new(),
                });
                self.reply(Reply::new(250, (2, 1, 0), "Sender OK"))
            }
            MailVerdict::Refuse(reply) => self.refuse(reply),
        }
    }
}

/// The first parameter of an extension we do not advertise (RFC 5321 §4.1.1.11: `555`).
/// `AUTH=` (RFC 4954 §5) is tolerated and ignored: relaying MTAs send it routinely.
fn unsupported_param(from: &MailFrom<String>) -> Option<&'static str> {
    if from.flags & !SUPPORTED_FLAGS != 0 {
        return Some("BODY/RET/REQUIRETLS/BY");
    }
    if from.env_id.is_some() {
        return Some("ENVID");
    }
    if from.trans_id.is_some() || from.mtrk.is_some() || from.solicit.is_some() {
        return Some("MTRK/SOLICIT");
    }
    if from.by != 0 || from.hold_for != 0 || from.hold_until != 0 || from.mt_priority != 0 {
        return Some("BY/FUTURERELEASE/MT-PRIORITY");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn declared_size_over_the_cap_is_552_5_3_4() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test> SIZE=2000000", "552 5.3.4")
            .await;
        c.cmd(
            "MAIL FROM:<x@b.test> SIZE=1000 BODY=8BITMIME SMTPUTF8",
            "250 2.1.0",
        )
        .await;
    }

    #[tokio::test]
    async fn sequence_and_parameters() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<x@b.test> BODY=BINARYMIME", "555 5.5.4")
            .await;
        c.cmd("MAIL FROM:<x@b.test> RET=FULL", "555 5.5.4").await;
        c.cmd("MAIL FROM:<x@b.test> FOO=BAR", "555 5.5.4").await;
        c.cmd("MAIL FROM:<ü@b.test>", "553 5.6.7").await;
        c.cmd("MAIL FROM:x@b.test", "501 5.5.4").await;
        c.cmd("MAIL FROM:<x@b.test> AUTH=<>", "250 2.1.0").await;
        c.cmd("MAIL FROM:<y@b.test>", "503 5.5.1").await;
        c.cmd("RSET", "250").await;
        c.cmd("MAIL FROM:<>", "250 2.1.0").await;
    }

    #[tokio::test]
    async fn backend_can_refuse_the_sender() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<spf-fail@bad.test>", "550 5.7.23").await;
    }

    #[tokio::test]
    async fn submission_requires_auth_and_own_address() {
        let (mut c, _b) = start(Opts::submission_tls()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("MAIL FROM:<alice@a.test>", "530 5.7.0").await;
        c.auth_plain("alice@a.test", "lg_good", "235 2.7.0").await;
        c.cmd("MAIL FROM:<bob@a.test>", "553 5.7.1").await;
        c.cmd("MAIL FROM:<>", "553 5.7.1").await;
        c.cmd("MAIL FROM:<Alice@A.test>", "250 2.1.0").await;
    }
}
