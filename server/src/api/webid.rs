//! Identity beyond mail (issue 25): RFC 9421 request signatures for Web Bot Auth, their key
//! directories, and the verification route for services that receive signed requests.

use super::extract::{Auth, Path};
use super::{ApiError, ApiResult, AppState};
use crate::identity::{
    Directory, HttpSignatureRequest, HttpVerifyRequest, PublicDoc, DIRECTORY_CONTENT_TYPE,
};
use crate::reputation::ReputationError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/identity/http-signature", post(http_signature))
        .route("/v1/identity/http-signature/verify", post(verify))
        .route(
            "/.well-known/http-message-signatures-directory",
            get(org_directory),
        )
        .route(
            "/agents/{local}/.well-known/http-message-signatures-directory",
            get(agent_directory),
        )
        .route(
            "/orgs/{domain}/agents/{local}/.well-known/http-message-signatures-directory",
            get(org_agent_directory),
        )
        .route(
            "/agents/{local}/.well-known/agent-card.json",
            get(agent_card),
        )
        .route(
            "/orgs/{domain}/agents/{local}/.well-known/agent-card.json",
            get(org_agent_card),
        )
        .route("/v1/agents/{id}/reputation", get(reputation))
        .route("/agents/{local}/reputation.jwt", get(reputation_jwt))
        .route(
            "/orgs/{domain}/agents/{local}/reputation.jwt",
            get(org_reputation_jwt),
        )
        .route("/.well-known/jwks.json", get(operator_jwks))
}

/// Bodies of these routes are parsed here so that every malformed input, a wrong type
/// included, is a 400 with a JSON error (the rest of the validation is in the service).
fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))
}

async fn http_signature(
    State(s): State<AppState>,
    Auth(actor): Auth,
    b: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let req: HttpSignatureRequest = body(&b)?;
    Ok(axum::Json(s.identity.http_signature(&actor, &req).await?))
}

async fn verify(
    State(s): State<AppState>,
    Auth(actor): Auth,
    b: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let req: HttpVerifyRequest = body(&b)?;
    let v = s.identity.verify_http_signature(&actor, &req).await?;
    Ok(axum::Json(v.to_json()))
}

fn authority(h: &HeaderMap) -> String {
    h.get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn directory(d: Option<Directory>) -> Response {
    let Some(d) = d else {
        let body = json!({"keys": [], "deactivated": true});
        return public(StatusCode::GONE, "application/json", body.to_string(), None);
    };
    public(
        StatusCode::OK,
        DIRECTORY_CONTENT_TYPE,
        d.body.to_string(),
        d.signature,
    )
}

/// Public and uncached, like did.json: a revocation shows on the next fetch.
fn public(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    signature: Option<(String, String)>,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Some((input, sig)) = signature {
        if let (Ok(i), Ok(s)) = (HeaderValue::from_str(&input), HeaderValue::from_str(&sig)) {
            h.insert("signature-input", i);
            h.insert("signature", s);
        }
    }
    resp
}

async fn org_directory(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let d = s.identity.org_directory(&authority(&headers))?;
    Ok(directory(Some(d)))
}

async fn agent_directory(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(local): Path<String>,
) -> ApiResult<Response> {
    let d = s
        .identity
        .agent_directory(None, &local, &authority(&headers))?;
    Ok(directory(d))
}

async fn org_agent_directory(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((domain, local)): Path<(String, String)>,
) -> ApiResult<Response> {
    let d = s
        .identity
        .agent_directory(Some(&domain), &local, &authority(&headers))?;
    Ok(directory(d))
}

/// A2A agent cards: 200 signed, or 410 with the card that says the agent is revoked.
fn card(doc: PublicDoc) -> Response {
    match doc {
        PublicDoc::Active(v) => public(StatusCode::OK, "application/json", v.to_string(), None),
        PublicDoc::Deactivated(v) => {
            public(StatusCode::GONE, "application/json", v.to_string(), None)
        }
    }
}

async fn agent_card(State(s): State<AppState>, Path(local): Path<String>) -> ApiResult<Response> {
    Ok(card(s.identity.agent_card(None, &local)?))
}

async fn org_agent_card(
    State(s): State<AppState>,
    Path((domain, local)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(card(s.identity.agent_card(Some(&domain), &local)?))
}

async fn reputation(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.reputation.reputation(&actor, &id)?))
}

fn attestation(r: Result<String, ReputationError>) -> ApiResult<Response> {
    match r {
        Ok(jwt) => Ok(public(StatusCode::OK, "application/jwt", jwt, None)),
        Err(ReputationError::RateLimited) => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many reputation requests; try again in a minute",
            )
            .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            Ok(resp)
        }
        Err(ReputationError::Identity(e)) => Err(e.into()),
    }
}

/// The request's peer address: the public attestation route is limited per client.
fn client_ip(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn reputation_jwt(
    State(s): State<AppState>,
    ext: axum::http::Extensions,
    Path(local): Path<String>,
) -> ApiResult<Response> {
    attestation(s.reputation.attestation(None, &local, client_ip(&ext)))
}

async fn org_reputation_jwt(
    State(s): State<AppState>,
    ext: axum::http::Extensions,
    Path((domain, local)): Path<(String, String)>,
) -> ApiResult<Response> {
    attestation(
        s.reputation
            .attestation(Some(&domain), &local, client_ip(&ext)),
    )
}

/// The operator's keys (`iss` of reputation attestations), also in `/.well-known/did.json`.
async fn operator_jwks(State(s): State<AppState>) -> ApiResult<Response> {
    let jwks = s.identity.operator_jwks()?;
    Ok(public(
        StatusCode::OK,
        "application/json",
        jwks.to_string(),
        None,
    ))
}
