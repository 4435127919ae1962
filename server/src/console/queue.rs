//! The outbound queue: messages waiting or deferred (all, with finished ones, on request),
//! each recipient's state, and retry / cancel through the queue service.

use super::error::ConsoleResult;
use super::layout::{self, csrf, page, when};
use super::session::Operator;
use super::AppState;
use crate::queue::QueueQuery;
use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use axum::Router;
use maud::html;
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/queue", get(list))
        .route("/queue/{id}/retry", post(retry))
        .route("/queue/{id}/cancel", post(cancel))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Params {
    all: bool,
    cursor: Option<String>,
    done: Option<String>,
}

async fn list(
    State(s): State<AppState>,
    op: Operator,
    Query(p): Query<Params>,
) -> ConsoleResult<Html<String>> {
    let q = QueueQuery {
        limit: Some(s.config.console.page_size),
        cursor: p.cursor.clone(),
        all: p.all,
    };
    let v = s.queue.list(&op.actor, &q)?;
    let body = html! {
        h1 { "Outbound queue" }
        (layout::notice(p.done.as_deref()))
        p {
            @if p.all { a href="/console/queue" { "Show only pending" } }
            @else { a href="/console/queue?all=true" { "Show finished too" } }
        }
        @let items = v["items"].as_array().cloned().unwrap_or_default();
        @if items.is_empty() { p.muted { "Nothing queued." } }
        @for m in &items {
            @let id = m["id"].as_str().unwrap_or("");
            section.card {
                h2 { (layout::text(&m["subject"])) }
                p.muted { "From " (layout::text(&m["mail_from"])) " · queued " (when(&m["created_at"])) " · " (layout::text(&m["size"])) " bytes · " code { (id) } }
                table {
                    thead { tr { th scope="col" { "Recipient" } th scope="col" { "Status" } th scope="col" { "Attempts" } th scope="col" { "Next try" } th scope="col" { "Last reply" } th scope="col" { "TLS" } } }
                    tbody { @for r in m["recipients"].as_array().into_iter().flatten() {
                        tr {
                            td { (layout::text(&r["address"])) }
                            td { (layout::text(&r["status"])) }
                            td.num { (layout::text(&r["attempts"])) }
                            td { (when(&r["next_attempt_at"])) }
                            td { (layout::text(&r["last_reply"])) }
                            td { (layout::text(&r["tls"])) }
                        }
                    } }
                }
                form.inline method="post" action={"/console/queue/" (layout::enc(id)) "/retry"} {
                    (csrf(&op.csrf))
                    button type="submit" { "Retry now" }
                }
                " "
                form.inline method="post" action={"/console/queue/" (layout::enc(id)) "/cancel"} data-confirm="Cancel delivery to every pending recipient?" {
                    (csrf(&op.csrf))
                    button.danger type="submit" { "Cancel" }
                }
            }
        }
        @if let Some(n) = v["next_cursor"].as_str() {
            nav.pager aria-label="Pages" { a href={"/console/queue?all=" (p.all) "&cursor=" (layout::enc(n))} { "Next page →" } }
        }
    };
    Ok(page(&op, "queue", "Queue", body))
}

async fn retry(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Redirect> {
    s.queue.retry_now(&op.actor, &id).await?;
    Ok(Redirect::to("/console/queue?done=retried"))
}

async fn cancel(
    State(s): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ConsoleResult<Redirect> {
    s.queue.cancel(&op.actor, &id).await?;
    Ok(Redirect::to("/console/queue?done=cancelled"))
}
