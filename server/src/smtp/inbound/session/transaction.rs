//! The mail transaction: MAIL (with the submission login re-check), RCPT (one copy per
//! mailbox), the start of the body, and what happens at its end (size, line length, bare
//! line endings, RFC 5322 header counts) before delivery or submission.

use super::super::line::BodyLines;
use super::super::reply::{self, Reply};
use super::super::spool::Spool;
use super::super::txn::{Rcpt, Txn};
use super::super::Mode;
use super::Session;
use crate::identity::envelope::{check_rcpt, Checked};
use crate::mailauth::{AuthStatus, SpfResult, SpfScope};
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn mail(&mut self, from: String, size: usize) -> Reply {
        let Some(helo) = self.helo.clone() else {
            return reply::bad_sequence("Send EHLO or HELO first");
        };
        if self.txn.is_some() {
            return reply::bad_sequence("Nested MAIL command");
        }
        if size > self.ctx.limits.max_message_size {
            return Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        if self.mode == Mode::Submission {
            if self.authed.is_none() {
                return Reply::new(530, "5.7.0", "Authentication required");
            }
            // Every transaction re-checks the login: a key or agent revoked since AUTH
            // (or a key that lost `mail:send`) ends the session here.
            let agent = match self.recheck_login() {
                Ok(agent) => agent,
                Err(r) => {
                    self.end_after_reply = true;
                    return r;
                }
            };
            let me = agent.address();
            if !from.eq_ignore_ascii_case(&me) {
                return Reply::new(553, "5.7.1", format!("Sender address must be <{me}>"));
            }
            if self.ctx.mailbox.check_space(size as u64).is_err() {
                return reply::insufficient_storage();
            }
            let spf = SpfResult {
                result: AuthStatus::None,
                scope: SpfScope::MailFrom,
                domain: String::new(),
                identity: from,
                explanation: None,
            };
            self.txn = Some(self.new_txn(me, spf));
            return Reply::new(250, "2.1.0", "Sender OK");
        }
        // Refused before SPF costs a lookup; checked again at the end of the data, which
        // is what holds the line (the disk can fill while the body arrives).
        if self.ctx.mailbox.check_space(size as u64).is_err() {
            return reply::insufficient_storage();
        }
        let spf = self
            .ctx
            .mailauth
            .check_spf_mail_from(self.peer.ip(), &helo, &self.ctx.hostname, &from)
            .await;
        self.ctx
            .metrics
            .auth_results
            .with_label_values(&["spf", spf.result.as_str()])
            .inc();
        self.txn = Some(self.new_txn(from, spf));
        Reply::new(250, "2.1.0", "Sender OK")
    }

    /// Notes that the body has begun (the deadline runs from here) and how it is sent.
    pub(super) fn start_body(&mut self, chunked: bool) {
        if let Some(t) = self.txn.as_mut() {
            t.body_started.get_or_insert_with(std::time::Instant::now);
            t.chunked |= chunked;
        }
    }

    pub(super) fn new_txn(&self, mail_from: String, spf: SpfResult) -> Txn {
        let limits = &self.ctx.limits;
        Txn {
            mail_from,
            spf,
            rcpts: Vec::new(),
            refusal_class: None,
            reports: Vec::new(),
            feedback: Vec::new(),
            submit_rcpts: Vec::new(),
            rcpt_count: 0,
            body: Spool::new(limits.spool_threshold, limits.spool_dir.clone()),
            bare_newline: false,
            bdat_prev: 0,
            body_started: None,
            chunked: false,
            too_big: false,
            lines: BodyLines::default(),
        }
    }

    pub(super) fn rcpt(&mut self, to: &str) -> Reply {
        let max = self.ctx.limits.max_recipients;
        let Some(txn) = self.txn.as_mut() else {
            return reply::bad_sequence("Send MAIL first");
        };
        if txn.rcpt_count >= max {
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        // A bare `<postmaster>` is the server domain's postmaster (RFC 5321 §4.5.1).
        let to = &self.ctx.identity.qualify_rcpt(to);
        let (local, domain, tag) = match check_rcpt(to) {
            Checked::Address { local, domain, tag } => (local, domain, tag),
            Checked::Refused(why) => {
                return Reply::new(554, "5.7.1", format!("Relay access denied: {why}"))
            }
        };
        if self.mode == Mode::Submission {
            return match self.ctx.queue.plan_recipient(to, 0) {
                Ok(r) => {
                    // One copy per address (domain and local part compared as the queue
                    // does); a repeat is answered 250 and costs nothing more.
                    txn.rcpt_count += 1;
                    if !txn
                        .submit_rcpts
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(&r.address))
                    {
                        txn.submit_rcpts.push(r.address);
                    }
                    Reply::new(250, "2.1.5", "Recipient OK")
                }
                Err(e) if e.is_temporary() => Reply::new(451, "4.3.0", "Temporary lookup failure"),
                Err(e) => Reply::new(550, "5.1.1", e.to_string()),
            };
        }
        if !self.ctx.identity.is_local_domain(&domain) {
            return Reply::new(554, "5.7.1", "Relay access denied");
        }
        let address = format!("{local}@{domain}");
        // A bounce address of ours, if its token carries our MAC: a made-up one is refused
        // here (anyone may send to such an address, and each report is stored), never
        // delivered to the agent either way.
        if let Some(t) = tag
            .as_deref()
            .filter(|t| t.starts_with(crate::queue::feedback::verp::TAG))
        {
            if !self.ctx.queue.is_bounce_tag(t) {
                return Reply::new(550, "5.1.1", "No such bounce address");
            }
            let full = format!("{local}+{t}@{domain}");
            txn.rcpt_count += 1;
            if txn.feedback.len() < 8 && !txn.feedback.contains(&full) {
                txn.feedback.push(full);
            }
            return Reply::new(250, "2.1.5", "Recipient OK");
        }
        // abuse@: complaint reports are read too (the mailbox copy still goes to abuse@).
        if local == "abuse" && txn.feedback.len() < 8 && !txn.feedback.contains(&address) {
            txn.feedback.push(address.clone());
        }
        // The report addresses our DNS plan publishes as rua= are always accepted: the
        // reports service reads what arrives, whether or not an agent also has the address
        // (then it gets its copy too).
        if let Some(kind) = crate::reports::ReportKind::of_local(&local) {
            txn.rcpt_count += 1;
            if !txn.reports.contains(&kind) {
                txn.reports.push(kind);
            }
            if let Ok(Some(agent)) = self.ctx.identity.rcpt_agent(&address) {
                if agent.is_active() && !txn.rcpts.iter().any(|r| r.agent.id == agent.id) {
                    txn.rcpts.push(Rcpt {
                        address,
                        agent,
                        tags: Vec::new(),
                    });
                }
            }
            return Reply::new(250, "2.1.5", "Recipient OK");
        }
        // postmaster@ and abuse@ fall back to the operator mailbox (identity::roles).
        match self.ctx.identity.rcpt_agent(&address) {
            Ok(Some(agent)) if agent.is_active() => {
                if let Err(e) = self.ctx.mailbox.check_quota(&agent.id, 0) {
                    if !e.is_temporary() {
                        return Reply::new(552, "5.2.2", "Mailbox full");
                    }
                }
                match self
                    .ctx
                    .mailbox
                    .envelope_blocked(&agent.org_id, &txn.mail_from)
                {
                    Ok(false) => {}
                    Ok(true) => {
                        return Reply::new(
                            550,
                            "5.7.1",
                            "Sender blocked by the recipient's organisation",
                        )
                    }
                    Err(_) => return Reply::new(451, "4.3.0", "Temporary lookup failure"),
                }
                let Ok(class) = self.ctx.mailbox.refusal_class(&agent.org_id, &agent.id) else {
                    return Reply::new(451, "4.3.0", "Temporary lookup failure");
                };
                match &txn.refusal_class {
                    None => txn.refusal_class = Some(class),
                    // Recipients whose sender lists could answer differently after DATA go
                    // in separate transactions (RFC 5321 §4.5.3.1.10: the client sends the
                    // rest again), so no copy acknowledged with 250 is ever dropped.
                    Some(c) if *c != class && !txn.rcpts.iter().any(|r| r.agent.id == agent.id) => {
                        return Reply::new(
                            452,
                            "4.5.3",
                            "Too many recipients for one transaction; send the rest again",
                        )
                    }
                    Some(_) => {}
                }
                // One stored copy per mailbox: `ops`, `OPS` and `ops+tag` are one agent
                // (the address rules normalise the local part), so a repeated RCPT is
                // answered 250 and only adds its tag as a label.
                txn.rcpt_count += 1;
                match txn.rcpts.iter_mut().find(|r| r.agent.id == agent.id) {
                    Some(existing) => {
                        if let Some(tag) = tag {
                            if !existing.tags.contains(&tag) {
                                existing.tags.push(tag);
                            }
                        }
                    }
                    None => txn.rcpts.push(Rcpt {
                        address,
                        agent,
                        tags: tag.into_iter().collect(),
                    }),
                }
                Reply::new(250, "2.1.5", "Recipient OK")
            }
            Ok(_) => Reply::new(550, "5.1.1", "No such user here"),
            Err(_) => Reply::new(451, "4.3.0", "Temporary lookup failure"),
        }
    }

    pub(super) fn ready_for_data(&self) -> Result<(), Reply> {
        match &self.txn {
            None => Err(reply::bad_sequence("Send MAIL first")),
            Some(t)
                if t.rcpts.is_empty()
                    && t.submit_rcpts.is_empty()
                    && t.reports.is_empty()
                    && t.feedback.is_empty() =>
            {
                Err(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) async fn end_of_message(&mut self) -> Reply {
        let ended = std::time::Instant::now();
        let Some(txn) = self.txn.take() else {
            return reply::bad_sequence("No transaction");
        };
        if txn.too_big {
            self.ctx
                .metrics
                .smtp_messages
                .with_label_values(&["rejected", "size"])
                .inc();
            return Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        if txn.lines.overlong() {
            self.ctx
                .metrics
                .smtp_messages
                .with_label_values(&["rejected", "line_length"])
                .inc();
            return Reply::new(500, "5.5.2", "Line too long");
        }
        if txn.body.failed() {
            return reply::temp_failure();
        }
        if txn.bare_newline && self.mode == Mode::Submission {
            // We relay submitted mail: a bare CR or LF could be read as a line end (or an
            // end of data) by the next hop, the very ambiguity SMTP smuggling exploits.
            return self.refuse_message(
                "bare_newline",
                Reply::new(
                    550,
                    "5.6.0",
                    "Bare CR or LF in the message; every line must end with CRLF",
                ),
            );
        }
        // Held until the message is stored or refused: the bytes read back and parsed below.
        let _budget = self.ctx.limits.processing.reserve(txn.body.len()).await;
        let (txn, body) = match txn.take_body() {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, session = self.id, "cannot read a spooled body");
                return reply::temp_failure();
            }
        };
        if let Err(p) = super::super::headers::check(&body) {
            return self.refuse_message(&p.reason(), Reply::new(550, "5.6.0", p.to_string()));
        }
        let helo = self.helo.clone().unwrap_or_default();
        if self.mode == Mode::Submission {
            return self.submit(&helo, txn, body, ended).await;
        }
        super::super::deliver::deliver(
            &self.ctx,
            self.peer,
            &helo,
            &self.id,
            self.secure,
            txn,
            body,
        )
        .await
    }

    /// A message refused for its content: counted, audited (throttled per IP), answered.
    pub(super) fn refuse_message(&mut self, reason: &str, r: Reply) -> Reply {
        self.ctx
            .metrics
            .smtp_messages
            .with_label_values(&[
                "rejected",
                if reason == "bare_newline" {
                    "bare_newline"
                } else {
                    "headers"
                },
            ])
            .inc();
        let listener = match self.mode {
            Mode::Mx => "smtp",
            Mode::Submission => "submission",
        };
        let mut detail = serde_json::json!({"session": self.id, "listener": listener});
        if let Some(agent) = &self.authed {
            detail["agent"] = agent.id.clone().into();
        }
        self.ctx
            .rejections
            .record(&self.ctx.audit, self.peer.ip(), reason, detail);
        r
    }
}

impl Txn {
    /// Splits off the received body, read back from its spool.
    pub(super) fn take_body(mut self) -> std::io::Result<(Txn, Vec<u8>)> {
        let spool = std::mem::replace(&mut self.body, Spool::new(0, Default::default()));
        Ok((self, spool.into_bytes()?))
    }
}
