//! One conversation with one server address: greeting, EHLO, STARTTLS, then the mail
//! transaction (`transaction.rs`). The result says whether another host is worth trying.

use super::attempt::{failure, lost, temporary, Attempt, Caps, Job};
use super::client::{BoxStream, Client, Stage};
use super::policy::{Failure, FailureKind, PolicySource};
use super::pool::Parked;
use super::reply::{Class, Reply};
use super::transaction::transact;
use crate::queue::transport::{RcptOutcome, TlsLevel};
use smtp_proto::{EXT_8BIT_MIME, EXT_PIPELINING, EXT_SIZE, EXT_SMTP_UTF8, EXT_START_TLS};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A fresh connection: greeting, EHLO, STARTTLS, then the transaction. Returns the session
/// too when it can carry another message.
pub(crate) async fn run(stream: TcpStream, job: &Job<'_>) -> (Attempt, Option<Parked>) {
    let opened = Instant::now();
    let mut client: Client<BoxStream> = Client::new(Box::new(stream), job.timeouts);
    let greeting = match client.read(Stage::Greeting).await {
        Ok(reply) => reply,
        Err(e) => return (Attempt::NextHost(lost(job, &e)), None),
    };
    if greeting.code != 220 {
        client.quit().await;
        return (Attempt::NextHost(failure(&greeting)), None);
    }
    let caps = match hello(&mut client, job, true).await {
        Ok(caps) => caps,
        Err(outcome) => return (Attempt::NextHost(outcome), None),
    };
    if !(job.try_tls && caps.starttls) {
        if job.policy.source != PolicySource::None {
            let failure = Failure::new(
                FailureKind::StarttlsNotSupported,
                "the server does not offer STARTTLS",
            );
            job.observe(Err(&failure));
            if job.require_tls() {
                client.quit().await;
                let why = job.policy.refusal(job.remote, &failure);
                return (Attempt::NextHost(temporary(why)), None);
            }
        } else {
            job.observe(Ok(TlsLevel::None));
        }
        return finish(client, caps, TlsLevel::None, opened, job).await;
    }

    match client.command(Stage::StartTls, "STARTTLS\r\n").await {
        Ok(reply) if reply.code == 220 => {}
        Ok(reply) if job.require_tls() => {
            client.quit().await;
            let failure = Failure::new(
                FailureKind::StarttlsNotSupported,
                format!("STARTTLS refused: {}", reply.text),
            );
            job.observe(Err(&failure));
            let why = job.policy.refusal(job.remote, &failure);
            return (Attempt::NextHost(temporary(why)), None);
        }
        // Refused: the session is still usable in clear text.
        Ok(_) => {
            job.observe(Ok(TlsLevel::None));
            return finish(client, caps, TlsLevel::None, opened, job).await;
        }
        Err(e) => return (Attempt::NextHost(lost(job, &e)), None),
    }
    let stream = match client.into_stream() {
        Ok(stream) => stream,
        Err(e) => return (tls_failed(job, &e.to_string()), None),
    };
    let handshake = job.tls.connector.connect(job.server_name.clone(), stream);
    let tls = match tokio::time::timeout(job.timeouts.mail, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return (tls_failed(job, &e.to_string()), None),
        Err(_) => return (tls_failed(job, "timeout"), None),
    };
    // The certificate is judged before a byte of mail goes over the session.
    let chain = tls.get_ref().1.peer_certificates().unwrap_or_default();
    let level = match job.policy.check(job.tls, chain, &job.server_name) {
        Ok(level) => {
            job.observe(Ok(level));
            level
        }
        Err(failure) => {
            job.observe(Err(&failure));
            if job.require_tls() {
                let why = job.policy.refusal(job.remote, &failure);
                let client: Client<BoxStream> = Client::new(Box::new(tls), job.timeouts);
                client.quit().await;
                return (Attempt::NextHost(temporary(why)), None);
            }
            // MTA-STS `testing`: reported above, delivered anyway (RFC 8461 §5).
            TlsLevel::Opportunistic
        }
    };
    let mut client: Client<BoxStream> = Client::new(Box::new(tls), job.timeouts);
    // RFC 3207 §4.2: forget everything learnt before TLS and ask again.
    match hello(&mut client, job, false).await {
        Ok(caps) => finish(client, caps, level, opened, job).await,
        Err(outcome) => (Attempt::NextHost(outcome), None),
    }
}

/// The transaction on a new session; a clean end hands the session back for reuse.
async fn finish(
    mut client: Client<BoxStream>,
    caps: Caps,
    tls: TlsLevel,
    opened: Instant,
    job: &Job<'_>,
) -> (Attempt, Option<Parked>) {
    let ended = transact(&mut client, caps, tls, job).await;
    if ended.reusable {
        let parked = Parked {
            client,
            caps,
            tls,
            opened,
            uses: 0,
        };
        return (ended.attempt, Some(parked));
    }
    client.quit().await;
    (ended.attempt, None)
}

/// How a transaction on a parked session went.
pub(crate) enum Reused {
    Done(Attempt, Option<Box<Parked>>),
    /// The server had closed the session; nothing was sent that it could have accepted.
    Stale,
}

/// The next message on a parked session (already greeted, EHLO'd and, if it was offered,
/// encrypted).
pub(crate) async fn reuse(mut parked: Parked, job: &Job<'_>) -> Reused {
    let ended = transact(&mut parked.client, parked.caps, parked.tls, job).await;
    if ended.lost_before_body {
        return Reused::Stale;
    }
    if ended.reusable {
        return Reused::Done(ended.attempt, Some(Box::new(parked)));
    }
    parked.client.quit().await;
    Reused::Done(ended.attempt, None)
}

fn tls_failed(job: &Job<'_>, why: &str) -> Attempt {
    if job.policy.source != PolicySource::None {
        let failure = Failure::new(
            FailureKind::ValidationFailure,
            format!("TLS handshake failed: {why}"),
        );
        job.observe(Err(&failure));
    }
    let outcome = temporary(format!(
        "451 4.7.5 TLS handshake with {} failed: {why}",
        job.remote
    ));
    if job.require_tls() {
        Attempt::NextHost(outcome)
    } else {
        Attempt::RetryWithoutTls(outcome)
    }
}

/// EHLO, and HELO when EHLO gets a 5xx (RFC 5321 §3.2) and `helo_allowed` (never after
/// STARTTLS: a server that spoke ESMTP a moment ago is not an RFC 821 server).
async fn hello<S>(
    client: &mut Client<S>,
    job: &Job<'_>,
    helo_allowed: bool,
) -> Result<Caps, RcptOutcome>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let ehlo = format!("EHLO {}\r\n", job.hostname);
    let reply = client
        .command(Stage::Ehlo, &ehlo)
        .await
        .map_err(|e| lost(job, &e))?;
    if reply.code == 250 {
        return Ok(caps(&reply));
    }
    if !(helo_allowed && reply.class() == Some(Class::Permanent)) {
        return Err(failure(&reply));
    }
    let helo = format!("HELO {}\r\n", job.hostname);
    let reply = client
        .command(Stage::Helo, &helo)
        .await
        .map_err(|e| lost(job, &e))?;
    if reply.code == 250 {
        Ok(Caps::default())
    } else {
        Err(failure(&reply))
    }
}

fn caps(reply: &Reply) -> Caps {
    let Some(ehlo) = reply.ehlo() else {
        return Caps::default();
    };
    Caps {
        pipelining: ehlo.has_capability(EXT_PIPELINING),
        starttls: ehlo.has_capability(EXT_START_TLS),
        eight_bit_mime: ehlo.has_capability(EXT_8BIT_MIME),
        smtputf8: ehlo.has_capability(EXT_SMTP_UTF8),
        size: ehlo.has_capability(EXT_SIZE).then_some(ehlo.size),
    }
}
