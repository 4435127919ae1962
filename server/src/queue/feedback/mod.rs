//! Bounces and complaints coming back (issue 24, item 3; DESIGN §15). The inbound SMTP
//! session hands us what arrives at a VERP bounce address (`verp`), and ARF reports sent
//! to `abuse@`; we read them (`parse`), find the message and recipient they are about, and
//! in one transaction mark that recipient `bounced` or `complained`, suppress the address
//! (hard bounce, complaint) and keep the report under the message. Nothing of it reaches
//! the agent's INBOX.
//!
//! Linking is strict, so nothing is tied to the wrong message: a bounce address must carry
//! a valid MAC; the message must belong to the org of the domain the report came to; a DSN
//! must name the token's recipient; a complaint quoting a Message-ID must quote the
//! message's own. Anything else (malformed, forged, another org's, unknown) is kept unlinked
//! where an admin sees it (`GET /v1/feedback`) and delivered to the postmaster mailbox:
//! nothing is lost.

pub mod parse;
pub mod verp;

use super::model::{schedule_key, QueuedMessage, RcptStatus};
use super::service::QueueService;
use super::QueueError;
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::identity::Actor;
use crate::mailbox::{DeliveryMeta, Folder};
use crate::policy::{is_hard_bounce, suppression_key, Observation, Suppression};
use crate::store::{keys, EventRecord, Tree, TxFail};
use crate::util::{now_millis, rfc3339};
use parse::Report;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::ops::Bound;

/// One report received, linked or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedbackReport {
    pub id: String,
    /// `dsn`, `arf` or `unknown`.
    pub kind: String,
    pub received_ms: i64,
    /// The address it was sent to (a bounce address, `abuse@`).
    pub rcpt: String,
    pub envelope_from: String,
    pub peer: String,
    /// The message it is about, when linked.
    pub message_id: Option<String>,
    pub agent_id: Option<String>,
    /// The recipient it is about, when known.
    pub recipient: Option<String>,
    /// `bounced`, `complained`, `noted` (linked, no change: a delay notice, a soft
    /// failure of a recipient already final) or `unlinked`.
    pub outcome: String,
    /// Why unlinked, or what it says (status, diagnostic, feedback type).
    pub reason: String,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub feedback_type: Option<String>,
    /// The report as received (with our trace headers), cut at `feedback.keep_bytes`.
    pub raw: String,
    pub truncated: bool,
}

impl FeedbackReport {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "received_at": rfc3339(self.received_ms / 1000),
            "rcpt": self.rcpt,
            "envelope_from": self.envelope_from,
            "peer": self.peer,
            "message_id": self.message_id,
            "agent_id": self.agent_id,
            "recipient": self.recipient,
            "outcome": self.outcome,
            "reason": self.reason,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "feedback_type": self.feedback_type,
            "raw": self.raw,
            "truncated": self.truncated,
        })
    }
}

/// The [`Tree::SentMessageIds`] key of a Message-ID: lower case, without brackets.
pub fn message_id_key(mid: &str) -> String {
    let k = mid.trim().trim_matches(['<', '>']).to_ascii_lowercase();
    if k.len() > 500 || k.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return String::new();
    }
    k
}

/// `GET /v1/feedback` parameters (admins).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackQuery {
    /// true: only linked reports; false: only unlinked ones.
    pub linked: Option<bool>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// What arrived, as the inbound session hands it over.
pub struct Incoming<'a> {
    /// The message with our trace headers.
    pub raw: &'a [u8],
    /// The bounce addresses (and `abuse@`) it was sent to, once each.
    pub rcpts: &'a [String],
    pub envelope_from: &'a str,
    pub peer: String,
}

/// The decision on one report.
struct Link {
    message: QueuedMessage,
    index: Option<usize>,
    /// Linked through a bounce token (a MAC we made for that message and recipient). A
    /// complaint matched by its quoted Message-ID alone could come from anyone who saw the
    /// message and name any of its recipients: it is kept under the message, but changes
    /// no delivery, suppresses nothing and counts nowhere.
    verified: bool,
    outcome: &'static str,
    hard: bool,
    status: Option<String>,
    diagnostic: Option<String>,
}

const REPORT_TREES: [Tree; 11] = [
    Tree::Queue,
    Tree::ReputationTally,
    Tree::QueueSchedule,
    Tree::BlobHolds,
    Tree::Messages,
    Tree::BlobRefs,
    Tree::FeedbackReports,
    Tree::FeedbackByMessage,
    Tree::Suppressions,
    Tree::Events,
    Tree::Meta,
];

impl QueueService {
    fn verp_mac(&self) -> impl Fn(&[u8]) -> [u8; 32] + '_ {
        |m: &[u8]| self.vault.verp_mac(m)
    }

    /// Whether a bounce-address tag (`b.<id>.<index>.<mac>`) carries a MAC we made: checked
    /// at RCPT, so mail to a made-up bounce address is refused instead of stored.
    pub fn is_bounce_tag(&self, tag: &str) -> bool {
        verp::parse(tag, self.verp_mac()).is_some()
    }

    /// The reverse-path for recipient `index` of `msg` (the agent's address when VERP is
    /// off, empty for our own notices).
    pub(super) fn reverse_path(&self, msg: &QueuedMessage, index: usize) -> String {
        if !self.settings.verp || msg.mail_from.is_empty() {
            return msg.mail_from.clone();
        }
        verp::address(&msg.mail_from, &msg.id, index, self.verp_mac())
    }

    /// Takes a report: linked, recorded and acted on, or kept unlinked. Errors are storage
    /// failures only (the session answers 451 and the sender tries again).
    pub async fn receive_feedback(&self, inc: Incoming<'_>) -> Result<Vec<String>, QueueError> {
        let parsed = parse::parse(inc.raw);
        let mut ids = Vec::new();
        for rcpt in inc.rcpts.iter().take(8) {
            let id = self.one_report(&inc, rcpt, &parsed).await?;
            ids.push(id);
        }
        Ok(ids)
    }

    async fn one_report(
        &self,
        inc: &Incoming<'_>,
        rcpt: &str,
        parsed: &Result<Report, String>,
    ) -> Result<String, QueueError> {
        let keep = self.settings.feedback_keep_bytes;
        let cut = inc.raw.len() > keep;
        let mut r = FeedbackReport {
            id: crate::util::new_id("fb"),
            kind: match parsed {
                Ok(Report::Dsn { .. }) => "dsn",
                Ok(Report::Arf { .. }) => "arf",
                Err(_) => "unknown",
            }
            .into(),
            received_ms: now_millis(),
            rcpt: rcpt.to_string(),
            envelope_from: inc.envelope_from.to_string(),
            peer: inc.peer.clone(),
            message_id: None,
            agent_id: None,
            recipient: None,
            outcome: "unlinked".into(),
            reason: String::new(),
            status: None,
            diagnostic: None,
            feedback_type: match parsed {
                Ok(Report::Arf { feedback_type, .. }) => Some(feedback_type.clone()),
                _ => None,
            },
            raw: String::from_utf8_lossy(&inc.raw[..inc.raw.len().min(keep)]).to_string(),
            truncated: cut,
        };
        let link = match parsed {
            Ok(rep) => self.link(rcpt, rep),
            Err(e) => Err(format!("not a DSN or ARF report: {e}")),
        };
        match link {
            Ok(l) => self.record_linked(r, l).await,
            Err(why) => {
                r.reason = why;
                self.record_unlinked(r, inc.raw).await
            }
        }
    }

    /// Finds the message and recipient a report is about, or says why not.
    fn link(&self, rcpt: &str, rep: &Report) -> Result<Link, String> {
        let rcpt_domain = rcpt
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let token = |addr: &str| -> Option<Result<(String, usize), String>> {
            let tag = verp::tag_of(addr)?;
            Some(
                verp::parse(tag, self.verp_mac())
                    .ok_or_else(|| "the bounce address's token is not valid".to_string()),
            )
        };
        let found = |id: &str| -> Result<QueuedMessage, String> {
            let q: Option<QueuedMessage> = self
                .store
                .get_record(Tree::Queue, id.as_bytes())
                .map_err(|e| e.to_string())?;
            let q = q.ok_or_else(|| "no such sent message".to_string())?;
            // The report came to one of our domains: the message must be of that domain's
            // org, so one org's reports never touch another's mail.
            let agent = self
                .identity
                .agent(&q.agent_id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "the sending agent no longer exists".to_string())?;
            let org_of_rcpt = self
                .identity
                .org_by_domain(&rcpt_domain)
                .map_err(|e| e.to_string())?
                .map(|o| o.id);
            if org_of_rcpt.as_deref() != Some(agent.org_id.as_str()) {
                return Err("the message belongs to another org".into());
            }
            Ok(q)
        };
        match rep {
            Report::Dsn { rcpts, .. } => {
                let (id, index) = token(rcpt)
                    .unwrap_or_else(|| Err("a DSN must come to a bounce address".into()))?;
                let q = found(&id)?;
                let want = q
                    .recipients
                    .get(index)
                    .map(|r| r.address.to_ascii_lowercase())
                    .ok_or("the token names no recipient of the message")?;
                let d = rcpts
                    .iter()
                    .find(|d| d.address == want)
                    .ok_or("the DSN does not name the recipient its token is for")?;
                let failed = d.action == "failed";
                let hard = failed
                    && (d.status.starts_with("5.1.")
                        || d.status == "5.2.1"
                        || d.diagnostic.as_deref().is_some_and(is_hard_bounce));
                Ok(Link {
                    message: q,
                    index: Some(index),
                    verified: true,
                    outcome: if failed { "bounced" } else { "noted" },
                    hard,
                    status: Some(d.status.clone()).filter(|s| !s.is_empty()),
                    diagnostic: d.diagnostic.clone(),
                })
            }
            Report::Arf {
                original_mail_from,
                original_rcpt_to,
                original,
                ..
            } => {
                let tok = token(rcpt)
                    .or_else(|| original_mail_from.as_deref().and_then(token))
                    .or_else(|| original.return_path.as_deref().and_then(token));
                let (q, index, verified) = match tok {
                    Some(t) => {
                        let (id, index) = t?;
                        (found(&id)?, Some(index), true)
                    }
                    None => {
                        let mid = original
                            .message_id
                            .as_deref()
                            .map(message_id_key)
                            .filter(|k| !k.is_empty())
                            .ok_or("the complaint carries no bounce token and no Message-ID")?;
                        let id = self
                            .store
                            .get(Tree::SentMessageIds, mid.as_bytes())
                            .map_err(|e| e.to_string())?
                            .ok_or("the complaint's Message-ID is not one of our messages")?;
                        let id = String::from_utf8_lossy(&id).to_string();
                        let q = found(&id)?;
                        let named: Vec<&String> =
                            original_rcpt_to.iter().chain(&original.to).collect();
                        let index = q
                            .recipients
                            .iter()
                            .position(|r| named.iter().any(|n| n.eq_ignore_ascii_case(&r.address)));
                        let index = index.or((q.recipients.len() == 1).then_some(0));
                        (q, index, false)
                    }
                };
                if let (Some(quoted), Some(ours)) = (&original.message_id, &q.message_id) {
                    if message_id_key(quoted) != message_id_key(ours) {
                        return Err("the complaint quotes another message's Message-ID".into());
                    }
                }
                if index.is_some_and(|i| i >= q.recipients.len()) {
                    return Err("the token names no recipient of the message".into());
                }
                Ok(Link {
                    message: q,
                    index,
                    verified,
                    outcome: "complained",
                    hard: false,
                    status: None,
                    diagnostic: None,
                })
            }
        }
    }

    async fn record_linked(&self, mut r: FeedbackReport, l: Link) -> Result<String, QueueError> {
        let id = l.message.id.clone();
        let recipient = l
            .index
            .and_then(|i| l.message.recipients.get(i))
            .map(|x| x.address.clone());
        r.message_id = Some(id.clone());
        r.outcome = l.outcome.into();
        r.agent_id = Some(l.message.agent_id.clone());
        r.recipient = recipient.clone();
        r.status = l.status.clone();
        r.diagnostic = l.diagnostic.clone();
        let agent = self.identity.agent(&l.message.agent_id)?;
        let org = agent.as_ref().map(|a| a.org_id.clone()).unwrap_or_default();
        let complaint = l.outcome == "complained";
        let suppress = l.verified && (l.hard || complaint) && recipient.is_some();
        r.reason = match l.outcome {
            "bounced" => format!(
                "bounced{}: {}",
                if l.hard { " (hard)" } else { "" },
                l.diagnostic
                    .clone()
                    .or(l.status.clone())
                    .unwrap_or_default()
            ),
            "complained" if !l.verified => format!(
                "unverified complaint ({}): matched by Message-ID only, no bounce token; kept, not acted on",
                r.feedback_type.clone().unwrap_or_default()
            ),
            "complained" => format!(
                "complaint ({})",
                r.feedback_type.clone().unwrap_or_default()
            ),
            _ => format!(
                "noted: {}",
                l.status.clone().unwrap_or_else(|| "no status".into())
            ),
        };
        let changed = self.store.transact(&REPORT_TREES, |tx| {
            let mut changed = false;
            if let (true, Some(i), Some(mut m)) = (
                l.verified,
                l.index,
                tx.get_record::<QueuedMessage>(Tree::Queue, id.as_bytes())?,
            ) {
                let new = match l.outcome {
                    "bounced" => Some(RcptStatus::Bounced),
                    "complained" => Some(RcptStatus::Complained),
                    _ => None,
                };
                if let (Some(new), Some(rc)) = (new, m.recipients.get(i).map(|x| x.status)) {
                    if rc != new && rc != RcptStatus::Cancelled {
                        let old_due = m.next_due_ms();
                        let before = crate::reputation::tally::Tally::of(&m);
                        if let Some(x) = m.recipients.get_mut(i) {
                            x.status = new;
                            x.last_reply = Some(r.reason.chars().take(500).collect());
                        }
                        if let Some(d) = old_due {
                            tx.remove(Tree::QueueSchedule, &schedule_key(d, &id))?;
                        }
                        match m.next_due_ms() {
                            Some(d) => tx.put(Tree::QueueSchedule, &schedule_key(d, &id), &[])?,
                            None => crate::mailbox::holds::release(tx, &id)?,
                        }
                        crate::reputation::tally::record_tallied(tx, &m, before)?;
                        tx.put_record(Tree::Queue, id.as_bytes(), &m)?;
                        changed = true;
                    }
                }
            }
            if let (true, Some(addr)) = (suppress, &recipient) {
                let key = suppression_key(&org, addr);
                if tx.get(Tree::Suppressions, &key)?.is_none() {
                    let s = Suppression {
                        org_id: org.clone(),
                        address: addr.to_ascii_lowercase(),
                        reason: r.reason.chars().take(500).collect(),
                        source: if complaint { "complaint" } else { "bounce" }.into(),
                        added_ms: r.received_ms,
                        added_by: format!("feedback:{}", r.id),
                    };
                    tx.put_record(Tree::Suppressions, &key, &s)?;
                }
            }
            tx.put_record(Tree::FeedbackReports, r.id.as_bytes(), &r)?;
            tx.put(Tree::FeedbackByMessage, &keys::join(&[&id, &r.id]), &[])?;
            if l.outcome != "noted" {
                tx.emit(&EventRecord::new(
                    if complaint {
                        "message.complained"
                    } else {
                        "message.bounced"
                    },
                    &l.message.agent_id,
                    json!({
                        "message_id": id,
                        "recipient": recipient,
                        "report_id": r.id,
                        "status": r.status,
                        "reason": r.reason,
                        "suppressed": suppress,
                    }),
                ))?;
            }
            Ok::<_, TxFail<QueueError>>(changed)
        })?;
        let _ = self.audit.append(NewEntry {
            actor: ActorRef::system(),
            chain: l.message.chain.clone(),
            action: format!("mail.feedback.{}", l.outcome),
            target: id.clone(),
            outcome: Outcome::Ok,
            detail: json!({
                "report_id": r.id, "recipient": recipient, "kind": r.kind,
                "status": r.status, "suppressed": suppress, "changed": changed,
                (crate::audit::SUBJECT_AGENT): l.message.agent_id,
            }),
        });
        self.store.commit().await?;
        let obs = match (l.outcome, l.hard) {
            ("complained", _) => Some(Observation::Complaint),
            ("bounced", true) => Some(Observation::HardBounce),
            _ => None,
        };
        // Counted once per recipient and outcome: a repeated report changes nothing and must
        // not push the breaker again.
        if let (Some(obs), Some(i), true) = (obs, l.index, changed) {
            self.observe(&l.message, i, obs).await;
        }
        Ok(r.id)
    }

    /// Kept for admins and handed to the postmaster mailbox, so nothing is lost.
    async fn record_unlinked(&self, r: FeedbackReport, raw: &[u8]) -> Result<String, QueueError> {
        self.store
            .put_record(Tree::FeedbackReports, r.id.as_bytes(), &r)?;
        let _ = self.audit.append(NewEntry {
            actor: ActorRef::system(),
            chain: vec![],
            action: "mail.feedback.unlinked".into(),
            target: r.id.clone(),
            outcome: Outcome::Error,
            detail: json!({"rcpt": r.rcpt, "reason": r.reason, "peer": r.peer}),
        });
        self.store.commit().await?;
        match self.identity.postmaster() {
            Ok(Some(pm)) => {
                let meta = DeliveryMeta {
                    received_at_ms: r.received_ms,
                    labels: vec!["feedback".into()],
                    auth: None,
                    envelope_from: r.envelope_from.clone(),
                    envelope_to: vec![r.rcpt.clone()],
                    flags: vec![],
                };
                if let Err(e) = self
                    .mailbox
                    .deliver(&pm.id, Folder::Inbox, raw.to_vec(), meta)
                    .await
                {
                    tracing::warn!(error = %e, report = %r.id, "could not hand an unlinked report to the postmaster");
                }
            }
            _ => {
                tracing::warn!(report = %r.id, "no postmaster mailbox; the unlinked report is kept for GET /v1/feedback")
            }
        }
        Ok(r.id)
    }

    /// The reports linked to message `id`, into its JSON (`feedback`).
    pub(super) fn add_feedback(
        &self,
        v: &mut Value,
        agent_id: &str,
        id: &str,
    ) -> Result<(), QueueError> {
        let prefix = keys::prefix(&[id]);
        let mut out = Vec::new();
        for item in self.store.scan_prefix(Tree::FeedbackByMessage, &prefix) {
            let (k, _) = item?;
            let rid = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
            if let Some(r) = self
                .store
                .get_record::<FeedbackReport>(Tree::FeedbackReports, rid.as_bytes())?
            {
                if r.agent_id.as_deref() == Some(agent_id) {
                    out.push(r.to_json());
                }
            }
            if out.len() >= 50 {
                break;
            }
        }
        if !out.is_empty() {
            v["feedback"] = Value::Array(out);
        }
        Ok(())
    }

    /// `GET /v1/feedback` (admins): every report received, linked or not, in id order.
    pub fn feedback_list(&self, actor: &Actor, q: &FeedbackQuery) -> Result<Value, QueueError> {
        actor.require_admin(&self.audit, "feedback.list", "")?;
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let from = match &q.cursor {
            Some(c) => Bound::Excluded(c.clone().into_bytes()),
            None => Bound::Unbounded,
        };
        let mut items: Vec<Value> = Vec::new();
        let mut next = None;
        for item in self
            .store
            .range(Tree::FeedbackReports, from, Bound::Unbounded, false)
        {
            let (_, v) = item?;
            let r: FeedbackReport = crate::store::decode(&v)?;
            if q.linked.is_some_and(|l| l != r.message_id.is_some()) {
                continue;
            }
            if items.len() == limit {
                next = items
                    .last()
                    .and_then(|v| v["id"].as_str())
                    .map(str::to_string);
                break;
            }
            items.push(r.to_json());
        }
        Ok(json!({"items": items, "next_cursor": next}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_keys_are_normalised_and_bounded() {
        assert_eq!(message_id_key(" <Abc@X.test> "), "abc@x.test");
        assert_eq!(message_id_key("<a b@x>"), "");
        assert_eq!(message_id_key(&"x".repeat(600)), "");
    }
}
