//! Request shapes that REST and MCP both accept, decoded and dispatched here once so the two
//! front-ends cannot drift: `verify` (token or detached signature) and the caller's audit trail.

use super::Denied;
use super::{decode_b64, Actor, IdentityError, IdentityService, Verdict};
use crate::audit::{AuditError, Filter, Outcome};
use serde::Deserialize;
use serde_json::{json, Value};

/// `POST /v1/identity/verify`: either `{token, audience?}` or
/// `{did, data_b64, signature_b64, kid?}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub token: Option<String>,
    pub audience: Option<String>,
    pub did: Option<String>,
    pub data_b64: Option<String>,
    pub signature_b64: Option<String>,
    pub kid: Option<String>,
}

/// `GET /v1/audit` parameters (also the `audit_list` tool's arguments).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    pub agent: Option<String>,
    /// Who acted: an id, or `kind:id` (`human:alice@acme.com`).
    #[serde(default)]
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339 or unix seconds.
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// A base64 request field, or an `Invalid` error naming it.
pub fn b64_field(name: &str, value: &str) -> Result<Vec<u8>, IdentityError> {
    decode_b64(value).ok_or_else(|| IdentityError::Invalid(format!("{name} is not base64")))
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, IdentityError> {
    match v {
        None => Ok(None),
        Some(s) => crate::util::parse_time(s)
            .map(|t| Some(t.saturating_mul(1000)))
            .ok_or_else(|| {
                IdentityError::BadRequest(format!("{name} must be RFC 3339 or unix seconds"))
            }),
    }
}

impl IdentityService {
    /// Verifies a token or a detached signature, whichever the request carries.
    pub async fn verify(
        &self,
        actor: &Actor,
        req: &VerifyRequest,
    ) -> Result<Verdict, IdentityError> {
        match req {
            VerifyRequest {
                token: Some(t),
                did: None,
                data_b64: None,
                signature_b64: None,
                kid: None,
                audience,
            } => self.verify_token(actor, t, audience.as_deref()).await,
            VerifyRequest {
                token: None,
                audience: None,
                did: Some(did),
                data_b64: Some(data),
                signature_b64: Some(sig),
                kid,
            } => {
                let data = b64_field("data_b64", data)?;
                let sig = b64_field("signature_b64", sig)?;
                self.verify_signature(actor, did, &data, &sig, kid.as_deref())
                    .await
            }
            _ => Err(IdentityError::Invalid(
                "give either {token, audience?} or {did, data_b64, signature_b64, kid?}".into(),
            )),
        }
    }

    /// A page of audit entries as `{items, next_cursor}`. Admins read everything (optionally
    /// one agent's, by id or address); an agent reads only its own trail, whatever it asks.
    pub fn audit_trail(&self, actor: &Actor, p: &AuditParams) -> Result<Value, IdentityError> {
        let outcome = match &p.outcome {
            None => None,
            Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
                IdentityError::BadRequest("outcome must be ok, denied or error".into())
            })?),
        };
        let agent = match actor.agent_id() {
            Some(own) => Some(own.to_string()),
            // Not an agent: only an admin reads others' trails (an owner token is neither).
            None if !actor.is_admin() => {
                return Err(actor
                    .require_admin(&self.audit, "audit.list", "audit")
                    .err()
                    .unwrap_or(Denied::AdminOnly)
                    .into());
            }
            None => match &p.agent {
                Some(a) => Some(
                    self.find_agent(a)?
                        .map(|a| a.id)
                        .unwrap_or_else(|| a.clone()),
                ),
                None => None,
            },
        };
        // A human is logged by id; an operator knows the email: `human:alice@acme.com` and
        // a bare address both name that human (an address of an agent is its `ag_` id).
        let actor_filter = match p.actor.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => {
                let bare = a
                    .strip_prefix("human:")
                    .or_else(|| a.strip_prefix("agent:"))
                    .unwrap_or(a);
                if !bare.contains('@') {
                    Some(a.to_string())
                } else if let Some(h) = self.human_by_email(bare)? {
                    Some(format!("human:{}", h.id))
                } else if let Some(ag) = self.find_agent(bare)? {
                    Some(format!("agent:{}", ag.id))
                } else {
                    Some(a.to_string())
                }
            }
        };
        let filter = Filter {
            agent,
            actor: actor_filter,
            action: p.action.clone(),
            outcome,
            since: time_param("since", &p.since)?,
            until: time_param("until", &p.until)?.map(|u| u + 999),
        };
        let page = self
            .audit
            .query(&filter, p.limit.unwrap_or(50), p.cursor.as_deref())
            .map_err(|e| match e {
                AuditError::BadCursor => IdentityError::BadRequest("invalid cursor".into()),
                other => IdentityError::Audit(other),
            })?;
        let items: Vec<_> = page.items.iter().map(|e| e.to_json()).collect();
        Ok(json!({"items": items, "next_cursor": page.next_cursor}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_params_accept_unix_and_rfc3339_and_refuse_words() {
        assert_eq!(time_param("s", &None).ok(), Some(None));
        assert_eq!(
            time_param("s", &Some("1700000000".into())).ok(),
            Some(Some(1_700_000_000_000))
        );
        assert!(time_param("s", &Some("2026-11-23T10:00:00Z".into()))
            .ok()
            .flatten()
            .is_some());
        assert!(matches!(
            time_param("since", &Some("yesterday".into())),
            Err(IdentityError::BadRequest(m)) if m.contains("since")
        ));
    }

    #[test]
    fn b64_fields_name_themselves_when_bad() {
        assert_eq!(b64_field("x", "aGk=").ok(), Some(b"hi".to_vec()));
        assert!(
            matches!(b64_field("data_b64", "%%"), Err(IdentityError::Invalid(m)) if m.contains("data_b64"))
        );
    }
}
