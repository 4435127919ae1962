//! Notices to a human (a connected account needs consent again, issue 25): mail from the
//! postmaster mailbox through the queue like any other mail, as the circuit breaker's notice
//! (`breaker`) is. Undeliverable to the human, the notice is filed with the postmaster.

use super::compose::{compose, SendRequest};
use super::service::{QueueService, SendAudit};
use crate::identity::{Actor, Principal, ScopeSet};
use serde_json::json;

/// `connections::Notifier` over the queue.
///
/// Holds the queue weakly: the connections service that keeps this notifier is reachable
/// from the queue (through identity's revocation hooks), and a strong reference closed that
/// cycle, so the store stayed open after shutdown.
pub struct QueueNotifier(pub std::sync::Weak<QueueService>);

impl crate::connections::Notifier for QueueNotifier {
    fn notify<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        text: &'a str,
        agent_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some(queue) = self.0.upgrade() else {
                return Err("the server is shutting down".to_string());
            };
            queue
                .notice(to, subject, text, agent_id)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// Owner invites (`identity::invites`), from the postmaster like the other notices.
impl crate::identity::HumanMailer for QueueNotifier {
    fn mail_human<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some(queue) = self.0.upgrade() else {
                return Err("the server is shutting down".to_string());
            };
            // An invite nobody can send must not look sent: the inviter is told.
            if queue
                .identity
                .postmaster()
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(
                    "no postmaster mailbox to send it from (identity.postmaster_agent)".into(),
                );
            }
            let from = NoticeFrom {
                source: "owners",
                action: "owner.invite.notice",
                secret: true,
            };
            queue
                .postmaster_notice(&from, to, subject, text, json!({"to": to}))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// Who sends a notice: its audit action, and the name its actor's key id, its delivery
/// label and its internal sender carry.
pub(super) struct NoticeFrom {
    pub source: &'static str,
    pub action: &'static str,
    /// The text carries a secret for the human alone (an invite code): the postmaster keeps
    /// no Sent copy, and a notice it cannot send fails rather than being filed in its INBOX,
    /// since whoever reads the postmaster's mail must not be able to redeem it.
    pub secret: bool,
}

impl QueueService {
    /// Mails `text` to the human `to` from the postmaster (audited as `connection.notice`).
    pub async fn notice(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        agent_id: &str,
    ) -> Result<(), super::QueueError> {
        let from = NoticeFrom {
            source: "connections",
            action: "connection.notice",
            secret: false,
        };
        let extra = json!({"agent": agent_id, "to": to});
        self.postmaster_notice(&from, to, subject, text, extra)
            .await
            .map(|_| ())
    }

    /// A notice from the postmaster mailbox to a human, through the queue like any mail
    /// (audited as `from.action`). Undeliverable to the human (an address no agent has on our
    /// own domain, say), it is filed in the postmaster's INBOX instead, unless it carries a secret
    /// (`from.secret`), when the failure is returned. Returns the postmaster
    /// actor when it was filed there, so the caller can audit that; nothing is sent when no
    /// postmaster mailbox exists.
    pub(super) async fn postmaster_notice(
        &self,
        from: &NoticeFrom,
        to: &str,
        subject: &str,
        text: &str,
        extra: serde_json::Value,
    ) -> Result<Option<Actor>, super::QueueError> {
        let Some(pm) = self.identity.postmaster()? else {
            return Ok(None);
        };
        let req = SendRequest {
            to: vec![to.to_string()],
            subject: subject.to_string(),
            text: Some(text.to_string()),
            ..Default::default()
        };
        let composed = compose(
            &req,
            &pm.address(),
            "Postmaster",
            &self.settings.hostname,
            crate::util::now_unix(),
        )?;
        let actor = Actor {
            principal: Principal::Agent {
                id: pm.id.clone(),
                address: pm.address(),
                org_id: pm.org_id.clone(),
            },
            key_id: from.source.into(),
            scopes: ScopeSet::all(),
            chain: pm.chain.clone(),
        };
        let audit = SendAudit {
            actor: &actor,
            action: from.action,
            extra,
            best_effort: true,
            sent_copy: !from.secret,
        };
        let raw = composed.raw.clone();
        match self
            .enqueue(
                &pm,
                &composed.rcpts,
                composed.raw,
                Some(composed.message_id),
                audit,
            )
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if !e.is_temporary() && !from.secret => {
                tracing::warn!(error = %e, %to, source = from.source, "notice undeliverable to the human; filed with the postmaster");
                let meta = crate::mailbox::DeliveryMeta {
                    received_at_ms: crate::util::now_millis(),
                    labels: vec![from.source.into()],
                    auth: Some(json!({"internal": true, "sender": from.source})),
                    envelope_from: String::new(),
                    envelope_to: vec![pm.address()],
                    flags: vec![],
                };
                self.mailbox
                    .deliver(&pm.id, crate::mailbox::Folder::Inbox, raw, meta)
                    .await?;
                Ok(Some(actor))
            }
            Err(e) => Err(e),
        }
    }
}
