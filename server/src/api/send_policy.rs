//! Send policies: an agent's own (`/v1/agents/{id}/send-policy`, set by an admin or by the
//! parent for its sub-agent) and the org default. The rules and the audit are in `policy`.

use super::extract::{Auth, Json, Path};
use super::{ApiError, ApiResult, AppState};
use crate::policy::SendPolicy;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agents/{id}/send-policy", get(read).put(write))
        .route("/v1/send-policy/default", get(default))
}

async fn read(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.policy.get(&actor, &id)?))
}

/// The body is read as any JSON first, so a wrong field or a negative number is a 400 that
/// names it, like a malformed pattern, rather than the extractor's 422.
async fn write(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<axum::Json<Value>> {
    let policy: SendPolicy = serde_json::from_value(body)
        .map_err(|e| ApiError::bad_request(format!("invalid send policy: {e}")))?;
    Ok(axum::Json(s.policy.put(&actor, &id, policy).await?))
}

async fn default(State(s): State<AppState>, Auth(_actor): Auth) -> axum::Json<Value> {
    axum::Json(s.policy.default_json())
}
