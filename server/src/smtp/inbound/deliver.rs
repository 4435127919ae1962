//! End of data: authenticate the message, apply DMARC policy, add trace headers, and store one
//! copy per recipient durably before answering.

use super::reply::{self, Reply};
use super::txn::Txn;
use super::Inbound;
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::mailauth::PolicyAction;
use crate::mailbox::{DeliveryMeta, Folder, MailboxError};
use std::net::SocketAddr;
use std::time::Instant;

pub(super) async fn deliver(
    ctx: &Inbound,
    peer: SocketAddr,
    helo: &str,
    session_id: &str,
    secure: bool,
    txn: Txn,
    body: Vec<u8>,
) -> Reply {
    let started = Instant::now();
    // A message already read is answered 452, never dropped: the sender keeps it and tries
    // again once space is freed. Checked before any copy is stored (one per recipient, each
    // with its own trace headers), so none is half done.
    let copies = body.len().saturating_mul(txn.rcpts.len().max(1)) as u64;
    if ctx.mailbox.check_space(copies).is_err() {
        ctx.metrics
            .smtp_messages
            .with_label_values(&["tempfail", "disk"])
            .inc();
        return reply::insufficient_storage();
    }
    let verdict = ctx
        .mailauth
        .verify_message(&body, peer.ip(), helo, &txn.mail_from, &txn.spf)
        .await;
    for d in &verdict.dkim {
        ctx.metrics
            .auth_results
            .with_label_values(&["dkim", d.result.as_str()])
            .inc();
    }
    ctx.metrics
        .auth_results
        .with_label_values(&["dmarc", verdict.dmarc.result.as_str()])
        .inc();
    ctx.reports.record_dmarc(&verdict, &txn.mail_from);
    // Bounces and complaints are read before the DMARC policy: a real bounce from a domain
    // with a broken setup must still reach its message (linking needs a valid token).
    if !txn.feedback.is_empty() {
        if let Some(r) = feedback(ctx, peer, &txn, &body).await {
            return r;
        }
    }
    let folder = match verdict.action() {
        PolicyAction::Reject => {
            ctx.metrics
                .smtp_messages
                .with_label_values(&["rejected", "dmarc"])
                .inc();
            let reason = "Rejected by the sender domain's DMARC policy";
            for r in &txn.rcpts {
                ctx.mailbox
                    .record_refusal(&r.agent.id, &txn.mail_from, &r.address, reason);
            }
            return Reply::new(550, "5.7.1", reason);
        }
        PolicyAction::Quarantine => Folder::Junk,
        PolicyAction::Accept => Folder::Inbox,
    };
    if !txn.reports.is_empty() {
        if let Some(r) = reports(ctx, peer, &txn, &body).await {
            return r;
        }
    }
    let now = crate::util::now_millis();
    let date = crate::util::rfc2822(crate::util::now_unix());
    let client = format!("{helo} ({})", peer.ip());
    let auth_header = verdict.authentication_results_header(&ctx.hostname);
    let mut auth_json = serde_json::to_value(&verdict).ok();
    // An Agent-Signature header, checked against the sender's DID (issue 25 §5): kept with
    // the verdict, shown as `trust.agent`.
    let from_authenticated =
        verdict.dmarc.result.is_pass() && !verdict.dmarc.from_domain.is_empty();
    if let Some(agent) = ctx
        .identity
        .verify_agent_mail(&body, from_authenticated)
        .await
    {
        if let Some(serde_json::Value::Object(m)) = auth_json.as_mut() {
            m.insert("agent".into(), agent);
        }
    }
    let mut failed_temp = false;
    let mut quota_full = 0;
    let mut refused: Option<&'static str> = None;
    let mut refused_n = 0;
    for r in &txn.rcpts {
        // RFC 5321 §4.4: one Received line per hop; `for` only names this copy's recipient.
        let received = crate::util::received_header(
            Some(&client),
            &ctx.hostname,
            if secure { "ESMTPS" } else { "ESMTP" },
            session_id,
            Some(&r.address),
            &date,
        );
        let mut raw = Vec::with_capacity(received.len() + auth_header.len() + body.len());
        raw.extend_from_slice(received.as_bytes());
        raw.extend_from_slice(auth_header.as_bytes());
        raw.extend_from_slice(&body);
        let meta = DeliveryMeta {
            received_at_ms: now,
            labels: r.tags.clone(),
            auth: auth_json.clone(),
            envelope_from: txn.mail_from.clone(),
            envelope_to: vec![r.address.clone()],
            flags: Vec::new(),
        };
        match ctx
            .mailbox
            .deliver_inbound(&r.agent.id, &r.agent.org_id, folder, raw, meta)
            .await
        {
            Ok(stored) => {
                let _ = ctx.audit.append(NewEntry {
                    actor: ActorRef::system(),
                    chain: r.agent.chain.clone(),
                    action: "mail.receive".into(),
                    target: r.agent.id.clone(),
                    outcome: Outcome::Ok,
                    detail: serde_json::json!({
                        "message_id": stored.id, "from": txn.mail_from, "peer": peer.ip().to_string(),
                        "folder": folder.name(), "size": body.len(), "session": session_id,
                    }),
                });
            }
            Err(MailboxError::QuotaExceeded { .. }) => quota_full += 1,
            Err(MailboxError::SenderRefused(why)) => {
                refused_n += 1;
                refused.get_or_insert(why);
                ctx.mailbox
                    .record_refusal(&r.agent.id, &txn.mail_from, &r.address, why);
                let _ = ctx.audit.append(NewEntry {
                    actor: ActorRef::system(),
                    chain: r.agent.chain.clone(),
                    action: "mail.refuse".into(),
                    target: r.agent.id.clone(),
                    outcome: Outcome::Denied,
                    detail: serde_json::json!({
                        "from": txn.mail_from, "peer": peer.ip().to_string(),
                        "reason": why, "session": session_id,
                    }),
                });
            }
            Err(e) => {
                tracing::error!(error = %e, session = session_id, "delivery failed");
                failed_temp = true;
            }
        }
    }
    let stored = txn.rcpts.len() - quota_full - refused_n;
    let outcome = if failed_temp {
        ("tempfail", "store", reply::temp_failure())
    } else if stored == 0 && refused.is_some() {
        (
            "rejected",
            "sender_list",
            Reply::new(550, "5.7.1", refused.unwrap_or("Sender refused")),
        )
    } else if stored == 0 {
        (
            "rejected",
            "quota",
            Reply::new(552, "5.2.2", "Mailbox full"),
        )
    } else {
        ctx.metrics
            .smtp_bytes
            .with_label_values(&["smtp"])
            .inc_by(body.len() as u64);
        (
            "accepted",
            "",
            Reply::new(250, "2.0.0", format!("OK: queued as {session_id}")),
        )
    };
    ctx.metrics
        .smtp_messages
        .with_label_values(&[outcome.0, outcome.1])
        .inc();
    ctx.metrics
        .smtp_latency
        .with_label_values(&[outcome.0])
        .observe(started.elapsed().as_secs_f64());
    outcome.2
}

/// Hands the message to the reports service for each report address it was sent to. With no
/// mailbox recipient besides, the answer is the reports': 250 when one was stored (or was a
/// repeat), 550 when none could be read, so the reporter learns of it. With one, the
/// mailbox delivery answers and a bad report is only counted and audited.
async fn reports(ctx: &Inbound, peer: SocketAddr, txn: &Txn, body: &[u8]) -> Option<Reply> {
    use crate::reports::Received;
    let mut failure = None;
    let mut stored = false;
    for kind in &txn.reports {
        match ctx
            .reports
            .receive(*kind, body.to_vec(), txn.mail_from.clone(), peer.ip())
            .await
        {
            Received::Stored { .. } => stored = true,
            Received::Failed(why) => failure = Some(why),
        }
    }
    if !txn.rcpts.is_empty() {
        return None;
    }
    let (outcome, reason, reply) = match failure {
        Some(why) if !stored => (
            "rejected",
            "report",
            Reply::new(550, "5.6.0", format!("Report not accepted: {why}")),
        ),
        _ => (
            "accepted",
            "",
            Reply::new(250, "2.0.0", "OK: report received"),
        ),
    };
    ctx.metrics
        .smtp_messages
        .with_label_values(&[outcome, reason])
        .inc();
    Some(reply)
}

/// Hands the message to the queue's feedback reader for each bounce address (and
/// `abuse@`) it came to. With no mailbox recipient besides, the answer is ours: 250 once
/// kept (linked or not: nothing is lost), 451 when it could not be stored.
async fn feedback(ctx: &Inbound, peer: SocketAddr, txn: &Txn, body: &[u8]) -> Option<Reply> {
    // abuse@ mail that is no complaint report is only mail for the abuse mailbox.
    let only_abuse = txn
        .feedback
        .iter()
        .all(|a| crate::queue::feedback::verp::tag_of(a).is_none());
    if only_abuse && crate::queue::feedback::parse::parse(body).is_err() {
        return None;
    }
    let inc = crate::queue::feedback::Incoming {
        raw: body,
        rcpts: &txn.feedback,
        envelope_from: &txn.mail_from,
        peer: peer.ip().to_string(),
    };
    let r = ctx.queue.receive_feedback(inc).await;
    let mailbox_too = !txn.rcpts.is_empty() || !txn.reports.is_empty();
    let reply = match r {
        Ok(_) => Reply::new(250, "2.0.0", "OK: report received"),
        Err(e) => {
            tracing::error!(error = %e, "could not store a bounce or complaint report");
            reply::temp_failure()
        }
    };
    if mailbox_too && reply.code == 250 {
        return None;
    }
    ctx.metrics
        .smtp_messages
        .with_label_values(&[
            if reply.code == 250 {
                "accepted"
            } else {
                "tempfail"
            },
            "feedback",
        ])
        .inc();
    Some(reply)
}
