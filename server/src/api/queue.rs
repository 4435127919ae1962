//! Admin queue routes: `GET /v1/queue`, `GET /v1/queue/{id}`, `POST /v1/queue/{id}/retry`,
//! `DELETE /v1/queue/{id}` (cancel). The queue service decides and audits.

use super::extract::{Auth, Path, Query};
use super::{ApiResult, AppState};
use crate::queue::QueueQuery;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/queue", get(list))
        .route("/v1/queue/{id}", get(one).delete(cancel))
        .route("/v1/queue/{id}/retry", post(retry))
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<QueueQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.queue.list(&actor, &q)?))
}

async fn one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.queue.get_queued(&actor, &id)?))
}

async fn retry(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.queue.retry_now(&actor, &id).await?))
}

async fn cancel(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.queue.cancel(&actor, &id).await?))
}
