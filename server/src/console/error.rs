//! Console errors: an HTML page with the status the REST API would answer, and the same
//! safe message. Internal causes are logged with an id and never shown.

use super::layout;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not signed in (or the session ended): to the sign-in page.
    #[error("sign-in required")]
    SignIn,
    #[error("{1}")]
    Status(StatusCode, String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

impl ConsoleError {
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::Status(StatusCode::BAD_REQUEST, m.into())
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::Status(StatusCode::FORBIDDEN, m.into())
    }
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
    /// The status and message a person may see.
    pub fn public(&self) -> (StatusCode, String) {
        match self {
            Self::SignIn => (StatusCode::UNAUTHORIZED, "sign in first".into()),
            Self::Status(s, m) => (*s, m.clone()),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let Self::SignIn = self {
            return Redirect::to("/console/login").into_response();
        }
        let (status, mut message) = self.public();
        if let Self::Internal(cause) = &self {
            let id = crate::util::new_id("err");
            tracing::error!(error_id = %id, error = %cause, "console request failed");
            message = format!("internal error (id {id})");
        }
        let page = layout::bare(
            status.canonical_reason().unwrap_or("Error"),
            maud::html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                p.error role="alert" { (message) }
                p { a href="/console/" { "Back to the console" } }
            },
        );
        (status, page).into_response()
    }
}

fn from_denied(d: &crate::identity::Denied) -> ConsoleError {
    ConsoleError::forbidden(d.to_string())
}

impl From<crate::identity::IdentityError> for ConsoleError {
    fn from(e: crate::identity::IdentityError) -> Self {
        use crate::identity::IdentityError as E;
        match e {
            E::Unauthorized(_) => Self::Status(StatusCode::UNAUTHORIZED, "not signed in".into()),
            E::Denied(d) => from_denied(&d),
            E::NotFound(w) => Self::Status(StatusCode::NOT_FOUND, format!("{w} not found")),
            E::Conflict(m) => Self::Status(StatusCode::CONFLICT, m),
            E::Invalid(m) => Self::Status(StatusCode::UNPROCESSABLE_ENTITY, m),
            E::BadRequest(m) => Self::bad_request(m),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::mailbox::MailboxError> for ConsoleError {
    fn from(e: crate::mailbox::MailboxError) -> Self {
        use crate::mailbox::MailboxError as E;
        match e {
            E::Denied(d) => from_denied(&d),
            E::NotFound(w) => Self::Status(StatusCode::NOT_FOUND, format!("{w} not found")),
            E::UnknownFolder(_) | E::Invalid(_) | E::BadRequest(_) => {
                Self::bad_request(e.to_string())
            }
            E::Identity(i) => i.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::vault::VaultError> for ConsoleError {
    fn from(e: crate::vault::VaultError) -> Self {
        use crate::vault::VaultError as V;
        match e {
            V::Denied(d) => from_denied(&d),
            V::NotFound => Self::Status(StatusCode::NOT_FOUND, "credential not found".into()),
            V::Invalid(m) => Self::Status(StatusCode::UNPROCESSABLE_ENTITY, m),
            V::Shredded => Self::Status(StatusCode::GONE, e.to_string()),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::queue::QueueError> for ConsoleError {
    fn from(e: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError as Q;
        match e {
            Q::Denied(d) => from_denied(&d),
            Q::NotFound(w) => Self::Status(StatusCode::NOT_FOUND, format!("{w} not found")),
            Q::Invalid(m) | Q::Conflict(m) => Self::Status(StatusCode::CONFLICT, m),
            Q::Identity(i) => i.into(),
            Q::Mailbox(m) => m.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::dns::DnsError> for ConsoleError {
    fn from(e: crate::dns::DnsError) -> Self {
        use crate::dns::DnsError as D;
        match e {
            D::Denied(d) => from_denied(&d),
            D::Resolver(m) => Self::Status(StatusCode::BAD_GATEWAY, m),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::events::EventsError> for ConsoleError {
    fn from(e: crate::events::EventsError) -> Self {
        use crate::events::EventsError as E;
        match e {
            E::Denied(d) => from_denied(&d),
            E::NotFound(w) => Self::Status(StatusCode::NOT_FOUND, format!("{w} not found")),
            E::Invalid(m) => Self::Status(StatusCode::UNPROCESSABLE_ENTITY, m),
            E::Identity(i) => i.into(),
            E::Vault(v) => v.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<crate::store::StoreError> for ConsoleError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(&e)
    }
}

impl From<crate::audit::AuditError> for ConsoleError {
    fn from(e: crate::audit::AuditError) -> Self {
        Self::internal(&e)
    }
}

/// Unknown console paths.
pub async fn not_found() -> ConsoleError {
    ConsoleError::Status(StatusCode::NOT_FOUND, "no such page".into())
}
