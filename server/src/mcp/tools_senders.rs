//! Sender list tools: `mail_senders_list`, `mail_senders_add`, `mail_senders_remove`, on the
//! calling agent's own allow and block lists. Same service calls and JSON as `/v1/senders`.

use super::server::{ok, requires, Caller, LegateMcp};
use crate::identity::Scope;
use crate::mailbox::{sender_lists_json, MailboxError, SenderList, SenderOwner};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{schemars, tool, tool_router, ErrorData};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListArg {
    Allow,
    Block,
}

impl From<ListArg> for SenderList {
    fn from(l: ListArg) -> Self {
        match l {
            ListArg::Allow => SenderList::Allow,
            ListArg::Block => SenderList::Block,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    /// `block`: mail from this sender goes to Junk (or is refused, as the operator set it).
    /// `allow`: once the allow list has an entry, only mail whose From is on it (and proven
    /// to come from that domain) is accepted.
    pub list: ListArg,
    /// An address (`news@example.com`) or a domain (`example.com`, also its subdomains).
    pub entry: String,
    /// Why, for whoever reads the list later.
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    pub list: ListArg,
    /// The entry as listed.
    pub entry: String,
}

#[tool_router(router = senders_tools, vis = "pub(super)")]
impl LegateMcp {
    #[tool(
        description = "Show this agent's sender allow list and block list: {allow: [...], \
        block: [...]}, each entry {list, entry, note, created_at, created_by}. Entries are \
        addresses or domains (a domain covers its subdomains).",
        meta = requires(Scope::MailManage),
        annotations(title = "List sender lists", read_only_hint = true, open_world_hint = false)
    )]
    async fn mail_senders_list(&self, Caller(actor): Caller) -> Result<CallToolResult, ErrorData> {
        ok(self
            .s
            .mailbox
            .sender_lists(&actor, &SenderOwner::caller(&actor))
            .map(|e| sender_lists_json(&e)))
    }

    #[tool(
        description = "Add a sender to this agent's block list (its mail goes to Junk from \
        now on) or allow list (once the allow list is not empty, only listed senders whose \
        domain is proven get through: use it for a sign-up address that should only hear \
        from one site). Returns the entry.",
        meta = requires(Scope::MailManage),
        annotations(title = "Add sender entry", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn mail_senders_add(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<AddArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let r = self
            .s
            .mailbox
            .add_sender(
                &actor,
                &SenderOwner::caller(&actor),
                a.list.into(),
                &a.entry,
                a.note.as_deref().unwrap_or(""),
            )
            .await;
        ok(r.map(|e| json!(e)))
    }

    #[tool(
        description = "Remove a sender from this agent's allow or block list. Returns \
        {removed: true}; an entry that is not listed is a not_found error.",
        meta = requires(Scope::MailManage),
        annotations(title = "Remove sender entry", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn mail_senders_remove(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<RemoveArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let r = self
            .s
            .mailbox
            .remove_sender(
                &actor,
                &SenderOwner::caller(&actor),
                a.list.into(),
                &a.entry,
            )
            .await;
        ok::<MailboxError>(r.map(|()| json!({"removed": true})))
    }
}
