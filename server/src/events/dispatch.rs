//! The webhook dispatcher: one worker per enabled webhook reads the outbox from its cursor,
//! in sequence order, and delivers each event it wants before the next (so order holds per
//! webhook, and with it per (webhook, agent)). Cursor, failure count and each delivery's
//! state are in the store, so a restart resumes where it stopped: at-least-once.
//!
//! Workers sleep on the outbox's in-process ring (`Store::watch_events`) with a slow rescan
//! as a backstop. A dead endpoint only holds its own worker: attempts run under a global and
//! a per-endpoint semaphore, and nothing on the mail path waits for any of this.

use super::http::{Sender, Sent};
use super::model::{
    delivery_key, is_message_event, progress_key, Delivery, DeliveryStatus, Progress, Summary,
    Webhook,
};
use super::EventsError;
use crate::audit::{ActorRef, Audit, NewEntry, Outcome};
use crate::config::WebhooksConfig;
use crate::identity::{IdentityService, Scope};
use crate::mailbox::MailboxService;
use crate::store::outbox::event_id;
use crate::store::{EventRecord, Store, Tree};
use crate::util::{now_millis, rfc3339_millis};
use crate::vault::VaultService;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Events a worker reads from the outbox at a time.
const BATCH: usize = 64;

pub struct Dispatcher {
    store: Store,
    audit: Arc<Audit>,
    vault: Arc<VaultService>,
    identity: Arc<IdentityService>,
    mailbox: Arc<MailboxService>,
    settings: WebhooksConfig,
    sender: Sender,
    /// Running workers by webhook id. A std mutex: held to insert or take, never across an
    /// await.
    workers: Mutex<HashMap<String, CancellationToken>>,
    /// Set by [`Dispatcher::run`]: workers are children of it; before it, nothing starts.
    root: Mutex<Option<CancellationToken>>,
    global: Arc<Semaphore>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// The workers' own runtime (`webhooks.dispatch_threads`), set by [`Dispatcher::start`].
    /// On the mail sessions' runtime every wake-up of a worker (the answer of a POST, the
    /// next render) queued behind their work, and one agent's in-order deliveries fell
    /// seconds behind a full-speed inbound load.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// Bodies rendered lately, by (event, summary): the SSE streams and every webhook that
    /// wants an event read it at about the same time, and rendering a message (its summary
    /// JSON with extracted text) once instead of once per reader halved what push cost
    /// inbound mail.
    rendered: Mutex<Rendered>,
}

/// A bounded map of recent renders; the oldest goes first.
#[derive(Default)]
struct Rendered {
    bodies: HashMap<(u64, bool), Arc<[u8]>>,
    order: std::collections::VecDeque<(u64, bool)>,
}

/// Renders kept for other readers of the same event.
const RENDERED_KEPT: usize = 512;

/// Starts the dispatchers' runtime on a thread of its own, which ends (and with it the
/// runtime) at `shutdown`. One thread: a current-thread runtime driven by that thread.
fn dispatch_runtime(
    threads: usize,
    shutdown: CancellationToken,
) -> Result<tokio::runtime::Handle, EventsError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || {
            let built = if threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("webhooks")
                    .enable_all()
                    .build()
            };
            let rt = match built {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            rt.block_on(shutdown.cancelled());
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| EventsError::Internal(format!("cannot start the webhook thread: {e}")))?;
    rx.recv()
        .map_err(|_| EventsError::Internal("the webhook thread ended at once".into()))?
        .map_err(|e| EventsError::Internal(format!("cannot start the webhook runtime: {e}")))
}

/// How long a worker waits for the writers' own commits to make an event durable before
/// it flushes itself.
const DURABLE_PATIENCE: Duration = Duration::from_millis(50);

/// Successful deliveries are recorded at least this often while a worker is busy.
const RECORD_EVERY: Duration = Duration::from_millis(250);

/// A worker's position between batches: its progress is read from the store once, when it
/// starts, and written with the deliveries it made.
struct Worker {
    progress: Option<Progress>,
    delivered: Vec<(Vec<u8>, Delivery)>,
    /// `progress` moved past what the store holds (skipped events, too).
    unsaved: bool,
    saved_at: std::time::Instant,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            progress: None,
            delivered: Vec::new(),
            unsaved: false,
            saved_at: std::time::Instant::now(),
        }
    }
}

/// What a worker does next.
enum Step {
    More,
    Idle,
    Stop,
}

/// How one event's delivery ended.
enum Ended {
    /// Delivered or given up on: the cursor moves past it.
    Done,
    /// The webhook was disabled, or the worker told to stop.
    Stop,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        vault: Arc<VaultService>,
        identity: Arc<IdentityService>,
        mailbox: Arc<MailboxService>,
        settings: WebhooksConfig,
    ) -> Result<Dispatcher, String> {
        let sender = Sender::new(&settings)?;
        Ok(Dispatcher {
            global: Arc::new(Semaphore::new(settings.max_concurrent.max(1))),
            store,
            audit,
            vault,
            identity,
            mailbox,
            settings,
            sender,
            workers: Mutex::default(),
            root: Mutex::default(),
            endpoints: Mutex::default(),
            runtime: Mutex::default(),
            rendered: Mutex::default(),
        })
    }

    /// Starts a worker per enabled webhook and the outbox pruning task (every
    /// `prune_every`, events older than `retention`); they stop with `shutdown`.
    pub fn start(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        retention: Duration,
        prune_every: Duration,
    ) -> Result<(), EventsError> {
        let handle = dispatch_runtime(self.settings.dispatch_threads, shutdown.clone())?;
        *self.runtime.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        *self.root.lock().unwrap_or_else(|p| p.into_inner()) = Some(shutdown.clone());
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(prune_every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let d = me.clone();
                        match tokio::task::spawn_blocking(move || d.prune(retention)).await {
                            Ok(Ok(0)) => {}
                            Ok(Ok(n)) => tracing::info!(pruned = n, "old events pruned from the outbox"),
                            Ok(Err(e)) => tracing::error!(error = %e, "cannot prune the event outbox"),
                            Err(e) => tracing::error!(error = %e, "the outbox pruning task failed"),
                        }
                    }
                }
            }
        });
        let ids: Vec<String> = self
            .store
            .scan_prefix(Tree::Webhooks, &[])
            .map(|r| r.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
            .collect::<Result<_, _>>()?;
        for id in ids {
            self.reload(&id);
        }
        Ok(())
    }

    /// (Re)starts the worker of `id` after a change: stops the running one, and starts a new
    /// one that reads the webhook and its cursor afresh (it exits at once if the webhook is
    /// gone or disabled).
    pub fn reload(self: &Arc<Self>, id: &str) {
        let Some(root) = self.root.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let stop = root.child_token();
        if let Some(old) = self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), stop.clone())
        {
            old.cancel();
        }
        let me = self.clone();
        let id = id.to_string();
        let work = async move { me.work(id, stop).await };
        match self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(rt) => drop(rt.spawn(work)),
            None => drop(tokio::spawn(work)),
        }
    }

    async fn work(self: Arc<Self>, id: String, stop: CancellationToken) {
        let mut rung = self.store.watch_events();
        let rescan = Duration::from_secs(self.settings.rescan_secs.max(1));
        let mut st = Worker::default();
        loop {
            rung.borrow_and_update();
            let step = tokio::select! {
                _ = stop.cancelled() => Step::Stop,
                s = self.step(&id, stop.clone(), &mut st) => s.unwrap_or_else(|e| {
                    tracing::error!(webhook = %id, error = %e, "webhook dispatch failed; retrying");
                    // Read the cursor afresh: what was not recorded is sent again.
                    st = Worker::default();
                    Step::Idle
                }),
            };
            match step {
                Step::More => continue,
                Step::Stop => break,
                Step::Idle => {
                    // Nothing to send: record what was (the worker may sleep for long).
                    if let Err(e) = self.record(&id, &mut st) {
                        tracing::error!(webhook = %id, error = %e, "cannot record webhook deliveries");
                        st = Worker::default();
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = rung.changed() => {}
                        _ = tokio::time::sleep(rescan) => {}
                    }
                }
            }
        }
        if let Err(e) = self.record(&id, &mut st) {
            tracing::error!(webhook = %id, error = %e, "cannot record webhook deliveries");
        }
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if workers
            .get(&id)
            .is_some_and(|t| t.is_cancelled() || *t == stop)
        {
            workers.remove(&id);
        }
    }

    /// Writes the deliveries not yet recorded and the progress (if the worker has any).
    fn record(&self, id: &str, st: &mut Worker) -> Result<(), EventsError> {
        if let Some(p) = &st.progress {
            if !st.delivered.is_empty() || st.unsaved {
                self.save(id, &st.delivered, p)?;
            }
        }
        st.delivered.clear();
        st.unsaved = false;
        st.saved_at = std::time::Instant::now();
        Ok(())
    }

    /// One batch of events for webhook `id`.
    async fn step(
        &self,
        id: &str,
        stop: CancellationToken,
        st: &mut Worker,
    ) -> Result<Step, EventsError> {
        let stop = &stop;
        let Some(w) = self
            .store
            .get_record::<Webhook>(Tree::Webhooks, id.as_bytes())?
        else {
            return Ok(Step::Stop);
        };
        if !w.enabled {
            return Ok(Step::Stop);
        }
        // Re-checked at the point of use: a revoked agent's webhooks go quiet, and one that
        // lost `mail:read` gets no more message events.
        let mut mail = true;
        if let Some(owner) = w.owner_agent() {
            match self.identity.agent(owner)? {
                Some(a) if a.is_active() => mail = a.scopes.contains(Scope::MailRead),
                _ => return Ok(Step::Stop),
            }
        }
        if st.progress.is_none() {
            st.progress = Some(
                self.store
                    .get_record(Tree::Meta, &progress_key(id))?
                    .unwrap_or_default(),
            );
        }
        let mut p = st.progress.clone().unwrap_or_default();
        let events = self.store.events_after(p.cursor, BATCH)?;
        if events.is_empty() {
            return Ok(Step::Idle);
        }
        // What the outbox says happened is durable before anyone is told it did: usually
        // the writers' own commits make it so within moments; if not, one flush does.
        if let Some(last) = events.last().map(|e| e.0) {
            self.store.durable_events(last, DURABLE_PATIENCE).await?;
        }
        let mut orgs: HashMap<String, Option<(String, Vec<String>)>> = HashMap::new();
        let mut keys = None;
        // Deliveries that succeeded are recorded together (`st.delivered`, written every
        // `BATCH` events or `RECORD_EVERY`, when idle, or with the next record that must be
        // written at once): one store transaction per event made the webhook fall behind
        // inbound mail. A crash before they are recorded only repeats them (at-least-once).
        let mut delivered = std::mem::take(&mut st.delivered);
        // Which events this webhook wants, and for whom (`None`: skipped).
        let mut wanted = Vec::with_capacity(events.len());
        for (_, ev) in &events {
            let who = self.who(&mut orgs, &ev.agent)?;
            let org = who.as_ref().map(|o| o.0.as_str());
            let skip = !w.wants(&ev.kind, &ev.agent, org) || (!mail && is_message_event(&ev.kind));
            wanted.push((!skip).then_some(who));
        }
        // The body of the next wanted event is rendered while the current one is in flight,
        // so a webhook keeps up with inbound mail although it delivers one event at a time.
        let mut ahead: Option<(usize, Arc<[u8]>)> = None;
        let mut outcome = Step::More;
        for (i, (seq, ev)) in events.iter().enumerate() {
            let seq = *seq;
            if stop.is_cancelled() {
                outcome = Step::Stop;
                break;
            }
            let Some(who) = wanted[i].clone() else {
                p.cursor = seq;
                continue;
            };
            if keys.is_none() {
                // Once per batch: a rotation takes effect from the next one.
                keys = Some(self.vault.webhook_signing_keys(&w.id)?);
            }
            let keys = keys.as_deref().unwrap_or_default();
            let body = match ahead.take() {
                Some((j, body)) if j == i => body,
                _ => self.render(w.summary, seq, ev, who).await,
            };
            let next = (i + 1..events.len()).find(|&j| wanted[j].is_some());
            let render_next = async {
                match next {
                    Some(j) => {
                        let (nseq, nev) = &events[j];
                        let nwho = wanted[j].clone().flatten();
                        Some((j, self.render(w.summary, *nseq, nev, nwho).await))
                    }
                    None => None,
                }
            };
            let (ended, rendered) = tokio::join!(
                self.deliver(&w, &mut p, (seq, ev), body, keys, stop, &mut delivered),
                render_next
            );
            ahead = rendered;
            match ended? {
                Ended::Done => p.cursor = seq,
                Ended::Stop => {
                    outcome = Step::Stop;
                    break;
                }
            }
        }
        st.unsaved |= st.progress.as_ref() != Some(&p);
        st.progress = Some(p);
        st.delivered = delivered;
        if matches!(outcome, Step::Stop)
            || st.delivered.len() >= BATCH
            || st.saved_at.elapsed() >= RECORD_EVERY
        {
            self.record(id, st)?;
        }
        Ok(outcome)
    }

    /// The org and chain of an event's agent (cached for the batch).
    pub(super) fn who(
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

    /// Attempts one event until it is delivered, given up on, or the worker stops. A success
    /// joins `delivered`; any other record is written at once, with those before it.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        w: &Webhook,
        p: &mut Progress,
        (seq, ev): (u64, &EventRecord),
        body: Arc<[u8]>,
        keys: &[zeroize::Zeroizing<Vec<u8>>],
        stop: &CancellationToken,
        delivered: &mut Vec<(Vec<u8>, Delivery)>,
    ) -> Result<Ended, EventsError> {
        let key = delivery_key(&w.id, seq);
        let now = now_millis();
        let mut d = match self
            .store
            .get_record::<Delivery>(Tree::WebhookDeliveries, &key)?
        {
            Some(d) if d.status == DeliveryStatus::Pending => d,
            // New, or delivered before and replayed now.
            _ => Delivery {
                event_id: event_id(seq),
                event_type: ev.kind.clone(),
                agent: ev.agent.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                first_attempt_ms: now,
                last_attempt_ms: None,
                next_attempt_ms: now,
                last_status: None,
                last_error: None,
                delivered_at_ms: None,
            },
        };
        loop {
            let wait = d.next_attempt_ms - now_millis();
            if wait > 0 {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(Ended::Stop),
                    _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                }
            }
            let sent = {
                let _permits = tokio::select! {
                    _ = stop.cancelled() => return Ok(Ended::Stop),
                    p = self.permits(&w.url) => p,
                };
                self.sender
                    .post(&w.url, &d.event_id, keys, body.to_vec())
                    .await
            };
            let at = now_millis();
            d.attempts += 1;
            d.last_attempt_ms = Some(at);
            match sent {
                Sent::Ok(code) => {
                    d.status = DeliveryStatus::Delivered;
                    d.last_status = Some(code);
                    d.last_error = None;
                    d.delivered_at_ms = Some(at);
                    p.cursor = seq;
                    p.consecutive_failures = 0;
                    delivered.push((key, d));
                    return Ok(Ended::Done);
                }
                Sent::Gone => {
                    d.status = DeliveryStatus::Failed;
                    d.last_status = Some(410);
                    self.save_with(&w.id, delivered, (&key, &d), p)?;
                    self.disable(w, "the endpoint answered 410 Gone")?;
                    return Ok(Ended::Stop);
                }
                Sent::Status(code) => {
                    d.last_status = Some(code);
                    d.last_error = None;
                }
                Sent::Error(e) => {
                    d.last_status = None;
                    d.last_error = Some(e);
                }
            }
            p.consecutive_failures += 1;
            let max = self.settings.max_consecutive_failures.max(1);
            if p.consecutive_failures >= max {
                d.status = DeliveryStatus::Failed;
                self.save_with(&w.id, delivered, (&key, &d), p)?;
                self.disable(w, &format!("{max} consecutive failed attempts"))?;
                return Ok(Ended::Stop);
            }
            let retry_for = i64::try_from(self.settings.retry_for_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            if at - d.first_attempt_ms >= retry_for {
                d.status = DeliveryStatus::Failed;
                p.cursor = seq;
                self.save_with(&w.id, delivered, (&key, &d), p)?;
                return Ok(Ended::Done);
            }
            d.next_attempt_ms = at + self.backoff(d.attempts);
            self.save_with(&w.id, delivered, (&key, &d), p)?;
        }
    }

    /// Exponential from `retry_initial_ms`, capped at `retry_max_secs`, with "equal jitter"
    /// (half fixed, half random) so endpoints coming back are not hit in lockstep.
    fn backoff(&self, attempts: u32) -> i64 {
        let cap = self.settings.retry_max_secs.saturating_mul(1000).max(1);
        let exp = attempts.saturating_sub(1).min(40);
        let base = self
            .settings
            .retry_initial_ms
            .max(1)
            .saturating_mul(1u64 << exp)
            .min(cap);
        let r = u64::from_le_bytes(crate::util::random_bytes());
        let half = base / 2;
        i64::try_from(half + r % (base - half + 1)).unwrap_or(i64::MAX)
    }

    /// A global slot and one of the endpoint's (the semaphores are never closed, so each
    /// is always `Some`).
    async fn permits(
        &self,
        url: &str,
    ) -> (
        Option<tokio::sync::OwnedSemaphorePermit>,
        Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let endpoint = url::Url::parse(url)
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_default();
        let sem = self
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(endpoint)
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.settings.max_concurrent_per_endpoint.max(1),
                ))
            })
            .clone();
        let one = sem.acquire_owned().await.ok();
        let all = self.global.clone().acquire_owned().await.ok();
        (one, all)
    }

    /// Writes the successes not yet recorded, then `d`, with the progress.
    fn save_with(
        &self,
        webhook: &str,
        delivered: &mut Vec<(Vec<u8>, Delivery)>,
        (key, d): (&[u8], &Delivery),
        p: &Progress,
    ) -> Result<(), EventsError> {
        delivered.push((key.to_vec(), d.clone()));
        self.save(webhook, delivered, p)?;
        delivered.clear();
        Ok(())
    }

    /// Delivery records and the progress, in one transaction.
    fn save(
        &self,
        webhook: &str,
        deliveries: &[(Vec<u8>, Delivery)],
        p: &Progress,
    ) -> Result<(), EventsError> {
        self.store.transact::<_, EventsError>(
            &[Tree::Webhooks, Tree::WebhookDeliveries, Tree::Meta],
            |tx| {
                // Deleted meanwhile: its records are gone and stay gone.
                if tx.get(Tree::Webhooks, webhook.as_bytes())?.is_none() {
                    return Ok(());
                }
                for (key, d) in deliveries {
                    tx.put_record(Tree::WebhookDeliveries, key, d)?;
                }
                // A replay or re-enable moved the cursor since this worker read it: its
                // replacement is starting from there, and this worker's position is void.
                // Nor does a stopped worker's last write take back its successor's.
                let stored: Option<Progress> = tx.get_record(Tree::Meta, &progress_key(webhook))?;
                if stored.is_some_and(|s| s.generation != p.generation || s.cursor > p.cursor) {
                    return Ok(());
                }
                tx.put_record(Tree::Meta, &progress_key(webhook), p)?;
                Ok(())
            },
        )?;
        Ok(())
    }

    /// Turns the webhook off (410, or too many failures), audited as `webhook.disabled`.
    fn disable(&self, w: &Webhook, why: &str) -> Result<(), EventsError> {
        self.store
            .transact::<_, EventsError>(&[Tree::Webhooks], |tx| {
                if let Some(mut cur) = tx.get_record::<Webhook>(Tree::Webhooks, w.id.as_bytes())? {
                    cur.enabled = false;
                    cur.disabled_reason = Some(why.to_string());
                    tx.put_record(Tree::Webhooks, w.id.as_bytes(), &cur)?;
                }
                Ok(())
            })?;
        let mut detail = json!({"reason": why, "url": w.url});
        if let Some(a) = &w.agent {
            detail[crate::audit::SUBJECT_AGENT] = a.clone().into();
        }
        self.audit.append(NewEntry {
            actor: ActorRef::system(),
            chain: vec![],
            action: "webhook.disabled".into(),
            target: w.id.clone(),
            outcome: Outcome::Ok,
            detail,
        })?;
        tracing::warn!(webhook = %w.id, reason = why, "webhook disabled");
        Ok(())
    }

    /// The JSON body of an event: its envelope, and for message events the message as
    /// `GET /v1/messages/{id}` shows it (unless the webhook asked for `minimal`), rendered
    /// now from the id the outbox holds.
    pub(super) async fn render(
        &self,
        summary: Summary,
        seq: u64,
        ev: &EventRecord,
        who: Option<(String, Vec<String>)>,
    ) -> Arc<[u8]> {
        let key = (seq, summary == Summary::Full);
        if let Some(b) = self
            .rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .bodies
            .get(&key)
        {
            return b.clone();
        }
        let body: Arc<[u8]> = self.render_now(summary, seq, ev, who).await.into();
        let mut r = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if r.bodies.insert(key, body.clone()).is_none() {
            r.order.push_back(key);
            while r.order.len() > RENDERED_KEPT {
                if let Some(old) = r.order.pop_front() {
                    r.bodies.remove(&old);
                }
            }
        }
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
        let mut data = compact.clone();
        let message_id = compact["message_id"].as_str();
        if let (Summary::Full, Some(mid)) = (summary, message_id) {
            if ev.kind.starts_with("message.") {
                if let Ok(m) = self.mailbox.message(&ev.agent, mid).await {
                    let mut full = m.to_json();
                    if let (Value::Object(f), Value::Object(c)) = (&mut full, &compact) {
                        for (k, v) in c {
                            f.entry(k.clone()).or_insert(v.clone());
                        }
                    }
                    data = full;
                }
            }
        }
        let (org, chain) = who.unwrap_or_default();
        let body = json!({
            "id": event_id(seq),
            "type": ev.kind,
            "created_at": rfc3339_millis(ev.created_at_ms),
            "agent": (!ev.agent.is_empty()).then_some(&ev.agent),
            "org": (!org.is_empty()).then_some(org),
            "chain": chain,
            "data": data,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// `POST /v1/webhooks/{id}/test`: a `webhook.test` event, sent once, now.
    pub async fn send_test(&self, w: &Webhook) -> Value {
        let id = crate::util::new_id("evt_test");
        let body = json!({
            "id": id,
            "type": "webhook.test",
            "created_at": rfc3339_millis(now_millis()),
            "agent": w.agent,
            "data": {"webhook_id": w.id},
        });
        let keys = match self.vault.webhook_signing_keys(&w.id) {
            Ok(k) => k,
            Err(e) => return json!({"ok": false, "error": e.to_string()}),
        };
        let _permits = self.permits(&w.url).await;
        match self
            .sender
            .post(
                &w.url,
                &id,
                &keys,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
            .await
        {
            Sent::Ok(c) => json!({"ok": true, "status": c}),
            Sent::Gone => json!({"ok": false, "status": 410}),
            Sent::Status(c) => json!({"ok": false, "status": c}),
            Sent::Error(e) => json!({"ok": false, "error": e}),
        }
    }

    /// The cursor that replays every retained event created at or after `since_ms`.
    pub fn cursor_before(&self, since_ms: i64) -> Result<u64, EventsError> {
        let mut after = 0;
        loop {
            let batch = self.store.events_after(after, 512)?;
            let Some(last) = batch.last().map(|e| e.0) else {
                return Ok(after);
            };
            for (seq, ev) in batch {
                if ev.created_at_ms >= since_ms {
                    return Ok(seq - 1);
                }
            }
            after = last;
        }
    }

    /// Drops events older than `retention` and the delivery records of events no longer
    /// retained. Returns how many events went.
    pub fn prune(&self, retention: Duration) -> Result<usize, EventsError> {
        let before = now_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let mut total = 0;
        loop {
            let n = self.store.prune_events(before, 1000)?;
            total += n;
            if n < 1000 {
                break;
            }
        }
        let oldest = self
            .store
            .events_after(0, 1)?
            .first()
            .map_or(u64::MAX, |e| e.0);
        let stale: Vec<Vec<u8>> = self
            .store
            .scan_prefix(Tree::WebhookDeliveries, &[])
            .filter_map(|r| match r {
                Ok((k, _)) => crate::store::keys::read_u64(&k)
                    .filter(|s| *s < oldest)
                    .map(|_| Ok(k)),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        for k in stale {
            self.store.remove(Tree::WebhookDeliveries, &k)?;
        }
        Ok(total)
    }
}
