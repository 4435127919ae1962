//! Identity routes (DESIGN §6, §8): sign, verify, tokens, and the admin key rotation.

use super::extract::{Auth, Json, Path};
use super::{ApiError, ApiResult, AppState};
use crate::identity::{b64_field, multibase, VerifyRequest, DEFAULT_ROTATION_OVERLAP_SECS};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/identity/sign", post(sign))
        .route("/v1/identity/verify", post(verify))
        .route("/v1/identity/token", post(token))
        .route("/v1/agents/{id}/rotate-key", post(rotate_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    data_b64: String,
}

async fn sign(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<SignRequest>,
) -> ApiResult<axum::Json<Value>> {
    let data = b64_field("data_b64", &req.data_b64)?;
    Ok(axum::Json(s.identity.sign(&actor, &data).await?.to_json()))
}

/// Either `{token, audience?}` or `{did, data_b64, signature_b64, kid?}`.
async fn verify(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<VerifyRequest>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.identity.verify(&actor, &req).await?.to_json()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    audience: String,
    ttl_seconds: Option<u64>,
}

async fn token(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<TokenRequest>,
) -> ApiResult<axum::Json<Value>> {
    let t = s
        .identity
        .issue_token(&actor, &req.audience, req.ttl_seconds)
        .await?;
    Ok(axum::Json(t.to_json()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    overlap_secs: Option<i64>,
}

async fn rotate_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    // The body is optional: an empty POST rotates with the default overlap.
    let req: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(e.to_string()))?
    };
    let overlap = req.overlap_secs.unwrap_or(DEFAULT_ROTATION_OVERLAP_SECS);
    let key = s.identity.rotate_identity_key(&actor, &id, overlap).await?;
    let agent = s
        .identity
        .find_agent(&id)?
        .ok_or_else(|| ApiError::not_found("agent"))?;
    Ok(axum::Json(json!({
        "kid": format!("{}#{}", s.identity.agent_did(&agent), key.kid),
        "public_key_multibase": multibase::ed25519_multikey(&key.public),
        "created_at": crate::util::rfc3339(key.created_at),
        "overlap_secs": overlap,
    })))
}
