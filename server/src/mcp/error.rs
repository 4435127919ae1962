//! A failed tool call. MCP wants tool failures as a result with `isError: true` (the model
//! reads it and can correct itself), not as a JSON-RPC error (clients hide those). The
//! structured content is the REST error body `{"error": {code, message, required_scope?}}`
//! with the same codes, so one client-side handler serves both front-ends.

use crate::identity::{Denied, IdentityError};
use crate::mailbox::MailboxError;
use crate::vault::VaultError;
use rmcp::model::CallToolResult;
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError {
    pub code: &'static str,
    pub message: String,
    pub required_scope: Option<&'static str>,
}

impl ToolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            required_scope: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("invalid_request", message)
    }

    /// Logs the cause under a fresh id; the caller sees only that id.
    pub(super) fn internal(cause: &dyn std::fmt::Display) -> Self {
        let id = crate::util::new_id("err");
        tracing::error!(error_id = %id, error = %cause, "internal error in an MCP tool");
        Self::new("internal_error", format!("internal error (id {id})"))
    }

    pub fn into_result(self) -> CallToolResult {
        let mut err = json!({"code": self.code, "message": self.message});
        if let Some(s) = self.required_scope {
            err["required_scope"] = s.into();
        }
        CallToolResult::structured_error(json!({ "error": err }))
    }
}

impl From<Denied> for ToolError {
    fn from(d: Denied) -> Self {
        let code = match d {
            Denied::MissingScope(_) => "insufficient_scope",
            Denied::AgentOnly => "agent_only",
            Denied::AdminOnly => "admin_only",
            Denied::Other(_) => "forbidden",
        };
        Self {
            code,
            message: d.to_string(),
            required_scope: d.required_scope().map(|s| s.as_str()),
        }
    }
}

impl From<IdentityError> for ToolError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Unauthorized(why) => Self::new(why.code(), e.to_string()),
            IdentityError::Denied(d) => d.into(),
            IdentityError::NotFound(what) => Self::new("not_found", format!("{what} not found")),
            IdentityError::Conflict(m) => Self::new("conflict", m),
            IdentityError::Invalid(m) => Self::invalid(m),
            IdentityError::BadRequest(m) => Self::new("bad_request", m),
            IdentityError::TooMany { message, .. } => Self::new("rate_limited", message),
            other => Self::internal(&other),
        }
    }
}

impl From<MailboxError> for ToolError {
    fn from(e: MailboxError) -> Self {
        match e {
            MailboxError::Denied(d) => d.into(),
            MailboxError::NotFound(what) => Self::new("not_found", format!("{what} not found")),
            MailboxError::QuotaExceeded { .. } => Self::new("quota_exceeded", e.to_string()),
            MailboxError::InsufficientStorage => Self::new("insufficient_storage", e.to_string()),
            MailboxError::UnknownFolder(_) | MailboxError::Invalid(_) => {
                Self::invalid(e.to_string())
            }
            MailboxError::BadRequest(m) => Self::new("bad_request", m),
            MailboxError::TooManyWaits(_) => Self::new("too_many_waits", e.to_string()),
            MailboxError::SenderRefused(_) => Self::new("sender_refused", e.to_string()),
            MailboxError::Identity(i) => i.into(),
            MailboxError::Store(_) | MailboxError::Audit(_) | MailboxError::HookRefused => {
                Self::internal(&e)
            }
        }
    }
}

impl From<VaultError> for ToolError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Denied(d) => d.into(),
            VaultError::NotFound => Self::new("not_found", "credential not found"),
            VaultError::Invalid(m) => Self::invalid(m),
            VaultError::Shredded => Self::new("vault_destroyed", e.to_string()),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::queue::QueueError> for ToolError {
    fn from(e: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError as Q;
        match e {
            Q::Denied(d) => d.into(),
            Q::NotFound(what) => Self::new("not_found", format!("{what} not found")),
            Q::Invalid(m) => Self::invalid(m),
            Q::InvalidHeader(m) => Self::new("invalid_header", m),
            Q::Recipient(m) => Self::new("invalid_recipient", m),
            Q::Conflict(m) => Self::new("conflict", m),
            Q::Policy(r) => {
                let code = match r {
                    crate::policy::Refusal::Limit { .. } => "send_limit",
                    crate::policy::Refusal::Denied { .. } => "policy_denied",
                    crate::policy::Refusal::Suppressed { .. } => "suppressed",
                    crate::policy::Refusal::Hold { .. } => "policy_denied",
                    crate::policy::Refusal::Paused { .. } => "sending_paused",
                };
                Self::new(code, r.to_string())
            }
            Q::TooLarge { .. } => Self::new("message_too_large", e.to_string()),
            Q::Mailbox(m) => m.into(),
            Q::Identity(i) => i.into(),
            other => Self::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Scope;

    #[test]
    fn a_missing_scope_is_named_in_the_result() {
        let r = ToolError::from(VaultError::Denied(Denied::MissingScope(Scope::VaultWrite)))
            .into_result();
        assert_eq!(r.is_error, Some(true));
        let v = r.structured_content.expect("structured");
        assert_eq!(v["error"]["code"], "insufficient_scope");
        assert_eq!(v["error"]["required_scope"], "vault:write");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("vault:write")));
    }

    #[test]
    fn internal_causes_are_not_shown() {
        let e = ToolError::from(VaultError::Crypto("secret detail".into()));
        assert_eq!(e.code, "internal_error");
        assert!(!e.message.contains("secret detail"));
        let e = ToolError::from(MailboxError::NotFound("message"));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("not_found", "message not found")
        );
    }
}
