//! Vault tools: `vault_store`, `vault_get`, `vault_list`, `vault_delete`, `vault_totp`,
//! `vault_token` (a connected account's access token). Same
//! service calls and JSON as `/v1/vault*`. TOTP seeds go in and never come out: only codes.

use super::error::ToolError;
use super::server::{ok, requires, Caller, LegateMcp};
use crate::identity::Scope;
use crate::vault::{CredentialInput, CredentialMeta, VaultError};
use rmcp::handler::server::common::schema_for_input;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{schemars, tool, tool_router, ErrorData};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameArgs {
    /// The credential's name (1-128 of A-Z a-z 0-9 . _ -), e.g. "github".
    pub name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpArgs {
    /// The credential's name.
    pub name: String,
    /// Unix time to compute the code for (default: now). Only for checking clocks.
    pub at: Option<u64>,
}

/// The schema of `vault_store`'s arguments. The arguments themselves are parsed by the
/// vault's own `CredentialInput` (what `PUT /v1/vault/{name}` parses), so both front-ends
/// accept exactly the same documents; a unit test keeps this description in step.
#[allow(dead_code)]
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreArgs {
    /// The credential's name (1-128 of A-Z a-z 0-9 . _ -); storing an existing name replaces it.
    name: String,
    kind: KindArg,
    username: Option<String>,
    password: Option<String>,
    /// The secret of an `api_key` credential.
    secret: Option<String>,
    /// The site's login URL.
    url: Option<String>,
    notes: Option<String>,
    /// Custom secret fields (`custom` kind).
    fields: Option<BTreeMap<String, String>>,
    /// The authenticator (TOTP) seed: an `otpauth://totp/...` URI (e.g. from the QR code) or
    /// `{secret: BASE32, algorithm?, digits?, period?}`. It is never returned; use vault_totp.
    totp: Option<TotpSpecArg>,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum KindArg {
    Login,
    ApiKey,
    Totp,
    Note,
    Custom,
}

#[allow(dead_code)]
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum TotpSpecArg {
    Uri(String),
    Object {
        /// Base32 seed.
        secret: String,
        /// SHA1 (default), SHA256 or SHA512.
        algorithm: Option<String>,
        /// 6 (default) or 8.
        digits: Option<u8>,
        /// Seconds, default 30.
        period: Option<u32>,
    },
}

fn store_schema() -> Arc<JsonObject> {
    // A derive-generated schema of plain structs always validates; fall back to "any object".
    schema_for_input::<StoreArgs>()
        .unwrap_or_else(|_| rmcp::handler::server::common::schema_for_empty_input())
}

/// Splits `vault_store`'s arguments into the name and the vault's own input document.
fn store_input(mut args: JsonObject) -> Result<(String, CredentialInput), ToolError> {
    let name = match args.remove("name") {
        Some(Value::String(n)) => n,
        _ => return Err(ToolError::invalid("name (a string) is required")),
    };
    let input = serde_json::from_value(Value::Object(args))
        .map_err(|e| ToolError::invalid(format!("invalid credential: {e}")))?;
    Ok((name, input))
}

#[tool_router(router = vault_tools, vis = "pub(super)")]
impl LegateMcp {
    #[tool(
        description = "Store a credential in this agent's encrypted vault (creates it, or \
        replaces one of the same name): kind login|api_key|totp|note|custom, username, \
        password, secret, url, notes, custom fields, and optionally a TOTP seed (otpauth:// URI \
        or {secret}). Returns the metadata (no secrets). Store the TOTP seed when a site shows \
        its 2FA QR code; later get codes with vault_totp.",
        meta = requires(Scope::VaultWrite),
        input_schema = store_schema(),
        annotations(title = "Store credential", read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn vault_store(
        &self,
        Caller(actor): Caller,
        args: JsonObject,
    ) -> Result<CallToolResult, ErrorData> {
        let (name, input) = match store_input(args) {
            Ok(x) => x,
            Err(e) => return Ok(e.into_result()),
        };
        let r = self.s.vault.put(&actor, &name, input).await;
        ok(r.map(|(meta, _created)| json!(meta)))
    }

    #[tool(
        description = "Read one credential with its secrets (username, password, secret, notes, \
        custom fields) to log in somewhere. TOTP seeds are never shown, only their parameters; \
        use vault_totp for a code.",
        meta = requires(Scope::VaultRead),
        annotations(title = "Get credential", read_only_hint = true, open_world_hint = false)
    )]
    async fn vault_get(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<NameArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        ok(self.s.vault.get(&actor, &a.name).map(|v| json!(v)))
    }

    #[tool(
        description = "List the credentials in this agent's vault: names, kinds, usernames, \
        URLs and whether each has a TOTP seed; no secrets. Returns {items, next_cursor}.",
        meta = requires(Scope::VaultRead),
        annotations(title = "List credentials", read_only_hint = true, open_world_hint = false)
    )]
    async fn vault_list(&self, Caller(actor): Caller) -> Result<CallToolResult, ErrorData> {
        ok(self
            .s
            .vault
            .list(&actor)
            .map(|items| CredentialMeta::page_json(&items)))
    }

    #[tool(
        description = "Delete a credential from the vault for good. Returns {name, deleted: \
        true} (the REST call answers 204 with no body).",
        meta = requires(Scope::VaultWrite),
        annotations(title = "Delete credential", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn vault_delete(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<NameArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let r = self.s.vault.delete(&actor, &a.name).await;
        ok(r.map(|()| json!({"name": a.name, "deleted": true})))
    }

    #[tool(
        description = "Get the current TOTP (authenticator app) code of a stored credential, \
        for a site's two-factor login. Returns {code, seconds_remaining, period, digits, at}; \
        when fewer than 5 seconds remain it also returns `next_code` — then prefer next_code \
        or wait for the next period.",
        meta = requires(Scope::VaultRead),
        annotations(title = "TOTP code", read_only_hint = true, open_world_hint = false)
    )]
    async fn vault_totp(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<TotpArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        ok::<VaultError>(self.s.vault.totp(&actor, &a.name, a.at).map(|c| json!(c)))
    }

    #[tool(
        description = "Get a usable OAuth access token for a connected account (a vault \
        credential of kind `oauth`, e.g. \"github\", that a human connected to this agent). \
        Returns {access_token, token_type, expires_in}; legate refreshes it when needed and \
        never reveals the refresh token. Send it as `Authorization: Bearer <access_token>` to \
        the service. An error `needs_consent` means the human must connect it again.",
        meta = requires(Scope::VaultRead),
        annotations(title = "OAuth access token", read_only_hint = true, open_world_hint = true)
    )]
    async fn vault_token(
        &self,
        Caller(actor): Caller,
        Parameters(a): Parameters<NameArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let r = self.s.connections.token(&actor, &a.name).await;
        ok(r.map(|t| t.to_json()))
    }
}

impl From<crate::connections::ConnectionsError> for ToolError {
    fn from(e: crate::connections::ConnectionsError) -> Self {
        use crate::connections::ConnectionsError as C;
        match e {
            C::Denied(d) => d.into(),
            C::NotFound(what) => Self::new("not_found", format!("{what} not found")),
            C::BadRequest(m) => Self::new("bad_request", m),
            C::Invalid(m) => Self::invalid(m),
            C::InvalidState(m) => Self::new("invalid_state", m),
            C::IssuerMismatch(m) => Self::new("invalid_issuer", m),
            C::NeedsConsent(_) => Self::new("needs_consent", e.to_string()),
            C::NotActive(m) => Self::new("connection_not_active", m),
            C::Provider(m) => Self::new("provider_error", format!("the provider: {m}")),
            C::Identity(e) => e.into(),
            C::Vault(e) => e.into(),
            other => Self::internal(&other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => JsonObject::new(),
        }
    }

    /// Every document the schema describes is one the vault accepts, and the other way round.
    #[test]
    fn the_store_schema_and_the_vault_input_agree() {
        let docs = [
            json!({"name": "gh", "kind": "login", "username": "u", "password": "p", "url": "https://x.test"}),
            json!({"name": "gh", "kind": "totp", "totp": "otpauth://totp/X:u?secret=JBSWY3DPEHPK3PXP&issuer=X"}),
            json!({"name": "gh", "kind": "login", "totp": {"secret": "JBSWY3DPEHPK3PXP", "algorithm": "SHA256", "digits": 8, "period": 60}}),
            json!({"name": "k", "kind": "api_key", "secret": "s", "notes": "n"}),
            json!({"name": "c", "kind": "custom", "fields": {"pin": "1234"}}),
        ];
        for d in docs {
            assert!(
                serde_json::from_value::<StoreArgs>(d.clone()).is_ok(),
                "schema refuses {d}"
            );
            assert!(store_input(obj(d.clone())).is_ok(), "vault refuses {d}");
        }
        for bad in [
            json!({"name": "gh", "kind": "login", "colour": "red"}),
            json!({"name": "gh", "kind": "wallet"}),
        ] {
            assert!(serde_json::from_value::<StoreArgs>(bad.clone()).is_err());
            assert!(store_input(obj(bad)).is_err());
        }
        assert!(store_input(obj(json!({"kind": "login"}))).is_err());
        let s = store_schema();
        assert_eq!(s["type"], "object");
        assert!(s["properties"]["totp"].is_object());
    }
}
