//! The received DMARC aggregate and TLS-RPT reports, summarised (admins). The rules and the
//! audit are in `reports`.

use super::extract::{Auth, Query};
use super::{ApiError, ApiResult, AppState};
use crate::reports::{parse_time, ReportsError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reports/dmarc", get(dmarc))
        .route("/v1/reports/tls", get(tls))
}

impl From<ReportsError> for ApiError {
    fn from(e: ReportsError) -> Self {
        match e {
            ReportsError::Denied(d) => d.into(),
            ReportsError::Invalid(m) => Self::invalid(m),
            ReportsError::Parse(m) | ReportsError::TooLarge(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_report", m)
            }
            other => Self::internal(&other),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    /// RFC 3339 time, `YYYY-MM-DD`, or unix seconds.
    since: Option<String>,
    until: Option<String>,
}

fn window(w: &Window) -> ApiResult<(Option<i64>, Option<i64>)> {
    let t = |s: &Option<String>| s.as_deref().map(parse_time).transpose();
    Ok((t(&w.since)?, t(&w.until)?))
}

async fn dmarc(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(w): Query<Window>,
) -> ApiResult<axum::Json<Value>> {
    let (since, until) = window(&w)?;
    Ok(axum::Json(s.reports.dmarc_summary(&actor, since, until)?))
}

async fn tls(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(w): Query<Window>,
) -> ApiResult<axum::Json<Value>> {
    let (since, until) = window(&w)?;
    Ok(axum::Json(s.reports.tls_summary(&actor, since, until)?))
}
