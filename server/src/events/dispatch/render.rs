//! Event bodies: rendered once, shared by the SSE streams and every webhook.

use super::Dispatcher;
use crate::events::model::Summary;
use crate::events::EventsError;
use crate::mailbox::{Full, FULL_FIELDS};
use crate::store::outbox::event_id;
use crate::store::EventRecord;
use crate::util::rfc3339_millis;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A bounded map of recent renders; the oldest goes first.
#[derive(Default)]
pub(super) struct Rendered {
    /// A cell per event: readers that ask at the same moment (the SSE streams and the
    /// webhooks do) wait for one render instead of each making its own.
    bodies: HashMap<(u64, bool), Arc<Cell>>,
    order: std::collections::VecDeque<(u64, bool)>,
}

/// One event's body, rendered once by whichever reader comes first.
type Cell = tokio::sync::OnceCell<Arc<[u8]>>;

/// Renders kept for other readers of the same event.
const RENDERED_KEPT: usize = 512;

impl Dispatcher {
    /// The org and chain of an event's agent (cached for the batch).
    pub(in crate::events) fn who(
        &self,
        cache: &mut HashMap<String, Option<(String, Vec<String>)>>,
        agent: &str,
    ) -> Result<Option<(String, Vec<String>)>, EventsError> {
        if agent.is_empty() {
            return Ok(None);
        }
        if let Some(v) = cache.get(agent) {
            return Ok(v.clone());
        }
        let v = self.identity.agent(agent)?.map(|a| (a.org_id, a.chain));
        cache.insert(agent.to_string(), v.clone());
        Ok(v)
    }

    /// The JSON body of an event: its envelope, and for message events the message as
    /// `GET /v1/messages/{id}` shows it (unless the webhook asked for `minimal`), rendered
    /// now from the id the outbox holds.
    pub(in crate::events) async fn render(
        &self,
        summary: Summary,
        seq: u64,
        ev: &EventRecord,
        who: Option<(String, Vec<String>)>,
    ) -> Arc<[u8]> {
        let key = (seq, summary == Summary::Full);
        let cell = {
            let mut r = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
            match r.bodies.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(Cell::new());
                    r.bodies.insert(key, c.clone());
                    r.order.push_back(key);
                    while r.order.len() > RENDERED_KEPT {
                        if let Some(old) = r.order.pop_front() {
                            r.bodies.remove(&old);
                        }
                    }
                    c
                }
            }
        };
        let body = cell
            .get_or_init(|| async { self.render_now(summary, seq, ev, who).await.into() })
            .await
            .clone();
        body
    }

    async fn render_now(
        &self,
        summary: Summary,
        seq: u64,
        ev: &EventRecord,
        who: Option<(String, Vec<String>)>,
    ) -> Vec<u8> {
        let compact = ev.data_json();
        let message = match (summary, compact["message_id"].as_str()) {
            (Summary::Full, Some(mid)) if ev.kind.starts_with("message.") => {
                self.mailbox.message(&ev.agent, mid).await.ok()
            }
            _ => None,
        };
        let data = match &message {
            // The message as GET /v1/messages/{id} shows it, and the event's own fields
            // that it does not name.
            Some(m) => {
                let mut extra = match compact {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                extra.retain(|k, _| !FULL_FIELDS.contains(&k.as_str()));
                Data::Message(Box::new(WithExtra {
                    message: m.view(),
                    extra,
                }))
            }
            None => Data::Plain(compact),
        };
        let (org, chain) = who.unwrap_or_default();
        let body = Body {
            id: event_id(seq),
            kind: &ev.kind,
            created_at: rfc3339_millis(ev.created_at_ms),
            agent: (!ev.agent.is_empty()).then_some(&ev.agent),
            org: (!org.is_empty()).then_some(org),
            chain,
            data,
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// An event as webhooks and streams receive it.
#[derive(Serialize)]
struct Body<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'a str,
    created_at: String,
    agent: Option<&'a String>,
    org: Option<String>,
    chain: Vec<String>,
    data: Data<'a>,
}

/// An event's `data`: as the outbox holds it, or a message event's message in full.
#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Message(Box<WithExtra<'a>>),
    Plain(Value),
}

/// A message event's data: the message, and the event's fields beside it.
#[derive(Serialize)]
struct WithExtra<'a> {
    #[serde(flatten)]
    message: Full<'a>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}
