//! The OAuth 2.1 authorization server MCP clients sign in through (MCP authorization spec):
//! discovery (RFC 9728 protected-resource metadata, RFC 8414 server metadata), dynamic
//! registration of public clients (RFC 7591), the token endpoint (authorization code with
//! PKCE S256, rotated refresh tokens) and revocation (RFC 7009).
//!
//! The authorization endpoint is the console's consent page (`/console/oauth/authorize`),
//! where a signed-in human picks the agent and a subset of its scopes; `/oauth/authorize`
//! forwards there. State and checks live in `identity::oauth`; this module speaks HTTP.

use crate::identity::oauth::{GrantError, OAuthLifetimes};
use crate::identity::ScopeSet;
use crate::services::Services;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

type AppState = Arc<Services>;

/// The routes, ready to merge into the API router (none when `[oauth] enabled = false`).
pub fn router(state: AppState) -> Router {
    if !state.config.oauth.enabled {
        return Router::new();
    }
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(server_metadata),
        )
        .route("/oauth/register", post(register))
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .with_state(state)
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// The MCP endpoint's URL: the resource (audience) tokens are issued for.
pub fn resource(c: &crate::config::Config, headers: &HeaderMap) -> String {
    format!("{}/mcp", crate::config::public_origin(c, host(headers)))
}

fn scope_names() -> Vec<&'static str> {
    ScopeSet::all().names()
}

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

async fn resource_metadata(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let origin = crate::config::public_origin(&s.config, host(&headers));
    Json(json!({
        "resource": format!("{origin}/mcp"),
        "authorization_servers": [origin],
        "scopes_supported": scope_names(),
        "bearer_methods_supported": ["header"],
        "resource_name": format!("legate MCP ({})", s.config.server.domain),
    }))
}

async fn server_metadata(State(s): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let origin = crate::config::public_origin(&s.config, host(&headers));
    Json(json!({
        "issuer": origin,
        "authorization_endpoint": format!("{origin}/console/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "registration_endpoint": format!("{origin}/oauth/register"),
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": scope_names(),
        "authorization_response_iss_parameter_supported": true,
    }))
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    no_store(
        (
            status,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response(),
    )
}

#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
}

async fn register(
    State(s): State<AppState>,
    ext: axum::http::Extensions,
    body: axum::body::Bytes,
) -> Response {
    let peer = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let Ok(reg) = serde_json::from_slice::<Registration>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body must be a JSON client registration",
        );
    };
    if reg
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "only public clients (token_endpoint_auth_method \"none\") are registered",
        );
    }
    if reg.grant_types.as_ref().is_some_and(|g| {
        g.iter()
            .any(|t| t != "authorization_code" && t != "refresh_token")
    }) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "grant_types may be authorization_code and refresh_token",
        );
    }
    if reg
        .response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "response_types may only be code",
        );
    }
    match s.identity.register_oauth_client(
        reg.client_name.as_deref().unwrap_or(""),
        &reg.redirect_uris,
        s.config.oauth.max_clients,
        s.config.oauth.unused_client_ttl,
        &peer,
    ) {
        Ok(c) => no_store(
            (
                StatusCode::CREATED,
                Json(json!({
                    "client_id": c.id,
                    "client_id_issued_at": c.created_at,
                    "client_name": c.name,
                    "redirect_uris": c.redirect_uris,
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                })),
            )
                .into_response(),
        ),
        Err(crate::identity::IdentityError::Invalid(m)) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", &m)
        }
        Err(crate::identity::IdentityError::Conflict(m)) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &m,
        ),
        Err(e) => {
            tracing::error!(error = %e, "oauth registration failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

/// `/oauth/authorize` -> the console's consent page, with the same query.
async fn authorize(RawQuery(q): RawQuery) -> Redirect {
    let q = q.map(|q| format!("?{q}")).unwrap_or_default();
    Redirect::to(&format!("/console/oauth/authorize{q}"))
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    code_verifier: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    resource: Option<String>,
}

fn token_response(p: crate::identity::oauth::TokenPair) -> Response {
    no_store(
        Json(json!({
            "access_token": p.access.as_str(),
            "token_type": "Bearer",
            "expires_in": p.expires_in,
            "refresh_token": p.refresh.as_str(),
            "scope": p.scopes.names().join(" "),
        }))
        .into_response(),
    )
}

fn grant_error(e: GrantError) -> Response {
    match e {
        GrantError::InvalidGrant(m) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", m),
        GrantError::InvalidRequest(m) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", m),
        GrantError::InvalidClient => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        ),
    }
}

async fn token(
    State(s): State<AppState>,
    headers: HeaderMap,
    form: Result<axum::Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(f)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be form-encoded token request",
        );
    };
    if let Some(r) = &f.resource {
        if *r != resource(&s.config, &headers) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "this server issues tokens only for its /mcp endpoint",
            );
        }
    }
    let life = OAuthLifetimes::from_config(&s.config);
    let result = match f.grant_type.as_str() {
        "authorization_code" => {
            s.identity
                .oauth_exchange(
                    &f.client_id,
                    &f.code,
                    &f.code_verifier,
                    &f.redirect_uri,
                    life,
                )
                .await
        }
        "refresh_token" => {
            s.identity
                .oauth_refresh(&f.client_id, &f.refresh_token, life)
                .await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )
        }
    };
    match result {
        Ok(p) => token_response(p),
        Err(e) => grant_error(e),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    token: String,
    #[serde(default)]
    client_id: String,
}

async fn revoke(
    State(s): State<AppState>,
    form: Result<axum::Form<RevokeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(f)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    match s.identity.oauth_revoke(&f.client_id, &f.token) {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => {
            tracing::error!(error = %e, "oauth revocation failed");
            oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "try again",
            )
        }
    }
}
