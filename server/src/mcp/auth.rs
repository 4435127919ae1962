//! The door of `/mcp`: every HTTP request presents an API key, exactly as on the REST API
//! (`Authorization: Bearer <key>` or `X-Legate-Api-Key: <key>`). A good key becomes an
//! [`Actor`] in the request extensions, where rmcp passes it on to the tools; anything else is
//! answered here, before any MCP parsing, with 401 and the REST error body.

use crate::identity::{Actor, IdentityError};
use crate::services::Services;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;

/// The key from either header; the Bearer scheme name is case-insensitive.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let (scheme, rest) = v.to_str().ok()?.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers
        .get("x-legate-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub async fn authenticate(
    State(s): State<Arc<Services>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = peer(req.extensions());
    let key = presented_key(req.headers()).unwrap_or("");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = crate::config::public_origin(&s.config, host);
    // OAuth 2.1 clients: an access token issued for this endpoint (audience = its URL),
    // checked afresh on every request like an API key.
    if s.config.oauth.enabled && key.starts_with(crate::identity::oauth::ACCESS_PREFIX) {
        if s.audit.denials().throttle(&peer) {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_auth_failures",
                "too many failed authentications from your address; try again in a minute",
            );
        }
        return match s.identity.oauth_actor(key, &format!("{origin}/mcp"), &peer) {
            Ok(actor) => {
                req.extensions_mut().insert(actor);
                next.run(req).await
            }
            Err(IdentityError::Unauthorized(why)) => challenge(
                &s,
                &origin,
                error(
                    StatusCode::UNAUTHORIZED,
                    why.code(),
                    "the access token is not valid for this endpoint",
                ),
            ),
            Err(e) => internal(&e),
        };
    }
    if key.is_empty() && s.config.oauth.enabled {
        return challenge(
            &s,
            &origin,
            error(
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                "sign in with OAuth (see the resource metadata) or send an API key (Authorization: Bearer lg_...)",
            ),
        );
    }
    // The limiter REST, SMTP and IMAP share: past the limit only a valid key gets in.
    if s.audit.denials().throttle(&peer) {
        if let Some(actor) = s.identity.authenticate_valid_only(key) {
            req.extensions_mut().insert(actor);
            return next.run(req).await;
        }
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_auth_failures",
            "too many failed authentications from your address; try again in a minute",
        );
    }
    let actor: Actor =
        match s.identity.authenticate(key, &peer) {
            Ok(actor) => actor,
            Err(IdentityError::Unauthorized(why)) => return error(
                StatusCode::UNAUTHORIZED,
                why.code(),
                "a valid API key is required (Authorization: Bearer lg_... or X-Legate-Api-Key)",
            ),
            Err(e) => return internal(&e),
        };
    req.extensions_mut().insert(actor);
    next.run(req).await
}

/// A 401 that names the protected-resource metadata (RFC 9728 §5.1), so an MCP client can
/// discover the authorization server.
fn challenge(s: &Services, origin: &str, mut resp: Response) -> Response {
    if s.config.oauth.enabled {
        let v = format!(
            "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\""
        );
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    resp
}

/// The client's IP, as authentication failures are recorded against it.
pub(super) fn peer(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn internal(cause: &dyn std::fmt::Display) -> Response {
    let id = crate::util::new_id("err");
    tracing::error!(error_id = %id, error = %cause, "mcp authentication failed internally");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        &format!("internal error (id {id})"),
    )
}

/// The REST API's error body (DESIGN §6), so one client-side handler serves both.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn keys_come_from_either_header() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer lg_a ")])),
            Some("lg_a")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer lg_b")])),
            Some("lg_b")
        );
        assert_eq!(
            presented_key(&headers(&[("x-legate-api-key", " lg_c")])),
            Some("lg_c")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }

    #[tokio::test]
    async fn errors_have_the_rest_body_and_a_challenge() {
        let resp = error(StatusCode::UNAUTHORIZED, "missing_key", "no");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["code"], "missing_key");
        assert_eq!(v["error"]["message"], "no");
    }
}
