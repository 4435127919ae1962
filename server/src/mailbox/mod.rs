//! Agents' mailboxes (DESIGN §5 "Reading", §6 mail routes, §9 folders).
//!
//! [`MailboxService`] is the one door to stored mail. SMTP inbound, the outbound queue (Sent
//! copies, DSNs) and later IMAP APPEND call [`MailboxService::deliver`]; agents read and
//! change their mail through the methods taking an [`Actor`], which check `mail:read` /
//! `mail:manage` and audit.
//!
//! Shaped for what comes next, using only the Store API:
//! - IMAP: per-folder UIDs that only grow and a UIDVALIDITY fixed when the mailbox is first
//!   touched ([`FolderState`]); a per-agent modseq bumped by every change and stored on each
//!   message (CONDSTORE MODSEQ) and folder (HIGHESTMODSEQ).
//! - Webhooks / event streams: every change is also an entry of the per-agent change feed
//!   ([`Change`], [`MailboxService::changes_since`]).
//! - Scale-out: every write is one `Store::transact` plus a durable `Store::commit`.

mod admit;
mod batch;
mod bell;
mod contacts;
mod deliver;
mod error;
mod events;
pub mod flags;
mod folder;
mod full;
mod headers;
pub mod holds;
mod index;
mod light;
mod list;
mod model;
mod nodes;
mod parse;
mod read;
mod recent;
pub mod screening;
pub mod search;
mod senders;
mod slots;
mod summary;
mod thread;
mod threads;
mod update;
mod user_folders;
mod wait;

pub use batch::{Expunged, FlagsOutcome, Transfer, TransferMode};
pub use contacts::contact_key;
pub use deliver::{parse_for, Parsed, TxHook};
pub use error::MailboxError;
pub use flags::{Delta, SetEdit};
pub use folder::{AgentMailState, Folder, FolderState};
pub use full::{Full, FULL_FIELDS};
pub use headers::header_len;
pub use list::{ListPage, ListQuery, PageView};
pub use model::{Change, ChangeKind, DeliveryMeta, Message, MessageContent, StoredMessage, Trust};
pub use senders::{
    lists_json as sender_lists_json, normalize_entry, AgentBlockAction, SenderEntry, SenderList,
    SenderOwner, SenderPolicy,
};
pub use summary::Summary;
pub use threads::{ThreadSummary, MAX_THREAD_MESSAGES};
pub use update::{Deleted, MessagePatch};
pub use wait::WaitQuery;

use crate::audit::Audit;
use crate::store::{keys, Store, Tree};
use std::ops::Bound;
use std::sync::Arc;

pub struct MailboxService {
    store: Store,
    audit: Arc<Audit>,
    /// Per-agent limit on stored raw bytes (all folders); 0 = unlimited.
    quota_bytes: u64,
    /// Long-pollers, woken after each durable delivery.
    waiters: wait::Waiters,
    /// Live sessions (IMAP), rung after every durable change.
    bells: bell::Bells,
    /// `[senders]`: what agent-level blocks and allow lists do.
    sender_policy: std::sync::RwLock<senders::SenderPolicy>,
    /// Derived content of the newest deliveries (`recent`).
    recent: recent::RecentContent,
    /// Top-level headers of recent and recently read messages (`headers`).
    headers: headers::HeaderCache,
    /// Numbers and flags of recently read folders (`light`).
    light: light::LightIndex,
}

impl MailboxService {
    /// `quota_bytes` is `config.smtp.mailbox_quota_bytes` (0 = unlimited).
    pub fn new(store: Store, audit: Arc<Audit>, quota_bytes: u64) -> Self {
        Self {
            store,
            audit,
            quota_bytes,
            waiters: wait::Waiters::default(),
            bells: bell::Bells::default(),
            sender_policy: Default::default(),
            recent: Default::default(),
            headers: Default::default(),
            light: Default::default(),
        }
    }

    /// `api.max_waits_per_agent`: concurrent `wait`s per agent (0 = unlimited).
    pub fn set_max_waits_per_agent(&self, max: usize) {
        self.waiters.set_max_per_agent(max);
    }

    /// Ends every pending `wait` (answered as a timeout) so shutdown need not outlast them.
    pub fn shutdown(&self) {
        self.waiters.close();
    }

    /// A receiver that changes (to the agent's modseq) after each durable change to the
    /// agent's mail, from any surface: what IMAP IDLE sleeps on.
    pub fn subscribe_changes(&self, agent: &str) -> tokio::sync::watch::Receiver<u64> {
        self.bells.subscribe(agent)
    }

    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// The agent's message `id`, or NotFound — also when it belongs to another agent, so
    /// ids cannot be probed.
    fn own(&self, agent: &str, id: &str) -> Result<StoredMessage, MailboxError> {
        if !index::valid_message_id(id) {
            return Err(MailboxError::NotFound("message"));
        }
        self.store
            .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
            .filter(|m| m.agent_id == agent)
            .ok_or(MailboxError::NotFound("message"))
    }

    /// A whole message for an agent, without scope checks: for front-ends that already
    /// hold an authorised session (IMAP) and for `wait`.
    pub async fn message(&self, agent: &str, id: &str) -> Result<Message, MailboxError> {
        let meta = self.own(agent, id)?;
        if let Some(content) = self.store.get_record(Tree::MessageContent, id.as_bytes())? {
            return Ok(Message { meta, content });
        }
        if let Some(content) = self.recent.get(id) {
            return Ok(Message { meta, content });
        }
        // The agent's own messages are stored raw only (see `deliver`): derive the content,
        // a parse, on the blocking pool.
        let content = match self.store.blob_of(id.as_bytes())? {
            Some(raw) => tokio::task::spawn_blocking(move || MessageContent::derive(&raw))
                .await
                .unwrap_or_default(),
            None => MessageContent::default(),
        };
        Ok(Message { meta, content })
    }

    /// The raw RFC 5322 bytes of an agent's message.
    pub fn raw_bytes(&self, agent: &str, id: &str) -> Result<Vec<u8>, MailboxError> {
        self.own(agent, id)?;
        self.store
            .blob_of(id.as_bytes())?
            .ok_or(MailboxError::NotFound("message"))
    }

    /// The agent-wide counters (modseq, usage), if its mailbox was ever touched.
    pub fn usage(&self, agent: &str) -> Result<Option<AgentMailState>, MailboxError> {
        Ok(self
            .store
            .get_record(Tree::Folders, &index::agent_state(agent))?)
    }

    /// Every folder's state (UIDVALIDITY, UIDNEXT, counts), the six system folders first
    /// and then the agent's own by name, creating the mailbox durably on first use so the
    /// UIDVALIDITY a client sees is the one that stays.
    pub async fn folders(&self, agent: &str) -> Result<Vec<FolderState>, MailboxError> {
        self.ensure_mailbox(agent).await?;
        let mut out = Vec::with_capacity(Folder::ALL.len());
        for f in Folder::ALL {
            if let Some(s) = self
                .store
                .get_record::<FolderState>(Tree::Folders, &index::folder_state(agent, f))?
            {
                out.push(s);
            }
        }
        out.extend(self.user_folder_states(agent)?);
        Ok(out)
    }

    /// One folder's state, when it exists.
    pub fn folder_state(
        &self,
        agent: &str,
        folder: Folder,
    ) -> Result<Option<FolderState>, MailboxError> {
        Ok(self
            .store
            .get_record::<FolderState>(Tree::Folders, &index::folder_state(agent, folder))?)
    }

    /// Message ids in a folder in UID order, from `first_uid` on (IMAP's sequence map).
    pub fn uids(
        &self,
        agent: &str,
        folder: Folder,
        first_uid: u32,
        limit: usize,
    ) -> Result<Vec<(u32, String)>, MailboxError> {
        let mut out = Vec::new();
        for r in self.folder_uid_range(agent, folder, first_uid, u32::MAX) {
            let (uid, id) = r?;
            out.push((uid, String::from_utf8_lossy(&id).into_owned()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every UID in a folder, ascending: an IMAP session's sequence map. Keys only (four
    /// bytes kept per message), so even a large folder selects cheaply.
    pub fn folder_uid_list(&self, agent: &str, folder: Folder) -> Result<Vec<u32>, MailboxError> {
        self.folder_uid_range(agent, folder, 1, u32::MAX)
            .map(|r| r.map(|(uid, _)| uid))
            .collect()
    }

    /// The FolderUids entries of a folder from `first` to `last` UID: (uid, message id).
    fn folder_uid_range<'a>(
        &'a self,
        agent: &str,
        folder: Folder,
        first: u32,
        last: u32,
    ) -> impl Iterator<Item = Result<(u32, Vec<u8>), MailboxError>> + 'a {
        let from = index::folder_uid(agent, folder, first);
        let to = index::folder_uid(agent, folder, last);
        self.store
            .range(
                Tree::FolderUids,
                Bound::Included(from),
                Bound::Included(to),
                false,
            )
            .filter_map(|r| match r {
                Ok((k, v)) => keys::read_u64(&k)
                    .and_then(|u| u32::try_from(u).ok())
                    .map(|uid| Ok((uid, v))),
                Err(e) => Some(Err(e.into())),
            })
    }

    /// The records of `uids` (ascending) in a folder, in that order; a UID no longer there
    /// is left out. Dense sets are read as one range, sparse ones by key.
    pub fn records_by_uid(
        &self,
        agent: &str,
        folder: Folder,
        uids: &[u32],
    ) -> Result<Vec<StoredMessage>, MailboxError> {
        self.records_by_uid_store(agent, folder, uids, false)
    }

    /// [`Self::records_by_uid`] with only the numbers and flags of each record (id, UID,
    /// modseq, flags, size, received time, date): the text fields come back empty. What a
    /// client syncing flags (`FETCH 1:* (UID FLAGS)`), a flag or date SEARCH and a FETCH of
    /// bodies need, answered from the in-memory index of the folder (`light`) when it is
    /// kept, else decoded from the store at a fraction of the cost of whole records.
    pub fn records_by_uid_light(
        &self,
        agent: &str,
        folder: Folder,
        uids: &[u32],
    ) -> Result<Vec<StoredMessage>, MailboxError> {
        self.records_by_uid_light_where(agent, folder, uids, |_| true)
    }

    /// [`Self::records_by_uid_light`] of only the records `keep` accepts (a SEARCH's flag
    /// filter): from the in-memory index, a record is made only for those.
    pub fn records_by_uid_light_where(
        &self,
        agent: &str,
        folder: Folder,
        uids: &[u32],
        mut keep: impl FnMut(&StoredMessage) -> bool,
    ) -> Result<Vec<StoredMessage>, MailboxError> {
        // Both paths walk the folder in UID order; a list in any other order (or with
        // repeats) is put in that order first, and answered in it.
        let sorted;
        let uids = if uids.windows(2).all(|w| w[0] < w[1]) {
            uids
        } else {
            let mut v = uids.to_vec();
            v.sort_unstable();
            v.dedup();
            sorted = v;
            &sorted[..]
        };
        match self.light_from_index(agent, folder, uids, &mut keep)? {
            Some(recs) => Ok(recs),
            None => {
                let mut recs = self.records_by_uid_store(agent, folder, uids, true)?;
                recs.retain(|r| keep(r));
                Ok(recs)
            }
        }
    }

    /// The records of `uids` as the store holds them (see [`Self::records_by_uid`]).
    fn records_by_uid_store(
        &self,
        agent: &str,
        folder: Folder,
        uids: &[u32],
        light: bool,
    ) -> Result<Vec<StoredMessage>, MailboxError> {
        let (Some(&first), Some(&last)) = (uids.first(), uids.last()) else {
            return Ok(Vec::new());
        };
        let mut ids: Vec<(u32, Vec<u8>)> = Vec::with_capacity(uids.len());
        let span = u64::from(last - first) + 1;
        if span <= (uids.len() as u64).saturating_mul(4) {
            let mut want = uids.iter().peekable();
            for r in self.folder_uid_range(agent, folder, first, last) {
                let (uid, v) = r?;
                while want.next_if(|w| **w < uid).is_some() {}
                if want.next_if(|w| **w == uid).is_some() {
                    ids.push((uid, v));
                }
            }
        } else {
            for &uid in uids {
                if let Some(v) = self
                    .store
                    .get(Tree::FolderUids, &index::folder_uid(agent, folder, uid))?
                {
                    ids.push((uid, v));
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for (uid, id) in ids {
            let rec = if light {
                self.store
                    .get_record::<model::LightRecord>(Tree::Messages, &id)?
                    .map(model::LightRecord::into_stored)
            } else {
                self.store
                    .get_record::<StoredMessage>(Tree::Messages, &id)?
            };
            if let Some(r) =
                rec.filter(|r| r.agent_id == agent && r.folder == folder && r.uid == uid)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The raw bytes of a record just read for `agent` (by [`Self::records_by_uid`], which
    /// checked its owner): no second record read per message in a bulk FETCH or SEARCH.
    pub fn raw_of_record(&self, agent: &str, rec: &StoredMessage) -> Result<Vec<u8>, MailboxError> {
        if rec.agent_id != agent {
            return Err(MailboxError::NotFound("message"));
        }
        self.store
            .blob_of(rec.id.as_bytes())?
            .ok_or(MailboxError::NotFound("message"))
    }

    /// [`Self::raw_of_record`] appended to `out` (a bulk FETCH reads bodies straight into
    /// the batch of responses it builds); the bytes appended.
    pub fn raw_into_of_record(
        &self,
        agent: &str,
        rec: &StoredMessage,
        out: &mut Vec<u8>,
    ) -> Result<usize, MailboxError> {
        if rec.agent_id != agent {
            return Err(MailboxError::NotFound("message"));
        }
        self.store
            .blob_into(rec.id.as_bytes(), out, rec.size)?
            .ok_or(MailboxError::NotFound("message"))
    }

    /// The top-level header of a record just read for `agent` (IMAP `BODY[HEADER]`): from
    /// memory when it was delivered or read lately, else from the blob (then kept).
    pub fn raw_header_of_record(
        &self,
        agent: &str,
        rec: &StoredMessage,
    ) -> Result<Arc<[u8]>, MailboxError> {
        if rec.agent_id != agent {
            return Err(MailboxError::NotFound("message"));
        }
        if let Some(h) = self.headers.get(&rec.id) {
            return Ok(h);
        }
        let raw = self.raw_of_record(agent, rec)?;
        Ok(self.headers.put_from_raw(&rec.id, &raw))
    }

    /// A message's raw bytes as a blocking reader with its length (IMAP FETCH streams a
    /// large body from it), for a front-end holding an authorised session.
    pub fn raw_reader_of(
        &self,
        agent: &str,
        id: &str,
    ) -> Result<(u64, crate::store::BlobReader), MailboxError> {
        let meta = self.own(agent, id)?;
        let reader = self
            .store
            .blob_reader_of(id.as_bytes())?
            .ok_or(MailboxError::NotFound("message"))?;
        Ok((meta.size, reader))
    }

    /// The change feed after `after_modseq`, oldest first (CONDSTORE, QRESYNC, webhooks).
    pub fn changes_since(
        &self,
        agent: &str,
        after_modseq: u64,
        limit: usize,
    ) -> Result<Vec<Change>, MailboxError> {
        let from = index::change(agent, after_modseq.saturating_add(1));
        let to = index::change(agent, u64::MAX);
        let mut out = Vec::new();
        for r in self.store.range(
            Tree::MailChanges,
            Bound::Included(from),
            Bound::Included(to),
            false,
        ) {
            out.push(crate::store::decode::<Change>(&r?.1)?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// `since` as users give it (RFC 3339 or unix seconds), in unix milliseconds.
fn parse_since(since: Option<&str>) -> Result<Option<i64>, MailboxError> {
    match since.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => crate::util::parse_time(s)
            .map(|t| Some(t.saturating_mul(1000)))
            .ok_or_else(|| {
                MailboxError::BadRequest("since must be RFC 3339 or unix seconds".into())
            }),
    }
}

/// The `from` filter of list and wait. It matches the sender's *address* only: the display
/// name is free text the sender writes (`"bank.test" <x@attacker.test>`), so a filter an agent
/// uses to pick "the code from the bank" must never look at it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SenderFilter {
    /// `user@domain`: this address exactly (case-insensitive).
    Address(String),
    /// `@domain`: any address at exactly this domain.
    Domain(String),
    /// `domain`: any address at this domain or one of its subdomains (mail from
    /// `accounts.example.com` is mail from example.com's owner, as DMARC's relaxed alignment
    /// also holds).
    DomainTree(String),
}

impl SenderFilter {
    /// Parses a user's filter; None for an empty one. Values that cannot be an address or a
    /// domain (a display name, a fragment such as `amazon`) are refused rather than silently
    /// matching nothing, so an agent learns to pass the sender's address or domain.
    pub(crate) fn parse(raw: Option<&str>) -> Result<Option<Self>, MailboxError> {
        let Some(v) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let v = v.to_lowercase();
        let bad = || {
            MailboxError::Invalid(format!(
                "from must be a sender address (user@example.com) or domain (example.com or \
                 @example.com), not \"{}\"; the display name is never matched",
                v.chars().take(100).collect::<String>()
            ))
        };
        // Single-label names are no mail domain (but a dev server runs on `localhost`).
        let domain_ok = |d: &str| {
            !d.is_empty()
                && !d.starts_with('.')
                && !d.ends_with('.')
                && !d.contains("..")
                && (d.contains('.') || d == "localhost")
        };
        let plain = !v
            .chars()
            .any(|c| c.is_whitespace() || "<>,;\"()[]\\".contains(c));
        let parsed = match v.split_once('@') {
            _ if !plain => None,
            None => Some(SenderFilter::DomainTree(v.clone())).filter(|_| domain_ok(&v)),
            Some((_, d)) if d.contains('@') || !domain_ok(d) => None,
            Some(("", d)) => Some(SenderFilter::Domain(d.to_string())),
            Some(_) => Some(SenderFilter::Address(v.clone())),
        };
        parsed.map(Some).ok_or_else(bad)
    }

    pub(crate) fn matches(&self, m: &StoredMessage) -> bool {
        let Some(email) = m.from.as_ref().map(|a| a.email.to_lowercase()) else {
            return false;
        };
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        match self {
            SenderFilter::Address(a) => email == *a,
            SenderFilter::Domain(d) => domain == d,
            SenderFilter::DomainTree(d) => {
                domain == d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|p| p.ends_with('.'))
            }
        }
    }
}

#[cfg(test)]
mod testutil;
