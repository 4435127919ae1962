//! Held sends and the circuit breaker (issue 24, items 2 and 5): the approval queue
//! (`GET /v1/approvals`, approve, reject) and `POST /v1/agents/{id}/resume`. The rules and
//! the audit are in `queue::approvals` and `policy::breaker`. Also the bounce and complaint
//! reports received (`GET /v1/feedback`, `queue::feedback`).

use super::extract::{Auth, Path, Query};
use super::{ApiError, ApiResult, AppState};
use crate::queue::ApprovalQuery;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/approvals", get(list))
        .route("/v1/approvals/{id}/approve", post(approve))
        .route("/v1/approvals/{id}/reject", post(reject))
        .route("/v1/agents/{id}/resume", post(resume))
        .route("/v1/agents/{id}/breaker", get(breaker))
        .route("/v1/feedback", get(feedback))
        .route(
            "/v1/agents/{id}/screening",
            get(screening).put(set_screening),
        )
}

/// Mail from first contacts to `Screened` (admins, or the agent with `mail:manage`).
async fn screening(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.mailbox.screening_json(&actor, &id)?))
}

async fn set_screening(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let v: crate::mailbox::screening::Screening = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid screening settings: {e}")))?;
    Ok(axum::Json(s.mailbox.set_screening(&actor, &id, v).await?))
}

/// Bounce and complaint reports received (admins), linked or not.
async fn feedback(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<crate::queue::feedback::FeedbackQuery>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.queue.feedback_list(&actor, &q)?))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    #[serde(default)]
    note: Option<String>,
}

/// An empty body is no note; anything else must be `{"note": "..."}`.
fn decision(body: &[u8]) -> ApiResult<Decision> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<ApprovalQuery>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.queue.approvals(&actor, &q)?))
}

/// The body is optional (`{"note": "..."}`).
async fn approve(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let d = decision(&body)?;
    Ok(axum::Json(
        s.queue.approve(&actor, &id, d.note.as_deref()).await?,
    ))
}

async fn reject(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let d = decision(&body)?;
    Ok(axum::Json(
        s.queue.reject(&actor, &id, d.note.as_deref()).await?,
    ))
}

async fn resume(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.policy.resume(&actor, &id).await?))
}

async fn breaker(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.policy.breaker_json(&actor, &id)?))
}
