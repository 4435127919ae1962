//! Changing a message: flags, labels, folder (`mail:manage`), and delete — to Trash first,
//! then, for a message already in Trash, purged with its blob and every index entry.
//!
//! A move gives the message a new UID in its new folder and expunges the old one (IMAP MOVE
//! semantics); every change takes a fresh modseq and lands in the change feed.

use super::flags::{normalize_flag, normalize_label, PreparedEdit, SetEdit, SEEN};
use super::model::ChangeKind;
use super::slots::{
    index_in_folder, load_folder, load_folder_for_insert, load_state, next_uid, unindex_from_folder,
};
use super::{index, Folder, MailboxError, MailboxService, StoredMessage};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::{Tree, Tx, TxFail};
use crate::util::{now_millis, now_unix};
use serde::Deserialize;

/// `PATCH /v1/messages/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    #[serde(default)]
    pub flags: Option<SetEdit>,
    #[serde(default)]
    pub labels: Option<SetEdit>,
    #[serde(default)]
    pub folder: Option<String>,
    /// Shorthand for removing (false) or adding (true) `\Seen`; applied after `flags`.
    #[serde(default)]
    pub unread: Option<bool>,
}

/// What a DELETE did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// Moved to Trash; the record as it is now.
    Trashed(StoredMessage),
    /// Was in Trash; gone. The record as it was.
    Purged(StoredMessage),
}

impl Deleted {
    /// The REST and MCP answer: what happened, and the record when it still exists.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Deleted::Trashed(m) => {
                serde_json::json!({"id": m.id, "deleted": "trashed", "message": m.summary_json()})
            }
            Deleted::Purged(m) => serde_json::json!({"id": m.id, "deleted": "purged"}),
        }
    }
}

/// A validated change, applied inside the transaction to the current record.
#[derive(Debug, Default)]
pub(super) struct Edit {
    pub(super) flags: Option<PreparedEdit>,
    pub(super) labels: Option<PreparedEdit>,
    pub(super) unread: Option<bool>,
    pub(super) folder: Option<Folder>,
    /// Trash, or purge when already there.
    pub(super) delete: bool,
    /// Purge wherever the message is (IMAP EXPUNGE).
    pub(super) purge: bool,
    /// Purge only a message that carries this flag when the transaction runs (EXPUNGE:
    /// `\Deleted`, which another session may have just taken off).
    pub(super) purge_if_flag: Option<&'static str>,
    /// Change only a message whose modseq is not above this (RFC 7162 UNCHANGEDSINCE).
    pub(super) unchanged_since: Option<u64>,
    /// Only a message still in this folder (IMAP acts on what a session selected; a
    /// message moved away meanwhile is not found).
    pub(super) in_folder: Option<Folder>,
}

/// What one edit did, inside its transaction.
#[derive(Debug)]
pub(super) enum Applied {
    /// Nothing to change; the record as it is.
    Kept(StoredMessage),
    /// Changed (flags, labels, or folder); the record as it now is.
    Changed(StoredMessage),
    /// Gone for good; the record as it was.
    Purged(StoredMessage),
    /// Refused by `unchanged_since`; the record as it is.
    Modified(StoredMessage),
}

impl Applied {
    pub(super) fn record(&self) -> &StoredMessage {
        match self {
            Applied::Kept(r) | Applied::Changed(r) | Applied::Purged(r) | Applied::Modified(r) => r,
        }
    }
}

pub(super) const TREES: [Tree; 15] = [
    Tree::Messages,
    Tree::ThreadMessages,
    Tree::BlobRefs,
    Tree::BlobHolds,
    Tree::MessageContent,
    Tree::FolderUids,
    Tree::MailTimeline,
    Tree::FolderTimeline,
    Tree::Folders,
    Tree::MailChanges,
    Tree::SearchDocs,
    Tree::SearchPending,
    Tree::SearchDead,
    Tree::Events,
    Tree::Meta,
];

fn put_change(
    tx: &Tx<'_>,
    rec: &StoredMessage,
    kind: ChangeKind,
    modseq: u64,
    at_ms: i64,
) -> Result<(), TxFail<MailboxError>> {
    tx.put_record(
        Tree::MailChanges,
        &index::change(&rec.agent_id, modseq),
        &rec.change(kind, modseq, at_ms),
    )?;
    Ok(())
}

impl MailboxService {
    /// `mail:manage`. Applies `patch` and returns the message as it now is.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        patch: &MessagePatch,
    ) -> Result<StoredMessage, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailManage, "mail.update", id)?;
        let edit = Edit {
            flags: patch
                .flags
                .as_ref()
                .map(|e| e.prepare(normalize_flag, "flags"))
                .transpose()?,
            labels: patch
                .labels
                .as_ref()
                .map(|e| e.prepare(normalize_label, "labels"))
                .transpose()?,
            unread: patch.unread,
            folder: patch
                .folder
                .as_deref()
                .map(|f| self.resolve_folder(agent, f))
                .transpose()?,
            ..Edit::default()
        };
        let rec = match self.apply(agent, id, &edit).await? {
            Deleted::Trashed(r) | Deleted::Purged(r) => r,
        };
        actor.audit(
            &self.audit,
            "mail.update",
            id,
            Outcome::Ok,
            serde_json::json!({"folder": rec.folder, "flags": rec.flags, "labels": rec.labels}),
        )?;
        Ok(rec)
    }

    /// `mail:manage`. Outside Trash: moves there. In Trash: purges.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<Deleted, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailManage, "mail.delete", id)?;
        let edit = Edit {
            delete: true,
            ..Edit::default()
        };
        let done = self.apply(agent, id, &edit).await?;
        let purged = matches!(done, Deleted::Purged(_));
        actor.audit(
            &self.audit,
            "mail.delete",
            id,
            Outcome::Ok,
            serde_json::json!({"purged": purged}),
        )?;
        Ok(done)
    }

    /// Runs one edit as one transaction, durable before returning. An edit that changes
    /// nothing writes nothing (no modseq is spent on it).
    async fn apply(&self, agent: &str, id: &str, edit: &Edit) -> Result<Deleted, MailboxError> {
        self.own(agent, id)?;
        let done = self.apply_uncommitted(agent, id, edit)?;
        self.audit.commit().await?;
        self.rang(agent, done.record().modseq);
        Ok(match done {
            Applied::Purged(r) => Deleted::Purged(r),
            Applied::Kept(r) | Applied::Changed(r) | Applied::Modified(r) => Deleted::Trashed(r),
        })
    }

    /// One edit as one transaction, not yet durable: the caller commits (once for a batch)
    /// and rings the agent's bell.
    pub(super) fn apply_uncommitted(
        &self,
        agent: &str,
        id: &str,
        edit: &Edit,
    ) -> Result<Applied, MailboxError> {
        let (now, now_ms) = (now_unix(), now_millis());
        let done = self.store.transact(&TREES, |tx| {
            let old: StoredMessage = tx
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
                .filter(|m| m.agent_id == agent)
                .filter(|m| edit.in_folder.is_none_or(|f| m.folder == f))
                .ok_or(TxFail::Abort(MailboxError::NotFound("message")))?;
            if edit.unchanged_since.is_some_and(|u| old.modseq > u) {
                return Ok(Applied::Modified(old));
            }
            if edit.purge
                && edit
                    .purge_if_flag
                    .is_some_and(|f| !old.flags.iter().any(|x| x == f))
            {
                return Ok(Applied::Kept(old));
            }
            let mut st = load_state(tx, agent, now)?;
            if edit.purge || (edit.delete && old.folder == Folder::Trash) {
                st.modseq += 1;
                st.used_bytes = st.used_bytes.saturating_sub(old.size);
                st.messages = st.messages.saturating_sub(1);
                let mut fs = load_folder(tx, agent, old.folder, &st)?;
                fs.remove(old.size, old.is_unread(), st.modseq);
                unindex_from_folder(tx, &old)?;
                super::search::unindex_message(tx, &old)?;
                tx.remove(Tree::Messages, id.as_bytes())?;
                tx.remove(Tree::MessageContent, id.as_bytes())?;
                // A queued message's bytes outlive its Sent entry until the queue is done.
                if !super::holds::is_held(tx, id)? {
                    tx.unlink_blob(id.as_bytes())?;
                }
                put_change(tx, &old, ChangeKind::Purged, st.modseq, now_ms)?;
                tx.put_record(Tree::Folders, &index::folder_state(agent, old.folder), &fs)?;
                tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
                let mut old = old;
                old.modseq = st.modseq;
                return Ok(Applied::Purged(old));
            }

            let mut rec = old.clone();
            if let Some(f) = &edit.flags {
                rec.flags = f.apply(&rec.flags, "flags").map_err(TxFail::Abort)?;
            }
            if let Some(l) = &edit.labels {
                rec.labels = l.apply(&rec.labels, "labels").map_err(TxFail::Abort)?;
            }
            if let Some(unread) = edit.unread {
                rec.flags.retain(|f| f != SEEN);
                if !unread {
                    rec.flags.push(SEEN.to_string());
                    rec.flags.sort();
                }
            }
            let target = if edit.delete {
                Folder::Trash
            } else {
                edit.folder.unwrap_or(old.folder)
            };
            if target == old.folder && rec.flags == old.flags && rec.labels == old.labels {
                return Ok(Applied::Kept(old));
            }

            if target == old.folder {
                st.modseq += 1;
                rec.modseq = st.modseq;
                let mut fs = load_folder(tx, agent, old.folder, &st)?;
                fs.remove(old.size, old.is_unread(), st.modseq);
                fs.add(rec.size, rec.is_unread(), st.modseq);
                put_change(tx, &rec, ChangeKind::Updated, st.modseq, now_ms)?;
                tx.put_record(Tree::Folders, &index::folder_state(agent, old.folder), &fs)?;
            } else {
                st.modseq += 1;
                let mut from = load_folder(tx, agent, old.folder, &st)?;
                from.remove(old.size, old.is_unread(), st.modseq);
                unindex_from_folder(tx, &old)?;
                put_change(tx, &old, ChangeKind::MovedOut, st.modseq, now_ms)?;

                st.modseq += 1;
                let mut to = load_folder_for_insert(tx, agent, target, &st)?;
                rec.folder = target;
                rec.uid = next_uid(&mut to)?;
                rec.modseq = st.modseq;
                to.add(rec.size, rec.is_unread(), st.modseq);
                index_in_folder(tx, &rec)?;
                put_change(tx, &rec, ChangeKind::Added, st.modseq, now_ms)?;
                tx.put_record(
                    Tree::Folders,
                    &index::folder_state(agent, old.folder),
                    &from,
                )?;
                tx.put_record(Tree::Folders, &index::folder_state(agent, target), &to)?;
            }
            tx.put_record(Tree::Messages, id.as_bytes(), &rec)?;
            tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
            tx.emit(&super::events::flagged(&rec))?;
            Ok(Applied::Changed(rec))
        })?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{ListQuery, SetEdit};
    use super::*;

    fn patch(json: &str) -> MessagePatch {
        serde_json::from_str(json).unwrap()
    }

    #[tokio::test]
    async fn flags_and_labels_change_in_place_with_a_new_modseq() {
        let (_d, mb) = service(0);
        let me = reader("ag_a");
        let m = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "s")).await;
        let r = mb
            .update(
                &me,
                &m.id,
                &patch(r#"{"flags":{"add":["\\seen","$Work"]},"labels":["Receipts"]}"#),
            )
            .await
            .unwrap();
        assert_eq!(r.flags, vec!["$Work", "\\Seen"]);
        assert_eq!(r.labels, vec!["Receipts"]);
        assert_eq!((r.uid, r.folder), (m.uid, Folder::Inbox));
        assert!(r.modseq > m.modseq);
        let inbox = &mb.folders("ag_a").await.unwrap()[0];
        assert_eq!((inbox.unseen, inbox.highest_modseq), (0, r.modseq));
        let r2 = mb
            .update(&me, &m.id, &patch(r#"{"unread":true}"#))
            .await
            .unwrap();
        assert_eq!(r2.flags, vec!["$Work"]);
        // A no-op spends no modseq.
        let r3 = mb
            .update(&me, &m.id, &patch(r#"{"unread":true}"#))
            .await
            .unwrap();
        assert_eq!(r3.modseq, r2.modseq);
        let ch = mb.changes_since("ag_a", m.modseq, 10).unwrap();
        assert_eq!(
            ch.iter().map(|c| c.kind).collect::<Vec<_>>(),
            vec![ChangeKind::Updated; 2]
        );
        assert!(matches!(
            mb.update(&me, &m.id, &patch(r#"{"folder":"Nope"}"#)).await,
            Err(MailboxError::UnknownFolder(_))
        ));
        let ro = agent("ag_a", &[crate::identity::Scope::MailRead]);
        assert!(matches!(
            mb.update(&ro, &m.id, &MessagePatch::default()).await,
            Err(MailboxError::Denied(_))
        ));
        assert!(matches!(
            mb.update(&reader("ag_b"), &m.id, &MessagePatch::default())
                .await,
            Err(MailboxError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn move_takes_a_new_uid_and_expunges_the_old() {
        let (_d, mb) = service(0);
        let me = reader("ag_a");
        deliver(&mb, "ag_a", Folder::Archive, &simple("x", "already")).await;
        let m = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "s")).await;
        let p = MessagePatch {
            folder: Some("archive".into()),
            labels: Some(SetEdit::Replace(vec!["kept".into()])),
            ..Default::default()
        };
        let r = mb.update(&me, &m.id, &p).await.unwrap();
        assert_eq!((r.folder, r.uid), (Folder::Archive, 2));
        assert!(mb.uids("ag_a", Folder::Inbox, 1, 10).unwrap().is_empty());
        assert_eq!(
            mb.uids("ag_a", Folder::Archive, 2, 10).unwrap(),
            vec![(2, m.id.clone())]
        );
        let ch = mb.changes_since("ag_a", m.modseq, 10).unwrap();
        assert_eq!(
            ch.iter()
                .map(|c| (c.kind, c.folder, c.uid))
                .collect::<Vec<_>>(),
            vec![
                (ChangeKind::MovedOut, Folder::Inbox, m.uid),
                (ChangeKind::Added, Folder::Archive, 2)
            ]
        );
        let fs = mb.folders("ag_a").await.unwrap();
        assert_eq!(fs[0].exists, 0);
        assert_eq!(fs[5].exists, 2);
        // Moving back gives yet another UID in INBOX: UIDs are never reused.
        let back = MessagePatch {
            folder: Some("INBOX".into()),
            ..Default::default()
        };
        assert_eq!(mb.update(&me, &m.id, &back).await.unwrap().uid, m.uid + 1);
    }

    #[tokio::test]
    async fn delete_trashes_then_purges_everything() {
        let (_d, mb) = service(0);
        let me = reader("ag_a");
        let m = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "bye")).await;
        let Deleted::Trashed(t) = mb.delete(&me, &m.id).await.unwrap() else {
            panic!("expected trash");
        };
        assert_eq!(t.folder, Folder::Trash);
        assert!(mb
            .list_for("ag_a", &ListQuery::default())
            .unwrap()
            .items
            .is_empty());
        let trash = ListQuery {
            folder: Some("Trash".into()),
            ..Default::default()
        };
        assert_eq!(mb.list_for("ag_a", &trash).unwrap().items.len(), 1);
        assert!(matches!(
            mb.delete(&me, &m.id).await.unwrap(),
            Deleted::Purged(_)
        ));
        assert!(matches!(
            mb.get(&me, &m.id).await,
            Err(MailboxError::NotFound(_))
        ));
        assert!(mb.raw_bytes("ag_a", &m.id).is_err());
        assert!(mb.list_for("ag_a", &trash).unwrap().items.is_empty());
        for t in [Tree::Messages, Tree::BlobRefs, Tree::MessageContent] {
            assert_eq!(mb.store.get(t, m.id.as_bytes()).unwrap(), None);
        }
        assert!(mb.uids("ag_a", Folder::Trash, 1, 10).unwrap().is_empty());
        let st = mb.usage("ag_a").unwrap().unwrap();
        assert_eq!((st.used_bytes, st.messages), (0, 0));
        let last = mb.changes_since("ag_a", 0, 10).unwrap();
        assert_eq!(last.last().map(|c| c.kind), Some(ChangeKind::Purged));
        assert!(matches!(
            mb.delete(&me, &m.id).await,
            Err(MailboxError::NotFound(_))
        ));
    }
}
