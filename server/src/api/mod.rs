//! The REST API (DESIGN §6): per-area routers merged here, one error type, auth as an
//! extractor. Handlers translate HTTP to service calls and back; they decide nothing.

mod admin;
mod approvals;
mod audit;
mod connections;
mod dns;
mod drafts;
pub mod error;
mod events;
pub mod extract;
mod identity;
mod messages;
mod public;
mod queue;
mod reports;
mod send_policy;
mod senders;
pub mod serve;
mod suppressions;
mod system;
mod threads;
mod vault;
mod webhooks;
mod webid;
mod whoami;

pub use error::{ApiError, ApiResult};
/// The console's attachment downloads name files the same way.
pub(crate) use messages::safe_filename;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Handlers share the wired services.
pub type AppState = Arc<crate::services::Services>;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    // Per route: only send and reply carry attachments (base64 in JSON); every other body
    // is a small JSON document, and a 32 MiB buffer per request there is only a weapon.
    let max_body = state.config.api.max_body_bytes;
    let max_json = state.config.api.max_json_body_bytes;
    Router::new()
        .merge(system::router())
        .merge(admin::router())
        .merge(whoami::router())
        .merge(audit::router())
        .merge(vault::router())
        .merge(messages::router(max_body))
        .merge(queue::router())
        .merge(identity::router())
        .merge(public::router())
        .merge(dns::router())
        .merge(senders::router())
        .merge(send_policy::router())
        .merge(suppressions::router())
        .merge(approvals::router())
        .merge(reports::router())
        .merge(threads::router())
        .merge(drafts::router())
        .merge(webhooks::router())
        .merge(events::router())
        .merge(webid::router())
        .merge(connections::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json))
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

/// When the request reached the router: a handler that times its own stages (the send
/// path's `accept`) reads it from the request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct RequestStarted(pub Instant);

/// Counts, times and traces every request under its route template (not the raw path, so
/// ids do not explode label cardinality).
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    req.extensions_mut().insert(RequestStarted(start));
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

/// Refuses requests that carry an API key over plain HTTP when either end of the connection
/// is not loopback (the key has crossed a network in clear; using it would teach clients that
/// this is fine). Covers REST and `/mcp`; `api.danger_allow_plaintext` turns it off, e.g.
/// behind a TLS-terminating proxy on another host.
pub async fn require_tls_for_keys(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    let carries_key = req
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION)
        || req.headers().contains_key("x-legate-api-key");
    if carries_key && !state.config.api.danger_allow_plaintext {
        let transport = req.extensions().get::<serve::Transport>().copied();
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        if plaintext_exposed(transport, peer) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "https_required",
                "API keys are accepted only over https:// (or from loopback); this request came over plain HTTP",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Whether a request travelled in clear over something other than loopback.
fn plaintext_exposed(
    transport: Option<serve::Transport>,
    peer: Option<std::net::SocketAddr>,
) -> bool {
    let loopback = |ip: std::net::IpAddr| ip.to_canonical().is_loopback();
    match transport {
        Some(t) if t.tls => false,
        Some(t) => !loopback(t.local.ip()) || peer.is_none_or(|p| !loopback(p.ip())),
        // Not served by `serve` (in-process tests with `oneshot`): nothing crossed a network.
        None => false,
    }
}

/// The plain-HTTP listener in `listen.http_mode = "redirect"`: every request is sent to the
/// same path on HTTPS (308 keeps the method), except ACME HTTP-01 challenges, which the
/// caller merges in front, and the keyless probes (`/healthz`, `/readyz`, `/metrics`) that
/// orchestrators and scrapers call over plain HTTP.
pub fn redirect_router(state: AppState) -> Router {
    let public = state.config.server.public_url.clone();
    let domain = state.config.server.domain.clone();
    system::probes()
        .with_state(state)
        .fallback(move |headers: axum::http::HeaderMap, uri: Uri| {
            let (public, domain) = (public.clone(), domain.clone());
            async move {
                let origin = match url::Url::parse(&public) {
                    Ok(u) if u.scheme() == "https" => public.trim_end_matches('/').to_string(),
                    _ => {
                        let host = headers
                            .get(axum::http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
                            .map(|a| a.host().to_string())
                            .unwrap_or(domain);
                        format!("https://{host}")
                    }
                };
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                axum::response::Redirect::permanent(&format!("{origin}{path}"))
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn t(tls: bool, local: &str) -> Option<serve::Transport> {
        Some(serve::Transport {
            tls,
            local: local.parse().unwrap(),
        })
    }

    #[test]
    fn keys_in_clear_are_refused_off_loopback_only() {
        let lo: Option<SocketAddr> = Some("127.0.0.1:5000".parse().unwrap());
        let remote: Option<SocketAddr> = Some("203.0.113.9:5000".parse().unwrap());
        assert!(!plaintext_exposed(t(false, "127.0.0.1:80"), lo));
        assert!(!plaintext_exposed(
            t(false, "[::1]:80"),
            Some("[::1]:9".parse().unwrap())
        ));
        assert!(plaintext_exposed(t(false, "0.0.0.0:80"), remote));
        assert!(plaintext_exposed(t(false, "192.0.2.1:80"), lo));
        assert!(plaintext_exposed(t(false, "127.0.0.1:80"), remote));
        assert!(!plaintext_exposed(t(true, "192.0.2.1:443"), remote));
        assert!(!plaintext_exposed(
            t(false, "[::ffff:127.0.0.1]:80"),
            Some("[::ffff:127.0.0.1]:9".parse().unwrap())
        ));
    }
}
