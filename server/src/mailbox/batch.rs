//! Changes to many messages of one folder at once, as IMAP makes them (STORE, COPY, MOVE,
//! EXPUNGE) and APPEND: one scope check and one audit entry per command, each message its
//! own transaction (so a failure part-way leaves every message whole), and one durable
//! commit for the lot — a STORE over a thousand messages costs one fsync, not a thousand.
//!
//! Callers name messages by id (IMAP resolves its UIDs first); each edit re-checks, inside
//! its transaction, that the message is still this agent's and still in `folder`, so a
//! message another session moved or purged meanwhile is skipped, never touched elsewhere.

use super::flags::{normalize_flag, SetEdit, DELETED};
use super::model::{ChangeKind, DeliveryMeta, StoredMessage};
use super::slots::{index_in_folder, load_folder_for_insert, load_state, next_uid};
use super::update::{Applied, Edit, TREES};
use super::{index, Folder, MailboxError, MailboxService};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::{BlobId, Tree, TxFail};
use crate::util::{now_millis, now_unix};

/// Audit details name at most this many message ids.
const AUDITED_IDS: usize = 50;

/// What a flag change over many messages did.
#[derive(Debug, Default)]
pub struct FlagsOutcome {
    /// Changed, as they now are.
    pub changed: Vec<StoredMessage>,
    /// Already as asked: unchanged, as they are.
    pub kept: Vec<StoredMessage>,
    /// Refused by `unchanged_since` (RFC 7162 MODIFIED), as they are.
    pub modified: Vec<StoredMessage>,
}

/// One message copied or moved: its UID in the source folder and the record in the target.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub from_uid: u32,
    pub to: StoredMessage,
}

/// One message purged by an expunge: where it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Expunged {
    pub uid: u32,
    pub id: String,
}

/// Whether a transfer leaves the source in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    Copy,
    Move,
}

impl MailboxService {
    /// `mail:manage`. Applies `edit` to the flags of each of `ids` still in `folder`.
    pub async fn store_flags(
        &self,
        actor: &Actor,
        folder: Folder,
        ids: &[String],
        edit: &SetEdit,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsOutcome, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailManage, "mail.flags", folder.name())?;
        // Every change is a record and a change-feed entry: below the disk reserve only
        // what frees space (expunge, delete) goes on.
        self.check_space(0)?;
        let edit = Edit {
            flags: Some(edit.prepare(normalize_flag, "flags")?),
            unchanged_since,
            in_folder: Some(folder),
            ..Edit::default()
        };
        let mut out = FlagsOutcome::default();
        let mut last = None;
        for id in ids {
            match self.apply_uncommitted(agent, id, &edit) {
                Ok(Applied::Changed(r)) => {
                    last = Some(r.modseq);
                    out.changed.push(r)
                }
                Ok(Applied::Kept(r)) => out.kept.push(r),
                Ok(Applied::Modified(r)) => out.modified.push(r),
                Ok(Applied::Purged(_)) | Err(MailboxError::NotFound(_)) => {}
                Err(e) => {
                    self.finish(agent, last).await?;
                    return Err(e);
                }
            }
        }
        self.finish(agent, last).await?;
        self.audit_batch(actor, "mail.flags", folder, &out.changed)?;
        Ok(out)
    }

    /// `mail:manage`. Purges every one of `ids` still in `folder` that has `\Deleted`
    /// (IMAP EXPUNGE and UID EXPUNGE): gone for good, with its blob when no one else
    /// holds it.
    pub async fn expunge(
        &self,
        actor: &Actor,
        folder: Folder,
        ids: &[String],
    ) -> Result<Vec<Expunged>, MailboxError> {
        let agent = actor.require(
            &self.audit,
            Scope::MailManage,
            "mail.expunge",
            folder.name(),
        )?;
        let edit = Edit {
            purge: true,
            purge_if_flag: Some(DELETED),
            in_folder: Some(folder),
            ..Edit::default()
        };
        let mut gone = Vec::new();
        let mut last = None;
        for id in ids {
            // A first look skips the plainly undeleted; the purge re-checks ownership,
            // folder and `\Deleted` inside its transaction, so a flag taken off meanwhile
            // by another session keeps the message.
            let deleted = self
                .own(agent, id)
                .is_ok_and(|m| m.folder == folder && m.flags.iter().any(|f| f == DELETED));
            if !deleted {
                continue;
            }
            match self.apply_uncommitted(agent, id, &edit) {
                Ok(Applied::Purged(r)) => {
                    last = Some(r.modseq);
                    gone.push(r)
                }
                Ok(_) | Err(MailboxError::NotFound(_)) => {}
                Err(e) => {
                    self.finish(agent, last).await?;
                    return Err(e);
                }
            }
        }
        self.finish(agent, last).await?;
        self.audit_batch(actor, "mail.expunge", folder, &gone)?;
        Ok(gone
            .into_iter()
            .map(|r| Expunged {
                uid: r.uid,
                id: r.id,
            })
            .collect())
    }

    /// `mail:manage`. Copies or moves each of `ids` still in `from` to `to`, in order. A
    /// copy shares the original's blob (one more holder) and search entry; a move keeps
    /// the message id and flags and takes a new UID in `to`.
    pub async fn transfer(
        &self,
        actor: &Actor,
        from: Folder,
        ids: &[String],
        to: Folder,
        mode: TransferMode,
    ) -> Result<Vec<Transfer>, MailboxError> {
        let action = match mode {
            TransferMode::Copy => "mail.copy",
            TransferMode::Move => "mail.move",
        };
        let agent = actor.require(&self.audit, Scope::MailManage, action, to.name())?;
        self.check_space(0)?;
        let mut done = Vec::new();
        let mut last = None;
        for id in ids {
            let step = match mode {
                TransferMode::Move if from == to => Ok(None),
                TransferMode::Move => {
                    let edit = Edit {
                        folder: Some(to),
                        in_folder: Some(from),
                        ..Edit::default()
                    };
                    let before = self.own(agent, id).map(|m| m.uid);
                    self.apply_uncommitted(agent, id, &edit)
                        .map(|a| match (a, before) {
                            (Applied::Changed(r), Ok(uid)) => Some(Transfer {
                                from_uid: uid,
                                to: r,
                            }),
                            _ => None,
                        })
                }
                TransferMode::Copy => self.copy_uncommitted(agent, id, from, to).map(Some),
            };
            match step {
                Ok(Some(t)) => {
                    last = Some(t.to.modseq);
                    done.push(t)
                }
                Ok(None) | Err(MailboxError::NotFound(_)) => {}
                Err(e) => {
                    self.finish(agent, last).await?;
                    return Err(e);
                }
            }
        }
        self.finish(agent, last).await?;
        let recs: Vec<StoredMessage> = done.iter().map(|t| t.to.clone()).collect();
        self.audit_batch(actor, action, to, &recs)?;
        Ok(done)
    }

    /// `mail:manage`. Stores a message a client uploads (IMAP APPEND) in `folder`, with
    /// `flags` and the INTERNALDATE it gives (now when None). Refused below the disk
    /// reserve and over the quota, like any new mail.
    pub async fn append(
        &self,
        actor: &Actor,
        folder: Folder,
        raw: Vec<u8>,
        flags: Vec<String>,
        internal_date_ms: Option<i64>,
    ) -> Result<StoredMessage, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailManage, "mail.append", folder.name())?;
        self.check_space(raw.len() as u64)?;
        let meta = DeliveryMeta {
            received_at_ms: internal_date_ms.unwrap_or_else(now_millis),
            flags,
            ..DeliveryMeta::default()
        };
        let rec = self.deliver(agent, folder, raw, meta).await?;
        actor.audit(
            &self.audit,
            "mail.append",
            &rec.id,
            Outcome::Ok,
            serde_json::json!({"folder": folder, "uid": rec.uid, "size": rec.size}),
        )?;
        Ok(rec)
    }

    /// `mail:read`, for a front-end about to read message contents in bulk (IMAP FETCH of
    /// bodies): re-checks the scope and records one audit entry for the command.
    pub fn authorize_read(
        &self,
        actor: &Actor,
        folder: Folder,
        count: usize,
    ) -> Result<(), MailboxError> {
        actor.require(&self.audit, Scope::MailRead, "mail.fetch", folder.name())?;
        actor.audit(
            &self.audit,
            "mail.fetch",
            folder.name(),
            Outcome::Ok,
            serde_json::json!({"folder": folder, "messages": count}),
        )?;
        Ok(())
    }

    /// A copy of `id` (in `from`) in `to`, as one transaction.
    fn copy_uncommitted(
        &self,
        agent: &str,
        id: &str,
        from: Folder,
        to: Folder,
    ) -> Result<Transfer, MailboxError> {
        let (now, now_ms) = (now_unix(), now_millis());
        let new = index::new_message_id(now);
        let quota = self.quota_bytes;
        let t = self.store.transact(&TREES, |tx| {
            let src: StoredMessage = tx
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
                .filter(|m| m.agent_id == agent && m.folder == from)
                .ok_or(TxFail::Abort(MailboxError::NotFound("message")))?;
            let blob = tx
                .get(Tree::BlobRefs, id.as_bytes())?
                .and_then(|b| BlobId::from_slice(&b))
                .ok_or(TxFail::Abort(MailboxError::NotFound("message")))?;
            let mut st = load_state(tx, agent, now)?;
            if quota > 0 && st.used_bytes.saturating_add(src.size) > quota {
                return Err(TxFail::Abort(MailboxError::QuotaExceeded {
                    used: st.used_bytes,
                    quota,
                    incoming: src.size,
                }));
            }
            let mut fs = load_folder_for_insert(tx, agent, to, &st)?;
            let mut rec = src.clone();
            rec.id = new.clone();
            rec.folder = to;
            rec.uid = next_uid(&mut fs)?;
            st.modseq += 1;
            st.used_bytes += rec.size;
            st.messages += 1;
            rec.modseq = st.modseq;
            fs.add(rec.size, rec.is_unread(), st.modseq);
            tx.put_record(Tree::Messages, new.as_bytes(), &rec)?;
            tx.link_blob(new.as_bytes(), &blob)?;
            index_in_folder(tx, &rec)?;
            let terms = tx
                .get(Tree::SearchDocs, id.as_bytes())?
                .map(|d| super::search::decode_doc(&d))
                .unwrap_or_default();
            super::search::index_message(tx, &rec, &terms)?;
            tx.put_record(Tree::Folders, &index::folder_state(agent, to), &fs)?;
            tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
            tx.put_record(
                Tree::MailChanges,
                &index::change(agent, st.modseq),
                &rec.change(ChangeKind::Added, st.modseq, now_ms),
            )?;
            Ok(Transfer {
                from_uid: src.uid,
                to: rec,
            })
        })?;
        Ok(t)
    }

    /// Makes a batch durable and rings the agent's bell, if anything changed.
    /// Purges one of `agent`'s messages for a service acting on the agent's behalf (a draft
    /// replaced, sent or deleted: `queue::drafts`), which checked its own scope. A message
    /// already gone is fine.
    pub async fn purge_for(&self, agent: &str, id: &str) -> Result<(), MailboxError> {
        let edit = Edit {
            purge: true,
            ..Edit::default()
        };
        let last = match self.apply_uncommitted(agent, id, &edit) {
            Ok(Applied::Purged(r)) => Some(r.modseq),
            Ok(_) | Err(MailboxError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        self.finish(agent, last).await
    }

    async fn finish(&self, agent: &str, last_modseq: Option<u64>) -> Result<(), MailboxError> {
        if let Some(m) = last_modseq {
            self.audit.commit().await?;
            self.rang(agent, m);
        }
        Ok(())
    }

    fn audit_batch(
        &self,
        actor: &Actor,
        action: &str,
        folder: Folder,
        recs: &[StoredMessage],
    ) -> Result<(), MailboxError> {
        if recs.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = recs
            .iter()
            .take(AUDITED_IDS)
            .map(|r| r.id.as_str())
            .collect();
        actor.audit(
            &self.audit,
            action,
            folder.name(),
            Outcome::Ok,
            serde_json::json!({"folder": folder, "messages": recs.len(), "ids": ids}),
        )?;
        Ok(())
    }
}
