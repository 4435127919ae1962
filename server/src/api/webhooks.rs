//! Webhook routes (issue 18). The service decides who may do what; secrets appear in an
//! answer only when made (create, rotate).

use super::extract::{Auth, Json, Path, Query};
use super::{ApiError, ApiResult, AppState};
use crate::events::{NewWebhook, WebhookPatch};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route(
            "/v1/webhooks/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/v1/webhooks/{id}/test", post(test))
        .route("/v1/webhooks/{id}/replay", post(replay))
        .route("/v1/webhooks/{id}/rotate", post(rotate))
}

async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(input): Json<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let (w, secret) = s.webhooks.create(&actor, input).await?;
    let mut v = w.to_json();
    v["secret"] = Value::String(secret.to_string());
    Ok((StatusCode::CREATED, axum::Json(v)))
}

async fn list(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<axum::Json<Value>> {
    let items: Vec<Value> = s
        .webhooks
        .list(&actor)?
        .iter()
        .map(|w| w.to_json())
        .collect();
    Ok(axum::Json(json!({ "items": items })))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.webhooks.get(&actor, &id)?.to_json()))
}

async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<axum::Json<Value>> {
    let (w, secret) = s.webhooks.update(&actor, &id, patch).await?;
    let mut v = w.to_json();
    if let Some(secret) = secret {
        v["secret"] = Value::String(secret.to_string());
    }
    Ok(axum::Json(v))
}

async fn delete(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.webhooks.delete(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let secret = s.webhooks.rotate(&actor, &id).await?;
    Ok(axum::Json(json!({ "id": id, "secret": secret.as_str() })))
}

#[derive(Deserialize)]
struct DeliveryPage {
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

async fn deliveries(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<DeliveryPage>,
) -> ApiResult<axum::Json<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            crate::store::outbox::parse_event_id(c)
                .ok_or_else(|| ApiError::bad_request("invalid cursor"))?,
        ),
        None => None,
    };
    let items = s.webhooks.deliveries(&actor, &id, limit, before)?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|d| d.event_id.clone()))
        .flatten();
    let items: Vec<Value> = items.iter().map(|d| d.to_json()).collect();
    Ok(axum::Json(json!({ "items": items, "next_cursor": next })))
}

async fn test(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.webhooks.test(&actor, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayReq {
    /// RFC 3339 time, or unix milliseconds.
    since: Value,
}

async fn replay(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<ReplayReq>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let since_ms = match &req.since {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ApiError::invalid("since: not a time"))?,
        Value::String(t) => {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| ApiError::invalid(format!("since: {e}")))?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
                .map_err(|_| ApiError::invalid("since: out of range"))?
        }
        _ => {
            return Err(ApiError::invalid(
                "since: an RFC 3339 time or unix milliseconds",
            ))
        }
    };
    let cursor = s.webhooks.replay(&actor, &id, since_ms).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "id": id, "from_event": crate::store::outbox::event_id(cursor + 1) })),
    ))
}
