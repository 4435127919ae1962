//! Mail changed on another node: long-polls (`wait`) and live sessions (IMAP IDLE, the MCP
//! `listen`) on this node wake for it as for a local change.
//!
//! Every local wake-up point ([`MailboxService::rang`], [`MailboxService::delivered`]) also
//! tells the other nodes sharing the store (`Store::signal`, a no-op on sled) with a line
//! [`crate::nodes::Signal::Mail`]; [`crate::nodes`] routes what they tell this node to
//! [`MailboxService::changed_elsewhere`]. A signal only says "look": the bell's listeners
//! read the change feed and a waiter reads the message record, both from the store.

use super::{MailboxService, StoredMessage};
use crate::nodes::Signal;
use crate::store::Tree;

impl MailboxService {
    /// Rings `agent`'s bell after a durable change, here and on every other node.
    pub(super) fn rang(&self, agent: &str, modseq: u64) {
        self.bells.ring(agent, modseq);
        self.store.signal(
            &Signal::Mail {
                agent,
                modseq,
                delivered: None,
            }
            .to_string(),
        );
    }

    /// Wakes `rec`'s waiters and rings its agent's bell after a durable delivery, here and
    /// on every other node.
    pub(super) fn delivered(&self, rec: &StoredMessage) {
        self.waiters.notify(rec);
        self.bells.ring(&rec.agent_id, rec.modseq);
        self.store.signal(
            &Signal::Mail {
                agent: &rec.agent_id,
                modseq: rec.modseq,
                delivered: Some(&rec.id),
            }
            .to_string(),
        );
    }

    /// Another node changed `agent`'s mail (committed before it said so) and, with
    /// `delivered`, delivered that message: wake this node's waiters and sessions.
    pub fn changed_elsewhere(&self, agent: &str, modseq: u64, delivered: Option<&str>) {
        if let Some(id) = delivered.filter(|_| self.waiters.has(agent)) {
            match self
                .store
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())
            {
                Ok(Some(rec)) if rec.agent_id == agent => self.waiters.notify(&rec),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a message another node delivered")
                }
            }
        }
        self.bells.ring(agent, modseq);
    }

    /// Signals from other nodes may have been lost: every live session looks at its feed
    /// again, every waiter at the store.
    pub fn resync_elsewhere(&self) {
        self.bells.ring_all();
        self.waiters.rescan_all();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Folder;

    #[tokio::test]
    async fn a_change_elsewhere_wakes_sessions_and_waiters_here() {
        let (_d, mb) = service(0);
        let mut bell = mb.subscribe_changes("ag_a");
        bell.borrow_and_update();
        // "Another node" delivered: the record is in the store, nothing here was told.
        let rec = deliver(&mb, "ag_b", Folder::Inbox, &simple("x", "elsewhere")).await;
        mb.changed_elsewhere("ag_a", 41, None);
        assert!(bell.has_changed().unwrap());
        assert_eq!(*bell.borrow_and_update(), 41);
        mb.resync_elsewhere();
        assert!(bell.has_changed().unwrap());
        // A delivery id for the wrong agent wakes no waiter of this one (and does not fail).
        mb.changed_elsewhere("ag_a", 42, Some(&rec.id));
    }

    #[tokio::test]
    async fn a_delivery_elsewhere_wakes_a_waiter_here() {
        let (_d, mb) = service(0);
        let mb = std::sync::Arc::new(mb);
        // Delivered before the wait began: only the signal can hand it to the waiter.
        let rec = deliver(&mb, "ag_a", Folder::Inbox, &simple("shop", "code 7")).await;
        let bg = mb.clone();
        let q = crate::mailbox::WaitQuery {
            subject: Some("code".into()),
            timeout: Some(20),
            ..Default::default()
        };
        let w = tokio::spawn(async move { bg.wait(&reader("ag_a"), &q).await });
        while !mb.waiters.has("ag_a") {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        mb.changed_elsewhere("ag_a", rec.modseq, Some(&rec.id));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), w)
            .await
            .expect("woken at once, not at the timeout")
            .unwrap()
            .unwrap()
            .expect("the message");
        assert_eq!(got.meta.id, rec.id);
    }
}
