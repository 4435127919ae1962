//! Vault, per agent: names, kinds, usernames, URLs and times, with delete. Never a secret:
//! the page lists through the vault service's `list`, which returns metadata only, and the
//! actor it acts through holds no scope that could read a secret.

use super::error::ConsoleResult;
use super::layout::{self, csrf, page};
use super::session::Operator;
use super::AppState;
use crate::identity::{Scope, ScopeSet};
use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/vault", get(list))
        .route("/vault/{agent}/{name}/delete", post(delete))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Params {
    agent: String,
    done: Option<String>,
}

fn t(v: Option<i64>) -> String {
    v.map_or_else(|| "—".into(), |t| crate::util::rfc3339(t).replace('T', " "))
}

async fn list(
    State(s): State<AppState>,
    op: Operator,
    Query(p): Query<Params>,
) -> ConsoleResult<Html<String>> {
    if p.agent.is_empty() {
        let (agents, _) = s
            .identity
            .list_agents(&op.actor, s.config.console.page_size, None)?;
        let body = html! {
            h1 { "Vault" }
            p { "Pick an agent:" }
            ul { @for a in &agents { li { a href={"/console/vault?agent=" (layout::enc(&a.id))} { (a.address()) } } } }
        };
        return Ok(page(&op, "vault", "Vault", body));
    }
    let agent = s.identity.get_agent(&op.actor, &p.agent)?;
    let mut scopes = ScopeSet::default();
    scopes.insert(Scope::VaultRead);
    let actor = s
        .identity
        .operator_for_agent(&op.actor, &agent.id, scopes)?;
    let items = if agent.is_active() {
        s.vault.list(&actor)?
    } else {
        Vec::new()
    };
    let body = html! {
        h1 { "Vault of " (agent.address()) }
        (layout::notice(p.done.as_deref()))
        @if !agent.is_active() { p.muted { "This agent is revoked: its vault was destroyed." } }
        @else if items.is_empty() { p.muted { "No credentials stored." } }
        @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Username" } th scope="col" { "URL" } th scope="col" { "TOTP" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.muted { "Action" } } } }
                tbody { @for c in &items {
                    tr {
                        td { code { (c.name) } }
                        td { (serde_json::to_value(c.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()) }
                        td { (c.username.as_deref().unwrap_or("—")) }
                        td { (c.url.as_deref().unwrap_or("—")) }
                        td { @if c.has_totp { "yes" } @else { "no" } }
                        td { (t(Some(c.created_at))) }
                        td { (t(c.last_used_at)) }
                        td {
                            form.inline method="post" action={"/console/vault/" (layout::enc(&agent.id)) "/" (layout::enc(&c.name)) "/delete"} data-confirm={"Delete the credential " (c.name) "?"} {
                                (csrf(&op.csrf))
                                button.danger type="submit" aria-label={"Delete " (c.name)} { "Delete" }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(page(&op, "vault", "Vault", body))
}

async fn delete(
    State(s): State<AppState>,
    op: Operator,
    Path((agent, name)): Path<(String, String)>,
) -> ConsoleResult<Redirect> {
    let a = s.identity.get_agent(&op.actor, &agent)?;
    let mut scopes = ScopeSet::default();
    scopes.insert(Scope::VaultWrite);
    let actor = s.identity.operator_for_agent(&op.actor, &a.id, scopes)?;
    s.vault.delete(&actor, &name).await?;
    Ok(Redirect::to(&format!(
        "/console/vault?agent={}&done=deleted",
        layout::enc(&a.id)
    )))
}
