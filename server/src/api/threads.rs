//! Thread routes: list conversations, read one in order, change one as a whole.

use super::extract::{Auth, Json, Path, Query};
use super::{ApiResult, AppState};
use crate::mailbox::MessagePatch;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/threads", get(list))
        .route("/v1/threads/{id}", get(one).patch(update))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    folder: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(p): Query<ListParams>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.mailbox.list_threads(
        &actor,
        p.folder.as_deref(),
        p.limit,
        p.cursor.as_deref(),
    )?))
}

async fn one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.mailbox.thread_json(&actor, &id).await?))
}

async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(patch): Json<MessagePatch>,
) -> ApiResult<axum::Json<Value>> {
    let t = s.mailbox.update_thread(&actor, &id, &patch).await?;
    Ok(axum::Json(t.to_json()))
}
