//! The selected state: the session's sequence map of one folder, and how changes made
//! elsewhere (SMTP deliveries, REST and MCP, other IMAP sessions) reach it.
//!
//! The map changes only at points RFC 9051 §7.5.1 allows: new messages (EXISTS) and flag
//! changes (FETCH) after any command, expunges (EXPUNGE, or VANISHED under QRESYNC) only
//! after commands that do not name messages by sequence number — so a client's sequence
//! numbers stay right while another session expunges. What changed is read from the
//! agent's change feed after the modseq the session has seen; the mailbox's bell only
//! says when to look.

use super::{Reply, Session, State};
use crate::mailbox::{ChangeKind, Folder, StoredMessage};
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::IntoStatic;
use std::collections::BTreeSet;
use std::num::{NonZeroU32, NonZeroU64};
use tokio::sync::watch;

/// Changes read from the feed per store look.
const FEED_PAGE: usize = 1000;

pub(in crate::imap) struct Selected {
    pub folder: Folder,
    pub read_only: bool,
    /// The folder's UIDVALIDITY at SELECT: an agent's own folder deleted (and perhaps
    /// created again under the name) meanwhile is no longer this one.
    pub uidvalidity: u32,
    /// UIDs in the folder as this session knows it, ascending; sequence number = index + 1.
    pub uids: Vec<u32>,
    /// The agent modseq up to which the feed is applied.
    pub modseq: u64,
    /// Messages gone elsewhere, still in the map until an expunge may be announced.
    pub gone: BTreeSet<u32>,
    /// Modseqs of this session's own flag changes, whose FETCH it already sent.
    pub own: BTreeSet<u64>,
    pub bell: watch::Receiver<u64>,
}

impl Selected {
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids
            .binary_search(&uid)
            .ok()
            .and_then(|i| u32::try_from(i + 1).ok())
    }
}

/// IMAP flags of a record (its keywords are kept as written).
pub(super) fn flags_of(rec: &StoredMessage) -> Vec<FlagFetch<'static>> {
    rec.flags
        .iter()
        .filter_map(|f| Flag::try_from(f.as_str()).ok().map(IntoStatic::into_static))
        .map(FlagFetch::Flag)
        .collect()
}

/// `* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`, as unsolicited flag updates and STORE
/// answers are sent.
pub(super) fn flag_update(seq: u32, rec: &StoredMessage, modseq: bool) -> Option<Data<'static>> {
    let mut items = vec![
        MessageDataItem::Uid(NonZeroU32::new(rec.uid)?),
        MessageDataItem::Flags(flags_of(rec)),
    ];
    if modseq {
        items.push(MessageDataItem::ModSeq(NonZeroU64::new(rec.modseq.max(1))?));
    }
    Some(Data::Fetch {
        seq: NonZeroU32::new(seq)?,
        items: Vec1::try_from(items).ok()?,
    })
}

/// Calls `f` with every change of `agent` after `after`, oldest first, a page at a time.
pub(super) fn each_change(
    mb: &crate::mailbox::MailboxService,
    agent: &str,
    mut after: u64,
    mut f: impl FnMut(&crate::mailbox::Change),
) -> Result<(), crate::mailbox::MailboxError> {
    loop {
        let page = mb.changes_since(agent, after, FEED_PAGE)?;
        for c in &page {
            after = c.modseq;
            f(c);
        }
        if page.len() < FEED_PAGE {
            return Ok(());
        }
    }
}

/// A UID set as sorted, merged ranges: membership by binary search, so checking a long
/// change feed against a client's set costs log(ranges) per change, not the set's length.
pub(super) struct UidRanges(Vec<(u32, u32)>);

impl UidRanges {
    pub(super) fn of(set: &SequenceSet) -> UidRanges {
        use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
        let v = |s: &SeqOrUid| match s {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => u32::MAX,
        };
        let mut r: Vec<(u32, u32)> = set
            .0
            .as_ref()
            .iter()
            .map(|s| match s {
                Sequence::Single(x) => (v(x), v(x)),
                Sequence::Range(a, b) => (v(a).min(v(b)), v(a).max(v(b))),
            })
            .collect();
        r.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(r.len());
        for (lo, hi) in r {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        UidRanges(merged)
    }

    pub(super) fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|(lo, _)| *lo <= uid);
        i > 0 && self.0[i - 1].1 >= uid
    }
}

/// What changed in `folder` after `since`, replayed from the feed in the blocking pool (a
/// long history is CPU work): UIDs expunged (within `known` when given) and UIDs added or
/// changed, both ascending. None if the feed cannot be read.
pub(super) async fn replay(
    mb: std::sync::Arc<crate::mailbox::MailboxService>,
    agent: String,
    folder: Folder,
    since: u64,
    known: Option<SequenceSet>,
) -> Option<(Vec<u32>, Vec<u32>)> {
    tokio::task::spawn_blocking(move || {
        let known = known.as_ref().map(UidRanges::of);
        let mut vanished = BTreeSet::new();
        let mut changed = BTreeSet::new();
        each_change(&mb, &agent, since, |c| {
            if c.folder != folder {
                return;
            }
            match c.kind {
                ChangeKind::MovedOut | ChangeKind::Purged => {
                    changed.remove(&c.uid);
                    if known.as_ref().is_none_or(|k| k.contains(c.uid)) {
                        vanished.insert(c.uid);
                    }
                }
                ChangeKind::Added | ChangeKind::Updated => {
                    changed.insert(c.uid);
                }
            }
        })
        .ok()?;
        Some((
            vanished.into_iter().collect(),
            changed.into_iter().collect(),
        ))
    })
    .await
    .ok()
    .flatten()
}

impl Session {
    pub(super) fn selected_mut(&mut self) -> Option<&mut Selected> {
        match &mut self.state {
            State::Selected(_, s) => Some(s),
            _ => None,
        }
    }

    /// Applies what changed since the session last looked; see the module doc for what is
    /// announced when. `expunge_ok` is false after FETCH, STORE and SEARCH (not UID ...).
    pub(super) async fn sync(&mut self, expunge_ok: bool) {
        let State::Selected(a, sel) = &mut self.state else {
            return;
        };
        let agent = a.agent.clone();
        let mb = self.ctx.mailbox.clone();
        let mut exists = false;
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        let from = sel.modseq;
        let read = each_change(&mb, &agent, from, |c| {
            sel.modseq = sel.modseq.max(c.modseq);
            if c.folder != sel.folder {
                return;
            }
            match c.kind {
                ChangeKind::Added => {
                    if sel.uids.last().is_none_or(|l| c.uid > *l) {
                        sel.uids.push(c.uid);
                        exists = true;
                    }
                }
                ChangeKind::MovedOut | ChangeKind::Purged => {
                    if sel.uids.binary_search(&c.uid).is_ok() {
                        sel.gone.insert(c.uid);
                    }
                }
                ChangeKind::Updated => {
                    if !sel.own.remove(&c.modseq) {
                        touched.insert(c.uid);
                    }
                }
            }
        });
        if let Err(e) = read {
            tracing::warn!(error = %e, "cannot read the change feed");
        }
        // Changes to an agent's own folder may be its deletion: a session whose folder is
        // gone (or closing, or made again) cannot go on as if it were still selected.
        if sel.folder.is_user() && (exists || !sel.gone.is_empty() || !touched.is_empty()) {
            let same = mb
                .folder_state(&agent, sel.folder)
                .ok()
                .flatten()
                .is_some_and(|fs| !fs.closing && fs.uidvalidity == sel.uidvalidity);
            if !same {
                self.bye(None, "The selected folder was deleted or renamed");
                return;
            }
        }
        sel.own.retain(|m| *m > sel.modseq);
        let qresync = self.enabled.qresync;
        let condstore = self.enabled.condstore;
        let mut out: Vec<Data<'static>> = Vec::new();
        if expunge_ok && !sel.gone.is_empty() {
            let gone: Vec<u32> = std::mem::take(&mut sel.gone).into_iter().collect();
            if qresync {
                if let Some(set) = super::seqset::to_set(&gone) {
                    out.push(Data::Vanished {
                        earlier: false,
                        known_uids: set,
                    });
                }
                sel.uids.retain(|u| gone.binary_search(u).is_err());
            } else {
                // Highest first: each EXPUNGE renumbers only what follows it.
                for uid in gone.iter().rev() {
                    if let Some(seq) = sel.seq_of(*uid) {
                        if let Ok(d) = Data::expunge(seq) {
                            out.push(d);
                        }
                        sel.uids.remove(seq as usize - 1);
                    }
                }
            }
        }
        if exists {
            out.push(Data::Exists(
                u32::try_from(sel.uids.len()).unwrap_or(u32::MAX),
            ));
        }
        touched.retain(|u| !sel.gone.contains(u));
        if !touched.is_empty() {
            let uids: Vec<u32> = touched.into_iter().collect();
            match mb.records_by_uid_light(&agent, sel.folder, &uids) {
                Ok(recs) => {
                    for r in recs {
                        if let Some(d) = sel
                            .seq_of(r.uid)
                            .and_then(|s| flag_update(s, &r, condstore))
                        {
                            out.push(d);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read changed messages"),
            }
        }
        for d in out {
            self.data(d);
        }
    }

    /// After any command: [`Session::sync`] if the bell rang since the session last looked,
    /// so an APPEND or COPY into the selected folder, or a delivery during a command, is
    /// answered with EXISTS at once (RFC 9051 §5.2: size changes observed while a command
    /// runs are sent) rather than at the next NOOP. The bell holds the agent's modseq, so
    /// nothing is read when nothing changed; expunges held back by an earlier command go
    /// out at the first command that may carry them.
    pub(super) async fn sync_if_rung(&mut self, expunge_ok: bool) {
        let due = self
            .selected_mut()
            .is_some_and(|s| *s.bell.borrow() > s.modseq || (expunge_ok && !s.gone.is_empty()));
        if due {
            self.sync(expunge_ok).await;
        }
    }

    /// QRESYNC at SELECT (RFC 7162 §3.2.5): what was expunged since the client's modseq
    /// (`VANISHED (EARLIER)`, limited to the UIDs it knows), then the flags of what changed.
    pub(super) async fn qresync_replay(&mut self, since: u64, known: Option<SequenceSet>) {
        let State::Selected(a, sel) = &self.state else {
            return;
        };
        let (agent, folder) = (a.agent.clone(), sel.folder);
        let Some((vanished, changed)) = replay(
            self.ctx.mailbox.clone(),
            agent.clone(),
            folder,
            since,
            known,
        )
        .await
        else {
            return;
        };
        let State::Selected(_, sel) = &self.state else {
            return;
        };
        let gone: Vec<u32> = vanished
            .into_iter()
            .filter(|u| sel.uids.binary_search(u).is_err())
            .collect();
        let mut out = Vec::new();
        if let Some(set) = super::seqset::to_set(&gone) {
            out.push(Data::Vanished {
                earlier: true,
                known_uids: set,
            });
        }
        for chunk in changed.chunks(super::write::CHUNK) {
            if let Ok(recs) = self.ctx.mailbox.records_by_uid_light(&agent, folder, chunk) {
                for r in recs {
                    if let Some(d) = sel.seq_of(r.uid).and_then(|s| flag_update(s, &r, true)) {
                        out.push(d);
                    }
                }
            }
        }
        for d in out {
            self.data(d);
        }
    }

    /// CLOSE (expunging `\Deleted` unless read-only) and UNSELECT. RFC 9051: no untagged
    /// EXPUNGE for what CLOSE removes.
    pub(super) async fn close(&mut self, expunge: bool) -> Reply {
        let state = std::mem::replace(&mut self.state, State::Logout);
        let State::Selected(a, sel) = state else {
            self.state = state;
            return Reply::bad("No mailbox selected");
        };
        let mut reply = Reply::ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        });
        if expunge && !sel.read_only {
            let ids = self.deleted_ids(&a.agent, &sel, None);
            match ids {
                Ok(ids) if !ids.is_empty() => {
                    if let Err(e) = self.ctx.mailbox.expunge(&a.actor, sel.folder, &ids).await {
                        reply = super::write::mailbox_error(e);
                    }
                }
                Ok(_) => {}
                Err(e) => reply = super::write::mailbox_error(e),
            }
        }
        self.state = State::Authenticated(a);
        reply
    }

    /// Ids of the messages in the map (or in `only`, UIDs) that carry `\Deleted`.
    pub(super) fn deleted_ids(
        &self,
        agent: &str,
        sel: &Selected,
        only: Option<&[u32]>,
    ) -> Result<Vec<String>, crate::mailbox::MailboxError> {
        let uids = only.unwrap_or(&sel.uids);
        // Flags only: the light records.
        let recs = self
            .ctx
            .mailbox
            .records_by_uid_light(agent, sel.folder, uids)?;
        Ok(recs
            .into_iter()
            .filter(|r| r.flags.iter().any(|f| f == crate::mailbox::flags::DELETED))
            .map(|r| r.id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges_merge_and_answer_membership() {
        let set = SequenceSet::try_from("9,1:3,4,20:30,25:40").unwrap();
        let r = UidRanges::of(&set);
        assert_eq!(r.0, vec![(1, 4), (9, 9), (20, 40)]);
        for (u, want) in [
            (1, true),
            (4, true),
            (5, false),
            (9, true),
            (19, false),
            (40, true),
            (41, false),
        ] {
            assert_eq!(r.contains(u), want, "{u}");
        }
        assert!(UidRanges::of(&SequenceSet::try_from("5:*").unwrap()).contains(u32::MAX));
    }
}
