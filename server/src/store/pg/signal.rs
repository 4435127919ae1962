//! Signals to the other nodes: short lines (`Store::signal`) sent with `pg_notify` on a
//! connection of their own, after the writes they announce have committed. Queued lines
//! leave together, one NOTIFY per batch (a payload stays under PostgreSQL's 8000 bytes),
//! so a burst of deliveries costs a handful of statements, never one per message and never
//! a round trip on the caller's path. [`super::listen`] receives them on every node.

use super::conn::Connector;
use crate::store::StoreError;
use std::sync::mpsc;
use std::sync::Mutex;

/// The channel name.
pub(super) const CHANNEL: &str = "legate_signal";

/// Payload bytes per NOTIFY (PostgreSQL refuses 8000 and more).
const MAX_PAYLOAD: usize = 7900;

/// Lines that may wait for the publisher; beyond it new lines are dropped (a lost signal
/// costs latency only: the listeners also look again on a timer).
const QUEUE: usize = 10_000;

/// The sending half; the thread ends when it is dropped (with the store).
pub(super) struct Publisher {
    tx: Mutex<mpsc::SyncSender<String>>,
}

impl Publisher {
    pub(super) fn spawn(connect: Connector, node: String) -> Result<Publisher, StoreError> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("legate-pg-signal".into())
            .spawn(move || run(connect, node, rx))
            .map_err(|e| StoreError::Io(format!("cannot start the database signaller: {e}")))?;
        Ok(Publisher { tx: Mutex::new(tx) })
    }

    /// Queues `line` for the other nodes. Lines with a newline or too long are dropped
    /// (a caller's bug, logged).
    pub(super) fn send(&self, line: &str) {
        if line.contains('\n') || line.len() > super::super::signal::MAX_SIGNAL {
            tracing::warn!(
                len = line.len(),
                "a cross-node signal was malformed; dropped"
            );
            return;
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if tx.try_send(line.to_string()).is_err() {
            tracing::warn!("cross-node signals are backed up; one dropped");
        }
    }
}

/// Payloads for `lines`: this node's id first, then whole lines, each under [`MAX_PAYLOAD`].
fn payloads(node: &str, lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = node.to_string();
    for l in lines {
        if cur.len() + 1 + l.len() > MAX_PAYLOAD && cur.len() > node.len() {
            out.push(std::mem::replace(&mut cur, node.to_string()));
        }
        cur.push('\n');
        cur.push_str(l);
    }
    if cur.len() > node.len() {
        out.push(cur);
    }
    out
}

fn run(connect: Connector, node: String, rx: mpsc::Receiver<String>) {
    let mut client: Option<postgres::Client> = None;
    while let Ok(first) = rx.recv() {
        let mut lines = vec![first];
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
            if lines.len() >= 4096 {
                break;
            }
        }
        for payload in payloads(&node, &lines) {
            // One retry on a fresh connection: the previous one may have been dropped.
            for attempt in 0..2 {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = match connect() {
                        Ok(c) => Some(c),
                        Err(e) => {
                            tracing::warn!(error = %e.msg, "the database signaller cannot connect");
                            None
                        }
                    };
                }
                let Some(c) = client.as_mut() else { break };
                match c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]) {
                    Ok(_) => break,
                    Err(e) => {
                        client = None;
                        if attempt == 1 {
                            tracing::warn!(error = %e, "cannot send a cross-node signal");
                        }
                    }
                }
            }
        }
    }
}

/// Splits a received payload into its sender and lines.
pub(super) fn parse(payload: &str) -> (&str, impl Iterator<Item = &str>) {
    let mut it = payload.split('\n');
    let node = it.next().unwrap_or("");
    (node, it.filter(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_the_node_and_whole_lines_under_the_limit() {
        let lines: Vec<String> = (0..2000).map(|i| format!("mail ag_{i} {i}")).collect();
        let ps = payloads("node_x", &lines);
        assert!(ps.len() > 1);
        let mut back = Vec::new();
        for p in &ps {
            assert!(p.len() <= MAX_PAYLOAD);
            let (node, ls) = parse(p);
            assert_eq!(node, "node_x");
            back.extend(ls.map(str::to_string));
        }
        assert_eq!(back, lines);
        assert!(payloads("node_x", &[]).is_empty());
    }
}
