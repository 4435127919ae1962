//! One worker per webhook: reads the outbox from its cursor and delivers in order.

use super::{Dispatcher, BATCH};
use crate::audit::{ActorRef, NewEntry, Outcome};
use crate::events::http::Sent;
use crate::events::model::{
    delivery_key, is_message_event, progress_key, Delivery, DeliveryStatus, Progress, Webhook,
};
use crate::events::EventsError;
use crate::identity::Scope;
use crate::store::outbox::event_id;
use crate::store::{EventRecord, Tree};
use crate::util::now_millis;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

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
    pub(super) async fn work(self: Arc<Self>, id: String, stop: CancellationToken) {
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
                        _ = rung.changed() => {
                            if !crate::events::gather(self.gather, &stop).await {
                                break;
                            }
                        }
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
        let mut pending = self.pending(id, &events)?;
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
            let before = pending.remove(&seq);
            let (ended, rendered) = tokio::join!(
                self.deliver(
                    &w,
                    &mut p,
                    (seq, ev),
                    before,
                    body,
                    keys,
                    stop,
                    &mut delivered
                ),
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

    /// The deliveries of `events` that an earlier worker left pending (attempted, to be
    /// retried): one range read per batch rather than a lookup per event.
    fn pending(
        &self,
        id: &str,
        events: &[(u64, EventRecord)],
    ) -> Result<HashMap<u64, Delivery>, EventsError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::new();
        let range = self.store.range(
            Tree::WebhookDeliveries,
            std::ops::Bound::Included(delivery_key(id, first.0)),
            std::ops::Bound::Included(delivery_key(id, last.0)),
            false,
        );
        for r in range {
            let (k, v) = r?;
            let d: Delivery = crate::store::decode(&v)?;
            if let Some(seq) = crate::store::keys::read_u64(&k) {
                if d.status == DeliveryStatus::Pending {
                    out.insert(seq, d);
                }
            }
        }
        Ok(out)
    }

    /// Attempts one event until it is delivered, given up on, or the worker stops. A success
    /// joins `delivered`; any other record is written at once, with those before it.
    /// `before` is the event's pending delivery, if an earlier worker left one.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        w: &Webhook,
        p: &mut Progress,
        (seq, ev): (u64, &EventRecord),
        before: Option<Delivery>,
        body: Arc<[u8]>,
        keys: &[zeroize::Zeroizing<Vec<u8>>],
        stop: &CancellationToken,
        delivered: &mut Vec<(Vec<u8>, Delivery)>,
    ) -> Result<Ended, EventsError> {
        let key = delivery_key(&w.id, seq);
        let now = now_millis();
        let mut d = match before {
            Some(d) => d,
            // New, or delivered before and replayed now.
            None => Delivery {
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
    pub(super) async fn permits(
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
}
