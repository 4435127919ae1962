//! New mail as an MCP resource an agent can subscribe to: `legate://mail/INBOX`.
//!
//! MCP 2026-07-28 replaces per-session `resources/subscribe` with `subscriptions/listen`, one
//! long request whose response stream carries the notifications: it works on our stateless
//! endpoint (no session to keep), ends when the client cancels or the server stops, and the
//! caller's key is checked again before every notification, so a revoked key or agent (or a
//! withdrawn `mail:read`) ends the subscription instead of leaking mail arrival times.

use super::server::{caller, Reauth};
use crate::identity::{Actor, Scope};
use crate::mailbox::{Folder, ListQuery};
use crate::services::Services;
use rmcp::model::{
    ListResourcesResult, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, SubscriptionFilter,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer};

pub const INBOX_URI: &str = "legate://mail/INBOX";

fn inbox_resource() -> Resource {
    Resource::new(INBOX_URI, "inbox")
        .with_title("Inbox")
        .with_description(
            "The newest messages in this agent's INBOX (as mail_list_messages lists them). \
             Subscribe (subscriptions/listen with resourceSubscriptions) to be told when new \
             mail arrives; then read it or call mail_list_messages.",
        )
        .with_mime_type("application/json")
}

fn may_read(actor: &Actor) -> bool {
    actor.agent_id().is_some() && actor.scopes.contains(Scope::MailRead)
}

pub fn list(context: &RequestContext<RoleServer>) -> Result<ListResourcesResult, ErrorData> {
    let actor = caller(context)?;
    let resources = if may_read(&actor) {
        vec![inbox_resource()]
    } else {
        Vec::new()
    };
    Ok(ListResourcesResult {
        resources,
        ..Default::default()
    })
}

pub fn read(
    s: &Services,
    request: &ReadResourceRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<ReadResourceResponse, ErrorData> {
    let actor = caller(context)?;
    if request.uri != INBOX_URI {
        return Err(ErrorData::resource_not_found(
            format!(
                "no resource {}",
                request.uri.chars().take(200).collect::<String>()
            ),
            None,
        ));
    }
    let q = ListQuery {
        folder: Some(Folder::Inbox.name().to_string()),
        limit: Some(20),
        ..ListQuery::default()
    };
    let page = s
        .mailbox
        .list(&actor, &q)
        .map_err(|e| ErrorData::invalid_request(e.to_string(), None))?;
    let text = page.to_json().to_string();
    Ok(
        ReadResourceResult::new(vec![ResourceContents::TextResourceContents {
            uri: INBOX_URI.into(),
            mime_type: Some("application/json".into()),
            text,
            meta: None,
        }])
        .into(),
    )
}

/// What a `subscriptions/listen` may have of ours: the INBOX resource.
pub fn accepted(requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
    let wants = requested
        .resource_subscriptions
        .iter()
        .flatten()
        .any(|u| u.as_str() == INBOX_URI);
    let b = SubscriptionFilter::builder();
    Some(if wants {
        b.resource_subscription(INBOX_URI).build()
    } else {
        b.build()
    })
}

/// Runs one subscription: a `notifications/resources/updated` for the INBOX after each
/// durable change that added mail to it.
pub async fn listen(s: &Services, context: SubscriptionContext) -> Result<(), ErrorData> {
    let wants_inbox = context
        .accepted()
        .resource_subscriptions
        .as_ref()
        .is_some_and(|u| u.iter().any(|x| x == INBOX_URI));
    let request = context.request_context();
    let actor = caller(request)?;
    let reauth = Reauth::of(request)?;
    let agent = actor
        .require(&s.audit, Scope::MailRead, "mail.watch", INBOX_URI)
        .map_err(|e| ErrorData::invalid_request(e.to_string(), None))?
        .to_string();
    if !wants_inbox {
        context.cancelled().await;
        return Ok(());
    }
    let uidnext = |s: &Services| {
        s.mailbox
            .folder_state(&agent, Folder::Inbox)
            .ok()
            .flatten()
            .map_or(0, |f| f.uidnext)
    };
    let mut changes = s.mailbox.subscribe_changes(&agent);
    let mut seen = uidnext(s);
    loop {
        tokio::select! {
            _ = context.cancelled() => return Ok(()),
            r = changes.changed() => if r.is_err() { return Ok(()) },
        }
        // Point of use: the key, its agent and the scope, as they are now.
        match reauth.check(s) {
            Ok(a) if a.agent_id() == Some(agent.as_str()) && a.scopes.contains(Scope::MailRead) => {
            }
            Ok(_) => {
                return Err(ErrorData::invalid_request(
                    "this key no longer holds mail:read",
                    None,
                ))
            }
            Err(e) => return Err(ErrorData::invalid_request(e.to_string(), None)),
        }
        let now = uidnext(s);
        if now > seen {
            seen = now;
            if context
                .sink()
                .notify_resource_updated(INBOX_URI)
                .await
                .is_err()
            {
                // The client went away.
                return Ok(());
            }
        }
    }
}
