//! EHLO and HELO.
//!
//! The EHLO reply is written here rather than with smtp-proto's `EhloResponse`, whose `write()`
//! hard-codes the first line's text; the keyword list is short and fixed.

use super::backend::{Backend, Reply};
use super::session::{Session, SessionStream, Step};

impl<S: SessionStream, B: Backend> Session<S, B> {
    /// A new EHLO/HELO restarts the session's transaction state (RFC 5321 §4.1.4); a login
    /// survives it.
    pub(super) fn handle_ehlo(&mut self, host: String, extended: bool) -> Step {
        self.data.tx = None;
        self.data.helo = Some(host.clone());
        let hostname = self.ctx.cfg.hostname.clone();
        if !extended {
            self.reply_raw(&format!("250 {hostname}"));
            return Step::Continue;
        }
        let mut lines = vec![
            format!("{hostname} Hello {}", printable(&host)),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.ctx.cfg.limits.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.ctx.tls.is_some() && !self.conn.tls {
            lines.push("STARTTLS".to_string());
        }
        // AUTH only where it is allowed to succeed: submission, under TLS (RFC 8314 §3).
        if self.ctx.cfg.mode.is_submission() && self.conn.tls && self.data.authed.is_none() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.reply_raw(&format!("250{sep}{line}"));
        }
        Step::Continue
    }

    /// Refuses MAIL/AUTH before a greeting.
    pub(super) fn need_helo(&mut self) -> Option<Step> {
        if self.data.helo.is_some() {
            return None;
        }
        Some(self.refuse(Reply::new(503, (5, 5, 1), "Send EHLO or HELO first")))
    }
}

/// The client's name echoed back, without anything that could break the reply line.
fn printable(host: &str) -> String {
    host.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    #[tokio::test]
    async fn ehlo_advertises_the_extensions() {
        let (mut c, _b) = start(Opts::mx().with_tls_available()).await;
        let r = c.cmd("EHLO client.test", "250").await;
        for kw in [
            "PIPELINING",
            "SIZE 1048576",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
            "CHUNKING",
        ] {
            assert!(r.lines().any(|l| &l[4..] == kw), "{kw} missing in {r}");
        }
        assert!(r.starts_with("250-mx.a.test Hello client.test"), "{r}");
        assert!(!r.contains("AUTH"), "no AUTH on the MX port: {r}");
    }

    #[tokio::test]
    async fn starttls_only_when_available_and_auth_only_after_tls() {
        let (mut c, _b) = start(Opts::mx()).await;
        let r = c.cmd("EHLO client.test", "250").await;
        assert!(!r.contains("STARTTLS"), "{r}");

        let (mut c, _b) = start(Opts::submission().with_tls_available()).await;
        let r = c.cmd("EHLO client.test", "250").await;
        assert!(r.contains("STARTTLS") && !r.contains("AUTH"), "{r}");

        let (mut c, _b) = start(Opts::submission_tls()).await;
        let r = c.cmd("EHLO client.test", "250").await;
        assert!(r.contains("250 AUTH PLAIN LOGIN"), "{r}");
    }

    #[tokio::test]
    async fn helo_is_plain_and_mail_needs_a_greeting() {
        let (mut c, _b) = start(Opts::mx()).await;
        c.cmd("MAIL FROM:<x@b.test>", "503 5.5.1").await;
        let r = c.cmd("HELO client.test", "250").await;
        assert_eq!(r, "250 mx.a.test");
        c.cmd("MAIL FROM:<x@b.test>", "250 2.1.0").await;
    }
}
