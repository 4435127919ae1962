//! Agents: list and search, create (the first key shown once), one agent's page with its
//! delegation chain, keys (create, revoke) and revocation. Every action is the identity
//! service's own admin call, made as the signed-in human.

use super::error::{ConsoleError, ConsoleResult};
use super::form::Fields;
use super::layout::{self, copy_button, csrf, page, when};
use super::session::Operator;
use super::AppState;
use crate::identity::{NewAgent, NewKey, ScopeSet};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list).post(create))
        .route("/agents/new", get(new_form))
        .route("/agents/{id}", get(one))
        .route("/agents/{id}/keys", post(create_key))
        .route("/agents/{id}/keys/{key}/revoke", post(revoke_key))
        .route("/agents/{id}/revoke", get(revoke_confirm).post(revoke))
        .route("/agents/{id}/oauth/{client}/revoke", post(disconnect))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ListParams {
    q: String,
    cursor: Option<String>,
    done: Option<String>,
}

/// Path of an agent's DID document on this server, from its DID.
pub fn did_path(did: &str) -> Option<String> {
    let rest: Vec<&str> = did.strip_prefix("did:web:")?.split(':').skip(1).collect();
    (!rest.is_empty()).then(|| format!("/{}/did.json", rest.join("/")))
}

fn scope_boxes(allowed: ScopeSet, checked: ScopeSet, legend: &str) -> Markup {
    html! {
        fieldset {
            legend { (legend) }
            @for sc in allowed.iter() {
                label {
                    input type="checkbox" name="scopes" value=(sc.as_str()) checked[checked.contains(sc)];
                    (sc.as_str())
                }
            }
        }
    }
}

fn chain(items: &Value) -> Markup {
    html! {
        ol.chain aria-label="Delegation chain" {
            @for link in items.as_array().into_iter().flatten() {
                li { code { (layout::text(link)) } }
            }
        }
    }
}

async fn list(
    State(s): State<AppState>,
    op: Operator,
    Query(p): Query<ListParams>,
) -> ConsoleResult<Html<String>> {
    let size = s.config.console.page_size;
    let q = p.q.trim().to_ascii_lowercase();
    let (agents, next) = if !q.is_empty() && p.cursor.is_none() && q.contains('@') {
        // An address or id: one lookup, not a scan.
        match s.identity.get_agent(&op.actor, &q) {
            Ok(a) => (vec![a], None),
            Err(crate::identity::IdentityError::NotFound(_)) => (vec![], None),
            Err(e) => return Err(e.into()),
        }
    } else {
        s.identity
            .list_agents(&op.actor, size, p.cursor.as_deref())?
    };
    let shown: Vec<_> = agents
        .iter()
        .filter(|a| {
            q.is_empty()
                || a.address().contains(&q)
                || a.name.to_ascii_lowercase().contains(&q)
                || a.id == q
        })
        .collect();
    let body = html! {
        h1 { "Agents" }
        (layout::notice(p.done.as_deref()))
        p { a.button href="/console/agents/new" { "New agent" } }
        form.filters method="get" action="/console/agents" role="search" {
            div {
                label for="q" { "Search" }
                input type="search" id="q" name="q" value=(p.q) placeholder="address, name or id";
            }
            button type="submit" { "Search" }
        }
        @if shown.is_empty() {
            p.muted { "No agents here." }
        } @else {
            table {
                caption.muted { "Agents in id order" }
                thead { tr { th scope="col" { "Address" } th scope="col" { "Name" } th scope="col" { "Scopes" } th scope="col" { "Status" } th scope="col" { "Created" } } }
                tbody {
                    @for a in &shown {
                        tr {
                            td { a href={"/console/agents/" (a.id)} { (a.address()) } }
                            td { (a.name) }
                            td { (a.scopes.names().join(" ")) }
                            td { @if a.is_active() { span.badge.ok { "active" } } @else { span.badge.bad { "revoked" } } }
                            td { (crate::util::rfc3339(a.created_at).replace('T', " ")) }
                        }
                    }
                }
            }
        }
        @if let Some(n) = next {
            nav.pager aria-label="Pages" {
                a href={"/console/agents?q=" (layout::enc(&p.q)) "&cursor=" (layout::enc(&n))} { "Next page →" }
            }
        }
    };
    Ok(page(&op, "agents", "Agents", body))
}

fn new_page(op: &Operator, error: Option<&str>) -> Html<String> {
    page(
        op,
        "agents",
        "New agent",
        html! {
            h1 { "New agent" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/agents" {
                (csrf(&op.csrf))
                label for="local" { "Address (the part before @)" }
                input type="text" id="local" name="local" required autocomplete="off" pattern="[A-Za-z0-9._+-]+" maxlength="64";
                label for="name" { "Name (optional)" }
                input type="text" id="name" name="name" maxlength="200";
                (scope_boxes(ScopeSet::all(), ScopeSet::all(), "Scopes"))
                p { button.primary type="submit" { "Create agent" } }
            }
        },
    )
}

async fn new_form(op: Operator) -> Html<String> {
    new_page(&op, None)
}

fn key_once(key_id: &str, token: &str) -> Markup {
    html! {
        div.secret role="status" {
            p { strong { "Copy this key now: it is shown only once." } " (key " code { (key_id) } ")" }
            p { code.mono id="new-key" { (token) } " " (copy_button("new-key")) }
        }
    }
}

async fn create(State(s): State<AppState>, op: Operator, f: Fields) -> ConsoleResult<Response> {
    let req = NewAgent {
        local: f.opt("local"),
        name: f.opt("name"),
        scopes: Some(f.all("scopes")),
        ..Default::default()
    };
    let created = match s.identity.create_agent(&op.actor, &req).await {
        Ok(c) => c,
        Err(
            e @ (crate::identity::IdentityError::Invalid(_)
            | crate::identity::IdentityError::Conflict(_)),
        ) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                new_page(&op, Some(&e.to_string())),
            )
                .into_response())
        }
        Err(e) => return Err(e.into()),
    };
    let a = &created.agent;
    let body = html! {
        h1 { "Agent created" }
        p { "The agent " a href={"/console/agents/" (a.id)} { (a.address()) } " exists, with scopes " code { (a.scopes.names().join(" ")) } "." }
        (key_once(&created.key.id, &created.token))
        p { a href={"/console/agents/" (a.id)} { "Go to the agent" } }
    };
    Ok((
        StatusCode::CREATED,
        page(&op, "agents", "Agent created", body),
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Done {
    done: Option<String>,
}

async fn one(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> ConsoleResult<Html<String>> {
    let a = s.identity.get_agent(&op.actor, &id)?;
    let v = s.identity.agent_json(&a);
    let keys = s.identity.list_keys(&op.actor, &a.id)?;
    let did = v["did"].as_str().unwrap_or("");
    let connections = s.identity.oauth_connections(&op.actor, &a.id)?;
    let body = html! {
        h1 { (a.address()) }
        (layout::notice(d.done.as_deref()))
        dl {
            dt { "Id" } dd { code { (a.id) } }
            dt { "Name" } dd { (a.name) }
            dt { "Status" } dd { @if a.is_active() { span.badge.ok { "active" } } @else { span.badge.bad { "revoked" } " " (layout::text(&v["revoked_at"])) } }
            dt { "Scopes" } dd { code { (a.scopes.names().join(" ")) } }
            dt { "DID" } dd { code { (did) } @if let Some(p) = did_path(did) { " " a href=(p) { "DID document" } } }
            @if let Some(parent) = &a.parent { dt { "Parent agent" } dd { a href={"/console/agents/" (parent)} { (parent) } } }
            dt { "Created" } dd { (when(&v["created_at"])) }
        }
        h2 { "Delegation chain" }
        (chain(&v["chain"]))
        p {
            a href={"/console/mail?agent=" (layout::enc(&a.id))} { "Mail" } " · "
            a href={"/console/vault?agent=" (layout::enc(&a.id))} { "Vault" } " · "
            a href={"/console/audit?agent=" (layout::enc(&a.id))} { "Audit trail" }
        }
        h2 { "API keys" }
        table {
            thead { tr { th scope="col" { "Key" } th scope="col" { "Name" } th scope="col" { "Scopes" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "State" } th scope="col" { span.muted { "Action" } } } }
            tbody {
                @for k in &keys {
                    @let kv = k.to_json();
                    tr {
                        td { code { (k.id) } }
                        td { (k.name) }
                        td { (k.scopes.names().join(" ")) }
                        td { (when(&kv["created_at"])) }
                        td { (when(&kv["last_used_at"])) }
                        td { @if k.revoked_at.is_some() { span.badge.bad { "revoked" } } @else { span.badge.ok { "active" } } }
                        td {
                            @if k.revoked_at.is_none() && a.is_active() {
                                form.inline method="post" action={"/console/agents/" (a.id) "/keys/" (k.id) "/revoke"} data-confirm={"Revoke key " (k.id) "? Clients using it stop working at once."} {
                                    (csrf(&op.csrf))
                                    button.danger type="submit" aria-label={"Revoke key " (k.id)} { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Connected OAuth clients" }
        @if connections.is_empty() {
            p.muted { "None." }
        } @else {
            table {
                thead { tr { th scope="col" { "Client" } th scope="col" { "Scopes" } th scope="col" { "Last used" } th scope="col" { span.muted { "Action" } } } }
                tbody { @for (c, sc) in &connections {
                    tr {
                        td { (c.name) br; code.muted { (c.id) } }
                        td { (sc.names().join(" ")) }
                        td { (c.last_used_at.map_or_else(|| "—".to_string(), |t| crate::util::rfc3339(t).replace('T', " "))) }
                        td {
                            form.inline method="post" action={"/console/agents/" (a.id) "/oauth/" (c.id) "/revoke"} data-confirm={"Disconnect " (c.name) "?"} {
                                (csrf(&op.csrf))
                                button.danger type="submit" aria-label={"Disconnect " (c.name)} { "Disconnect" }
                            }
                        }
                    }
                } }
            }
        }
        @if a.is_active() {
            h2 { "New key" }
            form method="post" action={"/console/agents/" (a.id) "/keys"} {
                (csrf(&op.csrf))
                label for="kname" { "Key name" }
                input type="text" id="kname" name="name" maxlength="100";
                (scope_boxes(a.scopes, a.scopes, "Scopes of the key"))
                p { button.primary type="submit" { "Create key" } }
            }
            h2 { "Revoke this agent" }
            p { a.button href={"/console/agents/" (a.id) "/revoke"} { "Revoke agent…" } }
        }
    };
    Ok(page(&op, "agents", &a.address(), body))
}

async fn create_key(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    f: Fields,
) -> ConsoleResult<Response> {
    let req = NewKey {
        name: f.opt("name"),
        scopes: Some(f.all("scopes")),
        expires_in: None,
    };
    let (key, token) = s.identity.create_key(&op.actor, &id, &req).await?;
    let body = html! {
        h1 { "Key created" }
        (key_once(&key.id, &token))
        p { a href={"/console/agents/" (id)} { "Back to the agent" } }
    };
    Ok((
        StatusCode::CREATED,
        page(&op, "agents", "Key created", body),
    )
        .into_response())
}

async fn revoke_key(
    State(s): State<AppState>,
    op: Operator,
    Path((id, key)): Path<(String, String)>,
) -> ConsoleResult<Redirect> {
    s.identity.revoke_key(&op.actor, &id, &key).await?;
    Ok(Redirect::to(&format!(
        "/console/agents/{}?done=key_revoked",
        layout::enc(&id)
    )))
}

async fn revoke_confirm(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Html<String>> {
    let a = s.identity.get_agent(&op.actor, &id)?;
    let body = html! {
        h1 { "Revoke " (a.address()) "?" }
        p { "Revoking an agent cannot be undone. At once:" }
        ul {
            li { "every API key and identity token of the agent stops working, and so do its OAuth connections;" }
            li { "SMTP and IMAP logins are refused and mail to " (a.address()) " is rejected;" }
            li { "its vault key is destroyed, so its stored credentials can never be read again (crypto-shred);" }
            li { "its DID document is marked deactivated;" }
            li { "its sub-agents are revoked with it." }
        }
        form method="post" action={"/console/agents/" (a.id) "/revoke"} {
            (csrf(&op.csrf))
            button.danger type="submit" { "Revoke " (a.address()) }
            " "
            a href={"/console/agents/" (a.id)} { "Cancel" }
        }
    };
    Ok(page(&op, "agents", "Revoke agent", body))
}

async fn revoke(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Redirect> {
    let revoked = s.identity.revoke_agent(&op.actor, &id).await?;
    if revoked.is_empty() {
        return Err(ConsoleError::Status(
            StatusCode::NOT_FOUND,
            "agent not found".into(),
        ));
    }
    Ok(Redirect::to(&format!(
        "/console/agents/{}?done=agent_revoked",
        layout::enc(&id)
    )))
}

async fn disconnect(
    State(s): State<AppState>,
    op: Operator,
    Path((id, client)): Path<(String, String)>,
) -> ConsoleResult<Redirect> {
    let a = s.identity.get_agent(&op.actor, &id)?;
    s.identity
        .revoke_oauth_connection(&op.actor, &a.id, &client)
        .await?;
    Ok(Redirect::to(&format!(
        "/console/agents/{}?done=client_revoked",
        layout::enc(&a.id)
    )))
}
