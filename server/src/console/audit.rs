//! Audit: the log filtered by actor, agent, action, outcome and time, a page at a time (the audit
//! service's cursor), and "verify chain", which recomputes every hash and shows the head and
//! its signed checkpoint.

use super::error::ConsoleResult;
use super::layout::{self, csrf, page, when};
use super::session::Operator;
use super::AppState;
use crate::identity::AuditParams;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/verify", post(verify))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Filters {
    actor: String,
    agent: String,
    action: String,
    outcome: String,
    since: String,
    until: String,
    cursor: Option<String>,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

async fn list(
    State(s): State<AppState>,
    op: Operator,
    Query(f): Query<Filters>,
) -> ConsoleResult<Html<String>> {
    let params = AuditParams {
        agent: opt(&f.agent),
        actor: opt(&f.actor),
        action: opt(&f.action),
        outcome: opt(&f.outcome),
        since: opt(&f.since),
        until: opt(&f.until),
        limit: Some(s.config.console.page_size),
        cursor: f.cursor.clone(),
    };
    let page_v = s.identity.audit_trail(&op.actor, &params)?;
    let next = page_v["next_cursor"].as_str().map(str::to_string);
    let query = format!(
        "actor={}&agent={}&action={}&outcome={}&since={}&until={}",
        layout::enc(&f.actor),
        layout::enc(&f.agent),
        layout::enc(&f.action),
        layout::enc(&f.outcome),
        layout::enc(&f.since),
        layout::enc(&f.until)
    );
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/console/audit" role="search" {
            div { label for="actor" { "Actor" } input type="text" id="actor" name="actor" value=(f.actor) placeholder="human:alice@acme.com"; }
            div { label for="agent" { "Agent (id or address)" } input type="text" id="agent" name="agent" value=(f.agent); }
            div { label for="action" { "Action" } input type="text" id="action" name="action" value=(f.action) placeholder="agent.create"; }
            div {
                label for="outcome" { "Outcome" }
                select id="outcome" name="outcome" {
                    @for o in ["", "ok", "denied", "error"] {
                        option value=(o) selected[f.outcome == o] { @if o.is_empty() { "any" } @else { (o) } }
                    }
                }
            }
            div { label for="since" { "Since" } input type="text" id="since" name="since" value=(f.since) placeholder="2026-01-01T00:00:00Z"; }
            div { label for="until" { "Until" } input type="text" id="until" name="until" value=(f.until); }
            button type="submit" { "Filter" }
        }
        form method="post" action="/console/audit/verify" {
            (csrf(&op.csrf))
            button type="submit" { "Verify chain" }
        }
        table {
            thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Outcome" } th scope="col" { "Chain" } } }
            tbody {
                @for e in page_v["items"].as_array().into_iter().flatten() {
                    tr {
                        td.num { (layout::text(&e["seq"])) }
                        td { (when(&e["ts"])) }
                        td {
                            @let who = format!("{}:{}", layout::text(&e["actor"]["kind"]), layout::text(&e["actor"]["id"]));
                            a href={"/console/audit?actor=" (layout::enc(&who))} { code { (who) } }
                            br; span.muted { (layout::text(&e["detail"]["key_id"])) }
                        }
                        td { code { (layout::text(&e["action"])) } }
                        td { (layout::text(&e["target"])) }
                        td {
                            @let o = e["outcome"].as_str().unwrap_or("");
                            span class={"badge " (if o == "ok" { "ok" } else { "bad" })} { (o) }
                        }
                        td { @for c in e["chain"].as_array().into_iter().flatten() { code { (layout::text(c)) } " " } }
                    }
                }
            }
        }
        @if let Some(n) = next {
            nav.pager aria-label="Pages" {
                a href={"/console/audit?" (query) "&cursor=" (layout::enc(&n))} { "Older →" }
            }
        }
    };
    Ok(page(&op, "audit", "Audit", body))
}

async fn verify(State(s): State<AppState>, op: Operator) -> ConsoleResult<Html<String>> {
    let r = s.identity.verify_audit(&op.actor).await?;
    let body = html! {
        h1 { "Audit chain" }
        @if let Some(seq) = r.first_broken {
            p.error role="alert" { "The chain is broken at entry " (seq) ": " (r.reason.clone().unwrap_or_default()) }
        } @else {
            p.notice role="status" { "The chain is intact: " (r.entries) " entries verified." }
        }
        dl {
            dt { "Head" } dd { code id="head" { (r.head.clone().unwrap_or_default()) } }
            dt { "Signed checkpoint" } dd { code { (r.checkpoint.clone().unwrap_or_else(|| "—".into())) } }
        }
        @if !r.warnings.is_empty() {
            h2 { "Warnings" }
            ul { @for w in &r.warnings { li { (w) } } }
        }
        p { a href="/console/audit" { "Back to the log" } }
    };
    Ok(page(&op, "audit", "Audit chain", body))
}
