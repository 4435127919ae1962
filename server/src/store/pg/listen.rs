//! Wake-ups across nodes: a transaction that writes the event outbox also sends
//! `NOTIFY legate_events` (delivered by PostgreSQL when, and only if, it commits); every node
//! LISTENs on a connection of its own and rings its in-process outbox bell, so event
//! dispatchers (webhooks, SSE, WebSocket) on one node wake for changes made on another.
//! A lost notification costs only latency: the dispatchers also rescan on a timer.

use super::conn::Connector;
use crate::store::StoreError;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::Weak;
use std::time::Duration;

/// The channel name.
pub(super) const CHANNEL: &str = "legate_events";

/// How often the listener checks that its store still exists (and reconnects after an error).
const TICK: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    connect: Connector,
    rung: Weak<tokio::sync::watch::Sender<()>>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("legate-pg-listen".into())
        .spawn(move || run(connect, rung))
        .map(|_| ())
        .map_err(|e| StoreError::Io(format!("cannot start the database listener: {e}")))
}

fn run(connect: Connector, rung: Weak<tokio::sync::watch::Sender<()>>) {
    while rung.strong_count() > 0 {
        let mut client = match connect() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.msg, "database listener cannot connect; retrying");
                std::thread::sleep(TICK);
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(error = %e, "database listener cannot LISTEN; retrying");
            std::thread::sleep(TICK);
            continue;
        }
        loop {
            let Some(tx) = rung.upgrade() else { return };
            let mut n = client.notifications();
            let mut it = n.timeout_iter(TICK);
            match it.next() {
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
