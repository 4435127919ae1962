//! The append-only, hash-chained audit log (DESIGN §4).
//!
//! Every service writes through [`Audit::append`]; entries are chained by
//! `hash = SHA-256(prev_hash || canonical JSON of the rest)`, so editing, inserting or removing
//! an entry breaks the chain at that point and [`Audit::verify`] names it.

mod entry;
mod query;

pub use entry::{ActorRef, Entry, NewEntry, Outcome};
pub use query::{Filter, Page};

use crate::store::{keys, Store, StoreError, Tree};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid cursor")]
    BadCursor,
}

/// Where the chain ends now; appends are serialized through it.
struct Head {
    next_seq: u64,
    prev_hash: String,
}

/// Hex of 32 zero bytes: the `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct Audit {
    store: Store,
    /// A std mutex: held only for an in-memory update and one short store write, never across
    /// an await.
    head: Mutex<Head>,
}

/// Result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    /// Sequence number of the first entry that does not check out.
    pub first_broken: Option<u64>,
    pub reason: Option<String>,
}

impl Audit {
    pub fn open(store: Store) -> Result<Audit, AuditError> {
        let head = match store.last(Tree::Audit)? {
            Some((k, v)) => {
                let seq = keys::read_u64(&k).ok_or(StoreError::Corrupt("audit key".into()))?;
                // An undecodable last entry still lets the log grow; verify will name it.
                let prev_hash = crate::store::decode::<Entry>(&v)
                    .map(|e| e.hash)
                    .unwrap_or_else(|_| GENESIS.to_string());
                Head {
                    next_seq: seq + 1,
                    prev_hash,
                }
            }
            None => Head {
                next_seq: 1,
                prev_hash: GENESIS.to_string(),
            },
        };
        Ok(Audit {
            store,
            head: Mutex::new(head),
        })
    }

    /// Appends one entry. Not durable by itself: the caller's [`Store::commit`] (which it
    /// makes before acknowledging its own action) covers it.
    pub fn append(&self, new: NewEntry) -> Result<Entry, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let mut entry = Entry {
            seq: head.next_seq,
            ts: crate::util::now_millis(),
            actor: new.actor,
            chain: new.chain,
            action: new.action,
            target: new.target,
            outcome: new.outcome,
            detail: new.detail,
            prev_hash: head.prev_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        let mut agents: Vec<&str> = Vec::new();
        if entry.actor.kind == "agent" {
            agents.push(&entry.actor.id);
        }
        if entry.target.starts_with("ag_") && !agents.contains(&entry.target.as_str()) {
            agents.push(&entry.target);
        }
        let key = keys::u64_key(entry.seq);
        // Index first, entry second, as plain writes (a transaction per entry costs more than
        // everything else a request does): a crash between them leaves an index entry that
        // points at nothing, which queries skip; never an entry missing from its index.
        for a in &agents {
            self.store
                .put(Tree::AuditByAgent, &keys::with_u64(&[a], entry.seq), &[])?;
        }
        self.store.put_record(Tree::Audit, &key, &entry)?;
        head.next_seq += 1;
        head.prev_hash = entry.hash.clone();
        Ok(entry)
    }

    /// Recomputes the chain from the first entry and names the first one that fails: a bad
    /// hash, a `prev_hash` that does not match its predecessor, a gap in sequence numbers, or
    /// bytes that no longer decode.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let mut prev = GENESIS.to_string();
        let mut count = 0u64;
        let broken = |seq: u64, count: u64, why: String| VerifyReport {
            entries: count,
            first_broken: Some(seq),
            reason: Some(why),
        };
        for (expected_seq, item) in (1u64..).zip(self.store.scan_prefix(Tree::Audit, &[])) {
            let (k, v) = item?;
            let seq = keys::read_u64(&k).unwrap_or(0);
            if seq != expected_seq {
                return Ok(broken(
                    expected_seq,
                    count,
                    format!("entry {expected_seq} is missing (next present is {seq})"),
                ));
            }
            let e: Entry = match crate::store::decode(&v) {
                Ok(e) => e,
                Err(_) => return Ok(broken(seq, count, "entry bytes do not decode".into())),
            };
            if e.seq != seq {
                return Ok(broken(
                    seq,
                    count,
                    "entry seq does not match its key".into(),
                ));
            }
            if e.prev_hash != prev {
                return Ok(broken(
                    seq,
                    count,
                    "prev_hash does not match the previous entry".into(),
                ));
            }
            if e.compute_hash() != e.hash {
                return Ok(broken(
                    seq,
                    count,
                    "hash does not match the entry's contents".into(),
                ));
            }
            prev = e.hash;
            count += 1;
        }
        Ok(VerifyReport {
            entries: count,
            first_broken: None,
            reason: None,
        })
    }

    /// Newest-first page of entries matching `filter`.
    pub fn query(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page, AuditError> {
        query::run(&self.store, filter, limit, cursor)
    }
}

pub(crate) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    data_encoding::HEXLOWER.encode(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(action: &str) -> NewEntry {
        NewEntry {
            actor: ActorRef::agent("ag_1"),
            chain: vec!["human:a@x".into(), "agent:b@x".into()],
            action: action.into(),
            target: "t".into(),
            outcome: Outcome::Ok,
            detail: json!({"n": 1}),
        }
    }

    #[test]
    fn fresh_chain_verifies_and_tamper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let audit = Audit::open(store.clone()).unwrap();
        for i in 0..5 {
            audit.append(entry(&format!("a.{i}"))).unwrap();
        }
        let r = audit.verify().unwrap();
        assert_eq!(r.entries, 5);
        assert_eq!(r.first_broken, None);

        let key = keys::u64_key(3);
        let mut e: Entry = store.get_record(Tree::Audit, &key).unwrap().unwrap();
        e.action = "a.forged".into();
        store.put_record(Tree::Audit, &key, &e).unwrap();
        let r = audit.verify().unwrap();
        assert_eq!(r.first_broken, Some(3));
    }

    #[test]
    fn chain_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        Audit::open(store.clone())
            .unwrap()
            .append(entry("one"))
            .unwrap();
        let audit = Audit::open(store).unwrap();
        let e = audit.append(entry("two")).unwrap();
        assert_eq!(e.seq, 2);
        assert_eq!(audit.verify().unwrap().first_broken, None);
    }

    #[test]
    fn removed_entry_is_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let audit = Audit::open(store.clone()).unwrap();
        for _ in 0..3 {
            audit.append(entry("x")).unwrap();
        }
        store.remove(Tree::Audit, &keys::u64_key(2)).unwrap();
        assert_eq!(audit.verify().unwrap().first_broken, Some(2));
    }
}
