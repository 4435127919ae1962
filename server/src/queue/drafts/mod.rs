//! Drafts and scheduled sending (issue 18 item 6).
//!
//! A draft is a record (its fields, who wrote it, when it should go) plus a copy in the
//! agent's Drafts folder, so IMAP clients and `GET /v1/messages?folder=Drafts` see it; every
//! change replaces that copy. Sending composes from the record exactly as
//! `POST /v1/messages/send` does, through the same door ([`QueueService::send`]).
//!
//! A scheduled draft waits in the store (`DraftSchedule`, by due time) and the queue worker
//! fires it when due, so it survives restarts. At that moment the key that scheduled it is
//! checked again — revoked, expired, its agent revoked or `mail:send` withdrawn meanwhile, and
//! the draft is not sent (it stays, unscheduled, with the reason) — because a send that
//! outlives the authority that asked for it is exactly what an operator revoking a key must
//! be able to stop.

mod send;

use super::compose::{one_or_many, opt_one_or_many, SendRequest};
use super::service::QueueService;
use super::QueueError;
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::mailbox::{DeliveryMeta, Folder};
use crate::store::{keys, Tree, TxFail};
use crate::util::{new_id, now_millis};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Drafts one agent may hold.
const MAX_DRAFTS: usize = 1000;
/// How far ahead a send may be scheduled.
const MAX_SCHEDULE_AHEAD_MS: i64 = 366 * 24 * 3600 * 1000;

/// The fields of a draft: what `POST /v1/messages/send` takes, attachments aside.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftFields {
    #[serde(default, deserialize_with = "one_or_many")]
    pub to: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub cc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub bcc: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub reply_to: Vec<String>,
    #[serde(default)]
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub in_reply_to: Option<String>,
}

impl DraftFields {
    fn request(&self) -> SendRequest {
        SendRequest {
            to: self.to.clone(),
            cc: self.cc.clone(),
            bcc: self.bcc.clone(),
            reply_to: self.reply_to.clone(),
            subject: self.subject.clone(),
            text: self.text.clone(),
            html: self.html.clone(),
            in_reply_to: self.in_reply_to.clone(),
            ..SendRequest::default()
        }
    }
}

/// A change to a draft: each field given replaces the draft's; `send_at: null` unschedules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftPatch {
    #[serde(default, deserialize_with = "opt_one_or_many")]
    pub to: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_one_or_many")]
    pub cc: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_one_or_many")]
    pub bcc: Option<Vec<String>>,
    #[serde(default, deserialize_with = "opt_one_or_many")]
    pub reply_to: Option<Vec<String>>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub in_reply_to: Option<String>,
    /// RFC 3339 (or unix seconds); absent leaves the schedule, null removes it.
    #[serde(default, deserialize_with = "some_or_null")]
    pub send_at: Option<Option<String>>,
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    pub id: String,
    pub agent_id: String,
    /// The key that last changed or scheduled it: re-checked when a scheduled send fires.
    pub key_id: String,
    pub fields: DraftFields,
    /// The copy in the Drafts folder.
    pub message_id: Option<String>,
    pub send_at_ms: Option<i64>,
    /// Why the last scheduled send did not go (key revoked, message refused...).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Claimed by a send in progress: edits and deletes wait (409), a second send cannot
    /// start, and a crash meanwhile is reported at the next start rather than re-sent.
    #[serde(default)]
    pub sending: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Draft {
    pub fn to_json(&self) -> Value {
        let f = &self.fields;
        json!({
            "id": self.id,
            "status": if self.sending { "sending" } else if self.send_at_ms.is_some() { "scheduled" } else { "draft" },
            "send_at": self.send_at_ms.map(crate::util::rfc3339_millis),
            "message_id": self.message_id,
            "to": f.to, "cc": f.cc, "bcc": f.bcc, "reply_to": f.reply_to,
            "subject": f.subject, "text": f.text, "html": f.html, "in_reply_to": f.in_reply_to,
            "last_error": self.last_error,
            "created_at": crate::util::rfc3339_millis(self.created_at_ms),
            "updated_at": crate::util::rfc3339_millis(self.updated_at_ms),
        })
    }
}

fn draft_key(agent: &str, id: &str) -> Vec<u8> {
    keys::join(&[agent, id])
}

fn schedule_key(due_ms: i64, agent: &str, id: &str) -> Vec<u8> {
    let mut k = u64::try_from(due_ms).unwrap_or(0).to_be_bytes().to_vec();
    k.extend_from_slice(&keys::join(&[agent, id]));
    k
}

fn parse_schedule_key(k: &[u8]) -> Option<(i64, String, String)> {
    let (due, rest) = k.split_at_checked(8)?;
    let due = i64::try_from(u64::from_be_bytes(due.try_into().ok()?)).ok()?;
    let rest = std::str::from_utf8(rest).ok()?;
    let (agent, id) = rest.split_once('\0')?;
    Some((due, agent.to_string(), id.to_string()))
}

fn valid_draft_id(id: &str) -> bool {
    crate::util::is_id_of(id, "dr")
}

fn parse_send_at(s: &str, now_ms: i64) -> Result<i64, QueueError> {
    let at = crate::util::parse_time(s)
        .ok_or_else(|| {
            QueueError::Invalid(format!("send_at: \"{s}\" is not RFC 3339 or unix seconds"))
        })?
        .saturating_mul(1000);
    if at > now_ms + MAX_SCHEDULE_AHEAD_MS {
        return Err(QueueError::Invalid("send_at: at most a year ahead".into()));
    }
    // A time already past sends at once (the next worker pass), as a late client expects.
    Ok(at.max(now_ms))
}

impl QueueService {
    fn load_draft(&self, agent: &str, id: &str) -> Result<Draft, QueueError> {
        if !valid_draft_id(id) {
            return Err(QueueError::NotFound("draft"));
        }
        self.store
            .get_record::<Draft>(Tree::Drafts, &draft_key(agent, id))?
            .ok_or(QueueError::NotFound("draft"))
    }

    /// Writes the draft's Drafts-folder copy (replacing the old one) and the record with its
    /// schedule entry.
    async fn save_draft(&self, mut d: Draft, old: Option<&Draft>) -> Result<Draft, QueueError> {
        let agent = self.active_agent(&d.agent_id)?;
        let mut req = d.fields.request();
        if req.text.is_none() && req.html.is_none() {
            req.text = Some(String::new());
        }
        let composed = super::compose::compose(
            &req,
            &agent.address(),
            &agent.name,
            &self.settings.hostname,
            crate::util::now_unix(),
        )?;
        let meta = DeliveryMeta {
            received_at_ms: now_millis(),
            envelope_from: agent.address(),
            flags: vec!["\\Draft".into(), "\\Seen".into()],
            ..Default::default()
        };
        let copy = self
            .mailbox
            .deliver(&agent.id, Folder::Drafts, composed.raw, meta)
            .await?;
        d.message_id = Some(copy.id.clone());
        let key = draft_key(&d.agent_id, &d.id);
        let old_due = old.and_then(|o| o.send_at_ms);
        let saved =
            self.store
                .transact::<_, QueueError>(&[Tree::Drafts, Tree::DraftSchedule], |tx| {
                    if let Some(o) = old {
                        // Unchanged since it was read, and not claimed by a send meanwhile.
                        let cur: Option<Draft> = tx.get_record(Tree::Drafts, &key)?;
                        if cur
                            .as_ref()
                            .is_none_or(|c| c.sending || c.updated_at_ms != o.updated_at_ms)
                        {
                            return Err(TxFail::Abort(QueueError::Conflict(
                                "the draft changed or is being sent; read it again".into(),
                            )));
                        }
                    }
                    if let Some(due) = old_due {
                        tx.remove(Tree::DraftSchedule, &schedule_key(due, &d.agent_id, &d.id))?;
                    }
                    if let Some(due) = d.send_at_ms {
                        tx.put(
                            Tree::DraftSchedule,
                            &schedule_key(due, &d.agent_id, &d.id),
                            &[],
                        )?;
                    }
                    tx.put_record(Tree::Drafts, &key, &d)?;
                    Ok(())
                });
        if let Err(e) = saved {
            // The copy made for this version belongs to no draft.
            self.mailbox.purge_for(&d.agent_id, &copy.id).await?;
            return Err(e.into());
        }
        if let Some(old_copy) = old.and_then(|o| o.message_id.as_deref()) {
            self.mailbox.purge_for(&d.agent_id, old_copy).await?;
        }
        self.audit.commit().await?;
        if d.send_at_ms.is_some() {
            self.nudge();
        }
        Ok(d)
    }

    /// `mail:send`. A new draft, optionally scheduled (`send_at`).
    pub async fn create_draft(
        &self,
        actor: &Actor,
        fields: DraftFields,
        send_at: Option<&str>,
    ) -> Result<Draft, QueueError> {
        let agent = actor.require(&self.audit, Scope::MailSend, "draft.create", "")?;
        let count = self
            .store
            .scan_prefix(Tree::Drafts, &keys::prefix(&[agent]))
            .take(MAX_DRAFTS)
            .count();
        if count >= MAX_DRAFTS {
            return Err(QueueError::Invalid(format!(
                "at most {MAX_DRAFTS} drafts per agent"
            )));
        }
        let now = now_millis();
        let d = Draft {
            id: new_id("dr"),
            agent_id: agent.to_string(),
            key_id: actor.key_id.clone(),
            fields,
            message_id: None,
            send_at_ms: send_at.map(|s| parse_send_at(s, now)).transpose()?,
            last_error: None,
            sending: false,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let d = self.save_draft(d, None).await?;
        self.audit_draft(actor, "draft.create", &d)?;
        Ok(d)
    }

    fn audit_draft(&self, actor: &Actor, action: &str, d: &Draft) -> Result<(), QueueError> {
        actor.audit(
            &self.audit,
            action,
            &d.id,
            Outcome::Ok,
            json!({"send_at": d.send_at_ms.map(crate::util::rfc3339_millis)}),
        )?;
        Ok(())
    }

    /// `mail:read`. The agent's drafts, newest change first.
    pub fn list_drafts(&self, actor: &Actor) -> Result<Vec<Draft>, QueueError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "draft.list", "")?;
        let mut out: Vec<Draft> = self
            .store
            .scan_prefix(Tree::Drafts, &keys::prefix(&[agent]))
            .map(|r| {
                r.map_err(QueueError::from)
                    .and_then(|(_, v)| Ok(crate::store::decode(&v)?))
            })
            .collect::<Result<_, _>>()?;
        out.sort_by_key(|d| std::cmp::Reverse(d.updated_at_ms));
        Ok(out)
    }

    /// `mail:read`.
    pub fn get_draft(&self, actor: &Actor, id: &str) -> Result<Draft, QueueError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "draft.get", id)?;
        self.load_draft(agent, id)
    }

    /// `mail:send`. Changes fields and/or the schedule; the Drafts copy is replaced.
    pub async fn update_draft(
        &self,
        actor: &Actor,
        id: &str,
        p: DraftPatch,
    ) -> Result<Draft, QueueError> {
        let agent = actor.require(&self.audit, Scope::MailSend, "draft.update", id)?;
        let old = self.load_draft(agent, id)?;
        if old.sending {
            return Err(QueueError::Conflict("the draft is being sent".into()));
        }
        let mut d = old.clone();
        let f = &mut d.fields;
        if let Some(v) = p.to {
            f.to = v;
        }
        if let Some(v) = p.cc {
            f.cc = v;
        }
        if let Some(v) = p.bcc {
            f.bcc = v;
        }
        if let Some(v) = p.reply_to {
            f.reply_to = v;
        }
        if let Some(v) = p.subject {
            f.subject = v;
        }
        if p.text.is_some() {
            f.text = p.text;
        }
        if p.html.is_some() {
            f.html = p.html;
        }
        if p.in_reply_to.is_some() {
            f.in_reply_to = p.in_reply_to;
        }
        let now = now_millis();
        if let Some(at) = p.send_at {
            d.send_at_ms = at.as_deref().map(|s| parse_send_at(s, now)).transpose()?;
            d.last_error = None;
        }
        d.key_id = actor.key_id.clone();
        d.updated_at_ms = now;
        let d = self.save_draft(d, Some(&old)).await?;
        self.audit_draft(actor, "draft.update", &d)?;
        Ok(d)
    }

    /// Removes the record, its schedule entry and its Drafts copy. `claimed`: the caller's
    /// send holds the draft; otherwise a draft being sent is refused (409).
    async fn drop_draft(&self, d: &Draft, claimed: bool) -> Result<(), QueueError> {
        let key = draft_key(&d.agent_id, &d.id);
        let gone =
            self.store
                .transact::<_, QueueError>(&[Tree::Drafts, Tree::DraftSchedule], |tx| {
                    let Some(cur) = tx.get_record::<Draft>(Tree::Drafts, &key)? else {
                        return Ok(None);
                    };
                    if cur.sending != claimed {
                        return Err(TxFail::Abort(QueueError::Conflict(
                            "the draft is being sent".into(),
                        )));
                    }
                    if let Some(due) = cur.send_at_ms {
                        tx.remove(
                            Tree::DraftSchedule,
                            &schedule_key(due, &cur.agent_id, &cur.id),
                        )?;
                    }
                    tx.remove(Tree::Drafts, &key)?;
                    Ok(Some(cur))
                })?;
        let Some(cur) = gone else {
            return Err(QueueError::NotFound("draft"));
        };
        if let Some(copy) = &cur.message_id {
            self.mailbox.purge_for(&cur.agent_id, copy).await?;
        }
        Ok(())
    }

    /// `mail:send`. Deletes a draft; a scheduled one is cancelled (it never sends).
    pub async fn delete_draft(&self, actor: &Actor, id: &str) -> Result<(), QueueError> {
        let agent = actor.require(&self.audit, Scope::MailSend, "draft.delete", id)?;
        let d = self.load_draft(agent, id)?;
        self.drop_draft(&d, false).await?;
        self.audit_draft(actor, "draft.delete", &d)?;
        self.audit.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_keys_order_by_time_and_parse_back() {
        let a = schedule_key(5, "ag_x", "dr_a");
        let b = schedule_key(1_800_000_000_000, "ag_a", "dr_b");
        assert!(a < b);
        assert_eq!(
            parse_schedule_key(&b),
            Some((1_800_000_000_000, "ag_a".into(), "dr_b".into()))
        );
        assert!(valid_draft_id("dr_abc2"));
        assert!(!valid_draft_id("dr_a\0b"));
        assert!(!valid_draft_id("msg_abc"));
    }

    #[test]
    fn send_at_is_bounded() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_send_at("1800000060", now).unwrap(), now + 60_000);
        assert_eq!(
            parse_send_at("1700000000", now).unwrap(),
            now,
            "past means now"
        );
        assert!(parse_send_at("next tuesday", now).is_err());
        assert!(parse_send_at("2099-01-01T00:00:00Z", now).is_err());
        let p: DraftPatch = serde_json::from_str(r#"{"send_at": null}"#).unwrap();
        assert_eq!(p.send_at, Some(None));
        let p: DraftPatch = serde_json::from_str(r#"{"subject": "x"}"#).unwrap();
        assert_eq!(p.send_at, None);
    }
}
