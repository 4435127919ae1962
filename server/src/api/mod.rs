//! The REST API (DESIGN §6): per-area routers merged here, one error type, auth as an
//! extractor. Handlers translate HTTP to service calls and back; they decide nothing.

mod admin;
mod audit;
pub mod error;
pub mod extract;
mod identity;
mod messages;
mod public;
mod queue;
mod system;
mod vault;
mod whoami;

pub use error::{ApiError, ApiResult};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Handlers share the wired services.
pub type AppState = Arc<crate::app::Services>;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.api.max_body_bytes;
    Router::new()
        .merge(system::router())
        .merge(admin::router())
        .merge(whoami::router())
        .merge(audit::router())
        .merge(vault::router())
        .merge(messages::router())
        .merge(queue::router())
        .merge(identity::router())
        .merge(public::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    use axum::response::IntoResponse;
    ApiError::internal(&"handler panicked").into_response()
}

/// Counts, times and traces every request under its route template (not the raw path, so
/// ids do not explode label cardinality).
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let span = tracing::info_span!("http", %method, route = %route);
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    state
        .metrics
        .api_requests
        .with_label_values(&[method.as_str(), &route, status.as_str()])
        .inc();
    state
        .metrics
        .api_latency
        .with_label_values(&[method.as_str(), &route])
        .observe(start.elapsed().as_secs_f64());
    tracing::debug!(parent: &span, status = status.as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "request");
    resp
}

/// `?limit=&cursor=` shared by list endpoints.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
}
