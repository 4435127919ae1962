//! The mail transaction's state from MAIL to the end of the body: what the session builds
//! and delivery consumes. Apart from both, so `session` depends on `deliver` and never the
//! other way round.

use super::line::BodyLines;
use super::spool::Spool;
use crate::identity::Agent;
use crate::mailauth::SpfResult;

/// An accepted recipient: one per mailbox, however many RCPTs named it.
pub(super) struct Rcpt {
    pub address: String,
    pub agent: Agent,
    /// `+tag`s of every RCPT that named this mailbox, in order, without repeats.
    pub tags: Vec<String>,
}

/// The transaction begun by MAIL.
pub(super) struct Txn {
    pub mail_from: String,
    pub spf: SpfResult,
    pub rcpts: Vec<Rcpt>,
    /// The sender-list class of the accepted recipients (`MailboxService::refusal_class`):
    /// one per transaction, so the answer after DATA holds for all of them.
    pub refusal_class: Option<String>,
    /// Report addresses named (`dmarc-reports@`, `tls-reports@`), once each.
    pub reports: Vec<crate::reports::ReportKind>,
    /// Bounce addresses (`local+b.<token>@`) and `abuse@` named: what arrives is handed to
    /// the queue's feedback reader (`queue::feedback`), never to a mailbox, except that
    /// `abuse@` also keeps its mailbox copy.
    pub feedback: Vec<String>,
    /// Submission: recipients anywhere, checked by the queue.
    pub submit_rcpts: Vec<String>,
    /// RCPTs answered 250, duplicates included: `max_recipients` bounds the commands.
    pub rcpt_count: usize,
    pub body: Spool,
    /// A bare CR or LF was in the body (DATA or BDAT).
    pub bare_newline: bool,
    /// Last byte of the previous BDAT chunk (a CR there pairs with the next chunk's LF).
    pub bdat_prev: u8,
    /// When the body began (the first DATA or BDAT): it must be whole by the deadline.
    pub body_started: Option<std::time::Instant>,
    /// A BDAT chunk was taken: DATA may not follow (RFC 3030 §4.2).
    pub chunked: bool,
    /// The message outgrew the size limit: keep reading to its end, then refuse.
    pub too_big: bool,
    /// A body line outgrew `max_line_length`: keep reading to its end, then refuse.
    pub lines: BodyLines,
}
