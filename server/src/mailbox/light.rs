//! The numbers and flags of each message of recently read folders, kept in memory and
//! brought up to date from the change feed before every use.
//!
//! Why: an IMAP client syncing flags (`FETCH 1:* (UID FLAGS)`), a flag SEARCH, and the flag
//! filter of a text SEARCH read every message record of a folder: one random tree lookup
//! and one decode per message, 4-5 µs each, 20+ ms for 5,000 messages, against dovecot's
//! index read in a few. Here a folder's records are read once; afterwards each use costs
//! one look at the feed (empty when nothing changed) and the records of the messages that
//! changed. Every change to a message record writes a feed entry in the same transaction
//! (`deliver`, `update`, `batch`), so the feed says exactly which entries to read again.
//!
//! Bounded by messages over all folders (least recently used folder out first); a folder
//! larger than the bound is not kept and is read from the store as before.

use super::model::LightRecord;
use super::{Change, ChangeKind, Folder, MailboxError, MailboxService, StoredMessage};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Messages kept over all folders (about 150 bytes each); a folder of more than half of
/// this is not kept.
const MAX_MESSAGES: usize = 50_000;
/// Feed entries read per look.
const FEED_PAGE: usize = 1000;

/// One message's light fields (those of `model::LightRecord`, less the agent id).
#[derive(Clone)]
struct Entry {
    id: String,
    modseq: u64,
    flags: Vec<String>,
    received_at_ms: i64,
    size: u64,
    date: Option<i64>,
}

impl Entry {
    fn of(r: &StoredMessage) -> Entry {
        Entry {
            id: r.id.clone(),
            modseq: r.modseq,
            flags: r.flags.clone(),
            received_at_ms: r.received_at_ms,
            size: r.size,
            date: r.date,
        }
    }

    /// Makes `r` (a light record of this folder) this entry's record.
    fn fill(&self, r: &mut StoredMessage, uid: u32) {
        r.id.clone_from(&self.id);
        r.uid = uid;
        r.modseq = self.modseq;
        r.flags.clone_from(&self.flags);
        r.received_at_ms = self.received_at_ms;
        r.size = self.size;
        r.date = self.date;
    }
}

/// One folder: its entries by UID, and the agent modseq the feed is applied up to.
struct FolderIndex {
    modseq: u64,
    /// Shared so a reader can take the entries it wants and let go of the lock before it
    /// looks at them (a SEARCH's filter runs per entry).
    entries: BTreeMap<u32, Arc<Entry>>,
}

/// A kept folder with what eviction looks at, readable without waiting for its lock.
struct Slot {
    index: Mutex<FolderIndex>,
    /// The counter value of the last use.
    used: AtomicU64,
    /// Entries held, as of the last use.
    len: AtomicUsize,
}

#[derive(Default)]
pub(super) struct LightIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    folders: HashMap<(String, Folder), Arc<Slot>>,
    clock: u64,
}

impl LightIndex {
    fn slot(&self, agent: &str, folder: Folder) -> Option<Arc<Slot>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clock += 1;
        let now = g.clock;
        let slot = g.folders.get(&(agent.to_string(), folder)).cloned()?;
        slot.used.store(now, Ordering::Relaxed);
        Some(slot)
    }

    /// Keeps a freshly built folder, pushing out the least recently used ones over the bound.
    fn keep(&self, agent: &str, folder: Folder, index: FolderIndex) -> Arc<Slot> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.clock += 1;
        let slot = Arc::new(Slot {
            len: AtomicUsize::new(index.entries.len()),
            used: AtomicU64::new(g.clock),
            index: Mutex::new(index),
        });
        let key = (agent.to_string(), folder);
        g.folders.remove(&key);
        let mut total: usize = slot.len.load(Ordering::Relaxed)
            + g.folders
                .values()
                .map(|f| f.len.load(Ordering::Relaxed))
                .sum::<usize>();
        while total > MAX_MESSAGES {
            let oldest = g
                .folders
                .iter()
                .min_by_key(|(_, f)| f.used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else { break };
            if let Some(f) = g.folders.remove(&k) {
                total = total.saturating_sub(f.len.load(Ordering::Relaxed));
            }
        }
        g.folders.insert(key, slot.clone());
        slot
    }
}

impl MailboxService {
    /// The light records of `uids` (strictly ascending) in a folder that `keep` accepts,
    /// from the in-memory index, brought up to date first; None when the folder is not kept
    /// (too large), so the caller reads the store.
    pub(super) fn light_from_index(
        &self,
        agent: &str,
        folder: Folder,
        uids: &[u32],
        keep: &mut dyn FnMut(&StoredMessage) -> bool,
    ) -> Result<Option<Vec<StoredMessage>>, MailboxError> {
        let slot = match self.light.slot(agent, folder) {
            Some(s) => s,
            None => {
                let Some(built) = self.build_light(agent, folder)? else {
                    return Ok(None);
                };
                self.light.keep(agent, folder, built)
            }
        };
        // The entries asked for, taken under the lock (a reference count each); the filter
        // runs after it is released, so a costly SEARCH key holds no other session of the
        // folder. `uids` ascending and without repeats (the caller's promise): one walk over
        // the folder's entries in the range, not a lookup each.
        let picked: Vec<(u32, Arc<Entry>)> = {
            let mut idx = slot.index.lock().unwrap_or_else(|p| p.into_inner());
            self.catch_up(agent, folder, &mut idx)?;
            slot.len.store(idx.entries.len(), Ordering::Relaxed);
            let (Some(&first), Some(&last)) = (uids.first(), uids.last()) else {
                return Ok(Some(Vec::new()));
            };
            if first > last {
                return Ok(Some(Vec::new()));
            }
            let mut want = uids.iter().peekable();
            let mut picked = Vec::with_capacity(uids.len().min(idx.entries.len()));
            for (uid, e) in idx.entries.range(first..=last) {
                while want.next_if(|w| **w < *uid).is_some() {}
                if want.next_if(|w| **w == *uid).is_some() {
                    picked.push((*uid, e.clone()));
                }
            }
            picked
        };
        // One scratch record, refilled in place (its strings keep their buffers), offered to
        // `keep`; only those kept are copied out. A flag SEARCH over thousands of messages
        // made and dropped a record per message to keep a handful.
        let mut scratch = LightRecord {
            id: String::new(),
            agent_id: agent.to_string(),
            folder,
            uid: 0,
            modseq: 0,
            flags: Vec::new(),
            received_at_ms: 0,
            size: 0,
            date: None,
        }
        .into_stored();
        let mut out = Vec::new();
        for (uid, e) in picked {
            e.fill(&mut scratch, uid);
            if keep(&scratch) {
                out.push(scratch.clone());
            }
        }
        Ok(Some(out))
    }

    /// Every light record of a folder, as of at least the agent modseq it records.
    fn build_light(
        &self,
        agent: &str,
        folder: Folder,
    ) -> Result<Option<FolderIndex>, MailboxError> {
        // The modseq first: whatever changes after it is read again by the first catch-up.
        let modseq = self.usage(agent)?.map_or(0, |s| s.modseq);
        // Counted before any key is read: a folder too large to keep costs one lookup.
        let count = self.folder_state(agent, folder)?.map_or(0, |s| s.exists);
        if count > MAX_MESSAGES as u64 / 2 {
            return Ok(None);
        }
        let uids = self.folder_uid_list(agent, folder)?;
        let mut entries = BTreeMap::new();
        for chunk in uids.chunks(512) {
            for r in self.records_by_uid_store(agent, folder, chunk, true)? {
                entries.insert(r.uid, Arc::new(Entry::of(&r)));
            }
        }
        Ok(Some(FolderIndex { modseq, entries }))
    }

    /// Applies the feed after `idx.modseq`: entries of messages added or changed in the
    /// folder are read again, those moved out or purged dropped.
    fn catch_up(
        &self,
        agent: &str,
        folder: Folder,
        idx: &mut FolderIndex,
    ) -> Result<(), MailboxError> {
        loop {
            let page: Vec<Change> = self.changes_since(agent, idx.modseq, FEED_PAGE)?;
            let mut dirty: BTreeMap<u32, String> = BTreeMap::new();
            for c in &page {
                idx.modseq = idx.modseq.max(c.modseq);
                if c.folder != folder {
                    continue;
                }
                match c.kind {
                    ChangeKind::Added | ChangeKind::Updated => {
                        dirty.insert(c.uid, c.message_id.clone());
                    }
                    ChangeKind::MovedOut | ChangeKind::Purged => {
                        dirty.remove(&c.uid);
                        idx.entries.remove(&c.uid);
                    }
                }
            }
            for (uid, id) in dirty {
                let rec = self
                    .store
                    .get_record::<LightRecord>(crate::store::Tree::Messages, id.as_bytes())?
                    .map(LightRecord::into_stored)
                    .filter(|r| r.agent_id == agent && r.folder == folder && r.uid == uid);
                match rec {
                    Some(r) => {
                        idx.entries.insert(uid, Arc::new(Entry::of(&r)));
                    }
                    None => {
                        idx.entries.remove(&uid);
                    }
                }
            }
            if page.len() < FEED_PAGE {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Delta, SetEdit};
    use super::*;

    /// What the index answers is what the store holds, after deliveries, flag changes,
    /// moves and purges made by any path.
    #[tokio::test]
    async fn follows_every_change_of_the_folder() {
        let (_d, mb) = service(0);
        let a = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "one")).await;
        let b = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "two")).await;
        let same = |mb: &MailboxService| {
            let uids = mb.folder_uid_list("ag_a", Folder::Inbox).unwrap();
            let want = mb
                .records_by_uid_store("ag_a", Folder::Inbox, &uids, true)
                .unwrap();
            let got = mb
                .light_from_index("ag_a", Folder::Inbox, &uids, &mut |_| true)
                .unwrap()
                .unwrap();
            assert_eq!(got, want);
            got
        };
        assert_eq!(same(&mb).len(), 2);
        let me = agent(
            "ag_a",
            &[
                crate::identity::Scope::MailRead,
                crate::identity::Scope::MailManage,
            ],
        );
        let edit = SetEdit::Change(Delta {
            add: vec!["\\Flagged".into()],
            remove: vec![],
        });
        mb.store_flags(&me, Folder::Inbox, std::slice::from_ref(&a.id), &edit, None)
            .await
            .unwrap();
        let got = same(&mb);
        assert!(got[0].flags.iter().any(|f| f == "\\Flagged"));
        let c = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "three")).await;
        assert_eq!(same(&mb).len(), 3);
        mb.delete(&me, &b.id).await.unwrap();
        let got = same(&mb);
        assert_eq!(
            got.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec![a.id.as_str(), c.id.as_str()]
        );
        // Another agent's folder is its own.
        assert!(mb
            .light_from_index("ag_b", Folder::Inbox, &[1, 2], &mut |_| true)
            .unwrap()
            .unwrap()
            .is_empty());
    }

    /// Only the records `keep` accepts come back, each as the index holds it, in any order
    /// of UIDs asked (a peer's FETCH may name them in any order).
    #[tokio::test]
    async fn keeps_only_what_the_filter_accepts_in_any_order_of_uids() {
        let (_d, mb) = service(0);
        for i in 0..5 {
            deliver(&mb, "ag_a", Folder::Inbox, &simple("x", &format!("m{i}"))).await;
        }
        let uids = mb.folder_uid_list("ag_a", Folder::Inbox).unwrap();
        let all = mb
            .records_by_uid_store("ag_a", Folder::Inbox, &uids, true)
            .unwrap();
        let odd = |r: &StoredMessage| r.uid % 2 == 1;
        let got = mb
            .records_by_uid_light_where("ag_a", Folder::Inbox, &uids, odd)
            .unwrap();
        let want: Vec<StoredMessage> = all.iter().filter(|r| odd(r)).cloned().collect();
        assert_eq!(got, want);
        let backwards: Vec<u32> = uids.iter().rev().copied().collect();
        let got = mb
            .records_by_uid_light_where("ag_a", Folder::Inbox, &backwards, odd)
            .unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().all(|r| want.contains(r)));
        assert!(mb
            .records_by_uid_light_where("ag_a", Folder::Inbox, &[], |_| true)
            .unwrap()
            .is_empty());
    }
}
