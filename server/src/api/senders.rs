//! Allow and block lists of senders: an agent's own (`/v1/senders`), any agent's and any
//! org's for admins. The rules and the audit are in `mailbox::senders`.

use super::extract::{Auth, Json, Path};
use super::{ApiResult, AppState};
use crate::identity::Actor;
use crate::mailbox::{sender_lists_json, SenderList, SenderOwner};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/senders", get(own_lists).post(own_add))
        .route("/v1/senders/{list}/{entry}", delete(own_remove))
        .route("/v1/agents/{id}/senders", get(agent_lists).post(agent_add))
        .route(
            "/v1/agents/{id}/senders/{list}/{entry}",
            delete(agent_remove),
        )
        .route("/v1/orgs/{id}/senders", get(org_lists).post(org_add))
        .route("/v1/orgs/{id}/senders/{list}/{entry}", delete(org_remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    list: String,
    entry: String,
    #[serde(default)]
    note: String,
}

/// An admin may name an agent by id or address; an agent only itself, by id.
fn agent(s: &AppState, actor: &Actor, id: &str) -> ApiResult<SenderOwner> {
    if actor.is_admin() {
        return Ok(SenderOwner::Agent(s.identity.get_agent(actor, id)?.id));
    }
    Ok(SenderOwner::Agent(id.to_string()))
}

async fn lists(s: &AppState, actor: &Actor, owner: SenderOwner) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(sender_lists_json(
        &s.mailbox.sender_lists(actor, &owner)?,
    )))
}

async fn add(
    s: &AppState,
    actor: &Actor,
    owner: SenderOwner,
    req: NewEntry,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let list = SenderList::parse(&req.list)?;
    let e = s
        .mailbox
        .add_sender(actor, &owner, list, &req.entry, &req.note)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(json!(e))))
}

async fn remove(
    s: &AppState,
    actor: &Actor,
    owner: SenderOwner,
    list: &str,
    entry: &str,
) -> ApiResult<StatusCode> {
    let list = SenderList::parse(list)?;
    s.mailbox.remove_sender(actor, &owner, list, entry).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn own_lists(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<axum::Json<Value>> {
    lists(&s, &actor, SenderOwner::caller(&actor)).await
}

async fn own_add(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewEntry>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    add(&s, &actor, SenderOwner::caller(&actor), req).await
}

async fn own_remove(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((list, entry)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    remove(&s, &actor, SenderOwner::caller(&actor), &list, &entry).await
}

async fn agent_lists(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let owner = agent(&s, &actor, &id)?;
    lists(&s, &actor, owner).await
}

async fn agent_add(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<NewEntry>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let owner = agent(&s, &actor, &id)?;
    add(&s, &actor, owner, req).await
}

async fn agent_remove(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, list, entry)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let owner = agent(&s, &actor, &id)?;
    remove(&s, &actor, owner, &list, &entry).await
}

async fn org_lists(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    lists(&s, &actor, SenderOwner::Org(id)).await
}

async fn org_add(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<NewEntry>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    add(&s, &actor, SenderOwner::Org(id), req).await
}

async fn org_remove(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, list, entry)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    remove(&s, &actor, SenderOwner::Org(id), &list, &entry).await
}
