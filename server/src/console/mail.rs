//! Mail: an agent's folders and messages (one index page at a time: the listing's cost is
//! the page, never the mailbox), a message view and its raw source (threads and attachment
//! downloads: `mail_parts`).
//!
//! Sender HTML is never rendered here: a message shows its extracted text (or plain text),
//! escaped, with the verification codes and links the extractor found highlighted as text.
//! Links are not clickable: the console origin holds an admin session, and a mail's link is
//! the sender's word. The raw source is shown as escaped text too.

use super::error::ConsoleResult;
use super::layout::{self, page, when};
use super::session::Operator;
use super::AppState;
use crate::identity::{Scope, ScopeSet};
use crate::mailbox::ListQuery;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

/// Most characters of a body or raw source shown; the rest is cut with a note.
const MAX_SHOWN: usize = 256 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mail", get(index))
        .route("/mail/{agent}/{id}", get(message))
        .route("/mail/{agent}/{id}/raw", get(raw))
}

pub(super) fn reader(
    s: &AppState,
    op: &Operator,
    agent: &str,
) -> ConsoleResult<crate::identity::Actor> {
    let mut scopes = ScopeSet::default();
    scopes.insert(Scope::MailRead);
    Ok(s.identity.operator_for_agent(&op.actor, agent, scopes)?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MailParams {
    agent: String,
    folder: String,
    q: String,
    cursor: Option<String>,
}

async fn index(
    State(s): State<AppState>,
    op: Operator,
    Query(p): Query<MailParams>,
) -> ConsoleResult<Html<String>> {
    if p.agent.is_empty() {
        let (agents, _) = s
            .identity
            .list_agents(&op.actor, s.config.console.page_size, None)?;
        let body = html! {
            h1 { "Mail" }
            p { "Pick an agent (or open one from " a href="/console/agents" { "Agents" } ")." }
            ul {
                @for a in &agents {
                    li { a href={"/console/mail?agent=" (layout::enc(&a.id))} { (a.address()) } }
                }
            }
        };
        return Ok(page(&op, "mail", "Mail", body));
    }
    let agent = s.identity.get_agent(&op.actor, &p.agent)?;
    let actor = reader(&s, &op, &agent.id)?;
    let folders = s.mailbox.folders(&agent.id).await?;
    let q = ListQuery {
        folder: (!p.folder.is_empty()).then(|| p.folder.clone()),
        q: (!p.q.trim().is_empty()).then(|| p.q.clone()),
        limit: Some(s.config.console.page_size),
        cursor: p.cursor.clone(),
        ..Default::default()
    };
    let list = s.mailbox.list(&actor, &q)?;
    let base = format!("/console/mail?agent={}", layout::enc(&agent.id));
    let body = html! {
        h1 { "Mail of " (agent.address()) }
        nav aria-label="Folders" {
            ul.chain {
                li { a href=(base) aria-current=[p.folder.is_empty().then_some("page")] { "All but Trash" } }
                @for f in &folders {
                    @let name = f.folder.name();
                    li {
                        a href={(base) "&folder=" (layout::enc(name))} aria-current=[(p.folder == name).then_some("page")] {
                            (name) " (" (f.exists) @if f.unseen > 0 { ", " (f.unseen) " unread" } ")"
                        }
                    }
                }
            }
        }
        form.filters method="get" action="/console/mail" role="search" {
            input type="hidden" name="agent" value=(agent.id);
            @if !p.folder.is_empty() { input type="hidden" name="folder" value=(p.folder); }
            div { label for="q" { "Search" } input type="search" id="q" name="q" value=(p.q); }
            button type="submit" { "Search" }
        }
        @if list.items.is_empty() {
            p.muted { "No messages." }
        } @else {
            table {
                thead { tr { th scope="col" { "From" } th scope="col" { "Subject" } th scope="col" { "Folder" } th scope="col" { "Received" } th scope="col" { "Sender" } } }
                tbody {
                    @for m in &list.items {
                        @let v = m.summary_json();
                        tr {
                            td { (from_text(&v["from"])) }
                            td {
                                a href={"/console/mail/" (layout::enc(&agent.id)) "/" (layout::enc(&m.id))} {
                                    @if m.is_unread() { strong { (subject(&v)) } } @else { (subject(&v)) }
                                }
                            }
                            td { (m.folder.name()) }
                            td { (when(&v["received_at"])) }
                            td { (verified_badge(m.sender_authenticated())) }
                        }
                    }
                }
            }
        }
        @if let Some(n) = &list.next_cursor {
            nav.pager aria-label="Pages" {
                a href={(base) "&folder=" (layout::enc(&p.folder)) "&q=" (layout::enc(&p.q)) "&cursor=" (layout::enc(n))} { "Older →" }
            }
        }
    };
    Ok(page(&op, "mail", "Mail", body))
}

pub(super) fn subject(v: &Value) -> String {
    match v["subject"].as_str() {
        Some(s) if !s.trim().is_empty() => s.to_string(),
        _ => "(no subject)".into(),
    }
}

pub(super) fn from_text(v: &Value) -> String {
    let email = v["email"].as_str().unwrap_or("");
    match v["name"].as_str() {
        Some(n) if !n.is_empty() => format!("{n} <{email}>"),
        _ => email.to_string(),
    }
}

pub(super) fn verified_badge(ok: bool) -> Markup {
    html! {
        @if ok { span.badge.ok { "verified sender" } } @else { span.badge.none { "unverified sender" } }
    }
}

/// A badge for one mechanism's stored verdict (`pass` green, anything else red, none grey).
fn auth_badge(label: &str, result: &Value) -> Markup {
    let r = result
        .as_str()
        .or_else(|| result["result"].as_str())
        .unwrap_or("none");
    let class = match r {
        "pass" => "badge ok",
        "none" | "" => "badge none",
        _ => "badge bad",
    };
    html! { span class=(class) { (label) ": " (r) } " " }
}

/// The text with every occurrence of a code (`<mark>`) and of a link (a highlighted span,
/// not a link) picked out; everything else plain, escaped text.
pub fn highlight(text: &str, codes: &[String], links: &[String]) -> Markup {
    let mut needles: Vec<(&str, bool)> = codes
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| (c.as_str(), true))
        .chain(
            links
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| (l.as_str(), false)),
        )
        .collect();
    // Longest first, so a link containing a code wins at the same position.
    needles.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut parts: Vec<(String, Option<bool>)> = Vec::new();
    let mut plain_from = 0;
    let mut i = 0;
    while i < text.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let hit = needles.iter().find(|(n, _)| text[i..].starts_with(n));
        match hit {
            Some((n, is_code)) => {
                if plain_from < i {
                    parts.push((text[plain_from..i].to_string(), None));
                }
                parts.push(((*n).to_string(), Some(*is_code)));
                i += n.len();
                plain_from = i;
            }
            None => i += 1,
        }
    }
    if plain_from < text.len() {
        parts.push((text[plain_from..].to_string(), None));
    }
    html! {
        @for (t, kind) in &parts {
            @match kind {
                Some(true) => mark.code { (t) },
                Some(false) => span.link-hl { (t) },
                None => (t),
            }
        }
    }
}

fn cut(s: &str) -> (&str, bool) {
    if s.len() <= MAX_SHOWN {
        return (s, false);
    }
    let mut end = MAX_SHOWN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

async fn message(
    State(s): State<AppState>,
    op: Operator,
    Path((agent, id)): Path<(String, String)>,
) -> ConsoleResult<Html<String>> {
    let a = s.identity.get_agent(&op.actor, &agent)?;
    let actor = reader(&s, &op, &a.id)?;
    let m = s.mailbox.get(&actor, &id).await?.to_json();
    let codes: Vec<String> = m["codes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect();
    let links: Vec<String> = m["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["url"].as_str().map(str::to_string))
        .collect();
    let body_text = match m["extracted_text"].as_str() {
        Some(t) if !t.trim().is_empty() => t.to_string(),
        _ => m["text"].as_str().unwrap_or("").to_string(),
    };
    let (shown, was_cut) = cut(&body_text);
    let auth = &m["auth"];
    let raw_href = format!(
        "/console/mail/{}/{}/raw",
        layout::enc(&a.id),
        layout::enc(&id)
    );
    let body = html! {
        h1 { (subject(&m)) }
        p { a href={"/console/mail?agent=" (layout::enc(&a.id))} { "← Mail of " (a.address()) } }
        dl {
            dt { "From" } dd { (from_text(&m["from"])) " " (verified_badge(auth["sender_authenticated"] == true)) }
            dt { "To" } dd { @for t in m["to"].as_array().into_iter().flatten() { (from_text(t)) "; " } }
            dt { "Date" } dd { (when(&m["date"])) }
            dt { "Received" } dd { (when(&m["received_at"])) }
            dt { "Folder" } dd { (layout::text(&m["folder"])) }
            @if let Some(t) = m["thread_id"].as_str().filter(|t| !t.is_empty()) {
                dt { "Thread" } dd { a href=(super::mail_parts::thread_href(&a.id, t)) { "Show the thread" } }
            }
            dt { "Authentication" } dd {
                (auth_badge("SPF", &auth["spf"]))
                (auth_badge("DKIM", &auth["dkim"]))
                (auth_badge("DMARC", &auth["dmarc"]))
            }
        }
        @if !codes.is_empty() {
            h2 { "Codes" }
            ul { @for c in m["codes"].as_array().into_iter().flatten() {
                li { mark.code { (layout::text(&c["code"])) } " — " span.muted { (layout::text(&c["context"])) } }
            } }
        }
        @if !links.is_empty() {
            h2 { "Links" }
            ul { @for l in m["links"].as_array().into_iter().flatten() {
                li { span.link-hl { (layout::text(&l["url"])) } " " span.badge.none { (layout::text(&l["kind"])) } }
            } }
        }
        h2 { "Text" }
        @if m["html"].as_str().is_some_and(|h| !h.is_empty()) {
            p.muted { "This message has an HTML body; it is shown here only as text." }
        }
        pre.body { (highlight(shown, &codes, &links)) }
        @if was_cut { p.muted { "(cut: the text is longer)" } }
        @if let Some(att) = m["attachments"].as_array().filter(|a| !a.is_empty()) {
            h2 { "Attachments" }
            table {
                thead { tr { th scope="col" { "File" } th scope="col" { "Type" } th.num scope="col" { "Bytes" } } }
                tbody { @for x in att {
                    tr {
                        td { a href=(super::mail_parts::attachment_href(&a.id, &id, &x["id"])) download { "Download " (layout::text(&x["filename"])) } }
                        td { (layout::text(&x["content_type"])) }
                        td.num { (layout::text(&x["size"])) }
                    }
                } }
            }
        }
        p { a href=(raw_href) { "Raw source" } }
    };
    Ok(page(&op, "mail", &subject(&m), body))
}

async fn raw(
    State(s): State<AppState>,
    op: Operator,
    Path((agent, id)): Path<(String, String)>,
) -> ConsoleResult<Html<String>> {
    let a = s.identity.get_agent(&op.actor, &agent)?;
    let actor = reader(&s, &op, &a.id)?;
    let bytes = s.mailbox.raw(&actor, &id)?;
    let text = String::from_utf8_lossy(&bytes);
    let (shown, was_cut) = cut(&text);
    let body = html! {
        h1 { "Raw source" }
        p { a href={"/console/mail/" (layout::enc(&a.id)) "/" (layout::enc(&id))} { "← Message" } }
        pre.raw { (shown) }
        @if was_cut { p.muted { "(cut: the message is longer)" } }
    };
    Ok(page(&op, "mail", "Raw source", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_links_are_marked_and_the_rest_escaped() {
        let out = highlight(
            "Your code is 123456. Go to https://x.test/v?a=1&b=<2> now",
            &["123456".into()],
            &["https://x.test/v?a=1&b=<2>".into()],
        )
        .into_string();
        assert!(out.contains("<mark class=\"code\">123456</mark>"));
        assert!(out.contains("<span class=\"link-hl\">https://x.test/v?a=1&amp;b=&lt;2&gt;</span>"));
        assert!(!out.contains("<2>"));
        assert_eq!(highlight("héllo ✓", &[], &[]).into_string(), "héllo ✓");
    }
}
