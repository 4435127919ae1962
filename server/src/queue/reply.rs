//! `POST /v1/messages/{id}/reply`: answers a message in the agent's mailbox, threading it
//! (In-Reply-To, References) and optionally quoting the original.

use super::compose::{is_msg_id, AttachmentIn, SendRequest};
use super::service::{Accepted, QueueService};
use super::QueueError;
use crate::identity::{Actor, Scope};
use crate::mailbox::Folder;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    pub text: Option<String>,
    pub html: Option<String>,
    /// Also answer everyone in To and Cc of the original (except ourselves).
    #[serde(default)]
    pub reply_all: bool,
    /// Append the original text as a `>` quote under an "On ... wrote:" line.
    #[serde(default)]
    pub quote: bool,
    #[serde(default)]
    pub attachments: Vec<AttachmentIn>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl QueueService {
    /// Scope `mail:send`; the original must be the agent's own message.
    pub async fn reply(
        &self,
        actor: &Actor,
        id: &str,
        req: &ReplyRequest,
    ) -> Result<Accepted, QueueError> {
        let agent_id = actor.require(&self.audit, Scope::MailSend, "mail.reply", id)?;
        let original = self.mailbox.message(agent_id, id).await?;
        let agent = self.active_agent(agent_id)?;
        let me = agent.address();
        let m = &original.meta;
        // Answering our own sent message continues to its recipients.
        let mut to: Vec<String> = if m.folder == Folder::Sent {
            m.to.iter().map(|a| a.email.clone()).collect()
        } else if !m.reply_to.is_empty() {
            m.reply_to.iter().map(|a| a.email.clone()).collect()
        } else {
            m.from.iter().map(|a| a.email.clone()).collect()
        };
        let mut cc = Vec::new();
        if req.reply_all {
            for a in m.to.iter().chain(&m.cc) {
                if !a.email.eq_ignore_ascii_case(&me) && !to.contains(&a.email) {
                    cc.push(a.email.clone());
                }
            }
        }
        to.retain(|a| !a.is_empty());
        if to.is_empty() {
            return Err(QueueError::Invalid(
                "the original message has no address to reply to".into(),
            ));
        }
        // The original's subject is the remote sender's text (an encoded word may decode to
        // a line break): it is made one line, never refused.
        let original_subject: String = m
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let subject = if original_subject.to_ascii_lowercase().starts_with("re:") {
            original_subject
        } else {
            format!("Re: {original_subject}")
        };
        let mut text = req.text.clone();
        if req.quote {
            let body = original
                .content
                .text
                .clone()
                .unwrap_or_else(|| original.content.extracted_text.clone());
            let who = m.from.as_ref().map(|a| a.email.clone()).unwrap_or_default();
            let when = m.date.map(crate::util::rfc3339).unwrap_or_default();
            let quoted: String = body.lines().map(|l| format!("> {l}\n")).collect();
            let head = text.unwrap_or_default();
            text = Some(format!("{head}\n\nOn {when}, {who} wrote:\n{quoted}"));
        }
        let send = SendRequest {
            to,
            cc,
            bcc: vec![],
            reply_to: vec![],
            subject,
            text,
            html: req.html.clone(),
            attachments: req.attachments.clone(),
            headers: req.headers.clone(),
            in_reply_to: m.message_id.clone().filter(|id| is_msg_id(id)),
            references: original
                .content
                .references
                .iter()
                .filter(|id| is_msg_id(id))
                .cloned()
                .collect(),
        };
        self.send_as(actor, agent_id, &send, "mail.reply").await
    }
}
