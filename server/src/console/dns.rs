//! The DNS wizard: the plan as a table (a copy button per record, a zone-file download) and
//! a live check per record: ok / missing / wrong, with the exact record to publish.

use super::error::ConsoleResult;
use super::layout::{copy_button, csrf, page};
use super::session::Operator;
use super::AppState;
use crate::dns::DnsWizard;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dns", get(plan))
        .route("/dns/zone", get(zone))
        .route("/dns/check", post(check))
}

fn wizard(s: &AppState) -> DnsWizard<'_> {
    DnsWizard::new(&s.config, &s.vault, &s.audit)
}

async fn plan(State(s): State<AppState>, op: Operator) -> ConsoleResult<Html<String>> {
    let plan = wizard(&s).plan(&op.actor)?;
    let body = html! {
        h1 { "DNS for " (plan.domain) }
        p { "Publish these records at your DNS provider, then run the check. " a href="/console/dns/zone" download="zone.txt" { "Download as a zone file" } "." }
        form method="post" action="/console/dns/check" {
            (csrf(&op.csrf))
            button.primary type="submit" { "Check live records" }
        }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Value" } th scope="col" { "Purpose" } } }
            tbody {
                @for (i, r) in plan.records.iter().enumerate() {
                    tr {
                        td { code { (r.name) } }
                        td { (r.rtype.as_str()) }
                        td {
                            @for (j, v) in r.values.iter().enumerate() {
                                @let id = format!("rec-{i}-{j}");
                                div { code.mono id=(id) { (v) } " " (copy_button(&id)) }
                            }
                        }
                        td { (r.purpose) }
                    }
                }
            }
        }
        @if !plan.notes.is_empty() {
            h2 { "Notes" }
            ul { @for n in &plan.notes { li { (serde_json::to_string(n).unwrap_or_default()) } } }
        }
    };
    Ok(page(&op, "dns", "DNS", body))
}

async fn zone(State(s): State<AppState>, op: Operator) -> ConsoleResult<Response> {
    let plan = wizard(&s).plan(&op.actor)?;
    let text = crate::dns::render::render(&plan, crate::dns::Format::Zone)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"zone.txt\"",
            ),
        ],
        text,
    )
        .into_response())
}

async fn check(State(s): State<AppState>, op: Operator) -> ConsoleResult<Html<String>> {
    let report = wizard(&s).check(&op.actor, &[]).await?;
    let body = html! {
        h1 { "DNS check for " (report.domain) }
        @if report.ok {
            p.notice role="status" { "Every record is published as planned." }
        } @else {
            p.error role="alert" { "Some records are missing or wrong: publish the fixes below, then check again." }
        }
        form method="post" action="/console/dns/check" {
            (csrf(&op.csrf))
            button type="submit" { "Check again" }
        }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Found" } th scope="col" { "Publish" } } }
            tbody {
                @for (i, r) in report.records.iter().enumerate() {
                    tr {
                        td { code { (r.name) } }
                        td { (r.rtype) }
                        td {
                            @let st = r.status.as_str();
                            span class={"badge " (if st == "ok" { "ok" } else { "bad" })} { (st) }
                            @if !r.message.is_empty() { br; span.muted { (r.message) } }
                        }
                        td { @for f in &r.found { div { code { (f) } } } }
                        td {
                            @for (j, fix) in r.fix.iter().enumerate() {
                                @let id = format!("fix-{i}-{j}");
                                div { code.mono id=(id) { (fix) } " " (copy_button(&id)) }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/console/dns" { "Back to the plan" } }
    };
    Ok(page(&op, "dns", "DNS check", body))
}
