//! Mail, continued: a thread (its messages oldest first, each as its stored preview, so the
//! page costs the thread and never decodes a body) and attachment downloads.
//!
//! An attachment is the sender's bytes: it is always served as a download
//! (`Content-Disposition: attachment`, `application/octet-stream`, `nosniff`) under a
//! `sandbox` Content-Security-Policy, so even a browser that opened it could not run it as
//! the console's origin. Attachments past `console.max_attachment_bytes` are refused.

use super::error::{ConsoleError, ConsoleResult};
use super::layout::{self, page, when};
use super::mail::{from_text, reader, subject, verified_badge};
use super::session::Operator;
use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::html;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mail/{agent}/thread/{thread}", get(thread))
        .route("/mail/{agent}/{id}/attachments/{aid}", get(attachment))
}

/// The console link of a thread.
pub fn thread_href(agent: &str, thread: &str) -> String {
    format!(
        "/console/mail/{}/thread/{}",
        layout::enc(agent),
        layout::enc(thread)
    )
}

/// The console link of one attachment's download.
pub fn attachment_href(agent: &str, id: &str, aid: &serde_json::Value) -> String {
    format!(
        "/console/mail/{}/{}/attachments/{}",
        layout::enc(agent),
        layout::enc(id),
        aid.as_u64().unwrap_or(0)
    )
}

async fn thread(
    State(s): State<AppState>,
    op: Operator,
    Path((agent, thread)): Path<(String, String)>,
) -> ConsoleResult<Html<String>> {
    let a = s.identity.get_agent(&op.actor, &agent)?;
    let actor = reader(&s, &op, &a.id)?;
    let t = s.mailbox.thread(&actor, &thread)?;
    let first = t.messages.first().map(|m| m.summary_json());
    let title = first.as_ref().map_or_else(|| "Thread".to_string(), subject);
    let body = html! {
        h1 { (title) }
        p { a href={"/console/mail?agent=" (layout::enc(&a.id))} { "← Mail of " (a.address()) } }
        p.muted { (t.messages.len()) " messages in this thread, oldest first." }
        @if t.truncated { p.muted { "(only the first messages of a long thread are shown)" } }
        ol.thread {
            @for m in &t.messages {
                @let v = m.summary_json();
                li {
                    article aria-label={"Message from " (from_text(&v["from"]))} {
                        h2 {
                            a href={"/console/mail/" (layout::enc(&a.id)) "/" (layout::enc(&m.id))} { (subject(&v)) }
                        }
                        p {
                            (from_text(&v["from"])) " · " (when(&v["received_at"])) " · " (m.folder.name()) " "
                            (verified_badge(m.sender_authenticated()))
                            @if !m.attachments.is_empty() { " " span.badge.none { (m.attachments.len()) " attachments" } }
                        }
                        pre.body { (m.preview) }
                    }
                }
            }
        }
    };
    Ok(page(&op, "mail", &title, body))
}

async fn attachment(
    State(s): State<AppState>,
    op: Operator,
    Path((agent, id, aid)): Path<(String, String, u32)>,
) -> ConsoleResult<Response> {
    let a = s.identity.get_agent(&op.actor, &agent)?;
    let actor = reader(&s, &op, &a.id)?;
    let (info, bytes) = s.mailbox.attachment(&actor, &id, aid).await?;
    let limit = s.config.console.max_attachment_bytes;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(ConsoleError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the attachment is {} bytes, more than the console serves ({limit}); fetch it \
                 with GET /v1/messages/{{id}}/attachments/{aid}",
                bytes.len()
            ),
        ));
    }
    let name = crate::api::safe_filename(info.filename.as_deref(), aid);
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    // Never the sender's type: a download, whatever the part claims to be.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}
