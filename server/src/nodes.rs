//! What one node tells the others sharing its store, and what this node does when told.
//!
//! A change is committed to the store first; then the node that made it signals the others
//! (`Store::signal`: LISTEN/NOTIFY on PostgreSQL, nothing on sled) with a [`Signal`]; each
//! other node's [`follow`] task hands it to the service that keeps something in memory or
//! sleeps on it. Signals say "look again", never what changed, so a lost one costs only
//! latency, and after a possible loss ([`crate::store::signal::RESYNC`], or a receiver that
//! fell behind) every service looks again at everything.

use crate::mailbox::MailboxService;
use crate::queue::QueueService;
use crate::store::Store;
use std::fmt;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// One line between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal<'a> {
    /// An agent's mail changed (modseq now); with `delivered`, that message arrived.
    Mail {
        agent: &'a str,
        modseq: u64,
        delivered: Option<&'a str>,
    },
    /// A domain's DKIM keys changed (rotated, removed, created).
    Dkim { domain: &'a str },
    /// The TLS certificate in the store was replaced (an ACME renewal).
    Certificate,
    /// Signals may have been lost: look again at everything.
    Resync,
}

impl fmt::Display for Signal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Mail {
                agent,
                modseq,
                delivered: Some(id),
            } => write!(f, "mail {agent} {modseq} {id}"),
            Signal::Mail { agent, modseq, .. } => write!(f, "mail {agent} {modseq}"),
            Signal::Dkim { domain } => write!(f, "dkim {domain}"),
            Signal::Certificate => f.write_str("cert"),
            Signal::Resync => f.write_str(crate::store::signal::RESYNC),
        }
    }
}

impl<'a> Signal<'a> {
    /// A received line; None for one this version does not know (a newer node's).
    pub fn parse(line: &'a str) -> Option<Signal<'a>> {
        let mut w = line.split(' ');
        let s = match w.next()? {
            "mail" => Signal::Mail {
                agent: w.next().filter(|a| !a.is_empty())?,
                modseq: w.next()?.parse().ok()?,
                delivered: w.next(),
            },
            "dkim" => Signal::Dkim {
                domain: w.next().filter(|d| !d.is_empty())?,
            },
            "cert" => Signal::Certificate,
            l if l == crate::store::signal::RESYNC => Signal::Resync,
            _ => return None,
        };
        w.next().is_none().then_some(s)
    }
}

/// What this node reloads or wakes when another node signals.
pub struct Followers {
    pub mailbox: Arc<MailboxService>,
    pub queue: Arc<QueueService>,
    /// Reloads the served certificate from the store (when ACME is on).
    pub certificate: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Followers {
    fn handle(&self, s: Signal<'_>) {
        match s {
            Signal::Mail {
                agent,
                modseq,
                delivered,
            } => self.mailbox.changed_elsewhere(agent, modseq, delivered),
            Signal::Dkim { .. } => self.queue.reload_signers(),
            Signal::Certificate => self.reload_certificate(),
            Signal::Resync => {
                self.mailbox.resync_elsewhere();
                self.queue.reload_signers();
                self.reload_certificate();
            }
        }
    }

    fn reload_certificate(&self) {
        if let Some(f) = &self.certificate {
            f();
        }
    }
}

/// Hands other nodes' signals to `f` until `stop`. Nothing to do on sled (one process).
pub fn follow(store: &Store, f: Followers, stop: CancellationToken) {
    if !store.is_shared() {
        return;
    }
    let mut rx = store.signals();
    tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                _ = stop.cancelled() => return,
                r = rx.recv() => match r {
                    Ok(l) => l,
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "fell behind other nodes' signals; looking again");
                        f.handle(Signal::Resync);
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            match Signal::parse(&line) {
                Some(s) => f.handle(s),
                None => tracing::debug!(line = %line, "an unknown signal from another node"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_and_unknown_lines_are_none() {
        for s in [
            Signal::Mail {
                agent: "ag_1",
                modseq: 7,
                delivered: Some("msg_2"),
            },
            Signal::Mail {
                agent: "ag_1",
                modseq: 8,
                delivered: None,
            },
            Signal::Dkim {
                domain: "agents.test",
            },
            Signal::Certificate,
            Signal::Resync,
        ] {
            let line = s.to_string();
            assert_eq!(Signal::parse(&line), Some(s));
        }
        for bad in [
            "",
            "mail",
            "mail ag_1",
            "mail ag_1 x",
            "mail ag_1 1 m 2",
            "new 1",
            "dkim",
        ] {
            assert_eq!(Signal::parse(bad), None, "{bad:?}");
        }
    }
}
