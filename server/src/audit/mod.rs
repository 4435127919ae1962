//! The append-only, hash-chained audit log (DESIGN §4).
//!
//! Every service writes through [`Audit::append`]; entries are chained by
//! `hash = SHA-256(prev_hash || canonical JSON of the rest)`, so editing, inserting or removing
//! an entry breaks the chain at that point and [`Audit::verify`] names it.

mod anchor;
mod denials;
mod entry;
mod page;
mod query;
mod writer;

pub use anchor::{parse_head, Checkpoint, HeadSigner, FILE as HEAD_FILE};
pub use denials::{
    Counters as DenialCounters, DenialSettings, Denials, Source, Summary as DenialSummary,
};
pub use entry::{ActorRef, Entry, NewEntry, Outcome};
pub use page::{head_of_page, page_key_of, SUBJECT_AGENT};
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
    /// The signed head checkpoint, for reading (verify); the writer's copy is in `shared`.
    anchor: Mutex<Option<Arc<anchor::Anchor>>>,
    /// What the checkpoint check found when the anchor was set (truncation, forgery...),
    /// until `serve` records it in the log.
    anchor_problem: Mutex<Option<String>>,
}

/// Result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    /// Sequence number of the first entry that does not check out.
    pub first_broken: Option<u64>,
    pub reason: Option<String>,
    /// The newest entry, `SEQ:HASH`, for the operator to record elsewhere.
    pub head: Option<String>,
    /// What the signed head checkpoint says (when the chain itself is sound).
    pub checkpoint: Option<String>,
    /// Earlier start-ups that found the checkpoint did not match (`audit.head_mismatch`).
    pub warnings: Vec<String>,
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
        let (written, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_seq,
                prev_hash,
                pending: Vec::new(),
                appended: 0,
                stop: false,
                writer_waiting: false,
            }),
            wake: Condvar::new(),
            written,
            anchor: Mutex::new(None),
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
            anchor: Mutex::new(None),
            anchor_problem: Mutex::new(None),
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
        st.appended += 1;
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
        self.shared.lock().appended
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

    /// The chain's newest sequence number and hash (0 and [`GENESIS`] when empty).
    pub fn head(&self) -> (u64, String) {
        let st = self.shared.lock();
        (st.next_seq - 1, st.prev_hash.clone())
    }

    /// One stored entry by sequence number.
    fn entry(&self, seq: u64) -> Result<Option<Entry>, AuditError> {
        let Some(k) = page_key_of(&self.store, seq)? else {
            return Ok(None);
        };
        Ok(page::load(&self.store, &k)?.and_then(|p| p.entries.into_iter().find(|e| e.seq == seq)))
    }

    /// Recomputes the chain from the first entry and names the first one that fails: a bad
    /// hash, a `prev_hash` that does not match its predecessor, a gap in sequence numbers, or
    /// bytes that no longer decode. Then compares the end of the chain with the signed head
    /// checkpoint, so removing the newest entries is named too.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        self.verify_with(None)
    }

    /// [`Audit::verify`], and the log must also contain `external` (`SEQ`, `HASH`): a head
    /// the operator recorded elsewhere (`legate audit verify --head SEQ:HASH`).
    pub fn verify_with(&self, external: Option<(u64, String)>) -> Result<VerifyReport, AuditError> {
        let mut prev = GENESIS.to_string();
        let mut count = 0u64;
        let broken = |seq: u64, count: u64, why: String| VerifyReport {
            entries: count,
            first_broken: Some(seq),
            reason: Some(why),
            head: None,
            checkpoint: None,
            warnings: Vec::new(),
        };
        self.sync_blocking();
        // A log this process began has no checkpoint until its writer's first one (up to a
        // second after the first entries): checkpoint the head it appended now, or a
        // verify in that second cries truncation. The head is this process's own record
        // of what it appended, so a log cut short under it still fails below.
        if let Some(a) = lock(&self.anchor).clone() {
            let (seq, hash) = self.head();
            if seq > 0 && matches!(a.read(), anchor::Found::Missing) {
                writer::anchor(&self.shared, &self.store, seq, &hash);
            }
        }
        let found = lock(&self.anchor).as_ref().map(|a| a.read());
        let cp_seq = match &found {
            Some(anchor::Found::Valid(cp)) => Some(cp.seq),
            _ => None,
        };
        let ext_seq = external.as_ref().map(|(s, _)| *s);
        let (mut hash_at_cp, mut hash_at_ext) = (None, None);
        let mut warnings = Vec::new();
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
                if Some(seq) == cp_seq {
                    hash_at_cp = Some(e.hash.clone());
                }
                if Some(seq) == ext_seq {
                    hash_at_ext = Some(e.hash.clone());
                }
                if e.action == "audit.head_mismatch" {
                    warnings.push(format!(
                        "entry {seq} ({}): a start-up found {}",
                        crate::util::rfc3339_millis(e.ts),
                        e.detail["problem"]
                            .as_str()
                            .unwrap_or("a checkpoint mismatch")
                    ));
                }
                prev = e.hash;
                expected_seq += 1;
                count += 1;
            }
        }
        let last = expected_seq - 1;
        let mut report = VerifyReport {
            entries: count,
            first_broken: None,
            reason: None,
            head: Some(format!("{last}:{prev}")),
            checkpoint: None,
            warnings,
        };
        if let Some(found) = found {
            match &found {
                anchor::Found::Missing if last == 0 => {}
                anchor::Found::Valid(cp) if hash_at_cp.as_deref() == Some(cp.hash.as_str()) => {
                    report.checkpoint = Some(match last - cp.seq {
                        0 => format!("the signed head checkpoint matches entry {}", cp.seq),
                        n => format!(
                            "the signed head checkpoint matches entry {} ({n} newer entries)",
                            cp.seq
                        ),
                    });
                }
                other => {
                    let at = match other {
                        anchor::Found::Valid(cp) if cp.seq <= last => cp.seq,
                        _ => last + 1,
                    };
                    report.first_broken = Some(at);
                    report.reason = Some(checkpoint_problem(other, last, hash_at_cp.as_deref()));
                }
            }
        } else {
            report.checkpoint = Some("no checkpoint key: the head was not checked".into());
        }
        if let (Some((seq, hash)), None) = (external, report.first_broken) {
            if seq > last {
                report.first_broken = Some(last + 1);
                report.reason = Some(format!(
                    "log truncated: the recorded head is entry {seq} but the log ends at entry {last}"
                ));
            } else if hash_at_ext.as_deref() != Some(hash.as_str()) {
                report.first_broken = Some(seq);
                report.reason = Some(format!(
                    "entry {seq} does not have the recorded hash {hash}: the log was rewritten"
                ));
            }
        }
        Ok(report)
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Says what is wrong between a checkpoint and a log whose last entry is `last`
/// (`hash_at`: the log's hash at the checkpoint's entry, when known).
fn checkpoint_problem(found: &anchor::Found, last: u64, hash_at: Option<&str>) -> String {
    match found {
        anchor::Found::Missing => format!(
            "the head checkpoint ({}) is missing although the log has {last} entries: the newest entries may have been removed with it",
            anchor::FILE
        ),
        anchor::Found::Unreadable(e) => format!("the head checkpoint cannot be read: {e}"),
        anchor::Found::Forged => "the head checkpoint's signature does not verify (edited by hand, or written under another master key)".into(),
        anchor::Found::Valid(cp) if cp.seq > last => format!(
            "log truncated: the signed head checkpoint records entry {} ({}) but the log ends at entry {last}",
            cp.seq, cp.hash
        ),
        anchor::Found::Valid(cp) => format!(
            "entry {} differs from the signed head checkpoint (log has {}, checkpoint {}): the log was rewritten",
            cp.seq,
            hash_at.unwrap_or("nothing"),
            cp.hash
        ),
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

    /// Two nodes on one store (PostgreSQL in production; here two writers on one store):
    /// appending at once, they still make one valid chain.
    #[test]
    fn two_writers_on_one_store_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = Arc::new(Audit::open(store.clone()).unwrap());
        let b = Arc::new(Audit::open(store.clone()).unwrap());
        let threads: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(n, au)| {
                std::thread::spawn(move || {
                    for i in 0..300 {
                        au.append(entry(&format!("node{n}.{i}"))).unwrap();
                        if i % 7 == 0 {
                            std::thread::sleep(std::time::Duration::from_micros(300));
                        }
                    }
                    au.sync_blocking();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        a.sync_blocking();
        b.sync_blocking();
        let r = a.verify().unwrap();
        assert_eq!(r.first_broken, None, "{:?}", r.reason);
        assert_eq!(r.entries, 600);
        // Each node's view of the head is where the chain is.
        assert_eq!(b.verify().unwrap().entries, 600);
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

    /// Waits for the writer's checkpoint to reach `seq`.
    fn anchored(dir: &std::path::Path, seq: u64) {
        for _ in 0..200 {
            let cp = std::fs::read(dir.join(anchor::FILE))
                .ok()
                .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).ok());
            if cp.is_some_and(|c| c.seq >= seq) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no checkpoint for entry {seq}");
    }

    #[test]
    fn removing_the_newest_entries_is_named_against_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let audit = Audit::open(store.clone()).unwrap();
        audit.set_anchor(dir.path(), Box::new(anchor::TestSigner(1)));
        let mut hashes = Vec::new();
        for i in 0..3 {
            hashes.push(audit.append(entry(&format!("a.{i}"))).unwrap().hash);
            audit.sync_blocking();
            anchored(dir.path(), i + 1);
        }
        let r = audit.verify().unwrap();
        assert_eq!(r.first_broken, None, "{r:?}");
        assert_eq!(r.head, Some(format!("3:{}", hashes[2])));
        assert!(r.checkpoint.unwrap().contains("matches entry 3"));
        drop(audit);

        // Offline, the newest page goes: the chain left behind is valid...
        let (k, _) = store.last(Tree::Audit).unwrap().unwrap();
        store.remove(Tree::Audit, &k).unwrap();
        let audit = Audit::open(store.clone()).unwrap();
        audit.set_anchor(dir.path(), Box::new(anchor::TestSigner(1)));
        // ...but not the head the checkpoint signed.
        let r = audit.verify().unwrap();
        assert_eq!(r.first_broken, Some(3), "{r:?}");
        assert!(r.reason.unwrap().contains("truncated"));
        // An externally recorded head names it too, even without the checkpoint.
        std::fs::remove_file(dir.path().join(anchor::FILE)).unwrap();
        let r = audit.verify_with(Some((3, hashes[2].clone()))).unwrap();
        assert_eq!(r.first_broken, Some(3));
        let r = audit.verify_with(Some((2, hashes[0].clone()))).unwrap();
        assert!(r.reason.unwrap().contains("missing"), "checkpoint gone");
        // The start-up check kept the writer from overwriting the evidence, until `serve`
        // records it in the log.
        assert!(audit.record_anchor_problem().unwrap().is_some());
        audit.sync_blocking();
        anchored(dir.path(), 3);
        let r = audit.verify().unwrap();
        assert_eq!(r.first_broken, None, "{r:?}");
        assert_eq!(r.warnings.len(), 1, "{r:?}");
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
