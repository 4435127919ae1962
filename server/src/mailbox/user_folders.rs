//! An agent's own folders (IMAP CREATE, DELETE, RENAME), beside the six system ones.
//!
//! A user folder is a [`FolderState`] under its name, like the system folders, so every
//! index, counter and change-feed entry treats it the same way. Its UIDVALIDITY is the
//! agent's modseq at creation: unique per agent and only growing, so a folder deleted and
//! created again under the same name never reuses the old UIDVALIDITY (RFC 9051 §2.3.1.1)
//! and clients drop what they cached. Deleting purges the folder's messages; renaming
//! moves them into a new folder (new UIDs, new UIDVALIDITY) and removes the old one — both
//! one transaction per message and one durable commit, like any batch.

use super::folder::{Folder, FolderState};
use super::slots::load_state;
use super::update::{Applied, Edit};
use super::{index, MailboxError, MailboxService};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::{keys, Tree, TxFail};
use crate::util::now_unix;

impl MailboxService {
    /// The folder `name` names for `agent`: a system folder (any case) or one of its own
    /// (exact name).
    pub fn resolve_folder(&self, agent: &str, name: &str) -> Result<Folder, MailboxError> {
        if let Ok(f) = Folder::parse(name) {
            return Ok(f);
        }
        let unknown = || MailboxError::UnknownFolder(name.chars().take(64).collect());
        if name.is_empty() || name.contains('\0') || name.len() > super::folder::MAX_NAME_LEN {
            return Err(unknown());
        }
        let st = self
            .store
            .get_record::<FolderState>(Tree::Folders, &keys::join(&[agent, name]))?;
        match st {
            Some(s) if s.folder.name() == name => Ok(s.folder),
            _ => Err(unknown()),
        }
    }

    /// The agent's own folders' states, by name.
    pub(super) fn user_folder_states(&self, agent: &str) -> Result<Vec<FolderState>, MailboxError> {
        let prefix = keys::prefix(&[agent]);
        let mut out = Vec::new();
        for r in self.store.scan_prefix(Tree::Folders, &prefix) {
            let (k, v) = r?;
            let name = &k[prefix.len()..];
            if name.is_empty() || Folder::ALL.iter().any(|f| f.name().as_bytes() == name) {
                continue;
            }
            if let Ok(s) = crate::store::decode::<FolderState>(&v) {
                if s.folder.is_user() {
                    out.push(s);
                }
            }
        }
        out.sort_by(|a, b| a.folder.name().cmp(b.folder.name()));
        Ok(out)
    }

    /// `mail:manage`. Creates a folder of the agent's own.
    pub async fn create_folder(
        &self,
        actor: &Actor,
        name: &str,
        max_folders: usize,
    ) -> Result<FolderState, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailManage, "mail.folder.create", name)?;
        self.check_space(0)?;
        // Name and count first: a refused name is never interned (names live for the
        // process), and the caller limits how often an agent creates (`imap::limits`).
        Folder::check_user_name(name)?;
        self.ensure_mailbox(agent).await?;
        let count = self.user_folder_states(agent)?.len();
        if count >= max_folders {
            return Err(MailboxError::Invalid(format!(
                "at most {max_folders} folders of your own"
            )));
        }
        let folder = Folder::user(name)?;
        let now = now_unix();
        let st = self.store.transact(&[Tree::Folders], |tx| {
            let key = index::folder_state(agent, folder);
            if tx.get(Tree::Folders, &key)?.is_some() {
                return Err(TxFail::Abort(MailboxError::Invalid(format!(
                    "the folder {name} exists already"
                ))));
            }
            let mut st = load_state(tx, agent, now)?;
            st.modseq += 1;
            let validity = u32::try_from(st.modseq % u64::from(u32::MAX))
                .unwrap_or(1)
                .max(1);
            let mut fs = FolderState::new(folder, validity);
            fs.highest_modseq = st.modseq;
            tx.put_record(Tree::Folders, &key, &fs)?;
            tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
            Ok(fs)
        })?;
        self.audit.commit().await?;
        actor.audit(
            &self.audit,
            "mail.folder.create",
            name,
            Outcome::Ok,
            serde_json::json!({"folder": name}),
        )?;
        Ok(st)
    }

    /// `mail:manage`. Deletes one of the agent's own folders and purges what it holds.
    pub async fn delete_folder(&self, actor: &Actor, folder: Folder) -> Result<u64, MailboxError> {
        let agent = actor.require(
            &self.audit,
            Scope::MailManage,
            "mail.folder.delete",
            folder.name(),
        )?;
        if !folder.is_user() {
            return Err(MailboxError::Invalid(format!(
                "{folder} is a system folder and cannot be deleted"
            )));
        }
        self.close_folder(agent, folder)?;
        let purged = self.empty_folder(agent, folder, None)?;
        self.drop_folder_state(agent, folder)?;
        self.audit.commit().await?;
        if let Ok(Some(st)) = self.usage(agent) {
            self.rang(agent, st.modseq);
        }
        actor.audit(
            &self.audit,
            "mail.folder.delete",
            folder.name(),
            Outcome::Ok,
            serde_json::json!({"folder": folder.name(), "purged": purged}),
        )?;
        Ok(purged)
    }

    /// `mail:manage`. Renames one of the agent's own folders (its messages move to the new
    /// name with new UIDs under a new UIDVALIDITY), or — as IMAP defines RENAME INBOX —
    /// moves everything in INBOX to a new folder, leaving INBOX empty.
    pub async fn rename_folder(
        &self,
        actor: &Actor,
        from: Folder,
        to: &str,
        max_folders: usize,
    ) -> Result<FolderState, MailboxError> {
        let agent = actor.require(
            &self.audit,
            Scope::MailManage,
            "mail.folder.rename",
            from.name(),
        )?;
        if !from.is_user() && from != Folder::Inbox {
            return Err(MailboxError::Invalid(format!(
                "{from} is a system folder and cannot be renamed"
            )));
        }
        let created = self.create_folder(actor, to, max_folders).await?;
        if from.is_user() {
            self.close_folder(agent, from)?;
        }
        self.empty_folder(agent, from, Some(created.folder))?;
        if from.is_user() {
            self.drop_folder_state(agent, from)?;
        }
        self.audit.commit().await?;
        if let Ok(Some(st)) = self.usage(agent) {
            self.rang(agent, st.modseq);
        }
        actor.audit(
            &self.audit,
            "mail.folder.rename",
            from.name(),
            Outcome::Ok,
            serde_json::json!({"from": from.name(), "to": to}),
        )?;
        self.resolve_folder(agent, to).and_then(|f| {
            self.store
                .get_record::<FolderState>(Tree::Folders, &index::folder_state(agent, f))?
                .ok_or(MailboxError::NotFound("folder"))
        })
    }

    /// Purges (or, with `into`, moves) every message in `folder`; not yet durable.
    fn empty_folder(
        &self,
        agent: &str,
        folder: Folder,
        into: Option<Folder>,
    ) -> Result<u64, MailboxError> {
        let edit = Edit {
            purge: into.is_none(),
            folder: into,
            in_folder: Some(folder),
            ..Edit::default()
        };
        let mut n = 0;
        loop {
            let batch = self.uids(agent, folder, 1, 500)?;
            if batch.is_empty() {
                return Ok(n);
            }
            for (_, id) in batch {
                match self.apply_uncommitted(agent, &id, &edit) {
                    Ok(Applied::Purged(_)) | Ok(Applied::Changed(_)) => n += 1,
                    Ok(_) | Err(MailboxError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Marks a folder closing: from here on nothing enters it (`load_folder_for_insert`),
    /// so the emptying that follows leaves it empty for good.
    fn close_folder(&self, agent: &str, folder: Folder) -> Result<(), MailboxError> {
        self.store.transact(&[Tree::Folders], |tx| {
            let key = index::folder_state(agent, folder);
            let Some(mut fs) = tx.get_record::<FolderState>(Tree::Folders, &key)? else {
                return Err(TxFail::Abort(MailboxError::UnknownFolder(
                    folder.name().to_string(),
                )));
            };
            fs.closing = true;
            tx.put_record(Tree::Folders, &key, &fs)?;
            Ok(())
        })?;
        Ok(())
    }

    fn drop_folder_state(&self, agent: &str, folder: Folder) -> Result<(), MailboxError> {
        self.store.transact(&[Tree::Folders], |tx| {
            let mut st = load_state(tx, agent, now_unix())?;
            st.modseq += 1;
            tx.remove(Tree::Folders, &index::folder_state(agent, folder))?;
            tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
            Ok::<_, TxFail<MailboxError>>(())
        })?;
        Ok(())
    }
}
