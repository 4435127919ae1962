//! Unauthenticated operational endpoints.

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    probes().route("/openapi.json", get(openapi))
}

/// What the plain-HTTP listener keeps serving in redirect mode: no keys, no agent data.
pub fn probes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Liveness: the process answers. With the version and the schema it writes, so an
/// upgrade can be confirmed from outside (a data directory of a newer schema never opens).
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "schema_version": crate::store::SCHEMA_VERSION,
    }))
}

/// Readiness: the store answers reads (200, else 503). A disk below its reserve does not
/// make the server unready (reads, deletes and queued deliveries still work; a probe that
/// restarted it would only lose them): it shows as `accepting_mail: false`. `database` names
/// the engine and whether it answered (PostgreSQL: a query within 5 s; its error, which
/// could name hosts, goes to the log, not to this unauthenticated answer).
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let space = s.storage.status();
    let store = s.store.clone();
    let probe = tokio::task::spawn_blocking(move || {
        store.ping()?;
        store.get(crate::store::Tree::Meta, b"schema_version")
    });
    let readable = match tokio::time::timeout(std::time::Duration::from_secs(5), probe).await {
        Ok(Ok(Ok(Some(_)))) => true,
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "readiness: the database did not answer");
            false
        }
        Err(_) => {
            tracing::warn!("readiness: the database did not answer within 5 s");
            false
        }
        _ => false,
    };
    let (status, word) = if readable {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        status,
        Json(serde_json::json!({
            "status": word,
            "disk_free_bytes": space.free_bytes,
            "disk_reserve_bytes": space.reserve_bytes,
            "accepting_mail": space.accepting,
            "database": {
                "backend": s.store.backend_name(),
                "reachable": readable,
            },
        })),
    )
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let space = s.storage.status();
    let m = &s.metrics;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    // An unreadable filesystem shows as -1, not as a misleading 0 (which would page).
    m.storage_free_bytes.set(space.free_bytes.map_or(-1, clamp));
    m.storage_reserve_bytes.set(clamp(space.reserve_bytes));
    m.storage_accepting.set(i64::from(space.accepting));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// The OpenAPI document is data kept beside the routers (a test checks every route is in it).
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}
