//! What a connection is (plaintext metadata: never a secret) and what starting one accepts.

use super::error::ConnectionsError;
use crate::util::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// Longest URL accepted for a provider endpoint.
pub const MAX_URL: usize = 2048;
/// Most scopes one connection asks for.
pub const MAX_SCOPES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started; waiting for the human's consent at the provider.
    Pending,
    Active,
    /// The provider refused the refresh token (`invalid_grant`): grant it again.
    NeedsConsent,
    /// The consent was refused, never given in time, or the code exchange failed.
    Failed,
    Revoked,
}

impl Status {
    /// Whether the connection still holds (or waits for) tokens.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Status::Pending | Status::Active | Status::NeedsConsent
        )
    }
}

/// The provider's endpoints, from discovery or given explicitly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    pub issuer: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub revocation_endpoint: Option<String>,
    /// `client_secret_basic` (the default of RFC 6749 §2.3.1) or `client_secret_post`.
    pub token_auth: String,
    /// The issuer identifier exactly as the provider's metadata gives it (discovery only):
    /// an `iss` in the callback must equal it (RFC 9207 §2.4, simple string comparison).
    #[serde(default)]
    pub metadata_issuer: Option<String>,
    /// The metadata advertises `authorization_response_iss_parameter_supported`: a callback
    /// without `iss` is then refused too.
    #[serde(default)]
    pub iss_parameter: bool,
}

impl Endpoints {
    /// RFC 9207: whether the authorization response's `iss` fits the provider the request
    /// went to. A mismatching `iss` is always refused (a mix-up: the code came from another
    /// provider); a missing one only when the provider says it sends one. With no known
    /// issuer (endpoints given explicitly) there is nothing to compare with.
    pub fn check_iss(&self, iss: Option<&str>) -> Result<(), &'static str> {
        let expected = self.metadata_issuer.as_deref().or(self.issuer.as_deref());
        match (iss, expected) {
            (Some(got), Some(want)) if got == want => Ok(()),
            (Some(_), Some(_)) => {
                Err("the callback's iss names another issuer than this connection's (RFC 9207)")
            }
            (Some(_), None) => Ok(()),
            (None, _) if self.iss_parameter => Err(
                "the provider sends iss with its responses (RFC 9207) and this callback has none",
            ),
            (None, _) => Ok(()),
        }
    }
}

/// A connected account of an agent. Its secrets are the vault credential `name`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub agent_id: String,
    /// The vault credential holding its client secret and tokens.
    pub name: String,
    pub endpoints: Endpoints,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    /// The human who started the grant (admin or owner): named first in the delegation
    /// chain of every use.
    pub granted_by: String,
    pub granted_by_email: String,
    pub status: Status,
    pub created_at: i64,
    pub granted_at: Option<i64>,
    pub updated_at: i64,
    pub revoked_at: Option<i64>,
    /// Whether the provider confirmed the revocation (none: it offers no endpoint).
    pub provider_revoked: Option<bool>,
    /// Why it failed or needs consent (the provider's error code, cleaned).
    pub last_error: Option<String>,
}

impl Connection {
    /// The view every front-end shows: never a token or the client secret.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "agent_id": self.agent_id,
            "name": self.name,
            "status": self.status,
            "scopes": self.scopes,
            "client_id": self.client_id,
            "issuer": self.endpoints.issuer,
            "authorization_endpoint": self.endpoints.authorization_endpoint,
            "token_endpoint": self.endpoints.token_endpoint,
            "revocation_endpoint": self.endpoints.revocation_endpoint,
            "granted_by": {"human_id": self.granted_by, "email": self.granted_by_email},
            "created_at": rfc3339(self.created_at),
            "granted_at": self.granted_at.map(rfc3339),
            "revoked_at": self.revoked_at.map(rfc3339),
            "provider_revoked": self.provider_revoked,
            "last_error": self.last_error,
        })
    }

    /// The delegation chain of a use: the agent's own chain with the granting human in the
    /// place of the human who created the agent (`human:bob > org:acme > agent:ops@...`).
    pub fn chain(&self, agent_chain: &[String]) -> Vec<String> {
        let mut chain = vec![format!("human:{}", self.granted_by_email)];
        chain.extend(agent_chain.iter().skip(1).cloned());
        chain
    }
}

/// A grant waiting for its callback, stored under SHA-256(state).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingGrant {
    pub agent_id: String,
    pub connection_id: String,
    pub expires_at: i64,
}

/// `POST /v1/agents/{id}/connections` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Zeroizing<String>>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn bad(m: impl Into<String>) -> ConnectionsError {
    ConnectionsError::BadRequest(m.into())
}

/// Printable ASCII only (no space, no CR/LF): what may go into a form body or a URL.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

impl NewConnection {
    /// Checks every field's form (lengths, characters, one way to name the provider).
    pub fn validate(&self) -> Result<(), ConnectionsError> {
        crate::vault::credential::validate_name(&self.name).map_err(bad)?;
        if self.client_id.is_empty() || self.client_id.len() > 256 || !printable(&self.client_id) {
            return Err(bad(
                "\"client_id\" must be 1 to 256 printable characters without spaces",
            ));
        }
        if let Some(s) = &self.client_secret {
            if s.is_empty() || s.len() > 4096 || !printable(s) {
                return Err(bad(
                    "\"client_secret\" must be 1 to 4096 printable characters without spaces",
                ));
            }
        }
        if self.scopes.len() > MAX_SCOPES {
            return Err(bad(format!("at most {MAX_SCOPES} scopes")));
        }
        for s in &self.scopes {
            // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
            if s.is_empty() || s.len() > 128 || !s.bytes().all(printable_scope) {
                return Err(bad(format!(
                    "scope {:?} is not an OAuth scope token (1 to 128 of printable ASCII without space, '\"' or '\\\\')",
                    s.chars().take(40).collect::<String>()
                )));
            }
        }
        let explicit = self.authorization_endpoint.is_some() || self.token_endpoint.is_some();
        match (&self.issuer, explicit) {
            (Some(_), true) => Err(bad(
                "give either \"issuer\" (discovery) or the endpoints, not both",
            )),
            (None, false) => Err(bad(
                "give \"issuer\" (discovery) or \"authorization_endpoint\" and \"token_endpoint\"",
            )),
            (None, true)
                if self.authorization_endpoint.is_none() || self.token_endpoint.is_none() =>
            {
                Err(bad(
                    "both \"authorization_endpoint\" and \"token_endpoint\" are needed",
                ))
            }
            _ => {
                for u in [
                    &self.issuer,
                    &self.authorization_endpoint,
                    &self.token_endpoint,
                    &self.revocation_endpoint,
                ]
                .into_iter()
                .flatten()
                {
                    if u.len() > MAX_URL || !printable(u) {
                        return Err(bad(format!(
                            "provider URLs are at most {MAX_URL} printable characters"
                        )));
                    }
                }
                Ok(())
            }
        }
    }
}

fn printable_scope(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: Value) -> Result<(), String> {
        let n: NewConnection = serde_json::from_value(v).map_err(|e| e.to_string())?;
        n.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn validation() {
        let ok = json!({"name": "gh", "issuer": "https://id.test", "client_id": "c", "scopes": ["repo", "read:org"]});
        assert!(input(ok).is_ok());
        for bad in [
            json!({"name": "gh", "client_id": "c"}),
            json!({"name": "gh", "issuer": "https://a", "token_endpoint": "https://b", "client_id": "c"}),
            json!({"name": "gh", "authorization_endpoint": "https://a", "client_id": "c"}),
            json!({"name": "g/h", "issuer": "https://a", "client_id": "c"}),
            json!({"name": "gh", "issuer": "https://a", "client_id": "c\r\nX: y"}),
            json!({"name": "gh", "issuer": "https://a\r\n", "client_id": "c"}),
            json!({"name": "gh", "issuer": "https://a", "client_id": "c", "scopes": ["a b"]}),
            json!({"name": "gh", "issuer": "https://a", "client_id": "c", "colour": 1}),
        ] {
            assert!(input(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn chain_names_the_granting_human() {
        let c = Connection {
            id: "cn".into(),
            agent_id: "ag".into(),
            name: "linear".into(),
            endpoints: Endpoints {
                issuer: None,
                authorization_endpoint: "https://a".into(),
                token_endpoint: "https://t".into(),
                revocation_endpoint: None,
                token_auth: "client_secret_basic".into(),
                metadata_issuer: None,
                iss_parameter: false,
            },
            client_id: "c".into(),
            scopes: vec![],
            redirect_uri: "https://x/connections/callback".into(),
            granted_by: "hu_b".into(),
            granted_by_email: "bob@acme.test".into(),
            status: Status::Active,
            created_at: 0,
            granted_at: None,
            updated_at: 0,
            revoked_at: None,
            provider_revoked: None,
            last_error: None,
        };
        let chain = c.chain(&[
            "human:alice@acme.test".into(),
            "org:acme".into(),
            "agent:ops@a.test".into(),
        ]);
        assert_eq!(
            chain,
            ["human:bob@acme.test", "org:acme", "agent:ops@a.test"]
        );
        assert!(!c.to_json().to_string().contains("secret"));
    }

    #[test]
    fn the_callbacks_iss_must_name_the_connections_issuer() {
        let mut e = Endpoints {
            issuer: Some("https://op.example".into()),
            authorization_endpoint: "https://op.example/auth".into(),
            token_endpoint: "https://op.example/token".into(),
            revocation_endpoint: None,
            token_auth: "client_secret_basic".into(),
            metadata_issuer: Some("https://op.example".into()),
            iss_parameter: true,
        };
        assert!(e.check_iss(Some("https://op.example")).is_ok());
        for bad in [
            "https://evil.example",
            "https://op.example/",
            "",
            "https://OP.example",
        ] {
            assert!(e.check_iss(Some(bad)).is_err(), "{bad}");
        }
        assert!(e.check_iss(None).is_err(), "advertised: iss required");
        e.iss_parameter = false;
        assert!(e.check_iss(None).is_ok());
        assert!(
            e.check_iss(Some("https://evil.example")).is_err(),
            "mismatch: always"
        );
        e.metadata_issuer = None;
        assert!(
            e.check_iss(Some("https://op.example")).is_ok(),
            "records made before"
        );
        e.issuer = None;
        assert!(
            e.check_iss(Some("https://any.example")).is_ok(),
            "no issuer known"
        );
    }
}
