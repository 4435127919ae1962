//! Draft routes: compose, change, schedule, send or drop a draft (`queue::drafts`).

use super::extract::{Auth, Json, Path};
use super::{ApiResult, AppState};
use crate::queue::{DraftFields, DraftPatch};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/drafts", post(create).get(list))
        .route("/v1/drafts/{id}", get(one).patch(update).delete(remove))
        .route("/v1/drafts/{id}/send", post(send))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDraft {
    #[serde(flatten)]
    fields: DraftFields,
    send_at: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SendBody {
    send_at: Option<String>,
}

async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewDraft>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let d = s
        .queue
        .create_draft(&actor, req.fields, req.send_at.as_deref())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(d.to_json())))
}

async fn list(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<axum::Json<Value>> {
    let items: Vec<Value> = s
        .queue
        .list_drafts(&actor)?
        .iter()
        .map(|d| d.to_json())
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

async fn one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.queue.get_draft(&actor, &id)?.to_json()))
}

async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(p): Json<DraftPatch>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(
        s.queue.update_draft(&actor, &id, p).await?.to_json(),
    ))
}

async fn remove(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.queue.delete_draft(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 202 with the send answer, or with the scheduled draft when `send_at` is given. An empty
/// body is allowed.
async fn send(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let b: SendBody = if body.iter().all(u8::is_ascii_whitespace) {
        SendBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| super::error::ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let v = s
        .queue
        .send_draft(&actor, &id, b.send_at.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(v)))
}
