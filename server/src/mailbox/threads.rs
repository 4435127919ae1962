//! Conversations: threads listed by newest activity, one thread read in order, and changes
//! made to a whole thread at once (issue 18 item 5).
//!
//! Which thread a message belongs to is decided once, at delivery (`thread.rs`: References,
//! In-Reply-To, the root's Message-ID); this file only reads that decision back through the
//! `ThreadMessages` index, kept beside the folder indexes by `slots.rs`. A listing walks the
//! agent's timeline newest first and shows a thread at its newest message, so pages need no
//! state: a thread is listed exactly once, at the position of its last activity.

use super::list::encode_cursor;
use super::model::StoredMessage;
use super::{index, Folder, MailboxError, MailboxService, MessagePatch};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::Tree;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

/// Messages one thread shows or changes at most; a longer thread says `truncated`.
pub const MAX_THREAD_MESSAGES: usize = 200;
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;
/// Timeline entries one page may examine before it answers with a cursor.
const SCAN_BUDGET: usize = 5000;
/// Distinct threads one page may look into before it answers with a cursor.
const THREAD_BUDGET: usize = 300;

const BACKFILL_DONE: &[u8] = b"thread_index_v1";

/// One thread as listed.
#[derive(Debug, Clone)]
pub struct ThreadSummary {
    pub id: String,
    /// Oldest first, Trash left out.
    pub messages: Vec<StoredMessage>,
    pub truncated: bool,
}

impl ThreadSummary {
    pub fn to_json(&self) -> Value {
        let first = self.messages.first();
        let last = self.messages.last();
        let mut participants = BTreeSet::new();
        let mut labels = BTreeSet::new();
        let mut folders = BTreeSet::new();
        for m in &self.messages {
            for a in m.from.iter().chain(&m.to).chain(&m.cc) {
                participants.insert(a.email.to_ascii_lowercase());
            }
            labels.extend(m.labels.iter().cloned());
            folders.insert(m.folder.name().to_string());
        }
        json!({
            "id": self.id,
            "subject": first.map(|m| m.subject.clone()),
            "participants": participants,
            "message_count": self.messages.len(),
            "unread_count": self.messages.iter().filter(|m| m.is_unread()).count(),
            "last_activity": last.map(|m| crate::util::rfc3339_millis(m.received_at_ms)),
            "last_message": last.map(|m| json!({
                "id": m.id,
                "from": m.from.as_ref().map(|a| &a.email),
                "subject": m.subject,
                "preview": m.preview,
            })),
            "folders": folders,
            "labels": labels,
            "truncated": self.truncated,
        })
    }
}

impl MailboxService {
    /// The newest messages of `thread` (at most [`MAX_THREAD_MESSAGES`], returned oldest
    /// first), or None when the agent has none. Trash and Junk are left out unless
    /// `everything`: a blocked sender's mail (filed to Junk) must not ride inside a real
    /// conversation. Walked newest first, so a flood of replies cannot push the latest
    /// ones out of view; at most four times the cap of index entries are read.
    fn thread_members(
        &self,
        agent: &str,
        thread: &str,
        everything: bool,
    ) -> Result<Option<ThreadSummary>, MailboxError> {
        if !index::valid_thread_id(thread) {
            return Ok(None);
        }
        let base = index::thread_base(agent, thread);
        let lo = Bound::Included(index::timeline_from(&base, 0));
        let hi = Bound::Excluded(index::timeline_end(&base));
        let mut messages = Vec::new();
        let mut truncated = false;
        for (n, r) in self
            .store
            .range(Tree::ThreadMessages, lo, hi, true)
            .enumerate()
        {
            if n == MAX_THREAD_MESSAGES * 4 || messages.len() == MAX_THREAD_MESSAGES {
                truncated = true;
                break;
            }
            let (key, _) = r?;
            let Some((_, id)) = index::parse_timed(&base, &key) else {
                continue;
            };
            let Some(m) = self
                .store
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
                .filter(|m| m.agent_id == agent && m.thread_id == thread)
            else {
                continue;
            };
            if !everything && matches!(m.folder, Folder::Trash | Folder::Junk) {
                continue;
            }
            messages.push(m);
        }
        messages.reverse();
        Ok((!messages.is_empty()).then(|| ThreadSummary {
            id: thread.to_string(),
            messages,
            truncated,
        }))
    }

    /// `mail:read`. Threads newest activity first: `{items, next_cursor}`.
    pub fn list_threads(
        &self,
        actor: &Actor,
        folder: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Value, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.threads", "")?;
        let folder = folder.map(|f| self.resolve_folder(agent, f)).transpose()?;
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let cursor = cursor.map(super::list::decode_cursor).transpose()?;
        let base = index::timeline_base(agent, folder);
        let tree = if folder.is_some() {
            Tree::FolderTimeline
        } else {
            Tree::MailTimeline
        };
        let lo = Bound::Included(index::timeline_from(&base, 0));
        let hi = match &cursor {
            Some((ms, id)) => Bound::Excluded(index::timeline_at(&base, *ms, id)),
            None => Bound::Excluded(index::timeline_end(&base)),
        };
        let mut items: Vec<Value> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut next_cursor = None;
        let mut scanned = 0;
        // Positions a next page may resume strictly after (the bound is exclusive).
        let mut last_item: Option<(i64, String)> = None;
        let mut last_done: Option<(i64, String)> = None;
        for r in self.store.range(tree, lo, hi, true) {
            let (key, _) = r?;
            let Some((ms, id)) = index::parse_timed(&base, &key) else {
                continue;
            };
            if scanned == SCAN_BUDGET || seen.len() == THREAD_BUDGET {
                next_cursor = last_done.as_ref().map(|(ms, id)| encode_cursor(*ms, id));
                break;
            }
            scanned += 1;
            let m = self
                .store
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
                .filter(|m| m.agent_id == agent && !m.thread_id.is_empty());
            if let Some(m) = m {
                // A thread is shown at its newest message (in this listing's scope); met
                // first at an older one, it was listed on an earlier page.
                if seen.insert(m.thread_id.clone()) {
                    if let Some(t) = self.thread_members(agent, &m.thread_id, false)? {
                        let newest = t
                            .messages
                            .iter()
                            .rev()
                            .find(|x| folder.is_none_or(|f| x.folder == f));
                        if newest.is_some_and(|x| x.id == m.id) {
                            if items.len() == limit {
                                next_cursor =
                                    last_item.as_ref().map(|(ms, id)| encode_cursor(*ms, id));
                                break;
                            }
                            items.push(t.to_json());
                            last_item = Some((ms, id.clone()));
                        }
                    }
                }
            }
            last_done = Some((ms, id));
        }
        actor.audit(
            &self.audit,
            "mail.threads",
            folder.map(|f| f.name()).unwrap_or(""),
            Outcome::Ok,
            json!({"count": items.len()}),
        )?;
        Ok(json!({"items": items, "next_cursor": next_cursor}))
    }

    /// `mail:read`. One thread: its summary and its messages in order, each as the summary
    /// of `GET /v1/messages/{id}` lists (the caller adds full content per message).
    pub fn thread(&self, actor: &Actor, thread: &str) -> Result<ThreadSummary, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.thread", thread)?;
        let t = self
            .thread_members(agent, thread, false)?
            .ok_or(MailboxError::NotFound("thread"))?;
        actor.audit(
            &self.audit,
            "mail.thread",
            thread,
            Outcome::Ok,
            json!({"count": t.messages.len()}),
        )?;
        Ok(t)
    }

    /// [`MailboxService::thread`] with every message in full (text, extracted text, codes,
    /// links), as `GET /v1/messages/{id}` shows one: the REST and MCP answer.
    pub async fn thread_json(&self, actor: &Actor, thread: &str) -> Result<Value, MailboxError> {
        let t = self.thread(actor, thread)?;
        let mut v = t.to_json();
        let mut messages = Vec::with_capacity(t.messages.len());
        for m in &t.messages {
            match self.get(actor, &m.id).await {
                Ok(full) => messages.push(full.to_json()),
                // Purged since the summary was read: the thread simply has one fewer.
                Err(MailboxError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        v["messages"] = Value::Array(messages);
        Ok(v)
    }

    /// `mail:manage`. The same change (flags, labels, read state, folder) to every message
    /// of a thread, each through [`MailboxService::update`] (so each is checked and audited
    /// as if changed alone). Returns the thread as it is now.
    pub async fn update_thread(
        &self,
        actor: &Actor,
        thread: &str,
        patch: &MessagePatch,
    ) -> Result<ThreadSummary, MailboxError> {
        let agent = actor
            .require(&self.audit, Scope::MailManage, "mail.thread_update", thread)?
            .to_string();
        let t = self
            .thread_members(&agent, thread, false)?
            .ok_or(MailboxError::NotFound("thread"))?;
        for m in &t.messages {
            self.update(actor, &m.id, patch).await?;
        }
        // A move to Trash empties the thread as listed: show what it holds now, Trash too.
        self.thread_members(&agent, thread, true)?
            .ok_or(MailboxError::NotFound("thread"))
    }

    /// Indexes the thread membership of mail stored before threads were listed (once; a
    /// no-op afterwards). Blocking: run it before serving.
    pub fn build_thread_index(&self) -> Result<u64, MailboxError> {
        if self.store.get(Tree::Meta, BACKFILL_DONE)?.is_some() {
            return Ok(0);
        }
        let mut n = 0;
        for r in self.store.scan_prefix(Tree::Messages, &[]) {
            let (_, v) = r?;
            let m: StoredMessage = crate::store::decode(&v)?;
            if m.thread_id.is_empty() {
                continue;
            }
            self.store.put(
                Tree::ThreadMessages,
                &index::thread_member(&m.agent_id, &m.thread_id, m.received_at_ms, &m.id),
                &[],
            )?;
            n += 1;
        }
        self.store.put(Tree::Meta, BACKFILL_DONE, &[])?;
        self.store.flush_blocking()?;
        if n > 0 {
            tracing::info!(messages = n, "indexed the threads of stored mail");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    /// A flood of replies cannot push a thread's latest message out of view, and Junk
    /// (blocked senders) stays out of the conversation.
    #[tokio::test]
    async fn the_newest_messages_win_and_junk_stays_out() {
        let (_d, mb) = service(0);
        let root = deliver(&mb, "ag_a", Folder::Inbox, &with_ids("r@x", &[], &[])).await;
        for i in 0..(MAX_THREAD_MESSAGES + 5) {
            deliver(
                &mb,
                "ag_a",
                Folder::Inbox,
                &with_ids(&format!("f{i}@x"), &["r@x"], &[]),
            )
            .await;
        }
        let junk = deliver(&mb, "ag_a", Folder::Junk, &with_ids("j@x", &["r@x"], &[])).await;
        let last = deliver(&mb, "ag_a", Folder::Inbox, &with_ids("l@x", &["r@x"], &[])).await;
        assert_eq!(last.thread_id, root.thread_id);
        let t = mb
            .thread_members("ag_a", &root.thread_id, false)
            .unwrap()
            .unwrap();
        assert!(t.truncated);
        assert_eq!(t.messages.len(), MAX_THREAD_MESSAGES);
        assert_eq!(t.messages.last().unwrap().id, last.id);
        assert!(t.messages.iter().all(|m| m.id != junk.id));
        let page = mb.list_threads(&reader("ag_a"), None, None, None).unwrap();
        assert_eq!(page["items"][0]["last_message"]["id"], last.id.as_str());
    }

    /// Mail stored before the thread index existed is indexed once at start.
    #[tokio::test]
    async fn the_backfill_indexes_old_mail_once() {
        let (_d, mb) = service(0);
        let a = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "one")).await;
        let b = deliver(&mb, "ag_a", Folder::Archive, &simple("y", "two")).await;
        let keys: Vec<Vec<u8>> = mb
            .store
            .scan_prefix(Tree::ThreadMessages, &[])
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(keys.len(), 2);
        for k in &keys {
            mb.store.remove(Tree::ThreadMessages, k).unwrap();
        }
        assert!(mb
            .thread_members("ag_a", &a.thread_id, false)
            .unwrap()
            .is_none());
        assert_eq!(mb.build_thread_index().unwrap(), 2);
        assert_eq!(mb.build_thread_index().unwrap(), 0, "once");
        for m in [&a, &b] {
            let t = mb
                .thread_members("ag_a", &m.thread_id, false)
                .unwrap()
                .unwrap();
            assert_eq!(t.messages[0].id, m.id);
        }
        assert!(mb
            .thread_members("ag_b", &a.thread_id, false)
            .unwrap()
            .is_none());
    }
}
