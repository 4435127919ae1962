//! Connected accounts and co-owners (issue 25 §1-2): a human connects a service to an agent,
//! the agent asks for access tokens, owners manage both. Bodies carrying secrets are never
//! logged; no answer carries a refresh token or a client secret.

use super::extract::{Auth, Json, Path, Query};
use super::{ApiError, ApiResult, AppState};
use crate::connections::{ConnectionsError, NewConnection};
use crate::identity::owners::NewOwner;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/agents/{id}/connections",
            post(create_connection).get(list_connections),
        )
        .route(
            "/v1/agents/{id}/connections/{cid}",
            delete(revoke_connection),
        )
        .route("/connections/callback", get(callback))
        .route("/v1/vault/{name}/token", post(token))
        .route("/v1/agents/{id}/owners", get(list_owners).post(add_owner))
        .route("/v1/agents/{id}/owners/{human}", delete(remove_owner))
        .route("/v1/invites/redeem", post(redeem_invite))
        .route("/v1/humans/{human}/keys", get(list_human_keys))
        .route("/v1/humans/{human}/keys/{key_id}", delete(revoke_human_key))
}

impl From<ConnectionsError> for ApiError {
    fn from(e: ConnectionsError) -> Self {
        use ConnectionsError as C;
        match e {
            C::Denied(d) => d.into(),
            C::NotFound(what) => ApiError::not_found(what),
            C::BadRequest(m) => ApiError::bad_request(m),
            C::Invalid(m) => ApiError::invalid(m),
            C::InvalidState(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_state", m),
            C::IssuerMismatch(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_issuer", m),
            C::NeedsConsent(_) => {
                ApiError::new(StatusCode::CONFLICT, "needs_consent", e.to_string())
            }
            C::NotActive(m) => ApiError::new(StatusCode::CONFLICT, "connection_not_active", m),
            C::Provider(m) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_error",
                format!("the provider: {m}"),
            ),
            C::Identity(e) => e.into(),
            C::Vault(e) => e.into(),
            C::Store(e) => ApiError::internal(&e),
            C::Audit(e) => e.into(),
        }
    }
}

async fn create_connection(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<NewConnection>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = crate::config::public_origin(&s.config, host);
    let (conn, url) = s.connections.start(&actor, &id, input, &origin).await?;
    let mut v = conn.to_json();
    v["authorization_url"] = json!(url);
    Ok((StatusCode::CREATED, axum::Json(v)))
}

async fn list_connections(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let items = s.connections.list(&actor, &id)?;
    Ok(axum::Json(json!({"items": items, "next_cursor": null})))
}

async fn revoke_connection(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, cid)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let c = s.connections.revoke(&actor, &id, &cid).await?;
    Ok(axum::Json(c.to_json()))
}

#[derive(Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    /// RFC 9207: checked against the connection's issuer.
    iss: Option<String>,
    // Anything else providers add (scope, error_description, ...) is ignored.
}

/// Where the provider sends the human's browser back. No API key: the single-use `state`
/// is what ties it to the grant an admin or owner started.
async fn callback(
    State(s): State<AppState>,
    Query(p): Query<CallbackParams>,
) -> ApiResult<axum::Json<Value>> {
    let c = s
        .connections
        .complete(crate::connections::Callback {
            state: p.state.as_deref(),
            code: p.code.as_deref(),
            error: p.error.as_deref(),
            iss: p.iss.as_deref(),
        })
        .await?;
    Ok(axum::Json(json!({
        "id": c.id, "agent_id": c.agent_id, "name": c.name, "status": c.status,
        "message": "connected; you may close this window",
    })))
}

/// The agent's access token for a connected account (`vault:read`). The body is ignored.
async fn token(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(name): Path<String>,
) -> ApiResult<(HeaderMap, axum::Json<Value>)> {
    let t = s.connections.token(&actor, &name).await?;
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok((h, axum::Json(t.to_json())))
}

async fn list_owners(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let items = s.identity.list_owners(&actor, &id)?;
    Ok(axum::Json(json!({"items": items, "next_cursor": null})))
}

async fn add_owner(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<NewOwner>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let added = s.identity.add_owner(&actor, &id, &req).await?;
    let mut v = added.owner.to_json();
    v["created_human"] = json!(added.created_human);
    // Never the invite's code nor a token: only the invited human gets those, by mail.
    v["invited"] = json!(added.invited);
    if let Some(e) = &added.invite_error {
        v["invite_error"] = json!(e);
    }
    Ok((StatusCode::CREATED, axum::Json(v)))
}

async fn remove_owner(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, human)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.identity.remove_owner(&actor, &id, &human).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemBody {
    code: zeroize::Zeroizing<String>,
}

/// No API key: the invite's code is the credential. Failures count against the caller's
/// address like failed authentications; past the limit, 429.
async fn redeem_invite(
    State(s): State<AppState>,
    parts: axum::http::request::Parts,
    Json(body): Json<RedeemBody>,
) -> ApiResult<(StatusCode, HeaderMap, axum::Json<Value>)> {
    let peer = super::extract::peer(&parts);
    if s.audit.denials().throttle(&peer) {
        return Err(super::extract::too_many_failures());
    }
    let r = s.identity.redeem_invite(&body.code, &peer).await?;
    let mut v = r.key.to_json();
    v["key"] = json!(r.token.as_str());
    v["human"] = json!({"id": r.human.id, "email": r.human.email});
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok((StatusCode::CREATED, h, axum::Json(v)))
}

async fn list_human_keys(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(human): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let items = s.identity.list_human_keys(&actor, &human)?;
    Ok(axum::Json(json!({"items": items, "next_cursor": null})))
}

async fn revoke_human_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((human, key_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Value>> {
    let v = s.identity.revoke_human_key(&actor, &human, &key_id).await?;
    Ok(axum::Json(v))
}
