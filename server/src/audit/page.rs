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

pub fn key(page: &Page) -> [u8; 8] {
    keys::u64_key(page.entries.first().map_or(0, |e| e.seq))
}

/// The agents an entry concerns: its acting agent, and an agent it targets.
pub fn agents_of(e: &Entry) -> Vec<&str> {
    let mut v = Vec::new();
    if e.actor.kind == "agent" {
        v.push(e.actor.id.as_str());
    }
    if e.target.starts_with("ag_") && !v.contains(&e.target.as_str()) {
        v.push(e.target.as_str());
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
