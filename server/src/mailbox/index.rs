//! Key layout of the mailbox trees, in one place so every reader and writer agrees.
//!
//! | tree            | key                                      | value            |
//! |-----------------|------------------------------------------|------------------|
//! | Messages        | message id                               | [`StoredMessage`](super::StoredMessage) |
//! | BlobRefs        | message id                               | blob id (body in `store::blob`) |
//! | MessageContent  | message id (not for Sent/Drafts copies)  | [`MessageContent`](super::MessageContent) |
//! | FolderUids      | agent \0 folder \0 uid (u64 BE)          | message id       |
//! | MailTimeline    | agent \0 received ms (BE) \0 message id  | empty            |
//! | FolderTimeline  | agent \0 folder \0 received ms (BE) \0 id | empty           |
//! | Folders         | agent \0 folder / agent \0 (empty name)  | folder / agent state |
//! | MailChanges     | agent \0 modseq (BE)                     | [`Change`](super::Change) |
//! | MailThreads     | agent \0 Message-ID                      | thread id        |
//! | BlobHolds       | message id                               | empty            |
//! | ThreadMessages  | agent \0 thread \0 received ms (BE) \0 id | empty            |
//!
//! MailTimeline holds every message not in Trash (the default listing), FolderTimeline every
//! message under its folder; both order by arrival so "newest first" is a reverse range walk.

use super::Folder;
use crate::store::keys;
use data_encoding::BASE32HEX_NOPAD;
use std::sync::atomic::{AtomicU16, Ordering};

pub(super) fn folder_uid(agent: &str, folder: Folder, uid: u32) -> Vec<u8> {
    keys::with_u64(&[agent, folder.name()], u64::from(uid))
}

/// Received times before 1970 (a caller's bug) sort first instead of wrapping around.
fn ms(received_ms: i64) -> u64 {
    u64::try_from(received_ms).unwrap_or(0)
}

/// `base` \0 received \0 id: the entry for one message under an ordered prefix.
fn timed(base: &[&str], received_ms: i64, id: &str) -> Vec<u8> {
    let mut k = keys::with_u64(base, ms(received_ms));
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

pub(super) fn timeline(agent: &str, received_ms: i64, id: &str) -> Vec<u8> {
    timed(&[agent], received_ms, id)
}

pub(super) fn folder_timeline(agent: &str, folder: Folder, received_ms: i64, id: &str) -> Vec<u8> {
    timed(&[agent, folder.name()], received_ms, id)
}

/// The ordered prefix a listing walks: all of an agent's non-Trash mail, or one folder.
pub(super) fn timeline_base(agent: &str, folder: Option<Folder>) -> Vec<String> {
    match folder {
        Some(f) => vec![agent.to_string(), f.name().to_string()],
        None => vec![agent.to_string()],
    }
}

/// The first key at or after `received_ms` under `base`.
pub(super) fn timeline_from(base: &[String], received_ms: i64) -> Vec<u8> {
    let parts: Vec<&str> = base.iter().map(String::as_str).collect();
    keys::with_u64(&parts, ms(received_ms))
}

/// The position of one entry under `base` (cursors resume strictly before or after it).
pub(super) fn timeline_at(base: &[String], received_ms: i64, id: &str) -> Vec<u8> {
    let parts: Vec<&str> = base.iter().map(String::as_str).collect();
    timed(&parts, received_ms, id)
}

/// The first key after every key under `base`.
pub(super) fn timeline_end(base: &[String]) -> Vec<u8> {
    let parts: Vec<&str> = base.iter().map(String::as_str).collect();
    let mut k = keys::join(&parts);
    k.push(1);
    k
}

/// Reads (received ms, message id) back from a timeline key under `base`.
pub(super) fn parse_timed(base: &[String], key: &[u8]) -> Option<(i64, String)> {
    let parts: Vec<&str> = base.iter().map(String::as_str).collect();
    let rest = key.strip_prefix(keys::prefix(&parts).as_slice())?;
    let (ms, rest) = rest.split_at_checked(8)?;
    let ms = i64::try_from(u64::from_be_bytes(ms.try_into().ok()?)).ok()?;
    let id = std::str::from_utf8(rest.strip_prefix(&[0])?).ok()?;
    Some((ms, id.to_string()))
}

/// A thread's member: every message of the thread in any folder, arrival-ordered.
pub(super) fn thread_member(agent: &str, thread: &str, received_ms: i64, id: &str) -> Vec<u8> {
    timed(&[agent, thread], received_ms, id)
}

/// The prefix of one thread's members (parse them back with [`parse_timed`]).
pub(super) fn thread_base(agent: &str, thread: &str) -> Vec<String> {
    vec![agent.to_string(), thread.to_string()]
}

/// Thread ids are ours (`th_` + base32).
pub(super) fn valid_thread_id(id: &str) -> bool {
    crate::util::is_id_of(id, "th")
}

pub(super) fn folder_state(agent: &str, folder: Folder) -> Vec<u8> {
    keys::join(&[agent, folder.name()])
}

/// The agent-wide record sits beside its folders under the empty folder name, which no
/// folder can have.
pub(super) fn agent_state(agent: &str) -> Vec<u8> {
    keys::join(&[agent, ""])
}

pub(super) fn change(agent: &str, modseq: u64) -> Vec<u8> {
    keys::with_u64(&[agent], modseq)
}

pub(super) fn thread(agent: &str, message_id: &str) -> Vec<u8> {
    keys::join(&[agent, message_id])
}

/// Agent ids come from identity (`ag_` + base32) but `deliver` is called by front-ends: a
/// NUL would let one agent's keys alias another's.
pub(super) fn valid_agent_id(agent: &str) -> bool {
    !agent.is_empty() && agent.len() <= 128 && !agent.bytes().any(|b| b == 0)
}

/// Ids handed out by this process, for [`new_message_id`].
static ISSUED: AtomicU16 = AtomicU16::new(0);

/// A new message id: `msg_` and 16 characters like every other id, but in creation order.
/// The 80 bits are the unix second (32), a per-process counter (16) and 32 random bits, in
/// base32hex, whose alphabet (`0-9a-v` in lower case) sorts as the values it encodes.
///
/// Why ordered: the records keyed by message id (Messages, BlobRefs, the search index's
/// documents) are read newest first by every listing. With random ids the newest 50 sat in
/// 50 different sled leaves, each a page read and decompressed once the mailbox outgrew the
/// cache; ordered, they share a few leaves, and delivery appends instead of splitting pages
/// all over the tree. Ids are names, not capabilities (every read checks the owning agent),
/// so the random bits only have to keep two nodes sharing a database from choosing the same
/// id in the same second with the same counter; one process never repeats an id unless it
/// makes 65,536 in one second.
pub(super) fn new_message_id(now_unix: i64) -> String {
    let mut b = [0u8; 10];
    b[..4].copy_from_slice(&u32::try_from(now_unix).unwrap_or(0).to_be_bytes());
    b[4..6].copy_from_slice(&ISSUED.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    b[6..].copy_from_slice(&crate::util::random_bytes::<4>());
    format!("msg_{}", BASE32HEX_NOPAD.encode(&b).to_ascii_lowercase())
}

/// Message ids are ours (`msg_` + base32); anything else cannot name a message.
pub(super) fn valid_message_id(id: &str) -> bool {
    crate::util::is_id_of(id, "msg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_valid_and_sort_by_creation_time() {
        let mut ids: Vec<String> = (0..3000).map(|_| new_message_id(1_700_000_000)).collect();
        ids.push(new_message_id(1_700_000_001));
        ids.push(new_message_id(4_000_000_000));
        for id in &ids {
            assert!(valid_message_id(id), "{id}");
            assert_eq!(id.len(), "msg_".len() + 16, "{id}");
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no id repeats");
        // The counter wraps within a second; across seconds the order is creation order.
        assert_eq!(sorted.last(), ids.last());
        assert!(ids[..3000].iter().all(|a| a < &ids[3000]));
        // Before 1970 or past 2106 (a clock's bug) still gives a valid id.
        assert!(valid_message_id(&new_message_id(-5)));
        assert!(valid_message_id(&new_message_id(i64::MAX)));
    }

    #[test]
    fn timeline_keys_order_by_time_and_parse_back() {
        let base = timeline_base("ag_x", None);
        let a = timeline("ag_x", 5, "msg_b");
        let b = timeline("ag_x", 256, "msg_a");
        assert!(a < b);
        assert!(b < timeline_end(&base));
        assert!(timeline_from(&base, 6) > a && timeline_from(&base, 6) < b);
        assert_eq!(parse_timed(&base, &b), Some((256, "msg_a".into())));
        let fbase = timeline_base("ag_x", Some(Folder::Inbox));
        let f = folder_timeline("ag_x", Folder::Inbox, 9, "msg_c");
        assert_eq!(parse_timed(&fbase, &f), Some((9, "msg_c".into())));
        assert_eq!(timeline_at(&fbase, 9, "msg_c"), f);
        // Another agent's keys never fall inside this agent's range.
        assert!(timeline("ag_xy", 0, "msg_a") > timeline_end(&base));
        assert_eq!(timeline("ag_x", -5, "m"), timeline("ag_x", 0, "m"));
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_message_id("msg_abc234"));
        assert!(!valid_message_id("msg_a\0b"));
        assert!(!valid_message_id("ag_abc"));
        assert!(valid_agent_id("ag_x"));
        assert!(!valid_agent_id("a\0b"));
        assert!(!valid_agent_id(""));
    }
}
