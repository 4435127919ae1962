//! The one API error: every failure becomes a status and the JSON body of DESIGN §6.
//! Internal causes are logged with an id and never sent to the client.

use crate::audit::AuditError;
use crate::identity::{Denied, IdentityError};
use crate::mailbox::MailboxError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub required_scope: Option<&'static str>,
    /// Seconds for a `Retry-After` header (a send cap, 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            required_scope: None,
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    /// Logs the cause under a fresh id and answers a generic 500 naming only that id.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let id = crate::util::new_id("err");
        tracing::error!(error_id = %id, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("internal error (id {id})"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(s) = self.required_scope {
            err["required_scope"] = s.into();
        }
        let mut resp = (self.status, Json(serde_json::json!({ "error": err }))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        let code = match d {
            Denied::MissingScope(_) => "insufficient_scope",
            Denied::AgentOnly => "agent_only",
            Denied::AdminOnly => "admin_only",
            Denied::Other(_) => "forbidden",
        };
        Self {
            status: StatusCode::FORBIDDEN,
            code,
            message: d.to_string(),
            required_scope: d.required_scope().map(|s| s.as_str()),
            retry_after: None,
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Unauthorized(why) => Self::new(
                StatusCode::UNAUTHORIZED,
                why.code(),
                "a valid API key is required (Authorization: Bearer lg_...)",
            ),
            IdentityError::Denied(d) => d.into(),
            IdentityError::NotFound(what) => Self::not_found(what),
            IdentityError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            IdentityError::Invalid(m) => Self::invalid(m),
            IdentityError::BadRequest(m) => Self::bad_request(m),
            IdentityError::TooMany {
                message,
                retry_after_secs,
            } => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                e.retry_after = Some(retry_after_secs);
                e
            }
            other => Self::internal(&other),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::BadCursor => Self::bad_request("invalid cursor"),
            other => Self::internal(&other),
        }
    }
}

impl From<MailboxError> for ApiError {
    fn from(e: MailboxError) -> Self {
        match e {
            MailboxError::Denied(d) => d.into(),
            MailboxError::NotFound(what) => Self::not_found(what),
            MailboxError::QuotaExceeded { .. } => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "quota_exceeded",
                e.to_string(),
            ),
            MailboxError::InsufficientStorage => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                e.to_string(),
            ),
            MailboxError::UnknownFolder(_) | MailboxError::Invalid(_) => {
                Self::invalid(e.to_string())
            }
            MailboxError::BadRequest(m) => Self::bad_request(m),
            MailboxError::SenderRefused(_) => {
                Self::new(StatusCode::FORBIDDEN, "sender_refused", e.to_string())
            }
            MailboxError::TooManyWaits(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_waits",
                e.to_string(),
            ),
            MailboxError::Identity(i) => i.into(),
            MailboxError::Store(_) | MailboxError::Audit(_) | MailboxError::HookRefused => {
                Self::internal(&e)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::internal(&e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::vault::VaultError> for ApiError {
    fn from(e: crate::vault::VaultError) -> Self {
        use crate::vault::VaultError as V;
        match e {
            V::Denied(d) => d.into(),
            V::NotFound => Self::not_found("credential"),
            V::Invalid(m) => Self::invalid(m),
            V::Shredded => Self::new(StatusCode::GONE, "vault_destroyed", e.to_string()),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError as Q;
        match e {
            Q::Denied(d) => d.into(),
            Q::NotFound(what) => Self::not_found(what),
            Q::Invalid(m) => Self::invalid(m),
            Q::InvalidHeader(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_header", m),
            Q::Recipient(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_recipient", m),
            Q::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Q::Policy(r) => r.into(),
            Q::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "message_too_large",
                e.to_string(),
            ),
            Q::Mailbox(m) => m.into(),
            Q::Identity(i) => i.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::policy::Refusal> for ApiError {
    fn from(r: crate::policy::Refusal) -> Self {
        use crate::policy::Refusal as R;
        match &r {
            R::Limit {
                retry_after_secs, ..
            } => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "send_limit", r.to_string());
                e.retry_after = Some(*retry_after_secs);
                e
            }
            R::Denied { .. } => Self::new(StatusCode::FORBIDDEN, "policy_denied", r.to_string()),
            R::Suppressed { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "suppressed",
                r.to_string(),
            ),
            // A hold is answered 202 by the queue; one reaching here is a refusal to queue.
            R::Hold { .. } => Self::new(StatusCode::FORBIDDEN, "policy_denied", r.to_string()),
            R::Paused { .. } => Self::new(StatusCode::FORBIDDEN, "sending_paused", r.to_string()),
        }
    }
}

impl From<crate::policy::PolicyError> for ApiError {
    fn from(e: crate::policy::PolicyError) -> Self {
        use crate::policy::PolicyError as P;
        match e {
            P::Denied(d) => d.into(),
            P::NotFound(what) => Self::not_found(what),
            P::BadRequest(m) => Self::bad_request(m),
            P::Identity(i) => i.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::events::EventsError> for ApiError {
    fn from(e: crate::events::EventsError) -> Self {
        use crate::events::EventsError as E;
        match e {
            E::TooManyStreams(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                e.to_string(),
            ),
            E::Denied(d) => d.into(),
            E::NotFound(what) => Self::not_found(what),
            E::Invalid(m) => Self::invalid(m),
            E::Limit(m) => Self::new(StatusCode::CONFLICT, "limit_reached", m),
            E::Identity(i) => i.into(),
            E::Vault(v) => v.into(),
            other => Self::internal(&other),
        }
    }
}
