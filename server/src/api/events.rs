//! `GET /v1/events`: the live event stream as Server-Sent Events, resumable with
//! `Last-Event-ID`; `GET /v1/events/ws`: the same events over a WebSocket, one JSON text
//! message each (resumable with the header or `?last_event_id=`, which browsers can send).
//! The service decides what the caller sees; this file keeps the connection: it
//! authenticates the caller again before each batch (a revoked key ends the stream), sleeps
//! on the outbox ring, and sends a heartbeat every `events.heartbeat_secs`.

use super::extract::{presented_key, Auth, Query};
use super::{ApiResult, AppState};
use crate::events::{StreamEvent, Subscription};
use crate::identity::Actor;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(sse))
        .route("/v1/events/ws", get(ws))
}

#[derive(Deserialize, Default)]
pub struct StreamQuery {
    /// Comma-separated event types; none = all the caller may see.
    types: Option<String>,
    /// Where to resume when the client cannot send `Last-Event-ID` (WebSocket in browsers).
    last_event_id: Option<String>,
}

impl StreamQuery {
    pub fn types(&self) -> Vec<String> {
        self.types
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// Backstop for a missed ring (the outbox rings on every write in this process).
const RESCAN: Duration = Duration::from_secs(5);

/// A stream's connection state, carried from batch to batch.
pub struct Follow {
    s: AppState,
    key: zeroize::Zeroizing<String>,
    sub: Subscription,
    after: u64,
    ring: tokio::sync::watch::Receiver<()>,
    queue: VecDeque<StreamEvent>,
    /// `events.gather_ms`.
    gather: Duration,
}

impl Follow {
    /// Opens the subscription for `actor`, from `Last-Event-ID` (or now).
    pub fn open(
        s: &AppState,
        actor: &Actor,
        parts: &Parts,
        types: &[String],
        last_event_id: Option<&str>,
    ) -> ApiResult<Follow> {
        let sub = s.streams.subscribe(actor, types)?;
        let after = s.streams.start_after(last_event_id)?;
        Ok(Follow {
            s: s.clone(),
            key: zeroize::Zeroizing::new(presented_key(parts).unwrap_or("").to_string()),
            sub,
            after,
            ring: s.streams.watch(),
            queue: VecDeque::new(),
            gather: Duration::from_millis(s.config.events.gather_ms),
        })
    }

    /// The next event, or `None` when the stream ends (caller no longer valid, shutdown).
    pub async fn next(&mut self) -> Option<StreamEvent> {
        let closing = self.s.streams.closing();
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            let actor = self.s.identity.authenticate_valid_only(&self.key)?;
            self.ring.borrow_and_update();
            match self.s.streams.poll(&actor, &mut self.sub, self.after).await {
                Ok((after, evs)) => {
                    self.after = after;
                    if !evs.is_empty() {
                        self.queue.extend(evs);
                        continue;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "event stream failed");
                    return None;
                }
            }
            tokio::select! {
                _ = closing.cancelled() => return None,
                _ = self.ring.changed() => {}
                _ = tokio::time::sleep(RESCAN) => continue,
            }
            // Woken by a write: the writes right behind it go in the same read and the same
            // socket write.
            if !crate::events::gather(self.gather, &closing).await {
                return None;
            }
        }
    }
}

/// `Last-Event-ID`, from the header or the query.
fn last_event_id<'a>(parts: &'a Parts, q: &'a StreamQuery) -> Option<&'a str> {
    parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(q.last_event_id.as_deref())
}

async fn sse(
    State(s): State<AppState>,
    Auth(actor): Auth,
    parts: Parts,
    Query(q): Query<StreamQuery>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    let follow = Follow::open(&s, &actor, &parts, &q.types(), last_event_id(&parts, &q))?;
    let heartbeat = Duration::from_secs(s.config.events.heartbeat_secs.max(1));
    let stream = futures::stream::unfold(follow, |mut f| async move {
        let ev = f.next().await?;
        let e = Event::default().id(&ev.id).event(&ev.kind).data(ev.text());
        Some((Ok(e), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

async fn ws(
    State(s): State<AppState>,
    Auth(actor): Auth,
    parts: Parts,
    Query(q): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<axum::response::Response> {
    // Opened (checked and audited) before the upgrade, so a refusal is an HTTP error.
    let follow = Follow::open(&s, &actor, &parts, &q.types(), last_event_id(&parts, &q))?;
    let heartbeat = Duration::from_secs(s.config.events.heartbeat_secs.max(1));
    Ok(upgrade.on_upgrade(move |socket| pump(socket, follow, heartbeat)))
}

/// Sends events until the stream or the client ends; pings every `heartbeat`. What the
/// client sends is read only to notice a close.
async fn pump(mut socket: WebSocket, mut follow: Follow, heartbeat: Duration) {
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            ev = follow.next() => {
                let Some(ev) = ev else { break };
                if socket.send(Message::Text(ev.text().into())).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
