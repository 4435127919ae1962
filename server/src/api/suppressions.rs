//! The org's suppression list (admins): addresses no agent may send to. The rules and the
//! audit are in `policy::suppress`.

use super::extract::{Auth, Json, Path, Query};
use super::{ApiResult, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/suppressions", get(list).post(add))
        .route("/v1/suppressions/{address}", delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    org: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgQuery {
    org: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSuppression {
    address: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    org: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Value>> {
    let (items, next) = s.policy.suppressions(
        &actor,
        q.org.as_deref(),
        q.limit.unwrap_or(100),
        q.cursor.as_deref(),
    )?;
    let items: Vec<Value> = items.iter().map(|e| e.to_json()).collect();
    Ok(axum::Json(json!({"items": items, "next_cursor": next})))
}

async fn add(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewSuppression>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let e = s
        .policy
        .suppress(&actor, req.org.as_deref(), &req.address, &req.reason)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(e.to_json())))
}

async fn remove(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(address): Path<String>,
    Query(q): Query<OrgQuery>,
) -> ApiResult<StatusCode> {
    s.policy
        .unsuppress(&actor, q.org.as_deref(), &address)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
