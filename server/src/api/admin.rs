//! Admin routes: orgs, agents, their keys and sub-agents.

use super::extract::{Auth, Json, Path, Query};
use super::{ApiResult, AppState, PageParams};
use crate::identity::{AgentPatch, NewAdminToken, NewAgent, NewKey};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/orgs", post(create_org).get(list_orgs))
        .route("/v1/agents", post(create_agent).get(list_agents))
        .route(
            "/v1/agents/{id}",
            get(get_agent).patch(update_agent).delete(revoke_agent),
        )
        .route("/v1/agents/{id}/keys", post(create_key).get(list_keys))
        .route("/v1/agents/{id}/keys/{key_id}", delete(revoke_key))
        .route("/v1/agents/{id}/subagents", post(create_subagent))
        .route(
            "/v1/admin/tokens",
            post(create_admin_token).get(list_admin_tokens),
        )
        .route(
            "/v1/admin/tokens/{id}",
            delete(revoke_admin_token).patch(keep_admin_token),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    domain: String,
}

async fn create_org(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewOrg>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let org = s
        .identity
        .create_org(&actor, &req.name, &req.domain)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(org.to_json())))
}

async fn list_orgs(State(s): State<AppState>, Auth(actor): Auth) -> ApiResult<axum::Json<Value>> {
    let orgs = s.identity.list_orgs(&actor)?;
    let items: Vec<Value> = orgs.iter().map(|o| o.to_json()).collect();
    Ok(axum::Json(json!({"items": items, "next_cursor": null})))
}

async fn create_agent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewAgent>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let created = s.identity.create_agent(&actor, &req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(s.identity.created_json(&created)),
    ))
}

async fn create_subagent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<NewAgent>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let created = s.identity.create_subagent(&actor, &id, &req).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(s.identity.created_json(&created)),
    ))
}

async fn list_agents(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(p): Query<PageParams>,
) -> ApiResult<axum::Json<Value>> {
    let (agents, next) = s
        .identity
        .list_agents(&actor, p.limit(), p.cursor.as_deref())?;
    let items: Vec<Value> = agents.iter().map(|a| s.identity.agent_json(a)).collect();
    Ok(axum::Json(json!({"items": items, "next_cursor": next})))
}

async fn get_agent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let a = s.identity.get_agent(&actor, &id)?;
    Ok(axum::Json(s.identity.agent_json(&a)))
}

async fn update_agent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(patch): Json<AgentPatch>,
) -> ApiResult<axum::Json<Value>> {
    let a = s.identity.update_agent(&actor, &id, &patch).await?;
    Ok(axum::Json(s.identity.agent_json(&a)))
}

async fn revoke_agent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let revoked = s.identity.revoke_agent(&actor, &id).await?;
    let ids: Vec<&str> = revoked.iter().map(|a| a.id.as_str()).collect();
    Ok(axum::Json(json!({"revoked": ids})))
}

async fn create_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<NewKey>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let (key, token) = s.identity.create_key(&actor, &id, &req).await?;
    let mut v = key.to_json();
    v["key"] = json!(token.as_str());
    Ok((StatusCode::CREATED, axum::Json(v)))
}

async fn list_keys(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let keys = s.identity.list_keys(&actor, &id)?;
    let items: Vec<Value> = keys.iter().map(|k| k.to_json()).collect();
    Ok(axum::Json(json!({"items": items, "next_cursor": null})))
}

async fn revoke_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let key = s.identity.revoke_key(&actor, &id, &key_id).await?;
    Ok(axum::Json(key.to_json()))
}

async fn list_admin_tokens(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<axum::Json<Value>> {
    let items = s.identity.list_admin_tokens(&actor)?;
    Ok(axum::Json(json!({"items": items, "next_cursor": null})))
}

/// The token is in this response only; the store keeps its hash.
async fn create_admin_token(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Json(req): Json<NewAdminToken>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let (key, token) = s.identity.create_admin_token(&actor, &req).await?;
    let mut v = s.identity.admin_token_json(&key, true);
    v["key"] = json!(token.as_str());
    Ok((StatusCode::CREATED, axum::Json(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenPatch {
    /// `true`: a bootstrap token becomes a listed one and keeps working.
    keep: bool,
}

async fn keep_admin_token(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(p): Json<TokenPatch>,
) -> ApiResult<axum::Json<Value>> {
    if !p.keep {
        return Err(super::ApiError::invalid(
            "only {\"keep\": true} is supported; revoke with DELETE",
        ));
    }
    let key = s.identity.keep_admin_token(&actor, &id).await?;
    Ok(axum::Json(s.identity.admin_token_json(&key, true)))
}

async fn revoke_admin_token(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let key = s.identity.revoke_admin_token(&actor, &id).await?;
    Ok(axum::Json(key.to_json()))
}
