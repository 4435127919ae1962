//! AUTH PLAIN and LOGIN (RFC 4954) for submission.
//!
//! Only offered on submission ports and only under TLS, so a credential never crosses the
//! network in the clear. Failed logins are counted per IP across sessions; past the limit the
//! IP gets `421 4.7.0` and is disconnected until the window slides. Every buffer that held a
//! credential is `Zeroizing`; nothing here logs one.

use data_encoding::BASE64;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};
use zeroize::Zeroizing;

use super::backend::{Backend, Reply};
use super::input::Line;
use super::session::{Session, SessionStream, State, Step, Wait};
use super::SmtpError;

/// Which SASL response the next line is.
pub(crate) enum SaslIn {
    Plain,
    LoginUser,
    LoginPass { user: Zeroizing<String> },
}

/// `Username:` and `Password:` in base64, the LOGIN mechanism's fixed challenges.
const LOGIN_USER_CHALLENGE: &str = "334 VXNlcm5hbWU6";
const LOGIN_PASS_CHALLENGE: &str = "334 UGFzc3dvcmQ6";

fn malformed() -> Reply {
    Reply::new(501, (5, 5, 2), "Cannot decode the authentication response")
}

/// Decodes one client response; `=` is the empty response (RFC 4954 §4).
fn decode(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if text == b"=" {
        return Some(Zeroizing::new(Vec::new()));
    }
    BASE64.decode(text).ok().map(Zeroizing::new)
}

fn utf8(bytes: &[u8]) -> Option<Zeroizing<String>> {
    std::str::from_utf8(bytes)
        .ok()
        .map(|s| Zeroizing::new(s.to_string()))
}

impl<S: SessionStream, B: Backend> Session<S, B> {
    pub(super) async fn handle_auth(&mut self, mechanism: u64, initial: Zeroizing<String>) -> Step {
        if !self.ctx.cfg.mode.is_submission() {
            return self.refuse(Reply::new(
                502,
                (5, 5, 1),
                "AUTH is not available on this port",
            ));
        }
        if !self.conn.tls {
            let text = "Must issue a STARTTLS command first";
            return self.refuse(Reply::new(530, (5, 7, 0), text));
        }
        if let Some(step) = self.need_helo() {
            return step;
        }
        if self.data.authed.is_some() {
            return self.refuse(Reply::new(503, (5, 5, 1), "Already authenticated"));
        }
        if self.data.tx.is_some() {
            let text = "AUTH is not allowed during a mail transaction";
            return self.refuse(Reply::new(503, (5, 5, 1), text));
        }
        if self.ctx.auth_failures.is_blocked(self.conn.peer.ip()) {
            return self.too_many_failures();
        }
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.reply_raw("334 ");
                self.state = State::Auth(SaslIn::Plain);
                Step::Continue
            }
            AUTH_PLAIN => self.sasl_response(SaslIn::Plain, initial.as_bytes()).await,
            AUTH_LOGIN if initial.is_empty() => {
                self.reply_raw(LOGIN_USER_CHALLENGE);
                self.state = State::Auth(SaslIn::LoginUser);
                Step::Continue
            }
            AUTH_LOGIN => {
                self.sasl_response(SaslIn::LoginUser, initial.as_bytes())
                    .await
            }
            _ => self.refuse(Reply::new(
                504,
                (5, 5, 4),
                "Unrecognized authentication type",
            )),
        }
    }

    /// Reads the next SASL response line.
    pub(super) async fn step_auth(&mut self, sasl: SaslIn) -> Result<Step, SmtpError> {
        match self.input.next_line(self.ctx.cfg.limits.max_line_length) {
            Line::Complete(line) => {
                let line = Zeroizing::new(line);
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if text == b"*" {
                    let reply = Reply::new(501, (5, 7, 0), "Authentication cancelled");
                    return Ok(self.refuse(reply));
                }
                Ok(self.sasl_response(sasl, text).await)
            }
            Line::TooLong => {
                let text = "Authentication exchange line is too long";
                Ok(self.refuse(Reply::new(500, (5, 5, 6), text)))
            }
            Line::Incomplete => {
                self.state = State::Auth(sasl);
                self.fill(Wait::Command).await
            }
        }
    }

    /// Handles one base64 response (an initial response or a continuation line).
    async fn sasl_response(&mut self, sasl: SaslIn, text: &[u8]) -> Step {
        let Some(decoded) = decode(text) else {
            return self.refuse(malformed());
        };
        match sasl {
            SaslIn::Plain => {
                // authzid NUL authcid NUL passwd (RFC 4616).
                let mut parts = decoded.split(|&b| b == 0);
                let (Some(authz), Some(user), Some(pass), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return self.refuse(malformed());
                };
                let (Some(user), Some(pass)) = (utf8(user), utf8(pass)) else {
                    return self.refuse(malformed());
                };
                // Acting as someone else is not a thing agents do.
                if !authz.is_empty() && authz != user.as_bytes() {
                    return self.login_failed();
                }
                self.check_login(&user, &pass).await
            }
            SaslIn::LoginUser => {
                let Some(user) = utf8(&decoded) else {
                    return self.refuse(malformed());
                };
                self.reply_raw(LOGIN_PASS_CHALLENGE);
                self.state = State::Auth(SaslIn::LoginPass { user });
                Step::Continue
            }
            SaslIn::LoginPass { user } => {
                let Some(pass) = utf8(&decoded) else {
                    return self.refuse(malformed());
                };
                self.check_login(&user, &pass).await
            }
        }
    }

    async fn check_login(&mut self, user: &str, pass: &str) -> Step {
        let ctx = self.ctx.clone();
        match ctx
            .backend
            .authenticate(user, pass, self.conn.peer.ip())
            .await
        {
            Some(authed) => {
                tracing::info!(agent = %authed.agent_id, "authenticated");
                self.data.authed = Some(authed);
                self.reply(Reply::new(235, (2, 7, 0), "Authentication successful"))
            }
            None => self.login_failed(),
        }
    }

    fn login_failed(&mut self) -> Step {
        tracing::info!("authentication failed");
        self.ctx.auth_failures.record_failure(self.conn.peer.ip());
        self.refuse(Reply::new(
            535,
            (5, 7, 8),
            "Authentication credentials invalid",
        ))
    }

    fn too_many_failures(&mut self) -> Step {
        tracing::info!("too many failed logins from this address");
        let text = "Too many failed authentication attempts, try again later";
        self.reply(Reply::new(421, (4, 7, 0), text));
        Step::Close
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn auth_is_refused_before_tls_and_on_mx() {
        let (mut c, _b) = start(Opts::submission().with_tls_available()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd(
            "AUTH PLAIN AGFsaWNlQGEudGVzdABsZ19nb29k",
            "530 5.7.0 Must issue a STARTTLS",
        )
        .await;
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("AUTH PLAIN AGFsaWNlQGEudGVzdABsZ19nb29k", "502 5.5.1")
            .await;
    }

    #[tokio::test]
    async fn plain_with_initial_response_and_with_continuation() {
        let (mut c, _b) = start(Opts::submission_tls()).await;
        c.cmd("EHLO client.test", "250").await;
        c.auth_plain("alice@a.test", "lg_good", "235 2.7.0").await;
        c.cmd("AUTH PLAIN", "503 5.5.1").await;

        let (mut c, _b) = start(Opts::submission_tls()).await;
        c.cmd("EHLO client.test", "250").await;
        c.cmd("AUTH PLAIN", "334").await;
        c.cmd(&b64("\0alice@a.test\0lg_good"), "235 2.7.0").await;
        let r = c.cmd("EHLO client.test", "250").await;
        assert!(
            !r.contains("AUTH"),
            "not offered again once authenticated: {r}"
        );
    }

    #[tokio::test]
    async fn login_mechanism_and_cancel() {
        let (mut c, _b) = start(Opts::submission_tls()).await;
        c.cmd("EHLO client.test", "250").await;
        assert_eq!(c.cmd("AUTH LOGIN", "334").await, "334 VXNlcm5hbWU6");
        c.cmd("*", "501 5.7.0").await;
        c.cmd(
            &format!("AUTH LOGIN {}", b64("alice@a.test")),
            "334 UGFzc3dvcmQ6",
        )
        .await;
        c.cmd(&b64("lg_good"), "235 2.7.0").await;
        c.cmd("MAIL FROM:<alice@a.test>", "250").await;
    }

    #[tokio::test]
    async fn bad_credentials_and_malformed_responses() {
        let (mut c, _b) = start(Opts::submission_tls()).await;
        c.cmd("EHLO client.test", "250").await;
        c.auth_plain("alice@a.test", "lg_wrong", "535 5.7.8").await;
        c.cmd("AUTH PLAIN !!!notbase64", "501 5.5.2").await;
        c.cmd(&format!("AUTH PLAIN {}", b64("no-nuls")), "501 5.5.2")
            .await;
        c.cmd(
            &format!("AUTH PLAIN {}", b64("bob@a.test\0alice@a.test\0lg_good")),
            "535",
        )
        .await;
        c.cmd("AUTH CRAM-MD5", "504 5.5.4").await;
    }

    #[tokio::test]
    async fn failed_logins_are_rate_limited_per_ip() {
        let opts = Opts::submission_tls();
        let ctx = opts.context();
        let mut c = start_with(opts.clone(), ctx.clone()).await;
        c.cmd("EHLO client.test", "250").await;
        for _ in 0..5 {
            c.auth_plain("alice@a.test", "lg_wrong", "535 5.7.8").await;
        }
        c.auth_plain("alice@a.test", "lg_good", "421 4.7.0").await;
        c.expect_closed().await;
        // A new connection from the same address is refused too, even with the right key.
        let mut c = start_with(opts, ctx).await;
        c.cmd("EHLO client.test", "250").await;
        c.auth_plain("alice@a.test", "lg_good", "421 4.7.0").await;
    }
}
