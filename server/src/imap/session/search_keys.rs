//! What a SEARCH key asks of a message, decided before any message is read: whether numbers,
//! light records or the message bytes answer it, its light part, and the limits on its size
//! and nesting.

use imap_codec::imap_types::search::SearchKey;

/// Keys nested deeper than this are refused (NOT NOT NOT ... from a hostile client).
const MAX_DEPTH: usize = 32;

/// Counts the keys of `key` and checks its strings; the reason when it is too much.
/// Real clients send a handful of short keys; thousands of TEXT keys over large mail are an
/// attack on the CPU (`imap.max_search_keys`, `imap.max_search_string_bytes`).
pub(super) fn check_limits(
    key: &SearchKey<'_>,
    count: &mut usize,
    max_keys: usize,
    max_string: usize,
) -> Result<(), &'static str> {
    *count += 1;
    if *count > max_keys {
        return Err("Too many search keys");
    }
    let long = |s: &dyn AsRef<[u8]>| s.as_ref().len() > max_string;
    match key {
        SearchKey::And(v) => v
            .as_ref()
            .iter()
            .try_for_each(|k| check_limits(k, count, max_keys, max_string)),
        SearchKey::Not(k) => check_limits(k, count, max_keys, max_string),
        SearchKey::Or(a, b) => {
            check_limits(a, count, max_keys, max_string)?;
            check_limits(b, count, max_keys, max_string)
        }
        SearchKey::Bcc(x)
        | SearchKey::Body(x)
        | SearchKey::Cc(x)
        | SearchKey::From(x)
        | SearchKey::Subject(x)
        | SearchKey::Text(x)
        | SearchKey::To(x)
            if long(x) =>
        {
            Err("Search string too long")
        }
        SearchKey::Header(n, v) if long(n) || long(v) => Err("Search string too long"),
        _ => Ok(()),
    }
}

/// Whether `key` can be answered from message numbers alone (ALL, sequence and UID sets and
/// their combinations): then no record is read at all.
pub(super) fn numbers_only(key: &SearchKey<'_>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match key {
        SearchKey::All | SearchKey::SequenceSet(_) | SearchKey::Uid(_) => true,
        SearchKey::And(v) => v.as_ref().iter().all(|k| numbers_only(k, depth + 1)),
        SearchKey::Not(k) => numbers_only(k, depth + 1),
        SearchKey::Or(a, b) => numbers_only(a, depth + 1) && numbers_only(b, depth + 1),
        _ => false,
    }
}

/// Whether `key` reads only a record's numbers and flags (see
/// `MailboxService::records_by_uid_light`): flags, keywords, sizes, arrival dates, UIDs,
/// sequence numbers and modseqs.
pub(super) fn light_only(key: &SearchKey<'_>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match key {
        SearchKey::And(v) => v.as_ref().iter().all(|k| light_only(k, depth + 1)),
        SearchKey::Not(k) => light_only(k, depth + 1),
        SearchKey::Or(a, b) => light_only(a, depth + 1) && light_only(b, depth + 1),
        SearchKey::All
        | SearchKey::SequenceSet(_)
        | SearchKey::Uid(_)
        | SearchKey::Answered
        | SearchKey::Unanswered
        | SearchKey::Deleted
        | SearchKey::Undeleted
        | SearchKey::Draft
        | SearchKey::Undraft
        | SearchKey::Flagged
        | SearchKey::Unflagged
        | SearchKey::Seen
        | SearchKey::Unseen
        | SearchKey::Recent
        | SearchKey::New
        | SearchKey::Old
        | SearchKey::Keyword(_)
        | SearchKey::Unkeyword(_)
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::Older(_)
        | SearchKey::Younger(_)
        | SearchKey::ModSequence { .. } => true,
        _ => false,
    }
}

/// The part of `key` that [`light_only`] answers and every match must pass: the key itself
/// when it is light, else the light members of a top-level AND (`SUBJECT x FLAGGED`). A
/// search filters on it with light records first and reads whole records (and bodies) only
/// for the messages that pass, so a flag narrows a text search before any text is decoded.
pub(super) fn light_filter<'k>(key: &'k SearchKey<'k>) -> Vec<&'k SearchKey<'k>> {
    if light_only(key, 0) {
        return vec![key];
    }
    match key {
        SearchKey::And(v) => v.as_ref().iter().filter(|k| light_only(k, 1)).collect(),
        _ => Vec::new(),
    }
}

/// Whether evaluating `key` needs the stored message.
pub(super) fn needs_raw(key: &SearchKey<'_>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match key {
        SearchKey::Bcc(_) | SearchKey::Body(_) | SearchKey::Text(_) | SearchKey::Header(..) => true,
        // The record keeps the Date as a UTC instant; the day in the field's own zone is in
        // the message.
        SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => true,
        SearchKey::And(v) => v.as_ref().iter().any(|k| needs_raw(k, depth + 1)),
        SearchKey::Not(k) => needs_raw(k, depth + 1),
        SearchKey::Or(a, b) => needs_raw(a, depth + 1) || needs_raw(b, depth + 1),
        _ => false,
    }
}

pub(super) fn depth_ok(key: &SearchKey<'_>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match key {
        SearchKey::And(v) => v.as_ref().iter().all(|k| depth_ok(k, depth + 1)),
        SearchKey::Not(k) => depth_ok(k, depth + 1),
        SearchKey::Or(a, b) => depth_ok(a, depth + 1) && depth_ok(b, depth + 1),
        _ => true,
    }
}

pub(super) fn uses_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(v) => v.as_ref().iter().any(uses_modseq),
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        _ => false,
    }
}
