//! Webhooks and events: every webhook with its state (a disabled one says why), one
//! webhook's recent deliveries, and re-enable / disable / send a test, each through the
//! webhook service REST uses (`PATCH /v1/webhooks/{id}`, `POST …/test`), so the change is
//! checked and audited there, as the signed-in human.

use super::error::ConsoleResult;
use super::layout::{self, csrf, page, when};
use super::session::Operator;
use super::AppState;
use crate::events::WebhookPatch;
use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list))
        .route("/webhooks/{id}", get(show))
        .route("/webhooks/{id}/enable", post(enable))
        .route("/webhooks/{id}/disable", post(disable))
        .route("/webhooks/{id}/test", post(test))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Done {
    done: Option<String>,
}

fn href(id: &str) -> String {
    format!("/console/webhooks/{}", layout::enc(id))
}

fn state_badge(w: &serde_json::Value) -> Markup {
    html! {
        @if w["enabled"] == true { span.badge.ok { "enabled" } }
        @else {
            span.badge.bad { "disabled" }
            @if let Some(r) = w["disabled_reason"].as_str() { " " span.muted { (r) } }
        }
    }
}

fn types(w: &serde_json::Value) -> String {
    let t: Vec<&str> = w["event_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    if t.is_empty() {
        "every event".into()
    } else {
        t.join(", ")
    }
}

async fn list(
    State(s): State<AppState>,
    op: Operator,
    Query(d): Query<Done>,
) -> ConsoleResult<Html<String>> {
    let hooks = s.webhooks.list(&op.actor)?;
    let body = html! {
        h1 { "Webhooks" }
        (layout::notice(d.done.as_deref()))
        p.muted { "Events are posted to each enabled webhook, signed (Standard Webhooks). Create and change webhooks with " code { "/v1/webhooks" } "." }
        @if hooks.is_empty() {
            p.muted { "No webhooks." }
        } @else {
            table {
                thead { tr { th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "Scope" } th scope="col" { "State" } th scope="col" { "Created" } } }
                tbody {
                    @for w in &hooks {
                        @let v = w.to_json();
                        tr {
                            td { a href=(href(&w.id)) { (w.url) } }
                            td { (types(&v)) }
                            td { @if let Some(a) = &w.agent { "agent " code { (a) } } @else if let Some(o) = &w.org { "org " code { (o) } } @else { "all agents" } }
                            td { (state_badge(&v)) }
                            td { (when(&v["created_at"])) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&op, "webhooks", "Webhooks", body))
}

async fn show(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    Query(d): Query<Done>,
) -> ConsoleResult<Html<String>> {
    let w = s.webhooks.get(&op.actor, &id)?;
    let v = w.to_json();
    let deliveries = s
        .webhooks
        .deliveries(&op.actor, &id, s.config.console.page_size, None)?;
    let action = |what: &str| format!("{}/{what}", href(&w.id));
    let body = html! {
        h1 { "Webhook" }
        p { a href="/console/webhooks" { "← Webhooks" } }
        (layout::notice(d.done.as_deref()))
        dl {
            dt { "URL" } dd { code { (w.url) } }
            dt { "Events" } dd { (types(&v)) }
            dt { "State" } dd { (state_badge(&v)) }
            dt { "Description" } dd { (layout::text(&v["description"])) }
            dt { "Id" } dd { code { (w.id) } }
        }
        @if w.enabled {
            form.inline method="post" action=(action("disable")) data-confirm="Stop delivering events to this webhook?" {
                (csrf(&op.csrf))
                button.danger type="submit" { "Disable" }
            }
        } @else {
            form.inline method="post" action=(action("enable")) {
                (csrf(&op.csrf))
                button.primary type="submit" { "Re-enable" }
            }
        }
        " "
        form.inline method="post" action=(action("test")) {
            (csrf(&op.csrf))
            button type="submit" { "Send a test event" }
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() {
            p.muted { "No deliveries yet." }
        } @else {
            table {
                thead { tr { th scope="col" { "Event" } th scope="col" { "Agent" } th scope="col" { "Status" } th.num scope="col" { "Attempts" } th scope="col" { "Last attempt" } th scope="col" { "Answer" } } }
                tbody {
                    @for x in &deliveries {
                        @let j = x.to_json();
                        tr {
                            td { code { (x.event_type) } br; span.muted { (x.event_id) } }
                            td { code { (x.agent) } }
                            td {
                                @let st = j["status"].as_str().unwrap_or("");
                                span class={"badge " (match st { "delivered" => "ok", "pending" => "none", _ => "bad" })} { (st) }
                            }
                            td.num { (x.attempts) }
                            td { (when(&j["last_attempt_at"])) }
                            td {
                                @if let Some(c) = x.last_status { "HTTP " (c) " " }
                                @if let Some(e) = &x.last_error { span.muted { (e) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&op, "webhooks", "Webhook", body))
}

async fn set_enabled(s: &AppState, op: &Operator, id: &str, on: bool) -> ConsoleResult<Redirect> {
    let patch = WebhookPatch {
        enabled: Some(on),
        ..Default::default()
    };
    s.webhooks.update(&op.actor, id, patch).await?;
    let done = if on {
        "webhook_enabled"
    } else {
        "webhook_disabled"
    };
    Ok(Redirect::to(&format!("{}?done={done}", href(id))))
}

async fn enable(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Redirect> {
    set_enabled(&s, &op, &id, true).await
}

async fn disable(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Redirect> {
    set_enabled(&s, &op, &id, false).await
}

async fn test(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Redirect> {
    let r = s.webhooks.test(&op.actor, &id).await?;
    let done = if r["ok"] == true {
        "webhook_test_ok"
    } else {
        "webhook_test_failed"
    };
    Ok(Redirect::to(&format!("{}?done={done}", href(&id))))
}
