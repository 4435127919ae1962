//! Vault routes (DESIGN §6). Bodies carrying secrets are never logged.

use super::extract::{Auth, Json, Path};
use super::{ApiError, ApiResult, AppState};
use crate::vault::{CredentialInput, CredentialMeta};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/vault", get(list))
        .route("/v1/vault/{name}", get(get_one).put(put).delete(delete))
        .route("/v1/vault/{name}/totp", post(totp))
}

async fn list(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(CredentialMeta::page_json(
        &s.vault.list(&actor)?,
    )))
}

async fn put(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
    Json(input): Json<CredentialInput>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let (meta, created) = s.vault.put(&actor, &name, input).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(json!(meta))))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let view = s.vault.get(&actor, &name)?;
    Ok(axum::Json(json!(view)))
}

async fn delete(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.vault.delete(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TotpReq {
    /// Unix time to compute the code for (clock checks); default now.
    at: Option<u64>,
}

/// The body is optional: an empty POST asks for the current code.
async fn totp(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let req: TotpReq = if body.iter().all(u8::is_ascii_whitespace) {
        TotpReq::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid body: {e}")))?
    };
    let code = s.vault.totp(&actor, &name, req.at)?;
    Ok(axum::Json(json!(code)))
}
