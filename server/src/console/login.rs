//! Signing in and out: email and password (argon2id), then a TOTP code when the human has
//! enrolled one; the very first sign-in of a human without a password proves an admin token
//! instead and sets the password. Failures are audited and count against the caller's
//! address in the failure limiter every other door shares; past its limit, sign-in answers
//! 429 without checking anything.

use super::error::{ConsoleError, ConsoleResult};
use super::layout::{bare, csrf};
use super::session::{self, Operator};
use super::AppState;
use crate::identity::{Human, SessionStage};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde::Deserialize;
use std::net::SocketAddr;
use zeroize::Zeroizing;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/login/totp", get(totp_page).post(totp))
        .route("/login/first", get(first_page).post(first))
        .route("/logout", post(logout))
}

/// The client's IP, as authentication failures are counted against it.
pub struct Peer(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into()),
        ))
    }
}

/// A sign-in page with a fresh pre-session token in its cookie and form.
fn with_pre(
    s: &AppState,
    status: StatusCode,
    build: impl FnOnce(&str) -> Html<String>,
) -> Response {
    let token = data_encoding::BASE64URL_NOPAD.encode(&crate::util::random_bytes::<24>());
    let page = build(&token);
    (
        status,
        [(header::SET_COOKIE, session::pre_cookie(&s.config, &token))],
        page,
    )
        .into_response()
}

/// Where to go after signing in: only the OAuth consent page may be named (no open
/// redirect); anything else is the overview.
fn safe_next(next: &str) -> Option<&str> {
    (next.starts_with("/console/oauth/authorize?")
        && next.len() <= 4096
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'))
    .then_some(next)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextParam {
    next: String,
}

fn login_form(token: &str, error: Option<&str>, next: &str) -> Html<String> {
    bare(
        "Sign in",
        html! {
            h1 { "Sign in to legate" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/login" {
                (csrf(token))
                @if let Some(n) = safe_next(next) { input type="hidden" name="next" value=(n); }
                label for="email" { "Email" }
                input type="email" id="email" name="email" autocomplete="username" required;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                p { button.primary type="submit" { "Sign in" } }
            }
            p.muted { "No password yet? " a href="/console/login/first" { "Sign in the first time with an admin token" } "." }
        },
    )
}

async fn login_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(n): Query<NextParam>,
) -> ConsoleResult<Response> {
    if let Some((_, sess, _)) = session::lookup(&s, &headers)? {
        if sess.stage == SessionStage::Full {
            return Ok(Redirect::to(safe_next(&n.next).unwrap_or("/console/")).into_response());
        }
    }
    Ok(with_pre(&s, StatusCode::OK, |t| {
        login_form(t, None, &n.next)
    }))
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: Zeroizing<String>,
    #[serde(default)]
    next: String,
}

fn throttled(s: &AppState) -> Response {
    with_pre(s, StatusCode::TOO_MANY_REQUESTS, |t| {
        login_form(
            t,
            Some("Too many failed sign-ins from your address; wait a minute and try again."),
            "",
        )
    })
}

/// Opens the session the human's sign-in has earned and sends the browser on.
async fn open(
    s: &AppState,
    headers: &HeaderMap,
    human: &Human,
    peer: &str,
    next: &str,
) -> ConsoleResult<Response> {
    s.identity
        .purge_expired_sessions(session::limits(&s.config))?;
    let totp = s.vault.human_totp_enabled(&human.id)?;
    let stage = if totp {
        SessionStage::SecondFactor
    } else {
        SessionStage::Full
    };
    let (sid, _) = s
        .identity
        .open_session(human, stage, &session::host(headers))?;
    let to = if totp {
        match safe_next(next) {
            Some(n) => format!("/console/login/totp?next={}", super::layout::enc(n)),
            None => "/console/login/totp".into(),
        }
    } else {
        s.identity
            .audit_console(
                human,
                &sid,
                "console.login",
                serde_json::json!({"peer": peer, "factors": "password"}),
            )
            .await?;
        safe_next(next).unwrap_or("/console/").to_string()
    };
    Ok((
        [(
            header::SET_COOKIE,
            session::session_cookie(&s.config, Some(&sid)),
        )],
        Redirect::to(&to),
    )
        .into_response())
}

async fn login(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> ConsoleResult<Response> {
    if s.audit.denials().throttle(&peer) {
        return Ok(throttled(&s));
    }
    let checker = s.clone();
    let p = peer.clone();
    let (email, password) = (f.email.clone(), f.password.clone());
    let result =
        tokio::task::spawn_blocking(move || checker.identity.check_password(&email, &password, &p))
            .await
            .map_err(|e| ConsoleError::internal(&e))?;
    match result {
        Ok(human) => open(&s, &headers, &human, &peer, &f.next).await,
        Err(crate::identity::IdentityError::Unauthorized(_)) => {
            Ok(with_pre(&s, StatusCode::UNAUTHORIZED, |t| {
                login_form(t, Some("Wrong email or password."), &f.next)
            }))
        }
        Err(e) => Err(e.into()),
    }
}

fn totp_form(token: &str, error: Option<&str>, next: &str) -> Html<String> {
    bare(
        "Two-factor code",
        html! {
            h1 { "Enter your code" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/login/totp" {
                (csrf(token))
                @if let Some(n) = safe_next(next) { input type="hidden" name="next" value=(n); }
                label for="code" { "6-digit code from your authenticator app" }
                input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                p { button.primary type="submit" { "Continue" } }
            }
            p { a href="/console/login" { "Start over" } }
        },
    )
}

async fn totp_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(n): Query<NextParam>,
) -> ConsoleResult<Response> {
    match session::lookup(&s, &headers)? {
        Some((_, sess, _)) if sess.stage == SessionStage::SecondFactor => {
            Ok(totp_form(&sess.csrf, None, &n.next).into_response())
        }
        _ => Ok(Redirect::to("/console/login").into_response()),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    #[serde(default)]
    next: String,
}

async fn totp(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> ConsoleResult<Response> {
    let Some((sid, sess, human)) = session::lookup(&s, &headers)? else {
        return Ok(Redirect::to("/console/login").into_response());
    };
    if sess.stage != SessionStage::SecondFactor {
        return Ok(Redirect::to("/console/").into_response());
    }
    if s.audit.denials().throttle(&peer) {
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            totp_form(
                &sess.csrf,
                Some("Too many failed attempts; wait a minute."),
                &f.next,
            ),
        )
            .into_response());
    }
    let now = u64::try_from(crate::util::now_unix()).unwrap_or(0);
    if !s.vault.check_human_totp(&human.id, &f.code, now)? {
        s.audit.auth_denied(
            &peer,
            crate::audit::NewEntry {
                actor: crate::audit::ActorRef::human(&human.id),
                chain: vec![],
                action: "auth.denied".into(),
                target: "console".into(),
                outcome: crate::audit::Outcome::Denied,
                detail: serde_json::json!({"reason": "bad_totp", "peer": peer}),
            },
        )?;
        if !s.identity.note_failed_code(&sid)? {
            // Too many wrong codes: back to the password.
            return Ok(Redirect::to("/console/login").into_response());
        }
        return Ok((
            StatusCode::UNAUTHORIZED,
            totp_form(
                &sess.csrf,
                Some("That code is not right (or was already used)."),
                &f.next,
            ),
        )
            .into_response());
    }
    // A new id for the full session: the pending one is worthless from here on.
    s.identity.close_session(&sid)?;
    let (full, _) =
        s.identity
            .open_session(&human, SessionStage::Full, &session::host(&headers))?;
    s.identity
        .audit_console(
            &human,
            &full,
            "console.login",
            serde_json::json!({"peer": peer, "factors": "password+totp"}),
        )
        .await?;
    Ok((
        [(
            header::SET_COOKIE,
            session::session_cookie(&s.config, Some(&full)),
        )],
        Redirect::to(safe_next(&f.next).unwrap_or("/console/")),
    )
        .into_response())
}

fn first_form(token: &str, error: Option<&str>) -> Html<String> {
    bare(
        "First sign-in",
        html! {
            h1 { "First sign-in" }
            p { "Prove you are an administrator with an admin token (printed by " code { "legate init" } "), and choose your console password." }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/login/first" {
                (csrf(token))
                label for="token" { "Admin token" }
                input type="password" id="token" name="token" autocomplete="off" required;
                label for="password" { "New password (at least 12 characters)" }
                input type="password" id="password" name="password" autocomplete="new-password" minlength="12" required;
                label for="password2" { "New password again" }
                input type="password" id="password2" name="password2" autocomplete="new-password" minlength="12" required;
                p { button.primary type="submit" { "Set password and sign in" } }
            }
            p { a href="/console/login" { "Back to sign-in" } }
        },
    )
}

async fn first_page(State(s): State<AppState>) -> Response {
    with_pre(&s, StatusCode::OK, |t| first_form(t, None))
}

#[derive(Deserialize)]
struct FirstForm {
    token: Zeroizing<String>,
    password: Zeroizing<String>,
    password2: Zeroizing<String>,
}

async fn first(
    State(s): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(f): Form<FirstForm>,
) -> ConsoleResult<Response> {
    if s.audit.denials().throttle(&peer) {
        return Ok(throttled(&s));
    }
    let fail = |status, msg: &str| with_pre(&s, status, |t| first_form(t, Some(msg)));
    let actor = match s.identity.authenticate(&f.token, &peer) {
        Ok(a) if a.is_admin() => a,
        Ok(_) | Err(crate::identity::IdentityError::Unauthorized(_)) => {
            return Ok(fail(
                StatusCode::UNAUTHORIZED,
                "That is not a working admin token.",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let crate::identity::Principal::Human { id, email } = actor.principal.clone() else {
        return Ok(fail(
            StatusCode::UNAUTHORIZED,
            "That is not a working admin token.",
        ));
    };
    if s.identity.has_password(&id)? {
        return Ok(fail(
            StatusCode::CONFLICT,
            "This administrator already has a password: sign in with it (an admin can reset it with `legate admin password`).",
        ));
    }
    if f.password.as_str() != f.password2.as_str() {
        return Ok(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ.",
        ));
    }
    if let Err(e) = crate::identity::passwords::check_strength(&f.password) {
        return Ok(fail(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()));
    }
    let setter = s.clone();
    let human = tokio::task::spawn_blocking(move || {
        setter.identity.set_password(&actor, &email, &f.password)
    })
    .await
    .map_err(|e| ConsoleError::internal(&e))??;
    open(&s, &headers, &human, &peer, "").await
}

async fn logout(State(s): State<AppState>, op: Operator) -> ConsoleResult<Response> {
    s.identity
        .audit_console(
            &op.human,
            &op.sid,
            "console.logout",
            serde_json::Value::Null,
        )
        .await?;
    s.identity.close_session(&op.sid)?;
    Ok((
        [(header::SET_COOKIE, session::session_cookie(&s.config, None))],
        Redirect::to("/console/login"),
    )
        .into_response())
}
