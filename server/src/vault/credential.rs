//! Credentials as callers see them: what `PUT /v1/vault/{name}` accepts, what is validated,
//! and the two shapes that go back out (metadata for lists, a view for get).
//!
//! The split is structural: [`CredentialMeta`] is stored in clear for listing and holds
//! nothing secret; [`CredentialView`] adds the decrypted secret fields for a caller with
//! `vault:read`; neither has a field that could hold a TOTP seed (only `has_totp`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::VaultError;
use super::otpauth::TotpSpec;
use super::payload::SecretPayload;
use super::secret::SecretString;
use super::totp::TotpParams;

pub const MAX_NAME_LEN: usize = 128;
pub const MAX_USERNAME_LEN: usize = 512;
pub const MAX_URL_LEN: usize = 2048;
/// Passwords, API keys and custom field values.
pub const MAX_SECRET_LEN: usize = 8192;
pub const MAX_NOTES_LEN: usize = 65536;
pub const MAX_FIELDS: usize = 64;

/// What a credential is for; decides which fields are required (see
/// [`CredentialInput::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Login,
    ApiKey,
    Totp,
    Note,
    Custom,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Login => "login",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Totp => "totp",
            CredentialKind::Note => "note",
            CredentialKind::Custom => "custom",
        }
    }
}

/// Checks a credential name (and a custom field name): 1..=128 characters of
/// `[A-Za-z0-9._-]`, and not `.` or `..`, which path-normalising HTTP clients would rewrite
/// before the request reached us.
pub fn validate_name(name: &str) -> Result<(), VaultError> {
    if name.is_empty() {
        return Err(VaultError::InvalidName("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(VaultError::InvalidName("longer than 128 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(VaultError::InvalidName(
            "only letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    if name == "." || name == ".." {
        return Err(VaultError::InvalidName("`.` and `..` are reserved"));
    }
    Ok(())
}

/// The body of `PUT /v1/vault/{name}` (and of the `vault_store` tool). Unknown fields are
/// rejected so a misspelt `pasword` is an error rather than a silently missing password.
/// Empty strings count as absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub kind: CredentialKind,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// The key of an `api_key` credential.
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub notes: Option<SecretString>,
    #[serde(default)]
    pub fields: Option<BTreeMap<String, SecretString>>,
    #[serde(default)]
    pub totp: Option<TotpSpec>,
}

/// A credential that passed validation, ready to be sealed (see `SealedCredential::seal`).
#[derive(Debug)]
pub struct ValidatedCredential {
    pub name: String,
    pub kind: CredentialKind,
    pub username: Option<String>,
    pub url: Option<String>,
    pub payload: SecretPayload,
    pub totp: Option<TotpParams>,
}

impl CredentialInput {
    /// Validates against `name` (from the path) and the kind's requirements:
    /// `login` needs `username` or `password`, `api_key` needs `secret`, `totp` needs `totp`,
    /// `note` needs `notes`, `custom` needs at least one entry in `fields`. Any kind may carry
    /// the other optional fields (a login with a TOTP second factor is the common case).
    pub fn validate(self, name: &str) -> Result<ValidatedCredential, VaultError> {
        validate_name(name)?;
        let username = plain_field("username", self.username, MAX_USERNAME_LEN)?;
        let url = plain_field("url", self.url, MAX_URL_LEN)?;
        let password = secret_field("password", self.password, MAX_SECRET_LEN)?;
        let secret = secret_field("secret", self.secret, MAX_SECRET_LEN)?;
        let notes = secret_field("notes", self.notes, MAX_NOTES_LEN)?;
        let fields = custom_fields(self.fields.unwrap_or_default())?;
        let totp = match &self.totp {
            Some(spec) => Some(
                spec.to_params()
                    .map_err(|e| invalid("totp", e.to_string()))?,
            ),
            None => None,
        };

        let kind = self.kind;
        let missing = |field| {
            Err(VaultError::MissingField {
                kind: kind.as_str(),
                field,
            })
        };
        match kind {
            CredentialKind::Login if username.is_none() && password.is_none() => {
                return missing("username` or `password")
            }
            CredentialKind::ApiKey if secret.is_none() => return missing("secret"),
            CredentialKind::Totp if totp.is_none() => return missing("totp"),
            CredentialKind::Note if notes.is_none() => return missing("notes"),
            CredentialKind::Custom if fields.is_empty() => return missing("fields"),
            _ => {}
        }
        Ok(ValidatedCredential {
            name: name.to_owned(),
            kind,
            username,
            url,
            payload: SecretPayload {
                password,
                secret,
                notes,
                fields,
            },
            totp,
        })
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> VaultError {
    VaultError::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A non-secret text field: no control characters (they end up in lists and logs).
fn plain_field(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, VaultError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > max {
        return Err(invalid(field, format!("longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(Some(value))
}

/// A secret field: only its length is checked; its content is the caller's business.
fn secret_field(
    field: &str,
    value: Option<SecretString>,
    max: usize,
) -> Result<Option<SecretString>, VaultError> {
    match value {
        Some(v) if v.len() > max => Err(invalid(field, format!("longer than {max} bytes"))),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn custom_fields(
    fields: BTreeMap<String, SecretString>,
) -> Result<BTreeMap<String, SecretString>, VaultError> {
    if fields.len() > MAX_FIELDS {
        return Err(invalid("fields", format!("more than {MAX_FIELDS} entries")));
    }
    for (name, value) in &fields {
        validate_name(name).map_err(|e| invalid("fields", format!("field name: {e}")))?;
        if value.len() > MAX_SECRET_LEN {
            return Err(invalid(
                &format!("fields.{name}"),
                format!("longer than {MAX_SECRET_LEN} bytes"),
            ));
        }
    }
    Ok(fields)
}

/// What is stored in clear about a credential and returned by `GET /v1/vault` (list) and
/// `PUT` (DESIGN §6). Times are unix seconds; the API layer renders them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialMeta {
    /// Random record id (`cr_...`); the AAD binds ciphertexts to it, so a name reused after a
    /// delete never matches an old ciphertext.
    pub id: String,
    pub name: String,
    pub kind: CredentialKind,
    pub username: Option<String>,
    pub url: Option<String>,
    pub has_totp: bool,
    /// 1 on creation, +1 on every replace.
    pub version: u32,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
}

/// `GET /v1/vault/{name}`: the metadata plus the decrypted secret fields. Has no TOTP seed
/// field by construction; TOTP is only reachable as codes.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialView {
    #[serde(flatten)]
    pub meta: CredentialMeta,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<SecretString>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, SecretString>,
}

impl CredentialView {
    pub fn new(meta: CredentialMeta, payload: SecretPayload) -> Self {
        Self {
            meta,
            password: payload.password,
            secret: payload.secret,
            notes: payload.notes,
            fields: payload.fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn input(json: &str) -> CredentialInput {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn names_follow_the_rules() {
        for ok in ["github", "a", "acme.prod_db-1", &"x".repeat(128)] {
            validate_name(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(
                matches!(validate_name(bad), Err(VaultError::InvalidName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn login_with_otpauth_uri_validates() {
        let v = input(&format!(
            r#"{{"kind": "login", "username": "bot", "password": "hunter2",
                "url": "https://github.com", "totp": "otpauth://totp/GH:bot?secret={SEED}"}}"#
        ))
        .validate("github")
        .unwrap();
        assert_eq!(v.kind, CredentialKind::Login);
        assert_eq!(v.username.as_deref(), Some("bot"));
        assert_eq!(
            v.payload.password.as_ref().map(|p| p.expose()),
            Some("hunter2")
        );
        assert_eq!(v.totp.unwrap().code_at(59), "287082");
    }

    #[test]
    fn kind_requirements_name_the_missing_field() {
        let cases = [
            (
                r#"{"kind": "login", "url": "x"}"#,
                "`login` credential needs `username` or `password`",
            ),
            (
                r#"{"kind": "api_key", "password": "p"}"#,
                "`api_key` credential needs `secret`",
            ),
            (r#"{"kind": "totp"}"#, "`totp` credential needs `totp`"),
            (
                r#"{"kind": "note", "notes": ""}"#,
                "`note` credential needs `notes`",
            ),
            (
                r#"{"kind": "custom", "fields": {}}"#,
                "`custom` credential needs `fields`",
            ),
        ];
        for (json, msg) in cases {
            let err = input(json).validate("n").unwrap_err().to_string();
            assert!(err.contains(msg), "{json}: {err}");
        }
        input(r#"{"kind": "api_key", "secret": "sk_1"}"#)
            .validate("n")
            .unwrap();
        input(r#"{"kind": "note", "notes": "hi"}"#)
            .validate("n")
            .unwrap();
        input(r#"{"kind": "custom", "fields": {"pin": "1"}}"#)
            .validate("n")
            .unwrap();
        input(&format!(
            r#"{{"kind": "totp", "totp": {{"secret": "{SEED}"}}}}"#
        ))
        .validate("n")
        .unwrap();
    }

    #[test]
    fn field_errors_say_which_field() {
        let long = "p".repeat(MAX_SECRET_LEN + 1);
        let err = input(&format!(r#"{{"kind": "login", "password": "{long}"}}"#))
            .validate("n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid `password`"), "{err}");
        assert!(!err.contains("ppp"));

        let err = input(r#"{"kind": "login", "username": "a\nb"}"#)
            .validate("n")
            .unwrap_err();
        assert!(err.to_string().starts_with("invalid `username`"), "{err}");

        let err = input(r#"{"kind": "custom", "fields": {"bad name": "v"}}"#)
            .validate("n")
            .unwrap_err();
        assert!(err.to_string().starts_with("invalid `fields`"), "{err}");

        let err =
            input(r#"{"kind": "login", "username": "u", "totp": "otpauth://totp/x?secret=A"}"#)
                .validate("n")
                .unwrap_err()
                .to_string();
        assert_eq!(err, "invalid `totp`: totp secret is not valid base32");

        let err = input(r#"{"kind": "login", "username": "u"}"#)
            .validate("a/b")
            .unwrap_err();
        assert!(matches!(err, VaultError::InvalidName(_)));
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let err = serde_json::from_str::<CredentialInput>(r#"{"kind": "login", "pasword": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `pasword`"), "{err}");
        assert!(serde_json::from_str::<CredentialInput>(r#"{"kind": "ssh"}"#).is_err());
    }

    #[test]
    fn view_serializes_secrets_but_has_no_seed() {
        let meta = CredentialMeta {
            id: "cr_1".into(),
            name: "github".into(),
            kind: CredentialKind::Login,
            username: Some("bot".into()),
            url: None,
            has_totp: true,
            version: 1,
            created_at: 10,
            updated_at: 10,
            last_used_at: None,
        };
        let view = CredentialView::new(
            meta,
            SecretPayload {
                password: Some("hunter2".into()),
                ..SecretPayload::default()
            },
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["password"], "hunter2");
        assert_eq!(json["kind"], "login");
        assert_eq!(json["has_totp"], true);
        assert!(json.get("totp").is_none() && json.get("fields").is_none());
        assert!(!format!("{view:?}").contains("hunter2"));
    }

    #[test]
    fn debug_of_inputs_hides_secrets() {
        let raw = format!(
            r#"{{"kind": "login", "password": "hunter2", "notes": "n0tes", "fields": {{"pin": "4321"}},
                "totp": {{"secret": "{SEED}"}}}}"#
        );
        let parsed = input(&raw);
        let dbg_input = format!("{parsed:?}");
        let dbg_valid = format!("{:?}", parsed.validate("n").unwrap());
        for dbg in [dbg_input, dbg_valid] {
            for secret in ["hunter2", "n0tes", "4321", SEED] {
                assert!(!dbg.contains(secret), "{secret} in {dbg}");
            }
        }
    }
}
