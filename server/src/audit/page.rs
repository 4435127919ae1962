//! Storage layout: the log is a sequence of pages keyed by their first sequence number; the
//! per-agent index maps `agent \0 page key` to that agent's sequence numbers in the page.

use super::entry::Entry;
use crate::store::{keys, Store, StoreError, Tree};
use serde::{Deserialize, Serialize};
use std::ops::Bound;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub entries: Vec<Entry>,
}

/// The newest entry of a stored page, `(seq, hash)`: a log's head from its last page alone
/// (a backup reads the pages as bytes and names the head it holds).
pub fn head_of_page(bytes: &[u8]) -> Option<(u64, String)> {
    let page: Page = crate::store::decode(bytes).ok()?;
    page.entries.last().map(|e| (e.seq, e.hash.clone()))
}

pub fn key(page: &Page) -> [u8; 8] {
    keys::u64_key(page.entries.first().map_or(0, |e| e.seq))
}

/// Detail key naming the agent an entry acts on, by its real id. Set by the service that
/// resolved the agent (never copied from a request), so a caller cannot file entries under
/// another agent by choosing a target string such as a credential name or a login.
pub const SUBJECT_AGENT: &str = "subject_agent";

/// The agents an entry concerns: its acting agent, and the agent it acts on (its
/// [`SUBJECT_AGENT`]; for the system's own entries, such as deliveries, the target it
/// resolved, which no caller chooses).
pub fn agents_of(e: &Entry) -> Vec<&str> {
    let mut v = Vec::new();
    if e.actor.kind == "agent" {
        v.push(e.actor.id.as_str());
    }
    let subject = match e.detail.get(SUBJECT_AGENT).and_then(|s| s.as_str()) {
        Some(s) => Some(s),
        None if e.actor.kind == "system" && e.target.starts_with("ag_") => Some(e.target.as_str()),
        None => None,
    };
    if let Some(s) = subject {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

pub fn index_records(page: &Page) -> Vec<(Vec<u8>, Vec<u64>)> {
    let first = page.entries.first().map_or(0, |e| e.seq);
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for e in &page.entries {
        for a in agents_of(e) {
            match out.iter_mut().find(|(x, _)| x == a) {
                Some((_, seqs)) => seqs.push(e.seq),
                None => out.push((a.to_string(), vec![e.seq])),
            }
        }
    }
    out.into_iter()
        .map(|(a, seqs)| (keys::with_u64(&[&a], first), seqs))
        .collect()
}

/// The key of the page holding `seq`, if any: the greatest page key not above it.
pub fn page_key_of(store: &Store, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let hi = keys::u64_key(seq).to_vec();
    match store
        .range(Tree::Audit, Bound::Unbounded, Bound::Included(hi), true)
        .next()
    {
        Some(r) => Ok(Some(r?.0)),
        None => Ok(None),
    }
}

pub fn load(store: &Store, key: &[u8]) -> Result<Option<Page>, StoreError> {
    store.get_record(Tree::Audit, key)
}
