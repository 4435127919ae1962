//! The operator web console at `/console/` (DESIGN §1): server-rendered HTML from compiled
//! templates (maud), our own CSS and a few lines of our own JS, all embedded in the binary.
//! Pages read without JS; forms post and redirect.
//!
//! The console decides nothing: every page and form is a call of the same service method the
//! REST API calls, made as the signed-in human ([`session::Operator`]), so scopes, checks and
//! audit entries are the services' own. What lives here is the web part only: sessions in a
//! cookie, a CSRF token on every form ([`csrf`]), and strict response headers ([`headers`]).

mod agents;
mod assets;
mod audit;
mod consent;
mod csrf;
mod dns;
mod error;
mod form;
mod headers;
mod layout;
mod login;
mod mail;
mod mail_parts;
mod overview;
mod queue;
mod session;
mod settings;
mod totp;
mod vault;
mod webhooks;

pub use error::ConsoleError;

use crate::services::Services;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub type AppState = Arc<Services>;

/// Where the console is mounted; every link it makes starts with this.
pub const BASE: &str = "/console";

/// The console, ready to merge into the API router (paths already under [`BASE`]).
pub fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::permanent("/console/") }),
        )
        .merge(login::router())
        .merge(agents::router())
        .merge(mail::router())
        .merge(mail_parts::router())
        .merge(audit::router())
        .merge(dns::router())
        .merge(queue::router())
        .merge(vault::router())
        .merge(webhooks::router())
        .merge(settings::router())
        .merge(consent::router())
        .merge(assets::router())
        .fallback(error::not_found);
    Router::new()
        .route("/console/", get(overview::page_handler))
        .nest(BASE, pages)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            csrf::guard,
        ))
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(state)
}
