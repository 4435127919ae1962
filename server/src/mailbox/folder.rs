//! The folders: six fixed ones every agent has, and the agent's own (IMAP CREATE); the
//! per-folder and per-agent counters behind IMAP's UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ.

use super::MailboxError;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Mutex;

/// A folder. The six system folders always exist and are never deleted, so their
/// UIDVALIDITY never changes. An agent's own folders (`User`) carry their name, interned so
/// a folder stays a small `Copy` value that keys and records use as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Folder {
    Inbox,
    /// IMAP SPECIAL-USE `\Sent` (RFC 6154): copies of what the agent sent.
    Sent,
    /// `\Junk`: DMARC quarantine and anything the agent marks as junk.
    Junk,
    /// `\Trash`: DELETE moves here; a DELETE here purges.
    Trash,
    /// `\Drafts`.
    Drafts,
    /// `\Archive`.
    Archive,
    /// An agent's own folder, by name (see [`Folder::user`] for what a name may be).
    User(&'static str),
}

/// Distinct user-folder names interned in this process. Names are at most
/// [`MAX_NAME_LEN`] bytes and creation is capped per agent, but a create/delete loop with
/// fresh names could still grow the set; past this many, new names are refused (stored
/// folders still load).
const MAX_INTERNED: usize = 1_000_000;
pub const MAX_NAME_LEN: usize = 64;

static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// The one `&'static str` for `name`; None when the interner is full and `creating`.
fn intern(name: &str, creating: bool) -> Option<&'static str> {
    let mut g = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if let Some(s) = set.get(name) {
        return Some(s);
    }
    if creating && set.len() >= MAX_INTERNED {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    Some(leaked)
}

impl Folder {
    pub const ALL: [Folder; 6] = [
        Folder::Inbox,
        Folder::Sent,
        Folder::Junk,
        Folder::Trash,
        Folder::Drafts,
        Folder::Archive,
    ];

    /// The name users and IMAP clients see.
    pub fn name(self) -> &'static str {
        match self {
            Folder::Inbox => "INBOX",
            Folder::Sent => "Sent",
            Folder::Junk => "Junk",
            Folder::Trash => "Trash",
            Folder::Drafts => "Drafts",
            Folder::Archive => "Archive",
            Folder::User(n) => n,
        }
    }

    pub fn is_user(self) -> bool {
        matches!(self, Folder::User(_))
    }

    /// The RFC 6154 SPECIAL-USE attribute an IMAP LIST reports (INBOX has none: it is
    /// special by name; an agent's own folders have none).
    pub fn special_use(self) -> Option<&'static str> {
        match self {
            Folder::Inbox | Folder::User(_) => None,
            Folder::Sent => Some("\\Sent"),
            Folder::Junk => Some("\\Junk"),
            Folder::Trash => Some("\\Trash"),
            Folder::Drafts => Some("\\Drafts"),
            Folder::Archive => Some("\\Archive"),
        }
    }

    /// A system folder by name, case-insensitive (as IMAP treats INBOX and as REST users
    /// type names). An agent's own folders are resolved by the mailbox, which knows them
    /// (`MailboxService::resolve_folder`).
    pub fn parse(s: &str) -> Result<Folder, MailboxError> {
        Folder::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| MailboxError::UnknownFolder(s.chars().take(64).collect()))
    }

    /// A name for a new folder of the agent's own: 1 to 64 printable ASCII characters,
    /// none of `/ * % " \\` (the hierarchy is flat; wildcards and quoting stay unambiguous),
    /// not a system folder's name in any case.
    /// Whether `name` may name a folder of the agent's own ([`Folder::user`] without
    /// interning it: a refused name costs no memory).
    pub fn check_user_name(name: &str) -> Result<(), MailboxError> {
        let bad = |why: &str| MailboxError::Invalid(format!("folder name {why}"));
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(bad("must be 1 to 64 characters"));
        }
        if !name
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && !b"/*%\"\\&".contains(&b))
        {
            return Err(bad("may hold printable ASCII except / * % \" \\ &"));
        }
        if name.trim() != name {
            return Err(bad("may not start or end with a space"));
        }
        if Folder::parse(name).is_ok() {
            return Err(bad("is a system folder's"));
        }
        Ok(())
    }

    pub fn user(name: &str) -> Result<Folder, MailboxError> {
        Folder::check_user_name(name)?;
        let bad = |why: &str| MailboxError::Invalid(format!("folder name {why}"));
        intern(name, true)
            .map(Folder::User)
            .ok_or_else(|| bad("cannot be created now: too many folder names"))
    }
}

impl Serialize for Folder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Folder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Folder, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        let system = Folder::ALL.into_iter().find(|f| f.name() == name);
        Ok(match system {
            Some(f) => f,
            // A stored folder always loads, even past the interner's cap.
            None => Folder::User(intern(&name, false).unwrap_or("?")),
        })
    }
}

impl std::fmt::Display for Folder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Stored per agent and folder (`Folders` tree, key `agent \0 folder`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderState {
    pub folder: Folder,
    /// Fixed when the folder is created and never changed: UIDs are never reused, so clients
    /// caching UIDs stay valid across restarts.
    pub uidvalidity: u32,
    /// The UID the next message placed here receives; only ever grows.
    pub uidnext: u32,
    /// Messages in the folder (IMAP EXISTS).
    pub exists: u64,
    /// Messages without `\Seen` (IMAP UNSEEN count in STATUS).
    pub unseen: u64,
    /// Raw bytes of the messages in the folder.
    pub size: u64,
    /// The greatest modseq of any change that touched this folder (CONDSTORE).
    pub highest_modseq: u64,
    /// Being deleted or renamed away: nothing new is filed into it while it is emptied.
    #[serde(default)]
    pub closing: bool,
}

impl FolderState {
    pub(super) fn new(folder: Folder, uidvalidity: u32) -> Self {
        Self {
            folder,
            uidvalidity,
            uidnext: 1,
            exists: 0,
            unseen: 0,
            size: 0,
            highest_modseq: 0,
            closing: false,
        }
    }

    /// Counts a message entering the folder.
    pub(super) fn add(&mut self, size: u64, unread: bool, modseq: u64) {
        self.exists += 1;
        self.size += size;
        self.unseen += u64::from(unread);
        self.highest_modseq = self.highest_modseq.max(modseq);
    }

    /// Counts a message leaving the folder.
    pub(super) fn remove(&mut self, size: u64, unread: bool, modseq: u64) {
        self.exists = self.exists.saturating_sub(1);
        self.size = self.size.saturating_sub(size);
        self.unseen = self.unseen.saturating_sub(u64::from(unread));
        self.highest_modseq = self.highest_modseq.max(modseq);
    }
}

/// Stored once per agent (`Folders` tree, key `agent \0` with an empty folder name). Every
/// change to an agent's mail updates it, so its transactions serialize per agent: that is what
/// makes UID and modseq allocation race-free without locks outside the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMailState {
    /// The last modseq handed out; each change to a message takes the next one.
    pub modseq: u64,
    /// Raw bytes stored over all folders, Trash included (what the quota limits).
    pub used_bytes: u64,
    pub messages: u64,
    /// Unix seconds the mailbox was first touched; every folder's UIDVALIDITY.
    pub created_at: i64,
}

/// A UIDVALIDITY from a creation time: nonzero (RFC 3501 §2.3.1.1) and 32-bit.
pub(super) fn uidvalidity_at(unix: i64) -> u32 {
    u32::try_from(unix).ok().filter(|v| *v != 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_carry_special_use() {
        for f in Folder::ALL {
            assert_eq!(Folder::parse(f.name()).unwrap(), f);
        }
        assert_eq!(Folder::parse("inbox").unwrap(), Folder::Inbox);
        assert_eq!(Folder::parse(" trash ").unwrap(), Folder::Trash);
        assert!(matches!(
            Folder::parse("Spam"),
            Err(MailboxError::UnknownFolder(n)) if n == "Spam"
        ));
        assert_eq!(Folder::Inbox.special_use(), None);
        assert_eq!(Folder::Junk.special_use(), Some("\\Junk"));
        assert_eq!(serde_json::to_string(&Folder::Inbox).unwrap(), "\"INBOX\"");
    }

    #[test]
    fn records_written_before_user_folders_still_read() {
        // The derive the folder had before it could name an agent's own folders.
        #[derive(Serialize)]
        enum Old {
            #[serde(rename = "INBOX")]
            Inbox,
            Archive,
        }
        for (old, new) in [(Old::Inbox, Folder::Inbox), (Old::Archive, Folder::Archive)] {
            let bytes = crate::store::encode(&old).unwrap();
            assert_eq!(crate::store::decode::<Folder>(&bytes).unwrap(), new);
        }
        let f = Folder::user("Projects 2026").unwrap();
        let back: Folder = crate::store::decode(&crate::store::encode(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.name(), "Projects 2026");
        assert!(back.is_user() && back.special_use().is_none());
        for bad in [
            "",
            "a/b",
            "x*",
            "a&b",
            "inbox",
            "Sent",
            " pad",
            "q\"",
            &"n".repeat(65),
            "é",
        ] {
            assert!(Folder::user(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_never_underflow() {
        let mut s = FolderState::new(Folder::Inbox, 5);
        s.add(10, true, 3);
        s.remove(10, true, 4);
        s.remove(10, true, 2);
        assert_eq!((s.exists, s.size, s.unseen, s.highest_modseq), (0, 0, 0, 4));
        assert_eq!(uidvalidity_at(0), 1);
        assert_eq!(uidvalidity_at(1_700_000_000), 1_700_000_000);
    }
}
