//! `GET /v1/audit`: admins read everything, an agent reads its own entries.

use super::extract::{Auth, Query};
use super::{ApiError, ApiResult, AppState};
use crate::audit::{Filter, Outcome};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit", get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    agent: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    /// RFC 3339 or unix seconds.
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn time_param(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    match v {
        None => Ok(None),
        Some(s) => crate::util::parse_time(s)
            .map(|t| Some(t.saturating_mul(1000)))
            .ok_or_else(|| {
                ApiError::bad_request(format!("{name} must be RFC 3339 or unix seconds"))
            }),
    }
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(p): Query<Params>,
) -> ApiResult<Json<serde_json::Value>> {
    let outcome = match &p.outcome {
        None => None,
        Some(o) => Some(
            Outcome::parse(o)
                .ok_or_else(|| ApiError::bad_request("outcome must be ok, denied or error"))?,
        ),
    };
    let agent = match actor.agent_id() {
        // An agent sees only its own trail, whatever it asked for.
        Some(own) => Some(own.to_string()),
        None => match &p.agent {
            Some(a) => Some(
                s.identity
                    .find_agent(a)?
                    .map(|a| a.id)
                    .unwrap_or_else(|| a.clone()),
            ),
            None => None,
        },
    };
    let filter = Filter {
        agent,
        action: p.action.clone(),
        outcome,
        since: time_param("since", &p.since)?,
        until: time_param("until", &p.until)?.map(|u| u + 999),
    };
    let page = s
        .audit
        .query(&filter, p.limit.unwrap_or(50), p.cursor.as_deref())?;
    let items: Vec<_> = page.items.iter().map(|e| e.to_json()).collect();
    Ok(Json(
        serde_json::json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}
