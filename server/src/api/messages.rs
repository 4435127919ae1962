//! Agent mail routes (DESIGN §6): list, wait, get, raw, attachment, patch, delete.
//! Every decision (scope, ownership, validation) is the mailbox service's.

use super::extract::{Auth, Json, Path, Query};
use super::{ApiResult, AppState, RequestStarted};
use crate::mailbox::{ListQuery, MessagePatch, WaitQuery};
use crate::metrics::SendStage;
use crate::queue::{ReplyRequest, SendRequest};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use serde_json::Value;

/// `max_body`: `api.max_body_bytes`, for the two routes that take attachments.
pub fn router(max_body: usize) -> Router<AppState> {
    let large = axum::extract::DefaultBodyLimit::max(max_body);
    // `/wait` is registered before `/{id}`; axum also prefers the static segment.
    Router::new()
        .route("/v1/messages", get(list))
        .route("/v1/messages/wait", get(wait))
        .route("/v1/messages/send", post(send).layer(large))
        .route("/v1/messages/{id}/reply", post(reply).layer(large))
        .route(
            "/v1/messages/{id}",
            get(get_message).patch(update).delete(delete),
        )
        .route("/v1/messages/{id}/raw", get(raw))
        .route("/v1/messages/{id}/attachments/{aid}", get(attachment))
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let page = s.mailbox.list(&actor, &q)?;
    Ok(axum::Json(page.view()).into_response())
}

/// A wait may outlast its key: when it ends, the caller is authenticated again from the same
/// headers, so a key or agent revoked meanwhile gets 401 instead of the message.
async fn wait(
    State(s): State<AppState>,
    Auth(actor): Auth,
    parts: axum::http::request::Parts,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let recheck = || {
        let key = super::extract::presented_key(&parts).unwrap_or("");
        s.identity.authenticate(key, &super::extract::peer(&parts))
    };
    Ok(match s.mailbox.wait_rechecked(&actor, &q, recheck).await? {
        Some(m) => axum::Json(m.to_json()).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn get_message(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.queue.message_json(&actor, &id).await?))
}

async fn send(
    State(s): State<AppState>,
    started: Option<Extension<RequestStarted>>,
    Auth(actor): Auth,
    Json(req): Json<SendRequest>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    // Routing, authentication and the JSON body are done: the send's `accept` stage.
    if let Some(Extension(RequestStarted(t))) = started {
        s.metrics.send_stages.done(SendStage::Accept, t);
    }
    let accepted = s.queue.send(&actor, &req).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted.to_json())))
}

async fn reply(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(req): Json<ReplyRequest>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let accepted = s.queue.reply(&actor, &id, &req).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted.to_json())))
}

async fn raw(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (size, reader) = s.mailbox.raw_reader(&actor, &id)?;
    let body = axum::body::Body::from_stream(read_in_chunks(reader));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("message/rfc822"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(size)),
        ],
        body,
    )
        .into_response())
}

/// Streams a blocking reader (a blob file, or its decompression) in 64 KiB chunks from the
/// blocking pool; at most a few chunks wait in memory for a slow client.
fn read_in_chunks(
    mut reader: crate::store::BlobReader,
) -> impl futures::Stream<Item = std::io::Result<axum::body::Bytes>> {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; 64 * 1024];
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(buf.into())).is_err() {
                    break; // the client went away
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!(error = %e, "reading a message body failed");
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

/// A filename that is safe inside a quoted header parameter and on any file system.
pub(crate) fn safe_filename(name: Option<&str>, aid: u32) -> String {
    let cleaned: String = name
        .unwrap_or("")
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        format!("attachment-{aid}")
    } else {
        cleaned
    }
}

async fn attachment(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, aid)): Path<(String, u32)>,
) -> ApiResult<Response> {
    let (info, bytes) = s.mailbox.attachment(&actor, &id, aid).await?;
    // The type is the sender's claim: keep it only if it is a plain header value.
    let ctype = HeaderValue::from_str(&info.content_type)
        .ok()
        .filter(|_| info.content_type.contains('/'))
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let disposition = format!(
        "attachment; filename=\"{}\"",
        safe_filename(info.filename.as_deref(), aid)
    );
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, ctype);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Attacker-supplied content must never run as this origin's page.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    Ok(resp)
}

async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Json(patch): Json<MessagePatch>,
) -> ApiResult<axum::Json<Value>> {
    let m = s.mailbox.update(&actor, &id, &patch).await?;
    Ok(axum::Json(m.summary_json()))
}

async fn delete(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(s.mailbox.delete(&actor, &id).await?.to_json()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_made_safe() {
        assert_eq!(safe_filename(Some("report.pdf"), 0), "report.pdf");
        assert_eq!(safe_filename(Some("../../etc/passwd"), 0), "passwd");
        assert_eq!(safe_filename(Some("a\"b;\r\nc.txt"), 0), "a_b___c.txt");
        assert_eq!(safe_filename(Some("..."), 3), "attachment-3");
        assert_eq!(safe_filename(None, 2), "attachment-2");
        assert_eq!(safe_filename(Some("façade.txt"), 0), "fa_ade.txt");
    }
}
