//! The CSRF gate in front of every console form: a request that changes anything must be a
//! same-origin form post carrying the session's token (or, before sign-in, the pre-session
//! token of its cookie) in the `csrf` field. Checked once here for every route, so no
//! handler can forget it. `SameSite=Strict` cookies and the `Origin` / `Sec-Fetch-Site`
//! checks are further layers; the token is the one that holds on its own.

use super::error::ConsoleError;
use super::session;
use super::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest console form body (the forms are small; a mail never goes through one).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

fn refuse(why: &str) -> Response {
    ConsoleError::Status(StatusCode::FORBIDDEN, why.to_string()).into_response()
}

/// Whether `Origin` names the host the request was sent to (scheme ignored: the listener
/// decides that).
fn same_origin(origin: &str, host: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|u| {
        let authority = match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return false,
        };
        authority.eq_ignore_ascii_case(host)
    })
}

pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let headers = req.headers();
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return refuse("cross-site form posts are refused");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| same_origin(o, &session::host(headers)));
        if !ok {
            return refuse("this form was posted from another origin");
        }
    }
    let expected = match session::lookup(&s, headers) {
        Ok(Some((_, sess, _))) => Some(sess.csrf),
        Ok(None) => session::cookie(headers, session::PRE_NAME).map(str::to_string),
        Err(e) => return e.into_response(),
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ConsoleError::Status(StatusCode::PAYLOAD_TOO_LARGE, "form too large".into())
                .into_response()
        }
    };
    let presented = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    let valid = match (expected, presented) {
        (Some(e), Some(p)) if !e.is_empty() => {
            subtle::ConstantTimeEq::ct_eq(e.as_bytes(), p.as_bytes()).into()
        }
        _ => false,
    };
    if !valid {
        return refuse(
            "the form's security token is missing or stale; reload the page and try again",
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_must_name_the_host() {
        assert!(same_origin("https://mx.example.com", "mx.example.com"));
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("https://evil.example", "mx.example.com"));
        assert!(!same_origin("null", "mx.example.com"));
    }
}
