//! Inside a mail transaction: the agent's and the folder's counters, UID allocation, and the
//! UID and timeline index entries of one message. Shared by delivery and by updates (moves,
//! purges), so both keep the same indexes the same way.

use super::folder::{uidvalidity_at, AgentMailState, FolderState};
use super::model::StoredMessage;
use super::{index, Folder, MailboxError};
use crate::store::{Tree, Tx, TxFail};

/// The agent's counters, creating the mailbox (all six folders, one UIDVALIDITY) on first
/// touch so a folder's UIDVALIDITY is fixed before any UID in it is handed out.
pub(super) fn load_state(
    tx: &Tx<'_>,
    agent: &str,
    now: i64,
) -> Result<AgentMailState, TxFail<MailboxError>> {
    if let Some(s) = tx.get_record(Tree::Folders, &index::agent_state(agent))? {
        return Ok(s);
    }
    let st = AgentMailState {
        modseq: 0,
        used_bytes: 0,
        messages: 0,
        created_at: now,
    };
    for f in Folder::ALL {
        let fs = FolderState::new(f, uidvalidity_at(now));
        tx.put_record(Tree::Folders, &index::folder_state(agent, f), &fs)?;
    }
    tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
    Ok(st)
}

/// [`load_state`] and the stored state of `folder`, read together: one round trip on
/// PostgreSQL, inside the delivery transaction that holds the agent's counters. The folder
/// is checked afterwards with [`folder_for_insert`], once the caller has checked the quota.
pub(super) fn load_state_and_folder(
    tx: &Tx<'_>,
    agent: &str,
    folder: Folder,
    now: i64,
) -> Result<(AgentMailState, Option<FolderState>), TxFail<MailboxError>> {
    let (sk, fk) = (
        index::agent_state(agent),
        index::folder_state(agent, folder),
    );
    let got = tx.get_many(Tree::Folders, &[&sk, &fk])?;
    match (got.first(), got.get(1)) {
        (Some(Some(st)), Some(fs)) => {
            Ok((Tx::decode(st)?, fs.as_deref().map(Tx::decode).transpose()?))
        }
        // A new mailbox: created now, its folders read back from this transaction.
        _ => {
            let st = load_state(tx, agent, now)?;
            Ok((st, tx.get_record(Tree::Folders, &fk)?))
        }
    }
}

/// The state `folder` takes a new message with, from what [`load_state_and_folder`] found:
/// as [`load_folder_for_insert`] decides.
pub(super) fn folder_for_insert(
    found: Option<FolderState>,
    folder: Folder,
    st: &AgentMailState,
) -> Result<FolderState, TxFail<MailboxError>> {
    let fs = folder_or_default(found, folder, st)?;
    if fs.closing {
        return Err(TxFail::Abort(MailboxError::UnknownFolder(
            folder.name().to_string(),
        )));
    }
    Ok(fs)
}

pub(super) fn load_folder(
    tx: &Tx<'_>,
    agent: &str,
    folder: Folder,
    st: &AgentMailState,
) -> Result<FolderState, TxFail<MailboxError>> {
    let found = tx.get_record(Tree::Folders, &index::folder_state(agent, folder))?;
    folder_or_default(found, folder, st)
}

fn folder_or_default(
    found: Option<FolderState>,
    folder: Folder,
    st: &AgentMailState,
) -> Result<FolderState, TxFail<MailboxError>> {
    match found {
        Some(fs) => Ok(fs),
        // An agent's own folder exists only once created (and not after it is deleted):
        // mail is never filed into a folder that is gone.
        None if folder.is_user() => Err(TxFail::Abort(MailboxError::UnknownFolder(
            folder.name().to_string(),
        ))),
        None => Ok(FolderState::new(folder, uidvalidity_at(st.created_at))),
    }
}

/// [`load_folder`] for a folder a message is about to enter: one of the agent's own that is
/// being deleted (or renamed away) takes nothing new, so emptying it cannot race a copy,
/// move or APPEND into it.
pub(super) fn load_folder_for_insert(
    tx: &Tx<'_>,
    agent: &str,
    folder: Folder,
    st: &AgentMailState,
) -> Result<FolderState, TxFail<MailboxError>> {
    let found = tx.get_record(Tree::Folders, &index::folder_state(agent, folder))?;
    folder_for_insert(found, folder, st)
}

/// Takes the folder's next UID; UIDs are never reused, so an exhausted folder refuses.
pub(super) fn next_uid(fs: &mut FolderState) -> Result<u32, TxFail<MailboxError>> {
    let uid = fs.uidnext;
    fs.uidnext = uid.checked_add(1).ok_or_else(|| {
        TxFail::Abort(MailboxError::Invalid(format!(
            "the folder {} has used every UID",
            fs.folder
        )))
    })?;
    Ok(uid)
}

/// Places `rec` (folder and uid already set) in the UID, timeline and thread indexes.
pub(super) fn index_in_folder(
    tx: &Tx<'_>,
    rec: &StoredMessage,
) -> Result<(), TxFail<MailboxError>> {
    let (a, id) = (rec.agent_id.as_str(), rec.id.as_str());
    tx.put(
        Tree::FolderUids,
        &index::folder_uid(a, rec.folder, rec.uid),
        id.as_bytes(),
    )?;
    tx.put(
        Tree::FolderTimeline,
        &index::folder_timeline(a, rec.folder, rec.received_at_ms, id),
        &[],
    )?;
    if rec.folder != Folder::Trash {
        tx.put(
            Tree::MailTimeline,
            &index::timeline(a, rec.received_at_ms, id),
            &[],
        )?;
    }
    if !rec.thread_id.is_empty() {
        tx.put(
            Tree::ThreadMessages,
            &index::thread_member(a, &rec.thread_id, rec.received_at_ms, id),
            &[],
        )?;
    }
    Ok(())
}

/// Removes `rec` (at its current folder and uid) from the UID and timeline indexes.
pub(super) fn unindex_from_folder(
    tx: &Tx<'_>,
    rec: &StoredMessage,
) -> Result<(), TxFail<MailboxError>> {
    let (a, id) = (rec.agent_id.as_str(), rec.id.as_str());
    tx.remove(Tree::FolderUids, &index::folder_uid(a, rec.folder, rec.uid))?;
    tx.remove(
        Tree::FolderTimeline,
        &index::folder_timeline(a, rec.folder, rec.received_at_ms, id),
    )?;
    tx.remove(
        Tree::MailTimeline,
        &index::timeline(a, rec.received_at_ms, id),
    )?;
    tx.remove(
        Tree::ThreadMessages,
        &index::thread_member(a, &rec.thread_id, rec.received_at_ms, id),
    )?;
    Ok(())
}
