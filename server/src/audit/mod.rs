//! The append-only, hash-chained audit log (DESIGN §4).
//!
//! Every service writes through [`Audit::append`]; entries are chained by
//! `hash = SHA-256(prev_hash || canonical JSON of the rest)`, so editing, inserting or removing
//! an entry breaks the chain at that point and [`Audit::verify`] names it.

mod denials;
mod entry;
mod page;
mod query;
mod writer;

pub use denials::{DenialSettings, Denials, Summary as DenialSummary};
pub use entry::{ActorRef, Entry, NewEntry, Outcome};
pub use page::{page_key_of, SUBJECT_AGENT};
pub use query::{Filter, QueryPage};

use crate::store::{keys, Store, StoreError, Tree};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tokio::sync::watch;
use writer::{Shared, State};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid cursor")]
    BadCursor,
}

/// Hex of 32 zero bytes: the `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub struct Audit {
    store: Store,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Failed authentications per source: the limiter and the aggregation of their entries.
    denials: Arc<Denials>,
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
        let (next_seq, prev_hash) = match store.last(Tree::Audit)? {
            Some((k, v)) => {
                let first = keys::read_u64(&k).ok_or(StoreError::Corrupt("audit key".into()))?;
                // An undecodable last page still lets the log grow; verify will name it.
                match crate::store::decode::<page::Page>(&v) {
                    Ok(p) => match p.entries.last() {
                        Some(e) => (e.seq + 1, e.hash.clone()),
                        None => (first + 1, GENESIS.to_string()),
                    },
                    Err(_) => (first + 1, GENESIS.to_string()),
                }
            }
            None => (1, GENESIS.to_string()),
        };
        let (written, _) = watch::channel(next_seq - 1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_seq,
                prev_hash,
                pending: Vec::new(),
                stop: false,
                writer_waiting: false,
            }),
            wake: Condvar::new(),
            written,
        });
        let (s2, st2) = (shared.clone(), store.clone());
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer::run(s2, st2))
            .map_err(|e| StoreError::Io(format!("cannot start the audit writer: {e}")))?;
        Ok(Audit {
            store,
            shared,
            writer: Mutex::new(Some(handle)),
            denials: Arc::new(Denials::default()),
        })
    }

    /// Appends one entry: its place in the chain is fixed now; the writer stores it within
    /// moments. Callers that acknowledge a change use [`Audit::commit`] so the entry is as
    /// durable as the change it describes.
    pub fn append(&self, new: NewEntry) -> Result<Entry, AuditError> {
        let mut st = self.shared.lock();
        let mut entry = Entry {
            seq: st.next_seq,
            ts: crate::util::now_millis(),
            actor: new.actor,
            chain: new.chain,
            action: new.action,
            target: new.target,
            outcome: new.outcome,
            detail: new.detail,
            prev_hash: st.prev_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        st.next_seq += 1;
        st.prev_hash = entry.hash.clone();
        st.pending.push(entry.clone());
        let wake = st.writer_waiting;
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(entry)
    }

    /// The failed-authentication limiter every front-end consults before authenticating.
    pub fn denials(&self) -> &Arc<Denials> {
        &self.denials
    }

    /// Records a failed authentication from `peer`: counted against the source's limit, and
    /// written in full only if it is the first from that source in the current interval;
    /// the rest go into one summary entry (see [`Denials`]).
    pub fn auth_denied(&self, peer: &str, new: NewEntry) -> Result<(), AuditError> {
        let reason = new.detail["reason"]
            .as_str()
            .unwrap_or("denied")
            .to_string();
        let mut due = Vec::new();
        let decision = self.denials.failed(peer, &reason, &mut due);
        self.write_summaries(due)?;
        if decision == denials::Decision::Write {
            self.append(new)?;
        }
        Ok(())
    }

    /// Writes the summaries of aggregation intervals that are over (`force`: all, at
    /// shutdown). The server calls it on a timer so a quiet source's count is not held back.
    pub fn flush_denials(&self, force: bool) -> Result<(), AuditError> {
        self.write_summaries(self.denials.take_due(force))
    }

    fn write_summaries(&self, due: Vec<denials::Summary>) -> Result<(), AuditError> {
        for s in due {
            self.append(NewEntry {
                actor: ActorRef::anonymous(&s.source),
                chain: vec![],
                action: "auth.denied".into(),
                target: "summary".into(),
                outcome: Outcome::Denied,
                detail: serde_json::json!({
                    "aggregated": true,
                    "peer": s.source,
                    "count": s.suppressed + s.throttled,
                    "denied": s.suppressed,
                    "throttled": s.throttled,
                    "reasons": s.reasons,
                    "first": crate::util::rfc3339_millis(s.first_ms),
                    "last": crate::util::rfc3339_millis(s.last_ms),
                }),
            })?;
        }
        Ok(())
    }

    fn last_appended(&self) -> u64 {
        self.shared.lock().next_seq - 1
    }

    /// Waits until every entry appended so far is stored.
    pub async fn synced(&self) {
        let target = self.last_appended();
        let mut rx = self.shared.written.subscribe();
        let _ = rx.wait_for(|w| *w >= target).await;
    }

    /// The same, for synchronous callers (queries, the CLI): waits in short sleeps.
    pub fn sync_blocking(&self) {
        let target = self.last_appended();
        let rx = self.shared.written.subscribe();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while *rx.borrow() < target && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Makes every entry appended so far, and every store write before this call, durable.
    pub async fn commit(&self) -> Result<(), AuditError> {
        self.synced().await;
        Ok(self.store.commit().await?)
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
        self.sync_blocking();
        let mut expected_seq = 1u64;
        for item in self.store.scan_prefix(Tree::Audit, &[]) {
            let (k, v) = item?;
            let first = keys::read_u64(&k).unwrap_or(0);
            if first != expected_seq {
                return Ok(broken(
                    expected_seq,
                    count,
                    format!("entry {expected_seq} is missing (next present is {first})"),
                ));
            }
            let page: page::Page = match crate::store::decode(&v) {
                Ok(p) => p,
                Err(_) => return Ok(broken(first, count, "entry bytes do not decode".into())),
            };
            if page.entries.is_empty() {
                return Ok(broken(first, count, "empty page".into()));
            }
            for e in page.entries {
                let seq = expected_seq;
                if e.seq != seq {
                    return Ok(broken(seq, count, "entry seq is out of order".into()));
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
                expected_seq += 1;
                count += 1;
            }
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
    ) -> Result<QueryPage, AuditError> {
        self.sync_blocking();
        query::run(&self.store, filter, limit, cursor)
    }
}

impl Drop for Audit {
    /// Stores what is still queued before the store handle goes away.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
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

        audit.sync_blocking();
        let key = page_key_of(&store, 3).unwrap().unwrap();
        let mut p: page::Page = store.get_record(Tree::Audit, &key).unwrap().unwrap();
        for e in p.entries.iter_mut().filter(|e| e.seq == 3) {
            e.action = "a.forged".into();
        }
        store.put_record(Tree::Audit, &key, &p).unwrap();
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
            audit.sync_blocking();
        }
        let k = page_key_of(&store, 2).unwrap().unwrap();
        if keys::read_u64(&k) == Some(2) {
            store.remove(Tree::Audit, &k).unwrap();
            assert_eq!(audit.verify().unwrap().first_broken, Some(2));
        }
    }
}
