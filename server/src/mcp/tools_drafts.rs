//! Draft tools: `mail_create_draft`, `mail_update_draft`, `mail_list_drafts`,
//! `mail_send_draft`, `mail_delete_draft`. Same service calls and JSON as `/v1/drafts*`.

use super::server::{ok, requires, Caller, LegateMcp};
use crate::identity::Scope;
use crate::queue::{DraftFields, DraftPatch, QueueError};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{schemars, tool, tool_router, ErrorData};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftArgs {
    /// Recipient addresses, each `a@b.example` or `Name <a@b.example>`.
    pub to: Option<Vec<String>>,
    pub cc: Option<Vec<String>>,
    pub bcc: Option<Vec<String>>,
    /// Where answers should go (Reply-To).
    pub reply_to: Option<Vec<String>>,
    pub subject: Option<String>,
    /// Plain-text body.
    pub text: Option<String>,
    pub html: Option<String>,
    /// Message-ID this message answers.
    pub in_reply_to: Option<String>,
    /// When to send it by itself: RFC 3339 (`2026-12-24T09:00:00Z`) or unix seconds.
    pub send_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDraftArgs {
    /// The draft id (`dr_...`).
    pub id: String,
    #[serde(flatten)]
    pub fields: DraftArgs,
    /// true: no longer send it at `send_at` (keep it as a draft).
    pub unschedule: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftIdArgs {
    /// The draft id (`dr_...`).
    pub id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendDraftArgs {
    /// The draft id (`dr_...`).
    pub id: String,
    /// Send at this time instead of now: RFC 3339 or unix seconds.
    pub send_at: Option<String>,
}

#[tool_router(router = draft_tools, vis = "pub(super)")]
impl LegateMcp {
    #[tool(
        description = "Save a draft (in the Drafts folder, also seen over IMAP): any of to, \
        cc, bcc, subject, text, html. With `send_at` it is scheduled and sends itself then \
        (cancel by deleting it). Returns the draft {id, status, send_at, ...}.",
        meta = requires(Scope::MailSend),
        annotations(title = "Create draft", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn mail_create_draft(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<DraftArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let fields = DraftFields {
            to: a.to.unwrap_or_default(),
            cc: a.cc.unwrap_or_default(),
            bcc: a.bcc.unwrap_or_default(),
            reply_to: a.reply_to.unwrap_or_default(),
            subject: a.subject.unwrap_or_default(),
            text: a.text,
            html: a.html,
            in_reply_to: a.in_reply_to,
        };
        let r = self
            .s
            .queue
            .create_draft(&actor, fields, a.send_at.as_deref())
            .await;
        ok(r.map(|d| d.to_json()))
    }

    #[tool(
        description = "Change a draft: each field given replaces the draft's; `send_at` \
        (re)schedules it, `unschedule: true` keeps it as a plain draft. Returns the draft.",
        meta = requires(Scope::MailSend),
        annotations(title = "Update draft", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn mail_update_draft(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<UpdateDraftArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let f = a.fields;
        let send_at = if a.unschedule == Some(true) {
            Some(None)
        } else {
            f.send_at.map(Some)
        };
        let p = DraftPatch {
            to: f.to,
            cc: f.cc,
            bcc: f.bcc,
            reply_to: f.reply_to,
            subject: f.subject,
            text: f.text,
            html: f.html,
            in_reply_to: f.in_reply_to,
            send_at,
        };
        let r = self.s.queue.update_draft(&actor, &a.id, p).await;
        ok(r.map(|d| d.to_json()))
    }

    #[tool(
        description = "List this agent's drafts, most recently changed first: {items: [{id, \
        status (draft or scheduled), send_at, to, subject, text, last_error, ...}]}.",
        meta = requires(Scope::MailRead),
        annotations(title = "List drafts", read_only_hint = true, open_world_hint = false)
    )]
    async fn mail_list_drafts(&self, Caller(actor): Caller) -> Result<CallToolResult, ErrorData> {
        let r = self.s.queue.list_drafts(&actor).map(|ds| {
            let items: Vec<_> = ds.iter().map(|d| d.to_json()).collect();
            json!({ "items": items })
        });
        ok::<QueueError>(r)
    }

    #[tool(
        description = "Send a draft now (it leaves Drafts and is queued like mail_send; \
        returns what mail_send returns), or with `send_at` schedule it for later.",
        meta = requires(Scope::MailSend),
        annotations(title = "Send draft", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = true)
    )]
    async fn mail_send_draft(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<SendDraftArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        ok(self
            .s
            .queue
            .send_draft(&actor, &a.id, a.send_at.as_deref())
            .await)
    }

    #[tool(
        description = "Delete a draft (and cancel it if scheduled: it will never send). \
        Returns {deleted: true}.",
        meta = requires(Scope::MailSend),
        annotations(title = "Delete draft", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn mail_delete_draft(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<DraftIdArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let r = self.s.queue.delete_draft(&actor, &a.id).await;
        ok(r.map(|()| json!({"deleted": true})))
    }
}
