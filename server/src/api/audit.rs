//! `GET /v1/audit`: admins read everything, an agent reads its own entries.

use super::extract::{Auth, Query};
use super::{ApiResult, AppState};
use crate::identity::AuditParams;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(p): Query<AuditParams>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(s.identity.audit_trail(&actor, &p)?))
}
