//! The admin socket: the front-end the `legate` CLI talks to while a server runs.
//!
//! The running server holds the store's lock, so a second process cannot open it; instead
//! the CLI sends its request over `<storage.path>/admin.sock`, a Unix socket of mode 0600
//! whose peers are checked with `SO_PEERCRED` (same uid as the server, else refused). No
//! token is needed: being that uid already grants reading the data directory. When no server
//! runs, the CLI opens the store itself and calls [`dispatch::handle`] directly, so both
//! paths run the same code and print the same output.
//!
//! # Wire protocol
//!
//! One JSON object per line each way (UTF-8, `\n`-terminated); a connection may carry many
//! requests, answered in order.
//!
//! ```text
//! -> {"op": "agent.create", "args": {"local": "ops", "scopes": ["mail:read"]}}
//! <- {"ok": true, "result": {...}}
//! <- {"ok": false, "error": {"code": "not_found", "message": "agent not found"}}
//! ```
//!
//! `op` names one admin operation ([`dispatch::OPS`]); `args` (default `{}`) is the same JSON
//! the matching REST admin endpoint takes, plus path parameters as fields. Every operation
//! is a call on the service layer as the CLI operator ([`crate::identity::Actor::cli`] of
//! the first human), so scopes and audit are those of the REST path.

pub mod client;
pub mod dispatch;
pub mod socket;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// File name of the socket in the data directory.
pub const SOCKET_FILE: &str = "admin.sock";

/// One request line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub op: String,
    #[serde(default)]
    pub args: Value,
}

impl Request {
    pub fn new(op: &str, args: Value) -> Request {
        Request {
            op: op.into(),
            args,
        }
    }
}

/// One response line: `result` when `ok`, else `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
}

impl Response {
    pub fn from_result(r: Result<Value, AdminError>) -> Response {
        match r {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response {
                ok: false,
                result: None,
                error: Some(WireError {
                    code: e.code().into(),
                    message: e.to_string(),
                }),
            },
        }
    }

    pub fn into_result(self) -> Result<Value, AdminError> {
        match (self.ok, self.error) {
            (true, _) => Ok(self.result.unwrap_or(Value::Null)),
            (false, Some(e)) => Err(AdminError::from_wire(&e.code, e.message)),
            (false, None) => Err(AdminError::Protocol(
                "the server answered ok=false without an error".into(),
            )),
        }
    }
}

/// What an admin request can fail with. [`AdminError::is_refusal`] separates "the request
/// was understood and refused" (exit 3) from "it could not be carried out" (exit 4).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("unknown operation {0:?}")]
    UnknownOp(String),
    /// An operation that cannot run inside the server (it must be run with it stopped).
    #[error("{0}")]
    OfflineOnly(String),
    /// The request line was not a request, or the answer not an answer.
    #[error("admin protocol: {0}")]
    Protocol(String),
    /// The socket could not be used.
    #[error("admin socket: {0}")]
    Io(String),
    /// The operation failed inside (storage, resolver, a bug).
    #[error("{0}")]
    Internal(String),
}

impl AdminError {
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound(_) => "not_found",
            AdminError::Conflict(_) => "conflict",
            AdminError::Invalid(_) => "invalid_request",
            AdminError::Forbidden(_) => "forbidden",
            AdminError::UnknownOp(_) => "unknown_op",
            AdminError::OfflineOnly(_) => "offline_only",
            AdminError::Protocol(_) => "protocol_error",
            AdminError::Io(_) => "io_error",
            AdminError::Internal(_) => "internal_error",
        }
    }

    /// The request was understood and refused (bad input, missing target, not allowed).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AdminError::NotFound(_)
                | AdminError::Conflict(_)
                | AdminError::Invalid(_)
                | AdminError::Forbidden(_)
                | AdminError::UnknownOp(_)
                | AdminError::OfflineOnly(_)
        )
    }

    /// Rebuilds an error from its wire form so the CLI prints and exits the same either way.
    fn from_wire(code: &str, message: String) -> AdminError {
        match code {
            "not_found" => AdminError::NotFound(
                message
                    .strip_suffix(" not found")
                    .unwrap_or(&message)
                    .to_string(),
            ),
            "conflict" => AdminError::Conflict(message),
            "invalid_request" => AdminError::Invalid(message),
            "forbidden" => AdminError::Forbidden(message),
            "unknown_op" => AdminError::UnknownOp(
                message
                    .strip_prefix("unknown operation ")
                    .map(|s| s.trim_matches('"').to_string())
                    .unwrap_or(message),
            ),
            "offline_only" => AdminError::OfflineOnly(message),
            "protocol_error" => AdminError::Protocol(
                message
                    .strip_prefix("admin protocol: ")
                    .unwrap_or(&message)
                    .to_string(),
            ),
            "io_error" => AdminError::Io(
                message
                    .strip_prefix("admin socket: ")
                    .unwrap_or(&message)
                    .to_string(),
            ),
            _ => AdminError::Internal(message),
        }
    }
}

impl From<crate::identity::Denied> for AdminError {
    fn from(d: crate::identity::Denied) -> Self {
        AdminError::Forbidden(d.to_string())
    }
}

impl From<crate::identity::IdentityError> for AdminError {
    fn from(e: crate::identity::IdentityError) -> Self {
        use crate::identity::IdentityError as I;
        match e {
            I::Denied(d) => d.into(),
            I::Unauthorized(_) => AdminError::Forbidden(e.to_string()),
            I::NotFound(what) => AdminError::NotFound(what.into()),
            I::Conflict(m) => AdminError::Conflict(m),
            I::Invalid(m) | I::BadRequest(m) => AdminError::Invalid(m),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::queue::QueueError> for AdminError {
    fn from(e: crate::queue::QueueError) -> Self {
        use crate::queue::QueueError as Q;
        match e {
            Q::Denied(d) => d.into(),
            Q::NotFound(what) => AdminError::NotFound(what.into()),
            Q::Invalid(m) | Q::InvalidHeader(m) | Q::Recipient(m) => AdminError::Invalid(m),
            Q::Identity(i) => i.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::policy::PolicyError> for AdminError {
    fn from(e: crate::policy::PolicyError) -> Self {
        use crate::policy::PolicyError as P;
        match e {
            P::Denied(d) => d.into(),
            P::NotFound(what) => AdminError::NotFound(what.into()),
            P::BadRequest(m) => AdminError::Invalid(m),
            P::Identity(i) => i.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::vault::VaultError> for AdminError {
    fn from(e: crate::vault::VaultError) -> Self {
        use crate::vault::VaultError as V;
        match e {
            V::Denied(d) => d.into(),
            V::NotFound => AdminError::NotFound("credential".into()),
            V::Invalid(m) => AdminError::Invalid(m),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::dns::DnsError> for AdminError {
    fn from(e: crate::dns::DnsError) -> Self {
        match e {
            crate::dns::DnsError::Denied(d) => d.into(),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::reports::ReportsError> for AdminError {
    fn from(e: crate::reports::ReportsError) -> Self {
        use crate::reports::ReportsError as R;
        match e {
            R::Denied(d) => d.into(),
            R::Invalid(m) | R::Parse(m) | R::TooLarge(m) => AdminError::Invalid(m),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::audit::AuditError> for AdminError {
    fn from(e: crate::audit::AuditError) -> Self {
        match e {
            crate::audit::AuditError::BadCursor => AdminError::Invalid("invalid cursor".into()),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::backup::BackupError> for AdminError {
    fn from(e: crate::backup::BackupError) -> Self {
        match e {
            crate::backup::BackupError::NotEmpty(_) | crate::backup::BackupError::Newer { .. } => {
                AdminError::Invalid(e.to_string())
            }
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for AdminError {
    fn from(e: crate::store::StoreError) -> Self {
        AdminError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_wire_unchanged() {
        for e in [
            AdminError::NotFound("agent".into()),
            AdminError::Conflict("exists".into()),
            AdminError::Invalid("bad scope".into()),
            AdminError::UnknownOp("nope".into()),
            AdminError::OfflineOnly("stop it".into()),
            AdminError::Protocol("x".into()),
            AdminError::Io("gone".into()),
            AdminError::Internal("boom".into()),
        ] {
            let (code, text, refusal) = (e.code(), e.to_string(), e.is_refusal());
            let line = serde_json::to_string(&Response::from_result(Err(e))).unwrap();
            let back: Response = serde_json::from_str(&line).unwrap();
            let e2 = back.into_result().unwrap_err();
            assert_eq!(
                (e2.code(), e2.to_string(), e2.is_refusal()),
                (code, text, refusal)
            );
        }
    }

    #[test]
    fn a_request_with_unknown_fields_is_refused() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"x","args":{},"token":"t"}"#).is_err());
        let r: Request = serde_json::from_str(r#"{"op":"agent.list"}"#).unwrap();
        assert_eq!(r.args, Value::Null);
    }
}
