//! The signed-in human's own settings: password, TOTP second factor (enrol with a code from
//! the authenticator, or turn off), and signing out everywhere.

use super::error::{ConsoleError, ConsoleResult};
use super::form::Fields;
use super::layout::{self, copy_button, csrf, page};
use super::login::Peer;
use super::session::{self, Operator};
use super::AppState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings", get(show))
        .route("/settings/password", post(password))
        .route("/settings/totp", post(totp_begin))
        .route("/settings/totp/confirm", post(totp_confirm))
        .route("/settings/totp/remove", post(totp_remove))
        .route("/settings/logout-all", post(logout_all))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Done {
    done: Option<String>,
}

fn settings_page(
    s: &AppState,
    op: &Operator,
    done: Option<&str>,
    error: Option<&str>,
) -> ConsoleResult<Html<String>> {
    let totp = s.vault.human_totp_enabled(&op.human.id)?;
    let body = html! {
        h1 { "Settings" }
        (layout::notice(done))
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p { "Signed in as " strong { (op.human.email) } "." }
        h2 { "Password" }
        form method="post" action="/console/settings/password" {
            (csrf(&op.csrf))
            label for="current" { "Current password" }
            input type="password" id="current" name="current" autocomplete="current-password" required;
            label for="password" { "New password (at least 12 characters)" }
            input type="password" id="password" name="password" autocomplete="new-password" minlength="12" required;
            label for="password2" { "New password again" }
            input type="password" id="password2" name="password2" autocomplete="new-password" minlength="12" required;
            p { button type="submit" { "Change password" } }
        }
        h2 { "Two-factor sign-in" }
        @if totp {
            p { "On: sign-in asks for a code from your authenticator app." }
            form method="post" action="/console/settings/totp/remove" data-confirm="Turn off two-factor sign-in?" {
                (csrf(&op.csrf))
                button.danger type="submit" { "Turn off" }
            }
        } @else {
            p { "Off. Turn it on to be asked for a code from an authenticator app after your password." }
            form method="post" action="/console/settings/totp" {
                (csrf(&op.csrf))
                button type="submit" { "Set up two-factor sign-in" }
            }
        }
        h2 { "Sessions" }
        form method="post" action="/console/settings/logout-all" {
            (csrf(&op.csrf))
            button type="submit" { "Sign out everywhere" }
        }
    };
    Ok(page(op, "settings", "Settings", body))
}

async fn show(
    State(s): State<AppState>,
    op: Operator,
    Query(d): Query<Done>,
) -> ConsoleResult<Html<String>> {
    settings_page(&s, &op, d.done.as_deref(), None)
}

async fn password(
    State(s): State<AppState>,
    Peer(peer): Peer,
    op: Operator,
    f: Fields,
) -> ConsoleResult<Response> {
    let (current, new, again) = (
        f.get("current").to_string(),
        f.get("password").to_string(),
        f.get("password2").to_string(),
    );
    let fail = |msg: &str| -> ConsoleResult<Response> {
        Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            settings_page(&s, &op, None, Some(msg))?,
        )
            .into_response())
    };
    if new != again {
        return fail("The two new passwords differ.");
    }
    if let Err(e) = crate::identity::passwords::check_strength(&new) {
        return fail(&e.to_string());
    }
    let (svc, email, actor) = (s.clone(), op.human.email.clone(), op.actor.clone());
    let result = tokio::task::spawn_blocking(move || {
        svc.identity.check_password(&email, &current, &peer)?;
        svc.identity.set_password(&actor, &email, &new)
    })
    .await
    .map_err(|e| ConsoleError::internal(&e))?;
    match result {
        Ok(human) => {
            // Every session ended, this one too: a fresh one for the browser that did it.
            let (sid, _) =
                s.identity
                    .open_session(&human, crate::identity::SessionStage::Full, &op.host)?;
            Ok((
                [(
                    header::SET_COOKIE,
                    session::session_cookie(&s.config, Some(&sid)),
                )],
                Redirect::to("/console/settings?done=password_set"),
            )
                .into_response())
        }
        Err(crate::identity::IdentityError::Unauthorized(_)) => {
            fail("The current password is wrong.")
        }
        Err(e) => Err(e.into()),
    }
}

async fn totp_begin(State(s): State<AppState>, op: Operator) -> ConsoleResult<Html<String>> {
    let seed = s.vault.begin_human_totp(&op.actor, &op.human.id)?;
    let uri = super::totp::otpauth_uri(&s.config.server.domain, &op.human.email, seed.as_str());
    let body = html! {
        h1 { "Set up two-factor sign-in" }
        ol {
            li { "Scan this QR code with your authenticator app, or add the key below by hand (or open the otpauth link on a phone):" }
        }
        (super::totp::qr_image(&uri))
        div.secret {
            p { "Key: " code.mono id="totp-seed" { (seed.as_str()) } " " (copy_button("totp-seed")) }
            p { "Link: " code.mono id="totp-uri" { (uri) } " " (copy_button("totp-uri")) }
        }
        form method="post" action="/console/settings/totp/confirm" {
            (csrf(&op.csrf))
            label for="code" { "Then enter the 6-digit code it shows" }
            input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
            p { button.primary type="submit" { "Turn on" } }
        }
    };
    Ok(page(&op, "settings", "Two-factor sign-in", body))
}

async fn totp_confirm(
    State(s): State<AppState>,
    op: Operator,
    f: Fields,
) -> ConsoleResult<Response> {
    let now = u64::try_from(crate::util::now_unix()).unwrap_or(0);
    if s.vault
        .confirm_human_totp(&op.actor, &op.human.id, f.get("code"), now)?
    {
        return Ok(Redirect::to("/console/settings?done=totp_on").into_response());
    }
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        settings_page(
            &s,
            &op,
            None,
            Some("That code did not match; set up again and enter a fresh code."),
        )?,
    )
        .into_response())
}

async fn totp_remove(State(s): State<AppState>, op: Operator) -> ConsoleResult<Redirect> {
    s.vault.remove_human_totp(&op.actor, &op.human.id)?;
    Ok(Redirect::to("/console/settings?done=totp_off"))
}

async fn logout_all(State(s): State<AppState>, op: Operator) -> ConsoleResult<Response> {
    s.identity.close_all_sessions(&op.actor).await?;
    Ok((
        [(header::SET_COOKIE, session::session_cookie(&s.config, None))],
        Redirect::to("/console/login"),
    )
        .into_response())
}
