//! Authenticated state on folders: SELECT/EXAMINE (with CONDSTORE and QRESYNC), LIST and
//! LSUB (with LIST-EXTENDED and LIST-STATUS options), STATUS, NAMESPACE, the QUOTA
//! commands, and CREATE/DELETE/RENAME/SUBSCRIBE on the fixed folder set.
//!
//! The folders are the six of DESIGN §9, always there, and the agent's own (CREATE,
//! DELETE, RENAME through the mailbox service). Every folder is subscribed: the hierarchy
//! is flat (delimiter `/`, no children) and SUBSCRIBE of an existing folder is a no-op.

use super::selected::Selected;
use super::{cannot, other_code, Reply, Session, State};
use crate::mailbox::{Folder, FolderState};
use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::core::{AString, Atom, QuotedChar, Vec1};
use imap_codec::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_codec::imap_types::flag::{Flag, FlagNameAttribute, FlagPerm};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Code, Data, Status};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use std::num::{NonZeroU32, NonZeroU64};

pub(super) fn mailbox_name(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => "INBOX".to_string(),
        Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    }
}

impl Session {
    /// The folder a client names (a system one, or one of the agent's own), or the NO it
    /// gets.
    pub(super) fn folder_of(&self, m: &Mailbox<'_>) -> Result<Folder, Reply> {
        let name = mailbox_name(m);
        let no = || {
            Reply::no(format!(
                "No folder {}",
                name.chars().take(64).collect::<String>()
            ))
            .code(other_code("NONEXISTENT"))
        };
        let Some(a) = self.authed() else {
            return Err(no());
        };
        self.ctx
            .mailbox
            .resolve_folder(&a.agent, &name)
            .map_err(|_| no())
    }
}

fn imap_mailbox(f: Folder) -> Mailbox<'static> {
    match f {
        Folder::Inbox => Mailbox::Inbox,
        other => Mailbox::try_from(other.name().to_string()).unwrap_or(Mailbox::Inbox),
    }
}

fn system_flags() -> Vec<Flag<'static>> {
    vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ]
}

/// Longest LIST reference plus pattern considered: folder names are at most 64 bytes, so a
/// longer pattern can only be an attack on the matcher.
const MAX_PATTERN: usize = 256;

/// RFC 3501 wildcard match: `*` anything, `%` anything but the delimiter. Iterative, with
/// one backtrack point per wildcard kind (the classic two-pointer glob), so any pattern
/// costs at most pattern × name steps and no stack.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    if pattern.len() > MAX_PATTERN {
        return false;
    }
    let (mut p, mut n) = (0usize, 0usize);
    // The last `*` and `%` seen, with the name position each last resumed from.
    let mut star: Option<(usize, usize)> = None;
    let mut pct: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                pct = None;
                p += 1;
            }
            Some(b'%') => {
                pct = Some((p, n));
                p += 1;
            }
            Some(c) if *c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => {
                if let Some((pp, pn)) = pct.filter(|(_, pn)| name[*pn] != b'/') {
                    // `%` swallows one more character (never the delimiter).
                    pct = Some((pp, pn + 1));
                    p = pp + 1;
                    n = pn + 1;
                } else if let Some((sp, sn)) = star {
                    pct = None;
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                } else {
                    return false;
                }
            }
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|c| *c == b'*' || *c == b'%')
}

impl Session {
    pub(super) async fn select(
        &mut self,
        _tag: &imap_codec::imap_types::core::Tag<'static>,
        mailbox: Mailbox<'static>,
        params: Vec<SelectParameter>,
        read_only: bool,
    ) -> Reply {
        // Selecting anew first leaves the old folder (RFC 9051 §6.3.2), even if this fails.
        let state = std::mem::replace(&mut self.state, State::Logout);
        let a = match state {
            State::Selected(a, _) => {
                if self.enabled.qresync {
                    self.untagged_ok(Code::Closed, "Previous mailbox is now closed");
                }
                a
            }
            State::Authenticated(a) => a,
            other => {
                self.state = other;
                return Reply::bad("Log in first");
            }
        };
        self.state = State::Authenticated(a);
        let folder = match self.folder_of(&mailbox) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let mut qresync = None;
        for p in params {
            match p {
                SelectParameter::CondStore => self.enabled.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.enabled.qresync {
                        return Reply::bad("Enable QRESYNC first");
                    }
                    qresync = Some((uid_validity.get(), mod_sequence_value.get(), known_uids));
                }
            }
        }
        let State::Authenticated(a) = &self.state else {
            return Reply::bad("Log in first");
        };
        let agent = a.agent.clone();
        let mb = self.ctx.mailbox.clone();
        // The modseq first, then the map: whatever lands in between is in both, and the
        // feed replay skips what the map already holds.
        let modseq = match mb.usage(&agent) {
            Ok(s) => s.map_or(0, |s| s.modseq),
            Err(e) => return super::write::mailbox_error(e),
        };
        let states = match mb.folders(&agent).await {
            Ok(s) => s,
            Err(e) => return super::write::mailbox_error(e),
        };
        let Some(fs) = states.into_iter().find(|s| s.folder == folder) else {
            return Reply::no("No such folder").code(other_code("NONEXISTENT"));
        };
        let uids = match mb.folder_uid_list(&agent, folder) {
            Ok(u) => u,
            Err(e) => return super::write::mailbox_error(e),
        };
        let sel = Selected {
            folder,
            read_only,
            uidvalidity: fs.uidvalidity,
            uids,
            modseq,
            gone: Default::default(),
            own: Default::default(),
            bell: mb.subscribe_changes(&agent),
        };
        let exists = u32::try_from(sel.uids.len()).unwrap_or(u32::MAX);
        self.data(Data::Flags(system_flags()));
        let mut perm: Vec<FlagPerm<'static>> =
            system_flags().into_iter().map(FlagPerm::Flag).collect();
        perm.push(FlagPerm::Asterisk);
        if read_only {
            perm.clear();
        }
        self.untagged_ok(Code::PermanentFlags(perm), "Flags permitted");
        self.data(Data::Exists(exists));
        if !self.enabled.rev2 {
            self.data(Data::Recent(0));
        }
        if let Some(v) = NonZeroU32::new(fs.uidvalidity) {
            self.untagged_ok(Code::UidValidity(v), "UIDs valid");
        }
        if let Some(n) = NonZeroU32::new(fs.uidnext) {
            self.untagged_ok(Code::UidNext(n), "Predicted next UID");
        }
        if let Some(m) = NonZeroU64::new(fs.highest_modseq.max(1)) {
            self.untagged_ok(Code::HighestModSeq(m), "Highest");
        }
        let a = match std::mem::replace(&mut self.state, State::Logout) {
            State::Authenticated(a) => a,
            other => {
                self.state = other;
                return Reply::bad("Log in first");
            }
        };
        self.state = State::Selected(a, Box::new(sel));
        if let Some((validity, since, known)) = qresync {
            if validity == fs.uidvalidity {
                self.qresync_replay(since, known).await;
            }
        }
        self.sync(true).await;
        let code = if read_only {
            Code::ReadOnly
        } else {
            Code::ReadWrite
        };
        Reply::ok(if read_only {
            "EXAMINE completed"
        } else {
            "SELECT completed"
        })
        .code(code)
    }

    fn untagged_ok(&mut self, code: Code<'static>, text: &str) {
        if let Ok(s) = Status::ok(None, Some(code), text.to_string()) {
            self.conn
                .send(&imap_codec::imap_types::response::Response::Status(s));
        }
    }

    pub(super) async fn list(
        &mut self,
        reference: Mailbox<'static>,
        pattern: ListMailbox<'static>,
        lsub: bool,
    ) -> Reply {
        let ext = std::mem::take(&mut self.ext);
        let pattern: Vec<u8> = match &pattern {
            ListMailbox::Token(t) => t.as_ref().to_vec(),
            ListMailbox::String(s) => s.as_ref().to_vec(),
        };
        let reference = mailbox_name(&reference).into_bytes();
        let Some(delim) = QuotedChar::try_from('/').ok() else {
            return Reply::no("internal");
        };
        if pattern.is_empty() {
            // `LIST "" ""`: the hierarchy delimiter and root.
            if let Ok(m) = Mailbox::try_from(String::new()) {
                self.data(Data::List {
                    items: vec![FlagNameAttribute::Noselect],
                    delimiter: Some(delim),
                    mailbox: m,
                });
            }
            return Reply::ok("LIST completed");
        }
        let mut full = reference.clone();
        full.extend_from_slice(&pattern);
        let special_only = ext.list_select.iter().any(|o| o == "SPECIAL-USE");
        let all: Vec<Folder> = match self.authed() {
            Some(a) => match self.ctx.mailbox.folders(&a.agent).await {
                Ok(states) => states.into_iter().map(|s| s.folder).collect(),
                Err(e) => return super::write::mailbox_error(e),
            },
            None => return Reply::bad("Log in first"),
        };
        for f in all {
            let name = f.name().as_bytes();
            let matches = if f == Folder::Inbox {
                wildcard(&full.to_ascii_uppercase(), b"INBOX")
            } else {
                wildcard(&full, name)
            };
            if !matches || (special_only && f.special_use().is_none()) {
                continue;
            }
            let mut items = vec![attr("HasNoChildren")];
            if let Some(su) = f.special_use() {
                items.push(attr(su.trim_start_matches('\\')));
            }
            if ext.list_select.iter().any(|o| o == "SUBSCRIBED") || lsub {
                items.push(attr("Subscribed"));
            }
            let items: Vec<_> = items.into_iter().flatten().collect();
            let data = if lsub {
                Data::Lsub {
                    items,
                    delimiter: Some(delim),
                    mailbox: imap_mailbox(f),
                }
            } else {
                Data::List {
                    items,
                    delimiter: Some(delim),
                    mailbox: imap_mailbox(f),
                }
            };
            self.data(data);
            if let Some(st) = &ext.list_status {
                if let Some(r) = self.status_for(f, &names_of(st)).await.err() {
                    return r;
                }
            }
        }
        Reply::ok(if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        })
    }

    pub(super) async fn status(
        &mut self,
        mailbox: Mailbox<'static>,
        items: &[StatusDataItemName],
    ) -> Reply {
        let folder = match self.folder_of(&mailbox) {
            Ok(f) => f,
            Err(r) => return r,
        };
        match self.status_for(folder, items).await {
            Ok(()) => Reply::ok("STATUS completed"),
            Err(r) => r,
        }
    }

    async fn status_for(
        &mut self,
        folder: Folder,
        items: &[StatusDataItemName],
    ) -> Result<(), Reply> {
        let Some(a) = self.authed() else {
            return Err(Reply::bad("Log in first"));
        };
        let agent = a.agent.clone();
        // The mailbox is made on first touch, so a new agent's STATUS INBOX works too.
        if !folder.is_user() {
            self.ctx
                .mailbox
                .folders(&agent)
                .await
                .map_err(super::write::mailbox_error)?;
        }
        let Some(fs) = self
            .ctx
            .mailbox
            .folder_state(&agent, folder)
            .map_err(super::write::mailbox_error)?
        else {
            return Err(Reply::no("No such folder").code(other_code("NONEXISTENT")));
        };
        let out: Vec<StatusDataItem> = items.iter().filter_map(|i| status_item(&fs, i)).collect();
        self.data(Data::Status {
            mailbox: imap_mailbox(folder),
            items: out.into(),
        });
        Ok(())
    }

    pub(super) fn namespace(&mut self) {
        // One personal namespace, no prefix, `/` as delimiter; no shared or other users'.
        let line = b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n";
        self.conn.send_raw(line);
    }

    pub(super) async fn create(&mut self, mailbox: Mailbox<'static>) -> Reply {
        if self.folder_of(&mailbox).is_ok() {
            return Reply::no("That folder exists already").code(other_code("ALREADYEXISTS"));
        }
        let name = mailbox_name(&mailbox);
        // RFC 9051 §6.3.4: a trailing delimiter only says a hierarchy is meant.
        let name = name.strip_suffix('/').unwrap_or(&name).to_string();
        let Some(a) = self.authed() else {
            return Reply::bad("Log in first");
        };
        let actor = a.actor.clone();
        if !self.ctx.limits.take_folder_create(&a.agent) {
            return Reply::no("Too many folders created this hour").code(other_code("LIMIT"));
        }
        let max = self.ctx.config.max_user_folders;
        match self.ctx.mailbox.create_folder(&actor, &name, max).await {
            Ok(_) => Reply::ok("CREATE completed"),
            Err(crate::mailbox::MailboxError::Invalid(m)) => Reply::no(m).code(cannot()),
            Err(e) => super::write::mailbox_error(e),
        }
    }

    pub(super) async fn delete(&mut self, mailbox: Mailbox<'static>) -> Reply {
        let folder = match self.folder_of(&mailbox) {
            Ok(f) => f,
            Err(r) => return r,
        };
        if !folder.is_user() {
            return Reply::no("The standard folders cannot be deleted").code(cannot());
        }
        let Some(a) = self.authed() else {
            return Reply::bad("Log in first");
        };
        let actor = a.actor.clone();
        match self.ctx.mailbox.delete_folder(&actor, folder).await {
            Ok(_) => Reply::ok("DELETE completed"),
            Err(e) => super::write::mailbox_error(e),
        }
    }

    pub(super) async fn rename(&mut self, from: Mailbox<'static>, to: Mailbox<'static>) -> Reply {
        let folder = match self.folder_of(&from) {
            Ok(f) => f,
            Err(r) => return r,
        };
        if !folder.is_user() && folder != Folder::Inbox {
            return Reply::no("The standard folders cannot be renamed").code(cannot());
        }
        if self.folder_of(&to).is_ok() {
            return Reply::no("The new name exists already").code(other_code("ALREADYEXISTS"));
        }
        let Some(a) = self.authed() else {
            return Reply::bad("Log in first");
        };
        let actor = a.actor.clone();
        if !self.ctx.limits.take_folder_create(&a.agent) {
            return Reply::no("Too many folders created this hour").code(other_code("LIMIT"));
        }
        let max = self.ctx.config.max_user_folders;
        let name = mailbox_name(&to);
        match self
            .ctx
            .mailbox
            .rename_folder(&actor, folder, &name, max)
            .await
        {
            Ok(_) => Reply::ok("RENAME completed"),
            Err(crate::mailbox::MailboxError::Invalid(m)) => Reply::no(m).code(cannot()),
            Err(e) => super::write::mailbox_error(e),
        }
    }

    pub(super) fn subscribe(&mut self, mailbox: Mailbox<'static>, on: bool) -> Reply {
        match (self.folder_of(&mailbox), on) {
            (Ok(_), true) => Reply::ok("SUBSCRIBE completed"),
            (Ok(_), false) => Reply::no("Every folder stays subscribed").code(cannot()),
            (Err(r), _) => r,
        }
    }

    pub(super) fn get_quota(&mut self, root: &[u8]) -> Reply {
        if !root.is_empty() {
            return Reply::no("No such quota root").code(other_code("NONEXISTENT"));
        }
        self.quota_data();
        Reply::ok("GETQUOTA completed")
    }

    pub(super) async fn get_quota_root(&mut self, mailbox: Mailbox<'static>) -> Reply {
        if let Err(r) = self.folder_of(&mailbox) {
            return r;
        }
        let limited = self.ctx.mailbox.quota_bytes() > 0;
        let roots = if limited {
            AString::try_from(String::new()).ok().into_iter().collect()
        } else {
            Vec::new()
        };
        self.data(Data::QuotaRoot { mailbox, roots });
        if limited {
            self.quota_data();
        }
        Reply::ok("GETQUOTAROOT completed")
    }

    /// `* QUOTA "" (STORAGE used limit)`, in units of 1024 octets (RFC 9208 §5.1).
    fn quota_data(&mut self) {
        let Some(a) = self.authed() else { return };
        let quota = self.ctx.mailbox.quota_bytes();
        if quota == 0 {
            return;
        }
        let used = self
            .ctx
            .mailbox
            .usage(&a.agent)
            .ok()
            .flatten()
            .map_or(0, |s| s.used_bytes);
        let q = QuotaGet::new(Resource::Storage, used.div_ceil(1024), quota / 1024);
        if let Ok(root) = AString::try_from(String::new()) {
            self.data(Data::Quota {
                root,
                quotas: Vec1::from(q),
            });
        }
    }
}

fn attr(name: &str) -> Option<FlagNameAttribute<'static>> {
    Atom::try_from(name.to_string())
        .ok()
        .map(FlagNameAttribute::from)
}

fn names_of(items: &[String]) -> Vec<StatusDataItemName> {
    items
        .iter()
        .filter_map(|i| match i.as_str() {
            "MESSAGES" => Some(StatusDataItemName::Messages),
            "RECENT" => Some(StatusDataItemName::Recent),
            "UIDNEXT" => Some(StatusDataItemName::UidNext),
            "UIDVALIDITY" => Some(StatusDataItemName::UidValidity),
            "UNSEEN" => Some(StatusDataItemName::Unseen),
            "SIZE" => Some(StatusDataItemName::Size),
            "HIGHESTMODSEQ" => Some(StatusDataItemName::HighestModSeq),
            "DELETED" => Some(StatusDataItemName::Deleted),
            _ => None,
        })
        .collect()
}

fn status_item(fs: &FolderState, i: &StatusDataItemName) -> Option<StatusDataItem> {
    let n32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Some(match i {
        StatusDataItemName::Messages => StatusDataItem::Messages(n32(fs.exists)),
        StatusDataItemName::Recent => StatusDataItem::Recent(0),
        StatusDataItemName::UidNext => StatusDataItem::UidNext(NonZeroU32::new(fs.uidnext)?),
        StatusDataItemName::UidValidity => {
            StatusDataItem::UidValidity(NonZeroU32::new(fs.uidvalidity)?)
        }
        StatusDataItemName::Unseen => StatusDataItem::Unseen(n32(fs.unseen)),
        StatusDataItemName::Size => StatusDataItem::Size(fs.size),
        StatusDataItemName::HighestModSeq => StatusDataItem::HighestModSeq(fs.highest_modseq),
        // `\Deleted` counts are not kept; zero is what a client acts on safely.
        StatusDataItemName::Deleted => StatusDataItem::Deleted(0),
        StatusDataItemName::DeletedStorage => StatusDataItem::DeletedStorage(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_rfc_3501_says() {
        assert!(wildcard(b"*", b"Sent"));
        assert!(wildcard(b"%", b"Sent"));
        assert!(wildcard(b"S*", b"Sent"));
        assert!(!wildcard(b"S%x", b"Sent"));
        assert!(wildcard(b"%", b"a"));
        assert!(!wildcard(b"%", b"a/b"));
        assert!(wildcard(b"*", b"a/b"));
        assert!(wildcard(b"Trash", b"Trash"));
        assert!(!wildcard(b"trash", b"Trash"));
        assert!(wildcard(b"a%c", b"abc") && !wildcard(b"a%c", b"a/c"));
        assert!(wildcard(b"*%*", b"x") && wildcard(b"%*", b""));
        assert!(wildcard(b"a*b*c", b"aXbYbZc") && !wildcard(b"a*b*c", b"aXbY"));
        assert!(wildcard(b"%/%", b"a/b") && !wildcard(b"%", b"a/b"));
    }

    #[test]
    fn hostile_patterns_cost_nothing() {
        let stars = vec![b'*'; 300_000];
        assert!(!wildcard(&stars, b"INBOX"));
        let mut p = vec![b'*'; 200];
        p.push(b'Z');
        let t = std::time::Instant::now();
        assert!(!wildcard(&p, b"Archive"));
        assert!(t.elapsed() < std::time::Duration::from_millis(50));
    }
}
