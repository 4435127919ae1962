//! The live event stream (`GET /v1/events` as SSE, `GET /v1/events/ws`): the outbox read in
//! sequence order from where the client says it stopped, so a resumed stream has no gap and
//! no duplicate within the retention.
//!
//! What a caller sees: an admin every event; an agent the events about itself and the
//! sub-agents it created (transitively), and message events only while its key holds
//! `mail:read`. The front-end authenticates the caller again before every batch (DESIGN §14,
//! re-check at the point of use) and passes the actor it got, so a revoked key or agent ends
//! the stream and a narrowed key narrows it.

use super::dispatch::Dispatcher;
use super::model::{is_message_event, Summary, EVENT_TYPES};
use super::EventsError;
use crate::audit::{Audit, Outcome};
use crate::identity::{Actor, IdentityService, Scope};
use crate::store::outbox::{event_id, parse_event_id};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Events read from the outbox per look.
const BATCH: usize = 256;

pub struct EventStreams {
    store: Store,
    audit: Arc<Audit>,
    identity: Arc<IdentityService>,
    dispatcher: Arc<Dispatcher>,
    /// Cancelled at shutdown: streams end so the HTTP drain need not outlast them.
    closing: CancellationToken,
    /// Open streams per caller (agent id, or "" for the admins), against `max_per_caller`.
    /// A std mutex: held to count, never across an await.
    open: Arc<Mutex<HashMap<String, usize>>>,
    max_per_caller: usize,
}

/// One open stream's place in the count; dropping it (the connection ends) gives it back.
pub struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.caller);
            }
        }
    }
}

/// What one stream asked for, fixed when it opened, its slot in the per-caller count, and
/// what it learnt about agents while reading.
pub struct Subscription {
    /// Requested types; empty = all.
    pub types: Vec<String>,
    /// The caller and the agents below it, read when the stream first polls and again after
    /// every `agent.created` it passes (the only change that adds to a family; agents are
    /// never re-parented). Reading it per batch walked every agent record for each event a
    /// busy stream sent, however few of them the caller owns.
    family: Option<HashSet<String>>,
    /// The org and chain of the agents seen so far (neither changes once the agent exists).
    who: HashMap<String, Option<(String, Vec<String>)>>,
    _slot: StreamSlot,
}

/// Agents whose org and chain a stream keeps; past this the map starts again.
const WHO_KEPT: usize = 1024;

/// One event as sent on a stream.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub id: String,
    pub kind: String,
    /// The same JSON a webhook with `summary: full` receives: the render the webhooks share,
    /// not a copy of it.
    pub json: Arc<[u8]>,
}

impl StreamEvent {
    /// The body as text (serde_json writes UTF-8 only).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.json).unwrap_or("")
    }
}

impl EventStreams {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        identity: Arc<IdentityService>,
        dispatcher: Arc<Dispatcher>,
        max_per_caller: usize,
    ) -> EventStreams {
        EventStreams {
            store,
            audit,
            identity,
            dispatcher,
            closing: CancellationToken::new(),
            open: Arc::default(),
            max_per_caller,
        }
    }

    /// Opens a stream for `actor`: checks the types and audits `events.stream`.
    pub fn subscribe(&self, actor: &Actor, types: &[String]) -> Result<Subscription, EventsError> {
        for t in types {
            if !EVENT_TYPES.contains(&t.as_str()) {
                return Err(EventsError::Invalid(format!("types: unknown type {t:?}")));
            }
        }
        if actor.agent_id().is_none() {
            actor.require_admin(&self.audit, "events.stream", "")?;
        }
        let caller = actor.agent_id().unwrap_or("").to_string();
        let slot = {
            let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(caller.clone()).or_default();
            if *n >= self.max_per_caller.max(1) {
                return Err(EventsError::TooManyStreams(self.max_per_caller.max(1)));
            }
            *n += 1;
            StreamSlot {
                open: self.open.clone(),
                caller: caller.clone(),
            }
        };
        actor.audit(
            &self.audit,
            "events.stream",
            &caller,
            Outcome::Ok,
            serde_json::json!({ "types": types }),
        )?;
        Ok(Subscription {
            types: types.to_vec(),
            family: None,
            who: HashMap::new(),
            _slot: slot,
        })
    }

    /// The position to stream after: the event named by `Last-Event-ID` (resuming), else
    /// the newest event (only what happens from now on).
    pub fn start_after(&self, last_event_id: Option<&str>) -> Result<u64, EventsError> {
        match last_event_id.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => parse_event_id(id)
                .ok_or_else(|| EventsError::Invalid("Last-Event-ID: not an event id".into())),
            None => Ok(self.store.last_event_seq()?),
        }
    }

    /// Events after `after` that `actor` (as authenticated just now) may see, rendered, and
    /// the position reached (past events it may not see, too).
    pub async fn poll(
        &self,
        actor: &Actor,
        sub: &mut Subscription,
        after: u64,
    ) -> Result<(u64, Vec<StreamEvent>), EventsError> {
        let events = self.store.events_after(after, BATCH)?;
        let Some(last) = events.last().map(|e| e.0) else {
            return Ok((after, Vec::new()));
        };
        let agents = match actor.agent_id() {
            Some(me) => {
                // Read after the batch: an agent created since is in the tree by now.
                if sub.family.is_none() || events.iter().any(|(_, e)| e.kind == "agent.created") {
                    sub.family = Some(self.family(me)?);
                }
                sub.family.as_ref()
            }
            None => None,
        };
        let mail = actor.is_admin() || actor.scopes.contains(Scope::MailRead);
        if sub.who.len() > WHO_KEPT {
            sub.who.clear();
        }
        let mut out = Vec::new();
        for (seq, ev) in events {
            let wanted = (sub.types.is_empty() || sub.types.contains(&ev.kind))
                && (mail || !is_message_event(&ev.kind))
                && agents.is_none_or(|a| a.contains(&ev.agent));
            if !wanted {
                continue;
            }
            let org = self.dispatcher.who(&mut sub.who, &ev.agent)?;
            let json = self.dispatcher.render(Summary::Full, seq, &ev, org).await;
            out.push(StreamEvent {
                id: event_id(seq),
                kind: ev.kind,
                json,
            });
        }
        Ok((last, out))
    }

    /// `me` and every agent below it (sub-agents of sub-agents too).
    fn family(&self, me: &str) -> Result<HashSet<String>, EventsError> {
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = self.identity.page_agents(1000, cursor.as_deref())?;
            for a in page {
                if let Some(p) = a.parent {
                    children.entry(p).or_default().push(a.id);
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let mut out = HashSet::from([me.to_string()]);
        let mut todo = vec![me.to_string()];
        while let Some(a) = todo.pop() {
            for c in children.remove(&a).unwrap_or_default() {
                if out.insert(c.clone()) {
                    todo.push(c);
                }
            }
        }
        Ok(out)
    }

    /// A receiver that changes after every outbox write (what a stream sleeps on).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<()> {
        self.store.watch_events()
    }

    /// Cancelled when the server stops.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Ends every open stream.
    pub fn shutdown(&self) {
        self.closing.cancel();
    }
}
