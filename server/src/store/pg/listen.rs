//! Wake-ups across nodes: a transaction that writes the event outbox also sends
//! `NOTIFY legate_events` (delivered by PostgreSQL when, and only if, it commits); every node
//! LISTENs on a connection of its own and rings its in-process outbox bell, so event
//! dispatchers (webhooks, SSE, WebSocket) on one node wake for changes made on another.
//! A lost notification costs only latency: the dispatchers also rescan on a timer.
//!
//! The same connection LISTENs for other nodes' signals ([`super::signal`]) and hands them
//! to this node's receivers (`Store::signals`), skipping its own.

use super::conn::Connector;
use crate::store::StoreError;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

/// The channel name.
pub(super) const CHANNEL: &str = "legate_events";

/// How often the listener checks that its store still exists (and reconnects after an error).
const TICK: Duration = Duration::from_secs(1);

/// Where received notifications go.
pub(super) struct Ears {
    /// The outbox bell; the thread ends once the store (its only strong holder) is gone.
    pub(super) rung: Weak<tokio::sync::watch::Sender<()>>,
    pub(super) signals: broadcast::Sender<Arc<str>>,
    /// This node's id: its own signals are not handed back to it.
    pub(super) node: String,
    /// Logged when they changed, at most every [`USE_LOG`] (debug, `legate::store::pg`).
    pub(super) counters: Arc<super::conn::Counters>,
}

/// How often the database use is logged (when it changed).
const USE_LOG: Duration = Duration::from_secs(5);

pub(super) fn spawn(connect: Connector, ears: Ears) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("legate-pg-listen".into())
        .spawn(move || run(connect, ears))
        .map(|_| ())
        .map_err(|e| StoreError::Io(format!("cannot start the database listener: {e}")))
}

fn run(connect: Connector, ears: Ears) {
    let rung = &ears.rung;
    let mut first = true;
    let mut logged = ((0, 0, 0), std::time::Instant::now());
    while rung.strong_count() > 0 {
        let mut client = match connect() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.msg, "database listener cannot connect; retrying");
                std::thread::sleep(TICK);
                continue;
            }
        };
        let listen = format!("LISTEN {CHANNEL}; LISTEN {}", super::signal::CHANNEL);
        if let Err(e) = client.batch_execute(&listen) {
            tracing::warn!(error = %e, "database listener cannot LISTEN; retrying");
            std::thread::sleep(TICK);
            continue;
        }
        // Whatever was signalled while this node was not listening is lost: look again. That
        // holds for the first LISTEN too: an outbox write another node committed between this
        // store's opening and its LISTEN rang no bell here (a spurious ring costs one look).
        if !std::mem::take(&mut first) {
            let _ = ears.signals.send(Arc::from(crate::store::signal::RESYNC));
        }
        if let Some(tx) = rung.upgrade() {
            tx.send_replace(());
        }
        loop {
            let Some(tx) = rung.upgrade() else { return };
            if logged.1.elapsed() >= USE_LOG {
                let now = ears.counters.read();
                if now != logged.0 {
                    let (round_trips, transactions, retries) = now;
                    tracing::debug!(round_trips, transactions, retries, "database use");
                }
                logged = (now, std::time::Instant::now());
            }
            let mut n = client.notifications();
            let mut it = n.timeout_iter(TICK);
            match it.next() {
                Ok(Some(n)) if n.channel() == super::signal::CHANNEL => {
                    let (node, lines) = super::signal::parse(n.payload());
                    if node != ears.node {
                        for l in lines {
                            // No receiver yet is not an error.
                            let _ = ears.signals.send(Arc::from(l));
                        }
                    }
                }
                Ok(Some(_)) => {
                    tx.send_replace(());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "database listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}
