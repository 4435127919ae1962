//! Selected-state changes: STORE (with UNCHANGEDSINCE), COPY, MOVE, EXPUNGE, UID EXPUNGE,
//! and the authenticated-state APPEND. Each is one call of `MailboxService` (one scope
//! check, one audit entry, one durable commit for the lot) followed by the responses it
//! owes the client.

use super::seqset::resolve;
use super::{other_code, Reply, Session, State};
use crate::mailbox::{MailboxError, SetEdit, StoredMessage, TransferMode};
use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Status};
use imap_codec::imap_types::sequence::SequenceSet;
use std::num::NonZeroU32;

/// Messages a command handles per step (records read, one batch call to the mailbox).
pub(super) const CHUNK: usize = 512;

/// The NO (or BAD) a mailbox error gets; internals go to the log, not to the client.
pub(super) fn mailbox_error(e: MailboxError) -> Reply {
    match e {
        MailboxError::Denied(d) => {
            Reply::no(format!("Not permitted: {d}")).code(other_code("NOPERM"))
        }
        MailboxError::NotFound(what) => {
            Reply::no(format!("No such {what}")).code(other_code("NONEXISTENT"))
        }
        MailboxError::QuotaExceeded { .. } => {
            Reply::no("Mailbox quota exceeded").code(Code::OverQuota)
        }
        MailboxError::InsufficientStorage => {
            Reply::no("The server is short of disk space; try again later")
                .code(other_code("UNAVAILABLE"))
        }
        MailboxError::UnknownFolder(f) => {
            Reply::no(format!("No folder {f}")).code(other_code("NONEXISTENT"))
        }
        MailboxError::Invalid(m) | MailboxError::BadRequest(m) => Reply::bad(m),
        MailboxError::TooManyWaits(_) => Reply::no("Too many operations").code(other_code("LIMIT")),
        MailboxError::SenderRefused(why) => Reply::no(why),
        MailboxError::Identity(_) => {
            Reply::no("Credentials no longer valid").code(other_code("AUTHENTICATIONFAILED"))
        }
        e @ (MailboxError::Store(_) | MailboxError::Audit(_) | MailboxError::HookRefused) => {
            tracing::error!(error = %e, "IMAP command failed in the store");
            Reply::no("Temporary server failure; try again").code(other_code("UNAVAILABLE"))
        }
    }
}

/// UIDs (ascending) as a UIDPLUS set.
fn uid_set(uids: &[u32]) -> Option<UidSet> {
    let mut elems = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = uids[i];
        }
        let s = NonZeroU32::new(start)?;
        elems.push(if start == end {
            UidElement::Single(s)
        } else {
            UidElement::Range(s, NonZeroU32::new(end)?)
        });
        i += 1;
    }
    Vec1::try_from(elems).ok().map(UidSet)
}

impl Session {
    /// The selected folder's UIDs named by `set` (sequence numbers or UIDs), ascending,
    /// without those known to be gone.
    pub(super) fn uids_in_set(&self, set: &SequenceSet, uid: bool) -> Result<Vec<u32>, Reply> {
        let State::Selected(_, sel) = &self.state else {
            return Err(Reply::bad("Select a mailbox first"));
        };
        Ok(resolve(set, &sel.uids, uid)
            .into_iter()
            .map(|i| sel.uids[i])
            .filter(|u| !sel.gone.contains(u))
            .collect())
    }

    /// The records of `uids` in the selected folder, with only numbers and flags when
    /// `light` (text fields empty). Callers go a [`CHUNK`] at a time, so a command over a
    /// whole large mailbox never holds every record at once.
    pub(super) fn records_for_as(
        &self,
        uids: &[u32],
        light: bool,
    ) -> Result<Vec<StoredMessage>, Reply> {
        let State::Selected(a, sel) = &self.state else {
            return Err(Reply::bad("Select a mailbox first"));
        };
        let mb = &self.ctx.mailbox;
        let r = if light {
            mb.records_by_uid_light(&a.agent, sel.folder, uids)
        } else {
            mb.records_by_uid(&a.agent, sel.folder, uids)
        };
        r.map_err(mailbox_error)
    }

    pub(super) async fn store(
        &mut self,
        set: SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: Vec<Flag<'static>>,
        uid: bool,
        modifiers: Vec<StoreModifier>,
    ) -> Reply {
        if matches!(&self.state, State::Selected(_, s) if s.read_only) {
            return Reply::no("The mailbox is read-only (EXAMINE)").code(other_code("READ-ONLY"));
        }
        let mut unchanged_since = None;
        for m in modifiers {
            let StoreModifier::UnchangedSince(v) = m;
            unchanged_since = Some(v);
            // RFC 7162 §3.1: using a CONDSTORE parameter enables it.
            self.enabled.condstore = true;
        }
        let uids = match self.uids_in_set(&set, uid) {
            Ok(u) => u,
            Err(r) => return r,
        };
        let names: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let edit = match kind {
            StoreType::Replace => SetEdit::Replace(names),
            StoreType::Add => SetEdit::Change(crate::mailbox::Delta {
                add: names,
                remove: vec![],
            }),
            StoreType::Remove => SetEdit::Change(crate::mailbox::Delta {
                add: vec![],
                remove: names,
            }),
        };
        let State::Selected(a, sel) = &self.state else {
            return Reply::bad("Select a mailbox first");
        };
        let (actor, folder) = (a.actor.clone(), sel.folder);
        let condstore = self.enabled.condstore;
        let mut modified: Vec<u32> = Vec::new();
        for chunk in uids.chunks(CHUNK) {
            let recs = match self.records_for_as(chunk, true) {
                Ok(r) => r,
                Err(r) => return r,
            };
            let ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
            let out = match self
                .ctx
                .mailbox
                .store_flags(&actor, folder, &ids, &edit, unchanged_since)
                .await
            {
                Ok(o) => o,
                Err(e) => return mailbox_error(e),
            };
            let Some(sel) = self.selected_mut() else {
                return Reply::bad("Select a mailbox first");
            };
            sel.own.extend(out.changed.iter().map(|r| r.modseq));
            let mut answers = Vec::new();
            if response == StoreResponse::Answer || condstore {
                for r in out.changed.iter().chain(out.kept.iter()) {
                    if let Some(seq) = sel.seq_of(r.uid) {
                        // .SILENT under CONDSTORE still reports the new MODSEQ (RFC 7162 §3.2).
                        let d = if response == StoreResponse::Silent {
                            silent_modseq(seq, r)
                        } else {
                            super::selected::flag_update(seq, r, condstore)
                        };
                        answers.extend(d.map(|d| (seq, d)));
                    }
                }
            }
            modified.extend(out.modified.iter().filter_map(|r| {
                if uid {
                    Some(r.uid)
                } else {
                    sel.seq_of(r.uid)
                }
            }));
            answers.sort_by_key(|(s, _)| *s);
            for (_, d) in answers {
                self.data(d);
            }
            if self.conn.maybe_flush().await.is_err() {
                self.state = State::Logout;
                return Reply::none();
            }
        }
        modified.sort_unstable();
        if let Some(set) = super::seqset::to_set(&modified) {
            return Reply::ok("Conditional STORE failed for some messages")
                .code(Code::Modified(set));
        }
        Reply::ok("STORE completed")
    }

    pub(super) async fn transfer(
        &mut self,
        set: SequenceSet,
        mailbox: Mailbox<'static>,
        uid: bool,
        moving: bool,
    ) -> Reply {
        let to = match self.folder_of(&mailbox) {
            Ok(f) => f,
            Err(r) => return r.code(Code::TryCreate),
        };
        if moving && matches!(&self.state, State::Selected(_, s) if s.read_only) {
            return Reply::no("The mailbox is read-only (EXAMINE)").code(other_code("READ-ONLY"));
        }
        let uids = match self.uids_in_set(&set, uid) {
            Ok(u) => u,
            Err(r) => return r,
        };
        let State::Selected(a, sel) = &self.state else {
            return Reply::bad("Select a mailbox first");
        };
        let (actor, agent, from) = (a.actor.clone(), a.agent.clone(), sel.folder);
        let mode = if moving {
            TransferMode::Move
        } else {
            TransferMode::Copy
        };
        let mut done = Vec::new();
        for chunk in uids.chunks(CHUNK) {
            let recs = match self.records_for_as(chunk, true) {
                Ok(r) => r,
                Err(r) => return r,
            };
            let ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
            match self
                .ctx
                .mailbox
                .transfer(&actor, from, &ids, to, mode)
                .await
            {
                Ok(d) => done.extend(d.into_iter().map(|t| (t.from_uid, t.to.uid))),
                Err(e) => return mailbox_error(e),
            }
        }
        let validity = match self.ctx.mailbox.folders(&agent).await {
            Ok(fs) => fs
                .into_iter()
                .find(|f| f.folder == to)
                .map(|f| f.uidvalidity),
            Err(e) => return mailbox_error(e),
        };
        let src: Vec<u32> = done.iter().map(|t| t.0).collect();
        let dst: Vec<u32> = done.iter().map(|t| t.1).collect();
        let code = match (
            validity.and_then(NonZeroU32::new),
            uid_set(&src),
            uid_set(&dst),
        ) {
            (Some(v), Some(s), Some(d)) => Some(Code::CopyUid {
                uid_validity: v,
                source: s,
                destination: d,
            }),
            _ => None,
        };
        if !moving {
            let r = Reply::ok("COPY completed");
            return match code {
                Some(c) => r.code(c),
                None => r,
            };
        }
        // MOVE (RFC 6851 §4.3): COPYUID untagged, then the expunges, then OK.
        if let Some(c) = code {
            if let Ok(s) = Status::ok(None, Some(c), "Moved".to_string()) {
                self.conn
                    .send(&imap_codec::imap_types::response::Response::Status(s));
            }
        }
        self.announce_expunged(&src);
        Reply::ok("MOVE completed")
    }

    /// Removes `uids` (ascending) from the map, telling the client (EXPUNGE highest first,
    /// or one VANISHED under QRESYNC).
    fn announce_expunged(&mut self, uids: &[u32]) {
        let qresync = self.enabled.qresync;
        let Some(sel) = self.selected_mut() else {
            return;
        };
        let mut out = Vec::new();
        let present: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| sel.seq_of(*u).is_some())
            .collect();
        if qresync {
            if let Some(set) = super::seqset::to_set(&present) {
                out.push(Data::Vanished {
                    earlier: false,
                    known_uids: set,
                });
            }
            sel.uids.retain(|u| present.binary_search(u).is_err());
        } else {
            for u in present.iter().rev() {
                if let Some(seq) = sel.seq_of(*u) {
                    if let Ok(d) = Data::expunge(seq) {
                        out.push(d);
                    }
                    sel.uids.remove(seq as usize - 1);
                }
            }
        }
        for u in &present {
            sel.gone.remove(u);
        }
        for d in out {
            self.data(d);
        }
    }

    pub(super) async fn expunge(&mut self, only: Option<SequenceSet>) -> Reply {
        let State::Selected(a, sel) = &self.state else {
            return Reply::bad("Select a mailbox first");
        };
        if sel.read_only {
            return Reply::no("The mailbox is read-only (EXAMINE)").code(other_code("READ-ONLY"));
        }
        let only_uids: Option<Vec<u32>> = only.as_ref().map(|set| {
            resolve(set, &sel.uids, true)
                .into_iter()
                .map(|i| sel.uids[i])
                .collect()
        });
        let ids = match self.deleted_ids(&a.agent, sel, only_uids.as_deref()) {
            Ok(i) => i,
            Err(e) => return mailbox_error(e),
        };
        let (actor, folder) = (a.actor.clone(), sel.folder);
        if ids.is_empty() {
            return Reply::ok("EXPUNGE completed");
        }
        let gone = match self.ctx.mailbox.expunge(&actor, folder, &ids).await {
            Ok(g) => g,
            Err(e) => return mailbox_error(e),
        };
        let mut uids: Vec<u32> = gone.iter().map(|g| g.uid).collect();
        uids.sort_unstable();
        self.announce_expunged(&uids);
        Reply::ok("EXPUNGE completed")
    }

    pub(super) async fn append(
        &mut self,
        mailbox: Mailbox<'static>,
        flags: Vec<Flag<'static>>,
        date: Option<DateTime>,
        message: LiteralOrLiteral8<'static>,
    ) -> Reply {
        let folder = match self.folder_of(&mailbox) {
            Ok(f) => f,
            Err(r) => return r.code(Code::TryCreate),
        };
        let raw: Vec<u8> = match message {
            LiteralOrLiteral8::Literal(l) => l.into_inner().into_owned(),
            LiteralOrLiteral8::Literal8(l) => l.data.into_owned(),
        };
        if raw.is_empty() {
            return Reply::no("An empty message cannot be appended");
        }
        if raw.len() as u64 > self.ctx.config.max_append_bytes {
            return Reply::no("Message too large").code(Code::TooBig);
        }
        let names: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let when = date.map(|d| d.as_ref().timestamp_millis());
        let Some(a) = self.authed() else {
            return Reply::bad("Log in first");
        };
        let (actor, agent) = (a.actor.clone(), a.agent.clone());
        let rec = match self
            .ctx
            .mailbox
            .append(&actor, folder, raw, names, when)
            .await
        {
            Ok(r) => r,
            Err(e) => return mailbox_error(e),
        };
        let validity = self
            .ctx
            .mailbox
            .folders(&agent)
            .await
            .ok()
            .and_then(|fs| fs.into_iter().find(|f| f.folder == folder))
            .and_then(|f| NonZeroU32::new(f.uidvalidity));
        let r = Reply::ok("APPEND completed");
        match (validity, NonZeroU32::new(rec.uid)) {
            (Some(v), Some(u)) => r.code(Code::AppendUid {
                uid_validity: v,
                uid: u,
            }),
            _ => r,
        }
    }
}

/// `* n FETCH (UID u MODSEQ (m))`: what STORE.SILENT still says under CONDSTORE.
fn silent_modseq(seq: u32, r: &StoredMessage) -> Option<Data<'static>> {
    use imap_codec::imap_types::fetch::MessageDataItem;
    Some(Data::Fetch {
        seq: NonZeroU32::new(seq)?,
        items: Vec1::try_from(vec![
            MessageDataItem::Uid(NonZeroU32::new(r.uid)?),
            MessageDataItem::ModSeq(std::num::NonZeroU64::new(r.modseq.max(1))?),
        ])
        .ok()?,
    })
}
