//! DNS wizard routes (admin) and the public documents that DNS points at: the MTA-STS policy,
//! Thunderbird autoconfig and Outlook autodiscover (DESIGN §10).

use super::extract::{Auth, Query};
use super::{ApiError, ApiResult, AppState};
use crate::dns::{client, DnsError, DnsWizard};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::net::SocketAddr;

/// Autodiscover requests are a few hundred bytes; anything bigger is not one.
const AUTODISCOVER_MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/dns/plan", get(plan))
        .route("/v1/dns/check", get(check))
        .route("/.well-known/mta-sts.txt", get(mta_sts))
        .route("/mail/config-v1.1.xml", get(autoconfig))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(autoconfig),
        )
        // Outlook asks with either capitalisation.
        .route(
            "/autodiscover/autodiscover.xml",
            get(autodiscover).post(autodiscover),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            get(autodiscover).post(autodiscover),
        )
}

impl From<DnsError> for ApiError {
    fn from(e: DnsError) -> Self {
        match e {
            DnsError::Denied(d) => d.into(),
            DnsError::Resolver(m) => ApiError::new(StatusCode::BAD_GATEWAY, "dns_unavailable", m),
            other => ApiError::internal(&other),
        }
    }
}

fn wizard(s: &AppState) -> DnsWizard<'_> {
    DnsWizard::new(&s.config, &s.vault, &s.audit)
}

async fn plan(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<axum::Json<crate::dns::Plan>> {
    Ok(axum::Json(wizard(&s).plan(&actor)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckParams {
    /// `ip:port` of a nameserver to ask instead of `[dns] nameservers`.
    nameserver: Option<String>,
}

async fn check(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<CheckParams>,
) -> ApiResult<axum::Json<crate::dns::CheckReport>> {
    let servers: Vec<SocketAddr> = match q.nameserver.as_deref() {
        Some(ns) => vec![ns
            .parse()
            .map_err(|_| ApiError::invalid(format!("nameserver {ns:?} is not ip:port")))?],
        None => Vec::new(),
    };
    Ok(axum::Json(wizard(&s).check(&actor, &servers).await?))
}

fn document(content_type: &'static str, body: String) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Senders cache the MTA-STS policy by its DNS id, clients re-ask when they need to.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// RFC 8461 §3.3: `text/plain`, at the fixed path on `mta-sts.<domain>`.
async fn mta_sts(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(document(
        "text/plain; charset=utf-8",
        wizard(&s).mta_sts_policy()?,
    ))
}

async fn autoconfig(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(document(
        "application/xml; charset=utf-8",
        client::autoconfig_xml(&s.config)?,
    ))
}

async fn autodiscover(State(s): State<AppState>, body: axum::body::Bytes) -> ApiResult<Response> {
    if body.len() > AUTODISCOVER_MAX_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "an autodiscover request is at most 16 KiB",
        ));
    }
    let login = client::requested_address(&String::from_utf8_lossy(&body));
    Ok(document(
        "text/xml; charset=utf-8",
        client::autodiscover_xml(&s.config, login.as_deref())?,
    ))
}
