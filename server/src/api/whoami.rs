//! `GET /v1/whoami`.

use super::extract::Auth;
use super::{ApiResult, AppState};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/whoami", get(whoami))
}

async fn whoami(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(s.identity.whoami(&actor)?))
}
