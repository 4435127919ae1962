//! The index as store keys. Delivery and purge write only per-message entries, inside their
//! own transactions, so a search never sees a message that is gone or misses one that is
//! stored, on one node or on several sharing a database; the merger (`merge`) later moves
//! them into posting blocks a batch at a time.
//!
//! | tree           | key                                          | value                    |
//! |----------------|----------------------------------------------|--------------------------|
//! | SearchPostings | agent \0 term \0 received ms (BE) \0 msg id  | a block (`blocks`)       |
//! | SearchDocs     | message id                                   | 1, terms joined by \0    |
//! | SearchPending  | agent \0 received ms (BE) \0 msg id           | empty: not yet in blocks |
//! | SearchDead     | agent \0 received ms (BE) \0 msg id           | empty: purged, still in blocks |
//!
//! Blocks under one term sort by arrival like the timelines, so a reverse walk of
//! `agent \0 term \0` is that term's matches newest first, and a walk of `agent \0 prefix`
//! reaches every term the prefix starts. The forward record (SearchDocs) lists a message's
//! terms: the merger knows which blocks a message is in, and a candidate is checked
//! against the other words of a query with one read. A search reads blocks and the pending
//! messages; a purged message still in a block has no record and is skipped.

use super::super::{index, StoredMessage};
use crate::store::{keys, Tree, Tx, TxStoreError};

/// Format byte of a SearchDocs value.
const DOC_FORMAT: u8 = 1;

/// The base a term's postings sit under, in the shape `index::timeline_*` take.
pub(in crate::mailbox) fn term_base(agent: &str, term: &str) -> Vec<String> {
    vec![agent.to_string(), term.to_string()]
}

/// The first key of any term starting with `prefix`.
pub(in crate::mailbox) fn prefix_start(agent: &str, prefix: &str) -> Vec<u8> {
    keys::join(&[agent, prefix])
}

/// The first key after every term starting with `prefix` (terms are UTF-8: never 0xFF).
pub(in crate::mailbox) fn prefix_end(agent: &str, prefix: &str) -> Vec<u8> {
    let mut k = prefix_start(agent, prefix);
    k.push(0xFF);
    k
}

/// The term a posting key under `agent` belongs to.
pub(in crate::mailbox) fn term_of<'k>(agent: &str, key: &'k [u8]) -> Option<&'k str> {
    let rest = key.strip_prefix(keys::prefix(&[agent]).as_slice())?;
    let end = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

pub(in crate::mailbox) fn posting(agent: &str, term: &str, received_ms: i64, id: &str) -> Vec<u8> {
    index::timeline_at(&term_base(agent, term), received_ms, id)
}

/// A message's key in SearchPending and SearchDead.
pub(in crate::mailbox) fn doc_key(rec: &StoredMessage) -> Vec<u8> {
    index::timeline(&rec.agent_id, rec.received_at_ms, &rec.id)
}

fn encode_doc(terms: &[String]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + terms.iter().map(|t| t.len() + 1).sum::<usize>());
    v.push(DOC_FORMAT);
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            v.push(0);
        }
        v.extend_from_slice(t.as_bytes());
    }
    v
}

/// A message's terms from its forward record, sorted. An unknown format reads as no
/// terms: the message is then simply not found by text, never an error for the reader.
pub(in crate::mailbox) fn decode_doc(v: &[u8]) -> Vec<String> {
    match v.split_first() {
        Some((&DOC_FORMAT, rest)) if !rest.is_empty() => rest
            .split(|b| *b == 0)
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Records `rec`'s terms and marks it pending for the merger (needs SearchDocs and
/// SearchPending declared). Two small writes, whatever the number of words.
pub(in crate::mailbox) fn index_message(
    tx: &Tx<'_>,
    rec: &StoredMessage,
    terms: &[String],
) -> Result<(), TxStoreError> {
    let terms: Vec<String> = terms
        .iter()
        .filter(|t| !t.is_empty() && !t.contains('\0'))
        .cloned()
        .collect();
    tx.put(Tree::SearchDocs, rec.id.as_bytes(), &encode_doc(&terms))?;
    tx.put(Tree::SearchPending, &doc_key(rec), &[])
}

/// Takes `rec` out of the index: at once if it is still pending, else by marking it dead
/// for the merger, which removes its positions and forward record (needs SearchDocs,
/// SearchPending and SearchDead declared). Nothing when it was never indexed.
pub(in crate::mailbox) fn unindex_message(
    tx: &Tx<'_>,
    rec: &StoredMessage,
) -> Result<(), TxStoreError> {
    if tx.get(Tree::SearchDocs, rec.id.as_bytes())?.is_none() {
        return Ok(());
    }
    let k = doc_key(rec);
    if tx.get(Tree::SearchPending, &k)?.is_some() {
        tx.remove(Tree::SearchPending, &k)?;
        tx.remove(Tree::SearchDocs, rec.id.as_bytes())
    } else {
        tx.put(Tree::SearchDead, &k, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_term_and_parse_back() {
        let a = posting("ag_x", "zurich", 5, "msg_a");
        let b = posting("ag_x", "zurich", 256, "msg_b");
        let c = posting("ag_x", "zurichsee", 1, "msg_c");
        assert!(a < b && b < c);
        assert!(prefix_start("ag_x", "zur") < a && c < prefix_end("ag_x", "zur"));
        assert!(b < index::timeline_end(&term_base("ag_x", "zurich")));
        assert!(c > index::timeline_end(&term_base("ag_x", "zurich")));
        assert_eq!(term_of("ag_x", &c), Some("zurichsee"));
        let base = term_base("ag_x", "zurich");
        assert_eq!(index::parse_timed(&base, &b), Some((256, "msg_b".into())));
        // Another agent's postings never fall in this agent's ranges.
        let other = posting("ag_xy", "zurich", 1, "msg_d");
        assert!(!(prefix_start("ag_x", "") <= other && other < prefix_end("ag_x", "")));
    }

    #[test]
    fn docs_round_trip() {
        let t = vec!["alpha".to_string(), "beta".to_string()];
        assert_eq!(decode_doc(&encode_doc(&t)), t);
        assert!(decode_doc(&encode_doc(&[])).is_empty());
        assert!(decode_doc(&[9, 1, 2]).is_empty());
        assert!(decode_doc(&[]).is_empty());
    }
}
