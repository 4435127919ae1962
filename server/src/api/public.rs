//! Unauthenticated identity documents: the domain's DID, agents' DID documents and JWKS.
//!
//! A revoked agent's documents answer `410 Gone` with a DID resolution result whose
//! `didDocumentMetadata.deactivated` is true (see `identity::did`). Responses say
//! `no-cache` so resolvers revalidate and see a revocation or rotation at once.

use super::extract::Path;
use super::{ApiResult, AppState};
use crate::identity::PublicDoc;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

const DID_JSON: &str = "application/did+json";
const JSON: &str = "application/json";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/did.json", get(domain_did))
        .route("/agents/{local}/did.json", get(agent_did))
        .route("/agents/{local}/jwks.json", get(agent_jwks))
        .route("/orgs/{domain}/agents/{local}/did.json", get(org_agent_did))
        .route(
            "/orgs/{domain}/agents/{local}/jwks.json",
            get(org_agent_jwks),
        )
}

fn document(status: StatusCode, content_type: &'static str, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

fn public(doc: PublicDoc, content_type: &'static str) -> Response {
    match doc {
        PublicDoc::Active(v) => document(StatusCode::OK, content_type, &v),
        PublicDoc::Deactivated(v) => document(StatusCode::GONE, JSON, &v),
    }
}

async fn domain_did(State(s): State<AppState>) -> Response {
    document(StatusCode::OK, DID_JSON, &s.identity.domain_did_document())
}

async fn agent_did(State(s): State<AppState>, Path(local): Path<String>) -> ApiResult<Response> {
    Ok(public(s.identity.did_document(&local)?, DID_JSON))
}

async fn agent_jwks(State(s): State<AppState>, Path(local): Path<String>) -> ApiResult<Response> {
    Ok(public(s.identity.jwks(&local)?, JSON))
}

/// Agents of orgs other than the server's own domain (`did:web:<host>:orgs:<domain>:agents:<local>`).
async fn org_agent_did(
    State(s): State<AppState>,
    Path((domain, local)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(public(
        s.identity.did_document_in(Some(&domain), &local)?,
        DID_JSON,
    ))
}

async fn org_agent_jwks(
    State(s): State<AppState>,
    Path((domain, local)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(public(s.identity.jwks_in(Some(&domain), &local)?, JSON))
}
