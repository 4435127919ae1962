//! The OAuth 2.1 authorization endpoint's human side: a signed-in human lets an MCP client
//! act as one agent with a subset of its scopes. The client and its redirect URI are checked
//! before anything else, and an error about them is shown here, never sent to an unchecked
//! URI (RFC 6749 §4.1.2.1). PKCE with S256 is required.

use super::error::{ConsoleError, ConsoleResult};
use super::form::Fields;
use super::layout::{csrf, page};
use super::session::{self, Operator};
use super::AppState;
use crate::identity::oauth::OAuthLifetimes;
use crate::identity::{Scope, ScopeSet};
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/authorize", get(show).post(decide))
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct AuthorizeParams {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    code_challenge_method: String,
    state: Option<String>,
    scope: String,
    resource: Option<String>,
}

fn origin(s: &AppState, headers: &HeaderMap) -> String {
    crate::config::public_origin(
        &s.config,
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    )
}

fn parse_scopes(s: &str) -> ScopeSet {
    let mut set = ScopeSet::default();
    for name in s.split_whitespace() {
        if let Some(sc) = Scope::parse(name) {
            set.insert(sc);
        }
    }
    set
}

/// The client and the redirect URI it registered, or an error page.
fn checked_client(
    s: &AppState,
    p: &AuthorizeParams,
) -> ConsoleResult<(crate::identity::oauth::OAuthClient, String)> {
    let client = s
        .identity
        .oauth_client(&p.client_id)?
        .ok_or_else(|| ConsoleError::bad_request("unknown client_id: register the client first"))?;
    let uri = if p.redirect_uri.is_empty() && client.redirect_uris.len() == 1 {
        client.redirect_uris[0].clone()
    } else if client.redirect_uris.contains(&p.redirect_uri) {
        p.redirect_uri.clone()
    } else {
        return Err(ConsoleError::bad_request(
            "redirect_uri is not one the client registered",
        ));
    };
    Ok((client, uri))
}

/// A redirect back to the client with `pairs` (and `state`, `iss`) added to its URI.
fn back(uri: &str, pairs: &[(&str, &str)], state: Option<&str>, iss: &str) -> Response {
    let Ok(mut u) = url::Url::parse(uri) else {
        return ConsoleError::bad_request("bad redirect_uri").into_response();
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(st) = state {
            q.append_pair("state", st);
        }
        q.append_pair("iss", iss);
    }
    Redirect::to(u.as_str()).into_response()
}

/// The protocol checks after the client: an error here goes back to the client.
fn protocol_error(
    s: &AppState,
    headers: &HeaderMap,
    p: &AuthorizeParams,
) -> Option<(&'static str, &'static str)> {
    if p.response_type != "code" {
        return Some(("unsupported_response_type", "only response_type=code"));
    }
    if p.code_challenge.is_empty() || p.code_challenge_method != "S256" {
        return Some((
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        ));
    }
    if p.code_challenge.len() != 43 {
        return Some((
            "invalid_request",
            "code_challenge must be BASE64URL(SHA-256(verifier))",
        ));
    }
    if p.resource
        .as_deref()
        .is_some_and(|r| r.trim_end_matches('/') != format!("{}/mcp", origin(s, headers)))
    {
        return Some((
            "invalid_target",
            "this server authorizes only its /mcp endpoint",
        ));
    }
    None
}

/// The CSP of the consent page: its form may lead (by redirect) to the client's origin.
fn csp_for(redirect_uri: &str) -> String {
    let target = url::Url::parse(redirect_uri)
        .map(|u| match u.origin() {
            url::Origin::Tuple(..) => u.origin().ascii_serialization(),
            url::Origin::Opaque(_) => format!("{}:", u.scheme()),
        })
        .unwrap_or_default();
    super::headers::CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {target}"),
    )
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    Query(p): Query<AuthorizeParams>,
) -> ConsoleResult<Response> {
    let (client, uri) = checked_client(&s, &p)?;
    // Sign-in comes before any redirect to the client: with open registration, an error
    // redirect to a freshly registered URI would otherwise be an open redirect that needs no
    // one signed in (RFC 9700 §4.11.1).
    let op = match session::lookup(&s, &headers)? {
        Some((sid, sess, human)) if sess.stage == crate::identity::SessionStage::Full => Operator {
            actor: crate::identity::IdentityService::session_actor(&human, &sid),
            human,
            csrf: sess.csrf,
            sid: zeroize::Zeroizing::new(sid),
            host: sess.host,
        },
        _ => {
            let next = format!("/console/oauth/authorize?{}", raw.unwrap_or_default());
            return Ok(Redirect::to(&format!(
                "/console/login?next={}",
                super::layout::enc(&next)
            ))
            .into_response());
        }
    };
    if let Some((code, why)) = protocol_error(&s, &headers, &p) {
        return Ok(back(
            &uri,
            &[("error", code), ("error_description", why)],
            p.state.as_deref(),
            &origin(&s, &headers),
        ));
    }
    let (agents, _) = s.identity.list_agents(&op.actor, 500, None)?;
    let agents: Vec<_> = agents.into_iter().filter(|a| a.is_active()).collect();
    let requested = match parse_scopes(&p.scope) {
        set if set == ScopeSet::default() => ScopeSet::all(),
        set => set,
    };
    let host_of = url::Url::parse(&uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| uri.clone());
    let body = html! {
        h1 { "Connect " (client.name) "?" }
        p { "The MCP client " strong { (client.name) } " (returning to " code { (host_of) } ") asks to act as one of your agents. It gets only the scopes you tick, and you can disconnect it on the agent's page." }
        @if agents.is_empty() {
            p.error role="alert" { "There is no active agent to connect. " a href="/console/agents/new" { "Create one" } " first." }
        }
        form method="post" action="/console/oauth/authorize" {
            (csrf(&op.csrf))
            @for (k, v) in [("response_type", &p.response_type), ("client_id", &p.client_id), ("redirect_uri", &uri), ("code_challenge", &p.code_challenge), ("code_challenge_method", &p.code_challenge_method)] {
                input type="hidden" name=(k) value=(v);
            }
            @if let Some(st) = &p.state { input type="hidden" name="state" value=(st); }
            label for="agent" { "Agent" }
            select id="agent" name="agent" required {
                @for a in &agents { option value=(a.id) { (a.address()) " — " (a.scopes.names().join(" ")) } }
            }
            fieldset {
                legend { "Scopes (only those the agent holds are granted)" }
                @for sc in ScopeSet::all().iter() {
                    label { input type="checkbox" name="scopes" value=(sc.as_str()) checked[requested.contains(sc)]; (sc.as_str()) }
                }
            }
            p {
                button.primary type="submit" name="decision" value="allow" { "Allow" }
                " "
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        }
    };
    let mut resp = page(&op, "agents", "Connect a client", body).into_response();
    if let Ok(v) = HeaderValue::from_str(&csp_for(&uri)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(resp)
}

async fn decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    op: Operator,
    f: Fields,
) -> ConsoleResult<Response> {
    let p = AuthorizeParams {
        response_type: f.get("response_type").into(),
        client_id: f.get("client_id").into(),
        redirect_uri: f.get("redirect_uri").into(),
        code_challenge: f.get("code_challenge").into(),
        code_challenge_method: f.get("code_challenge_method").into(),
        state: f.opt("state"),
        scope: String::new(),
        resource: None,
    };
    let (_, uri) = checked_client(&s, &p)?;
    let iss = origin(&s, &headers);
    if let Some((code, why)) = protocol_error(&s, &headers, &p) {
        return Ok(back(
            &uri,
            &[("error", code), ("error_description", why)],
            p.state.as_deref(),
            &iss,
        ));
    }
    if f.get("decision") != "allow" {
        return Ok(back(
            &uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user declined"),
            ],
            p.state.as_deref(),
            &iss,
        ));
    }
    let agent = s.identity.get_agent(&op.actor, f.get("agent"))?;
    let scopes = parse_scopes(&f.all("scopes").join(" ")).intersect(agent.scopes);
    if scopes == ScopeSet::default() {
        return Err(ConsoleError::Status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "pick at least one scope the agent holds".into(),
        ));
    }
    let code = s
        .identity
        .oauth_consent(
            &op.actor,
            &p.client_id,
            &agent.id,
            scopes,
            &uri,
            &p.code_challenge,
            &format!("{iss}/mcp"),
            OAuthLifetimes::from_config(&s.config),
        )
        .await?;
    Ok(back(
        &uri,
        &[("code", code.as_str())],
        p.state.as_deref(),
        &iss,
    ))
}
