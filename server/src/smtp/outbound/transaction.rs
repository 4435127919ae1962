//! The mail transaction: MAIL, RCPT per recipient, DATA, body, and a verdict per recipient.
//! With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write and the replies
//! are read afterwards, which saves a round trip per recipient.

use super::attempt::{failure, lost, Attempt, Caps, Job};
use super::client::{Client, SessionError, Stage};
use crate::queue::transport::{RcptOutcome, TlsLevel};
use tokio::io::{AsyncRead, AsyncWrite};

/// How a transaction ended, and what the session is good for afterwards.
pub(crate) struct Ended {
    pub attempt: Attempt,
    /// The server answered the end of data, sent nothing more and is not closing: the
    /// session may carry the next message (RFC 5321 §4.1.1.4: a completed transaction
    /// resets the state).
    pub reusable: bool,
    /// The session ended (closed, or `421`) before any byte of the message went out, so
    /// nothing can have been accepted: on a reused session, the server dropped it while idle
    /// and a fresh connection should get the message.
    pub lost_before_body: bool,
}

impl Ended {
    fn finished(attempt: Attempt) -> Self {
        Self {
            attempt,
            reusable: false,
            lost_before_body: false,
        }
    }
}

/// One transaction on an open session. The session stays the caller's: to QUIT, or to park.
pub(crate) async fn transact<S>(
    client: &mut Client<S>,
    caps: Caps,
    level: TlsLevel,
    job: &Job<'_>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let n = job.env.rcpts.len();
    if let Some(limit) = caps
        .size
        .filter(|&limit| limit > 0 && job.raw.len() > limit)
    {
        let reply = format!(
            "552 5.3.4 message of {} bytes exceeds the {limit}-byte limit of {}",
            job.raw.len(),
            job.remote
        );
        return Ended::finished(Attempt::Done(
            vec![RcptOutcome::Permanent { reply }; n],
            level,
        ));
    }
    let utf8 = !job.env.mail_from.is_ascii() || job.env.rcpts.iter().any(|r| !r.is_ascii());
    if utf8 && !caps.smtputf8 {
        // RFC 6531 §3.2: an internationalised address needs SMTPUTF8; there is no downgrade.
        let reply = format!(
            "553 5.6.7 {} does not support SMTPUTF8, which the addresses need",
            job.remote
        );
        return Ended::finished(Attempt::Done(
            vec![RcptOutcome::Permanent { reply }; n],
            level,
        ));
    }
    let Some(mail) = mail_from(job, &caps, utf8) else {
        let reply = "553 5.1.7 sender address not usable on the wire".to_string();
        return Ended::finished(Attempt::Done(
            vec![RcptOutcome::Permanent { reply }; n],
            level,
        ));
    };
    let mut outcomes: Vec<Option<RcptOutcome>> = vec![None; n];
    let result = if caps.pipelining {
        pipelined(client, job, &mail, &mut outcomes).await
    } else {
        lockstep(client, job, &mail, &mut outcomes).await
    };
    // Whatever is still undecided was accepted and then lost with the connection.
    let closing = outcomes
        .iter()
        .flatten()
        .any(|o| o.reply().starts_with("421"));
    let (fallback, reusable, lost_before_body) = match &result {
        Ok(BodySent(sent)) => (
            RcptOutcome::Temporary {
                reply: "451 4.3.0 no verdict".into(),
            },
            *sent && !closing && !client.has_pending(),
            !*sent && closing,
        ),
        // A timeout is a slow server, not a closed one: no second try on a new connection.
        Err(e) => (
            lost(job, e),
            false,
            !matches!(e, SessionError::Timeout(_))
                && matches!(e.stage(), Some(Stage::Mail | Stage::Rcpt | Stage::Data)),
        ),
    };
    Ended {
        attempt: Attempt::Done(
            outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| fallback.clone()))
                .collect(),
            level,
        ),
        reusable,
        lost_before_body,
    }
}

/// Whether a transaction went as far as the server's reply to the end of data.
struct BodySent(bool);

/// `MAIL FROM:<a> SIZE=n BODY=8BITMIME SMTPUTF8`; `None` when the address could smuggle a
/// command.
fn mail_from(job: &Job<'_>, caps: &Caps, utf8: bool) -> Option<String> {
    if !wire_safe(&job.env.mail_from) {
        return None;
    }
    let mut line = format!("MAIL FROM:<{}>", job.env.mail_from);
    if caps.size.is_some() {
        line.push_str(&format!(" SIZE={}", job.raw.len()));
    }
    if job.eight_bit {
        if caps.eight_bit_mime {
            line.push_str(" BODY=8BITMIME");
        } else {
            // What postfix does too: nearly every server takes 8-bit anyway, and downgrading
            // to quoted-printable would break the DKIM signatures.
            tracing::debug!(
                remote = job.remote,
                "8-bit message to a server without 8BITMIME"
            );
        }
    }
    if utf8 {
        line.push_str(" SMTPUTF8");
    }
    line.push_str("\r\n");
    Some(line)
}

/// An address we put between `<>` must not end the line or the brackets early.
fn wire_safe(addr: &str) -> bool {
    !addr.chars().any(|c| c.is_control() || c == '<' || c == '>')
}

fn rcpt_line(rcpt: &str) -> String {
    format!("RCPT TO:<{rcpt}>\r\n")
}

/// Marks recipients we refuse to put on the wire; returns the indices to send.
fn sendable(job: &Job<'_>, outcomes: &mut [Option<RcptOutcome>]) -> Vec<usize> {
    let mut send = Vec::new();
    for (i, rcpt) in job.env.rcpts.iter().enumerate() {
        if wire_safe(rcpt) {
            send.push(i);
        } else if let Some(slot) = outcomes.get_mut(i) {
            *slot = Some(RcptOutcome::Permanent {
                reply: "553 5.1.3 recipient address not usable on the wire".into(),
            });
        }
    }
    send
}

fn decide_all(outcomes: &mut [Option<RcptOutcome>], outcome: &RcptOutcome) {
    for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
        *slot = Some(outcome.clone());
    }
}

async fn lockstep<S>(
    client: &mut Client<S>,
    job: &Job<'_>,
    mail: &str,
    outcomes: &mut [Option<RcptOutcome>],
) -> Result<BodySent, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let send = sendable(job, outcomes);
    let reply = client.command(Stage::Mail, mail).await?;
    if reply.code / 100 != 2 {
        decide_all(outcomes, &failure(&reply));
        return Ok(BodySent(false));
    }
    for i in send {
        let line = rcpt_line(job.env.rcpts.get(i).map(String::as_str).unwrap_or(""));
        let reply = client.command(Stage::Rcpt, &line).await?;
        if reply.code / 100 != 2 {
            if let Some(slot) = outcomes.get_mut(i) {
                *slot = Some(failure(&reply));
            }
        }
    }
    if outcomes.iter().all(Option::is_some) {
        return Ok(BodySent(false));
    }
    let reply = client.command(Stage::Data, "DATA\r\n").await?;
    if reply.code != 354 {
        decide_all(outcomes, &failure(&reply));
        return Ok(BodySent(false));
    }
    send_body(client, job, outcomes).await
}

async fn pipelined<S>(
    client: &mut Client<S>,
    job: &Job<'_>,
    mail: &str,
    outcomes: &mut [Option<RcptOutcome>],
) -> Result<BodySent, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let send = sendable(job, outcomes);
    let mut batch = mail.to_string();
    for &i in &send {
        batch.push_str(&rcpt_line(
            job.env.rcpts.get(i).map(String::as_str).unwrap_or(""),
        ));
    }
    // With no recipient to send, DATA would only draw a 503/554 (RFC 2920 §3.1).
    if !send.is_empty() {
        batch.push_str("DATA\r\n");
    }
    client.write(Stage::Mail, batch.as_bytes()).await?;

    let mail_reply = client.read(Stage::Mail).await?;
    let mut rcpt_replies = Vec::with_capacity(send.len());
    for _ in &send {
        rcpt_replies.push(client.read(Stage::Rcpt).await?);
    }
    if send.is_empty() {
        return Ok(BodySent(false));
    }
    let data_reply = client.read(Stage::Data).await?;

    if mail_reply.code / 100 != 2 {
        decide_all(outcomes, &failure(&mail_reply));
    } else {
        for (&i, reply) in send.iter().zip(&rcpt_replies) {
            if reply.code / 100 != 2 {
                if let Some(slot) = outcomes.get_mut(i) {
                    *slot = Some(failure(reply));
                }
            }
        }
    }
    let nobody = outcomes.iter().all(Option::is_some);
    if data_reply.code != 354 {
        decide_all(outcomes, &failure(&data_reply));
        return Ok(BodySent(false));
    }
    if nobody {
        // The server took DATA although nobody is left: end it empty (RFC 2920 §3.1) and
        // let the server discard it for lack of recipients.
        client.write(Stage::Body, b".\r\n").await?;
        client.read(Stage::DataEnd).await?;
        return Ok(BodySent(false));
    }
    send_body(client, job, outcomes).await
}

async fn send_body<S>(
    client: &mut Client<S>,
    job: &Job<'_>,
    outcomes: &mut [Option<RcptOutcome>],
) -> Result<BodySent, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    client.write(Stage::Body, job.body).await?;
    let reply = client.read(Stage::DataEnd).await?;
    let outcome = if reply.code / 100 == 2 {
        RcptOutcome::Delivered {
            reply: reply.text.clone(),
        }
    } else {
        failure(&reply)
    };
    decide_all(outcomes, &outcome);
    Ok(BodySent(true))
}
