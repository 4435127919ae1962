//! Credential shapes: what `PUT /v1/vault/{name}` accepts, what is sealed, what is shown.
//!
//! The TOTP seed exists only in [`SecretPayload`], which is sealed before storage; the view
//! types returned to callers ([`CredentialMeta`], [`CredentialView`]) have no field that could
//! hold it, so no code path can leak it by accident.

use super::otpauth::TotpSpec;
use super::totp::{Algorithm, Totp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Login,
    ApiKey,
    Totp,
    Note,
    Custom,
    /// A connected account (issue 25): client secret and tokens, made and used only through
    /// `connections`; its secrets are never shown by `GET /v1/vault/{name}`.
    Oauth,
}

/// The request body. Secret-bearing fields are zeroized when it is dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub kind: CredentialKind,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Zeroizing<String>>,
    /// The secret of an `api_key` credential.
    #[serde(default)]
    pub secret: Option<Zeroizing<String>>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub notes: Option<Zeroizing<String>>,
    /// Custom secret fields.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, Zeroizing<String>>>,
    #[serde(default)]
    pub totp: Option<TotpSpec>,
}

/// The sealed part.
#[derive(Serialize, Deserialize, Default)]
pub struct SecretPayload {
    pub password: Option<Zeroizing<String>>,
    pub secret: Option<Zeroizing<String>>,
    pub notes: Option<Zeroizing<String>>,
    pub fields: BTreeMap<String, Zeroizing<String>>,
    pub totp: Option<Totp>,
    /// The secrets of an `oauth` credential (`vault::oauth`).
    #[serde(default)]
    pub oauth: Option<super::oauth::OauthSecrets>,
}

impl std::fmt::Debug for SecretPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretPayload([redacted])")
    }
}

impl std::fmt::Debug for CredentialInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialInput")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Stored metadata (plaintext) of a credential.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CredentialMeta {
    pub id: String,
    pub name: String,
    pub kind: CredentialKind,
    pub username: Option<String>,
    pub url: Option<String>,
    pub has_totp: bool,
    pub version: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
}

impl CredentialMeta {
    /// `GET /v1/vault` (and `vault_list`): every credential in one page.
    pub fn page_json(items: &[CredentialMeta]) -> serde_json::Value {
        serde_json::json!({"items": items, "next_cursor": null})
    }
}

/// `GET /v1/vault/{name}`: secret fields, and only the parameters of a TOTP seed.
#[derive(Serialize)]
pub struct CredentialView {
    #[serde(flatten)]
    pub meta: CredentialMeta,
    pub password: Option<Zeroizing<String>>,
    pub secret: Option<Zeroizing<String>>,
    pub notes: Option<Zeroizing<String>>,
    pub fields: BTreeMap<String, Zeroizing<String>>,
    pub totp: Option<TotpInfo>,
}

#[derive(Debug, Serialize)]
pub struct TotpInfo {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
}

/// Names are URL path segments and log-safe: 1 to 128 of `[A-Za-z0-9._-]`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("name must be 1 to 128 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("name may only contain A-Z, a-z, 0-9, '.', '_' and '-'".into());
    }
    Ok(())
}

const MAX_FIELD: usize = 64 * 1024;

impl CredentialInput {
    /// Checks kind-specific requirements and builds the sealed payload.
    pub fn into_payload(self) -> Result<(Option<String>, Option<String>, SecretPayload), String> {
        let totp = match &self.totp {
            Some(spec) => Some(spec.to_totp()?),
            None => None,
        };
        match self.kind {
            CredentialKind::Login if self.username.is_none() && self.password.is_none() => {
                return Err("a login needs a username or a password".into())
            }
            CredentialKind::ApiKey if self.secret.is_none() => {
                return Err("an api_key credential needs secret".into())
            }
            CredentialKind::Totp if totp.is_none() => {
                return Err("a totp credential needs totp (an otpauth:// URI or an object)".into())
            }
            CredentialKind::Note if self.notes.is_none() => return Err("a note needs notes".into()),
            CredentialKind::Oauth => {
                return Err("oauth credentials are made by connecting an account: POST /v1/agents/{id}/connections".into())
            }
            _ => {}
        }
        if let Some(u) = &self.url {
            url::Url::parse(u).map_err(|_| "url is not a valid URL".to_string())?;
        }
        let sizes = [
            self.username.as_ref().map_or(0, |s| s.len()),
            self.password.as_ref().map_or(0, |s| s.len()),
            self.secret.as_ref().map_or(0, |s| s.len()),
            self.notes.as_ref().map_or(0, |s| s.len()),
        ];
        if sizes.iter().any(|n| *n > MAX_FIELD) {
            return Err("a field is longer than 64 KiB".into());
        }
        let fields = self.fields.unwrap_or_default();
        for k in fields.keys() {
            if k.is_empty() || k.len() > 128 {
                return Err("custom field names must be 1 to 128 characters".into());
            }
        }
        Ok((
            self.username,
            self.url,
            SecretPayload {
                password: self.password,
                secret: self.secret,
                notes: self.notes,
                fields,
                totp,
                oauth: None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_requirements_and_names() {
        let inp: CredentialInput =
            serde_json::from_value(serde_json::json!({"kind": "api_key"})).unwrap();
        assert!(inp.into_payload().unwrap_err().contains("secret"));
        let inp: CredentialInput =
            serde_json::from_value(serde_json::json!({"kind": "totp"})).unwrap();
        assert!(inp.into_payload().is_err());
        assert!(validate_name("github.com_bot-1").is_ok());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("").is_err());
        assert!(
            serde_json::from_value::<CredentialInput>(serde_json::json!({"kind": "weird"}))
                .is_err()
        );
    }
}
