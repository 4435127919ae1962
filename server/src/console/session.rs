//! The session cookie and the [`Operator`] extractor: the signed-in human behind a request.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page
//! sends it) and `Secure`, named with the `__Host-` prefix so no other host or path can set
//! it. `Secure` (and so the prefix) is left off only when the API is served over plain HTTP
//! on a loopback address with no https `server.public_url`: local development, where a
//! browser would not send a Secure cookie over http to a name other than localhost.

use super::error::ConsoleError;
use super::AppState;
use crate::identity::{Actor, ConsoleSession, Human, IdentityService, SessionLimits};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use zeroize::Zeroizing;

const SECURE_NAME: &str = "__Host-lg_session";
const DEV_NAME: &str = "lg_session";
/// The pre-session token of the sign-in forms (double-submit: cookie and form field).
pub const PRE_NAME: &str = "lg_pre";

/// Whether cookies carry `Secure` (see the module doc).
pub fn secure_cookies(config: &crate::config::Config) -> bool {
    if config.server.public_url.starts_with("https://") {
        return true;
    }
    let loopback = config
        .listen
        .http
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    !loopback
}

pub fn limits(config: &crate::config::Config) -> SessionLimits {
    let c = &config.console;
    SessionLimits {
        idle_secs: i64::try_from(c.idle_timeout_secs).unwrap_or(i64::MAX),
        absolute_secs: i64::try_from(c.max_session_secs).unwrap_or(i64::MAX),
    }
}

/// One cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The session id the request carries, under the name this server uses.
pub fn session_id<'a>(config: &crate::config::Config, headers: &'a HeaderMap) -> Option<&'a str> {
    cookie(
        headers,
        if secure_cookies(config) {
            SECURE_NAME
        } else {
            DEV_NAME
        },
    )
}

/// The `Host` the request names (what a session is bound to).
pub fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// `Set-Cookie` for a session id; `None` clears the cookie.
pub fn session_cookie(config: &crate::config::Config, sid: Option<&str>) -> String {
    let secure = secure_cookies(config);
    let (name, attrs) = if secure {
        (SECURE_NAME, "; Path=/; HttpOnly; Secure; SameSite=Strict")
    } else {
        (DEV_NAME, "; Path=/console; HttpOnly; SameSite=Strict")
    };
    match sid {
        Some(v) => format!("{name}={v}{attrs}"),
        None => format!("{name}={attrs}; Max-Age=0"),
    }
}

/// `Set-Cookie` for the sign-in forms' pre-session token.
pub fn pre_cookie(config: &crate::config::Config, value: &str) -> String {
    let secure = if secure_cookies(config) {
        "; Secure"
    } else {
        ""
    };
    format!("{PRE_NAME}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=3600{secure}")
}

/// The live session of a request, at whatever stage.
pub fn lookup(
    s: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, ConsoleSession, Human)>, ConsoleError> {
    let Some(sid) = session_id(&s.config, headers) else {
        return Ok(None);
    };
    Ok(s.identity
        .console_session(sid, &host(headers), limits(&s.config))?
        .map(|(sess, human)| (sid.to_string(), sess, human)))
}

/// A signed-in human (full session: password and, when enrolled, the TOTP code).
pub struct Operator {
    pub actor: Actor,
    pub human: Human,
    /// This session's form token.
    pub csrf: String,
    pub sid: Zeroizing<String>,
    /// The host the session is bound to.
    pub host: String,
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        match lookup(s, &parts.headers)? {
            Some((sid, sess, human)) if sess.stage == crate::identity::SessionStage::Full => {
                Ok(Operator {
                    actor: IdentityService::session_actor(&human, &sid),
                    human,
                    csrf: sess.csrf,
                    host: sess.host,
                    sid: Zeroizing::new(sid),
                })
            }
            _ => Err(ConsoleError::SignIn),
        }
    }
}
