//! The webhook dispatcher: one worker per enabled webhook reads the outbox from its cursor,
//! in sequence order, and delivers each event it wants before the next (so order holds per
//! webhook, and with it per (webhook, agent)). Cursor, failure count and each delivery's
//! state are in the store, so a restart resumes where it stopped: at-least-once.
//!
//! Workers sleep on the outbox's in-process ring (`Store::watch_events`) with a slow rescan
//! as a backstop. A dead endpoint only holds its own worker: attempts run under a global and
//! a per-endpoint semaphore, and nothing on the mail path waits for any of this.

use crate::audit::Audit;
use crate::config::WebhooksConfig;
use crate::events::http::{Sender, Sent};
use crate::events::model::Webhook;
use crate::events::EventsError;
use crate::identity::IdentityService;
use crate::mailbox::MailboxService;
use crate::store::{Store, Tree};
use crate::util::{now_millis, rfc3339_millis};
use crate::vault::VaultService;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

mod render;
mod runtime;
mod worker;

use render::Rendered;

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
    /// `events.gather_ms`: a worker that an outbox write woke waits this long for the
    /// writes behind it, so one step (its webhook, owner, keys and cursor read again) serves
    /// several events under load.
    gather: Duration,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        vault: Arc<VaultService>,
        identity: Arc<IdentityService>,
        mailbox: Arc<MailboxService>,
        settings: WebhooksConfig,
        gather: Duration,
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
            gather,
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
        let handle = runtime::dispatch_runtime(self.settings.dispatch_threads, shutdown.clone())?;
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
