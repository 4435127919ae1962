//! Tells live sessions that an agent's mail changed, so IMAP IDLE wakes within moments of
//! an SMTP delivery, a REST flag change or a delete made on another surface.
//!
//! A bell rings only after the change is durable, with the agent's modseq then; a session
//! reads what changed from the change feed (`changes_since`), never from the bell, so a
//! missed or coalesced ring loses nothing: the next look at the feed sees it all.

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Default)]
pub(super) struct Bells {
    /// A std mutex: held for a map lookup, never across an await.
    by_agent: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Bells {
    pub(super) fn subscribe(&self, agent: &str) -> watch::Receiver<u64> {
        let mut map = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(agent.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Whether a live session (IMAP, an MCP watch) follows the agent's mailbox now.
    pub(super) fn listened(&self, agent: &str) -> bool {
        let map = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        map.get(agent).is_some_and(|tx| tx.receiver_count() > 0)
    }

    pub(super) fn ring(&self, agent: &str, modseq: u64) {
        let mut map = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(agent) {
            if tx.receiver_count() == 0 {
                // The last listener left: drop the entry so idle agents cost nothing.
                map.remove(agent);
            } else {
                tx.send_replace(modseq);
            }
        }
    }

    /// Rings every bell with its last value: listeners look at their feed again.
    pub(super) fn ring_all(&self) {
        let mut map = self.by_agent.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, tx| tx.receiver_count() > 0);
        for tx in map.values() {
            tx.send_modify(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_reach_listeners_and_silent_agents_are_forgotten() {
        let b = Bells::default();
        b.ring("ag_a", 1);
        assert!(b.by_agent.lock().unwrap().is_empty());
        let mut rx = b.subscribe("ag_a");
        b.ring("ag_a", 7);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 7);
        b.ring("ag_b", 3);
        assert!(!rx.has_changed().unwrap());
        drop(rx);
        b.ring("ag_a", 8);
        assert!(b.by_agent.lock().unwrap().is_empty());
    }

    #[test]
    fn an_agent_is_listened_to_while_a_receiver_lives() {
        let b = Bells::default();
        assert!(!b.listened("ag_a"));
        let rx = b.subscribe("ag_a");
        assert!(b.listened("ag_a"));
        assert!(!b.listened("ag_b"));
        drop(rx);
        assert!(!b.listened("ag_a"));
    }
}
