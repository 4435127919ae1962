//! The merger: moves pending messages into posting blocks and takes purged ones out, a batch
//! of messages per transaction, so a term shared by many new messages costs one write.
//!
//! sled reads cannot run inside a transaction, so a batch is planned from committed state
//! and written in one transaction that first checks the plan still holds: the agent's merge
//! generation (in `Meta`, bumped by every merge) is unchanged, so no other merge (another
//! task, another node) touched the blocks meanwhile, and every pending entry taken is still
//! there (a purge of a pending message removes it). Otherwise nothing is written and the
//! batch is planned again. Deliveries and purges never write blocks, so they never wait for
//! a merge and a merge never loses their entries.

use super::super::{index, MailboxError, MailboxService};
use super::blocks::{self, Pos, BLOCK_MAX};
use super::postings::{decode_doc, posting, term_base};
use crate::store::{keys, Tree, TxError, TxFail};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Messages per merge transaction.
const BATCH: usize = 512;
/// Plans redone after a race before giving up until the next round.
const RETRIES: usize = 8;

fn gen_key(agent: &str) -> Vec<u8> {
    keys::join(&["search_merge_generation", agent])
}

/// A stored block: its key, the position the key names, its value.
type Block = (Vec<u8>, Pos, Vec<u8>);

/// Where the block a position belongs in is found, in the term whose posting keys start
/// `base`: the last entry from the term's first key through the position's own key.
fn block_bounds(base: &[String], p: &Pos) -> (Vec<u8>, Vec<u8>) {
    let parts: Vec<&str> = base.iter().map(String::as_str).collect();
    (keys::prefix(&parts), index::timeline_at(base, p.0, &p.1))
}

/// A stored entry of the term under `base` as a block (None: not a posting key of it).
fn as_block(base: &[String], (k, v): crate::store::Entry) -> Option<Block> {
    let at = index::parse_timed(base, &k)?;
    Some((k, at, v))
}

/// The blocks of one term a batch changes: block key -> its positions.
type Touched = BTreeMap<Vec<u8>, Vec<Pos>>;

/// One batch, planned from committed state (see the module comment).
struct Plan {
    gen_key: Vec<u8>,
    /// The generation the plan was made at, and the one its commit writes.
    generation: Option<Vec<u8>>,
    next: u64,
    /// SearchPending keys merged, and SearchDead keys (with their message ids) removed.
    pending: Vec<Vec<u8>>,
    dead: Vec<(Vec<u8>, String)>,
    /// SearchPostings writes: a block, or None to remove one.
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Plan {
    fn messages(&self) -> usize {
        self.pending.len() + self.dead.len()
    }
}

fn generation_after(g: &Option<Vec<u8>>) -> u64 {
    g.as_deref()
        .and_then(keys::read_u64)
        .unwrap_or(0)
        .wrapping_add(1)
}

impl MailboxService {
    /// Merges what is pending for every agent that has anything pending. Blocking; the
    /// server runs it every second ([`crate::app`]). Returns the messages handled.
    pub fn merge_search_all(&self) -> Result<usize, MailboxError> {
        let mut agents: std::collections::BTreeSet<String> =
            self.agents_with(Tree::SearchPending)?.into_iter().collect();
        agents.extend(self.agents_with(Tree::SearchDead)?);
        let mut done = 0;
        for agent in &agents {
            done += self.merge_search(agent)?;
        }
        Ok(done)
    }

    /// Merges everything pending for `agent`, batch after batch.
    pub fn merge_search(&self, agent: &str) -> Result<usize, MailboxError> {
        let (mut done, mut raced) = (0, 0);
        loop {
            match self.merge_batch(agent)? {
                Some(0) => return Ok(done),
                Some(n) => done += n,
                None if raced + 1 >= RETRIES => return Ok(done),
                None => raced += 1,
            }
        }
    }

    /// Distinct agents with entries in `tree` (keys start `agent \0`): one seek per agent.
    fn agents_with(&self, tree: Tree) -> Result<Vec<String>, MailboxError> {
        let mut out = Vec::new();
        let mut from = Vec::new();
        loop {
            let next = self
                .store
                .range(tree, Bound::Included(from), Bound::Unbounded, false)
                .next();
            let Some(r) = next else { break };
            let (k, _) = r?;
            let Some(end) = k.iter().position(|b| *b == 0) else {
                break;
            };
            let agent = String::from_utf8_lossy(&k[..end]).into_owned();
            from = index::timeline_end(std::slice::from_ref(&agent));
            out.push(agent);
        }
        Ok(out)
    }

    /// Up to [`BATCH`] positions of `agent` in `tree`, oldest first.
    fn queued(&self, tree: Tree, agent: &str) -> Result<Vec<Pos>, MailboxError> {
        let base = vec![agent.to_string()];
        let lo = Bound::Included(keys::prefix(&[agent]));
        let hi = Bound::Excluded(index::timeline_end(&base));
        let mut out = Vec::new();
        for r in self.store.range(tree, lo, hi, false) {
            let (k, _) = r?;
            if let Some(p) = index::parse_timed(&base, &k) {
                out.push(p);
                if out.len() == BATCH {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One batch: Some(messages handled), None when another writer raced this one.
    fn merge_batch(&self, agent: &str) -> Result<Option<usize>, MailboxError> {
        match self.plan_batch(agent)? {
            None => Ok(Some(0)),
            Some(plan) => Ok(self.commit_plan(&plan)?.then_some(plan.messages())),
        }
    }

    /// What one batch would write, from committed state; None when nothing is queued.
    fn plan_batch(&self, agent: &str) -> Result<Option<Plan>, MailboxError> {
        let gen_key = gen_key(agent);
        let generation = self.store.get(Tree::Meta, &gen_key)?;
        let adds = self.queued(Tree::SearchPending, agent)?;
        let dels = self.queued(Tree::SearchDead, agent)?;
        if adds.is_empty() && dels.is_empty() {
            return Ok(None);
        }
        let mut by_term: BTreeMap<String, (Vec<Pos>, Vec<Pos>)> = BTreeMap::new();
        let batch: Vec<(&Pos, bool)> = adds
            .iter()
            .map(|p| (p, true))
            .chain(dels.iter().map(|p| (p, false)))
            .collect();
        // Every message's terms in one read (on PostgreSQL, one round trip per batch).
        let ids: Vec<&[u8]> = batch.iter().map(|(p, _)| p.1.as_bytes()).collect();
        let docs = self.store.get_many(Tree::SearchDocs, &ids)?;
        for ((p, add), doc) in batch.into_iter().zip(docs) {
            let terms = doc.map(|v| decode_doc(&v)).unwrap_or_default();
            for t in terms {
                let e = by_term.entry(t).or_default();
                if add { &mut e.0 } else { &mut e.1 }.push(p.clone());
            }
        }
        // Usually every new position of a term is newer than its last block: that block, for
        // every term of the batch, in one read (on PostgreSQL one round trip, not one each).
        let ranges: Vec<(Vec<u8>, Vec<u8>)> = by_term
            .iter()
            .filter_map(|(term, (add, _))| Some(block_bounds(&term_base(agent, term), add.last()?)))
            .collect();
        let mut lasts = self
            .store
            .last_in_ranges(Tree::SearchPostings, &ranges)?
            .into_iter();
        let mut writes = Vec::new();
        for (term, (add, del)) in &by_term {
            let base = term_base(agent, term);
            let last = match add.last() {
                Some(_) => lasts.next().flatten().and_then(|e| as_block(&base, e)),
                None => None,
            };
            self.plan_term(agent, term, add, del, last, &mut writes)?;
        }
        Ok(Some(Plan {
            next: generation_after(&generation),
            generation,
            gen_key,
            pending: adds
                .iter()
                .map(|(ms, id)| index::timeline(agent, *ms, id))
                .collect(),
            dead: dels
                .iter()
                .map(|(ms, id)| (index::timeline(agent, *ms, id), id.clone()))
                .collect(),
            writes,
        }))
    }

    /// Writes `plan` if it still holds; false (nothing written) when it does not.
    fn commit_plan(&self, plan: &Plan) -> Result<bool, MailboxError> {
        let trees = [
            Tree::Meta,
            Tree::SearchPostings,
            Tree::SearchDocs,
            Tree::SearchPending,
            Tree::SearchDead,
        ];
        let r = self.store.transact::<_, ()>(&trees, |tx| {
            if tx.get(Tree::Meta, &plan.gen_key)? != plan.generation {
                return Err(TxFail::Abort(()));
            }
            // Read together: on PostgreSQL a merge was a round trip per message merged.
            let pending: Vec<&[u8]> = plan.pending.iter().map(Vec::as_slice).collect();
            if tx
                .get_many(Tree::SearchPending, &pending)?
                .iter()
                .any(Option::is_none)
            {
                return Err(TxFail::Abort(()));
            }
            for (k, v) in &plan.writes {
                match v {
                    Some(v) => tx.put(Tree::SearchPostings, k, v)?,
                    None => tx.remove(Tree::SearchPostings, k)?,
                }
            }
            for k in &plan.pending {
                tx.remove(Tree::SearchPending, k)?;
            }
            for (k, id) in &plan.dead {
                tx.remove(Tree::SearchDead, k)?;
                tx.remove(Tree::SearchDocs, id.as_bytes())?;
            }
            tx.put(Tree::Meta, &plan.gen_key, &keys::u64_key(plan.next))?;
            Ok(())
        });
        match r {
            Ok(()) => Ok(true),
            Err(TxError::Abort(())) => Ok(false),
            Err(TxError::Store(e)) => Err(e.into()),
        }
    }

    /// The block a position belongs in: the last block of the term whose key is at or
    /// before it. None when the position is older than every block (or there is none).
    fn block_at(&self, base: &[String], p: &Pos) -> Result<Option<Block>, MailboxError> {
        let (lo, hi) = block_bounds(base, p);
        let found = self
            .store
            .range(
                Tree::SearchPostings,
                Bound::Included(lo),
                Bound::Included(hi),
                true,
            )
            .next()
            .transpose()?;
        Ok(found.and_then(|e| as_block(base, e)))
    }

    /// Adds `add` and removes `del` (each sorted ascending) in `term`'s blocks, appending
    /// the writes that do it: changed blocks rewritten (split at [`BLOCK_MAX`], re-keyed
    /// when their oldest position changed), emptied blocks removed. `last` is the block the
    /// newest of `add` belongs in ([`block_at`](Self::block_at) of it), which the caller
    /// reads for every term of the batch at once.
    fn plan_term(
        &self,
        agent: &str,
        term: &str,
        add: &[Pos],
        del: &[Pos],
        last: Option<Block>,
        writes: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), MailboxError> {
        let base = term_base(agent, term);
        let mut touched: Touched = BTreeMap::new();
        let mut before_all: Vec<Pos> = Vec::new();
        for (p, adding) in add
            .iter()
            .map(|p| (p, true))
            .chain(del.iter().map(|p| (p, false)))
        {
            // The common case reuses the last block already read; only other positions seek.
            let found = match &last {
                Some((k, at, v)) if adding && *p >= *at => {
                    if !touched.contains_key(k) {
                        touched.insert(k.clone(), blocks::decode(at, v));
                    }
                    Some(k.clone())
                }
                _ => match self.block_at(&base, p)? {
                    Some((k, at, v)) => {
                        touched
                            .entry(k.clone())
                            .or_insert_with(|| blocks::decode(&at, &v));
                        Some(k)
                    }
                    None => None,
                },
            };
            match found.and_then(|k| touched.get_mut(&k)) {
                Some(positions) => {
                    if adding {
                        positions.push(p.clone());
                    } else {
                        positions.retain(|q| q != p);
                    }
                }
                // Older than every block: new blocks before the first (never overlapping).
                None if adding => before_all.push(p.clone()),
                None => {}
            }
        }
        for (old_key, mut positions) in touched {
            positions.sort_unstable();
            positions.dedup();
            let mut kept_old = false;
            for chunk in positions.chunks(BLOCK_MAX) {
                let k = posting(agent, term, chunk[0].0, &chunk[0].1);
                kept_old |= k == old_key;
                writes.push((k, Some(blocks::encode(chunk))));
            }
            if !kept_old {
                writes.push((old_key, None));
            }
        }
        before_all.sort_unstable();
        before_all.dedup();
        for chunk in before_all.chunks(BLOCK_MAX) {
            let k = posting(agent, term, chunk[0].0, &chunk[0].1);
            writes.push((k, Some(blocks::encode(chunk))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testutil::*;
    use super::super::super::{Deleted, Folder, ListQuery};
    use super::*;

    fn search(mb: &MailboxService, q: &str) -> Vec<String> {
        let query = ListQuery {
            q: Some(q.into()),
            limit: Some(500),
            ..ListQuery::default()
        };
        mb.list_for("ag_a", &query)
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    /// Trash, then purge.
    async fn purge(mb: &MailboxService, id: &str) {
        let me = reader("ag_a");
        assert!(matches!(
            mb.delete(&me, id).await.unwrap(),
            Deleted::Trashed(_)
        ));
        assert!(matches!(
            mb.delete(&me, id).await.unwrap(),
            Deleted::Purged(_)
        ));
    }

    #[tokio::test]
    async fn merged_pending_and_purged_mail_search_the_same() {
        let (_d, mb) = service(0);
        let mut all = Vec::new();
        for i in 0..300 {
            let word = if i % 2 == 0 { "even" } else { "odd" };
            let m = deliver(
                &mb,
                "ag_a",
                Folder::Inbox,
                &simple("x", &format!("{word} report {i}")),
            )
            .await;
            all.push(m.id);
            if i == 149 {
                // Half merged into blocks, half still pending.
                assert_eq!(mb.merge_search_all().unwrap(), 150);
            }
        }
        all.reverse();
        let evens: Vec<String> = all.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!(search(&mb, "report"), all);
        assert_eq!(search(&mb, "even"), evens);
        // 150 positions of "report" in two blocks (128 + 22), the rest pending.
        let blocks: Vec<_> = mb
            .store
            .scan_prefix(Tree::SearchPostings, &keys::prefix(&["ag_a", "report"]))
            .collect();
        assert_eq!(blocks.len(), 2);
        // Purge one merged and one pending message: both leave the results at once.
        for id in [&all[299], &all[0]] {
            purge(&mb, id).await;
        }
        let left: Vec<String> = all[1..299].to_vec();
        assert_eq!(search(&mb, "report"), left);
        assert_eq!(mb.merge_search_all().unwrap(), 149 + 1);
        assert_eq!(search(&mb, "report"), left);
        assert!(mb.store.is_empty(Tree::SearchPending));
        assert!(mb.store.is_empty(Tree::SearchDead));
        assert_eq!(mb.store.len(Tree::SearchDocs), 298);
        // Everything purged: the index is empty again.
        for id in &left {
            purge(&mb, id).await;
        }
        mb.merge_search_all().unwrap();
        assert!(search(&mb, "report").is_empty());
        assert!(mb.store.is_empty(Tree::SearchPostings));
        assert!(mb.store.is_empty(Tree::SearchDocs));
    }

    #[tokio::test]
    async fn a_merge_that_lost_a_race_writes_nothing_and_the_next_one_finishes() {
        let (_d, mb) = service(0);
        let mut ids = Vec::new();
        for i in 0..5 {
            let m = deliver(
                &mb,
                "ag_a",
                Folder::Inbox,
                &simple("x", &format!("alpha {i}")),
            )
            .await;
            ids.push(m.id);
        }
        // A pending message is purged between a plan and its commit.
        let plan = mb.plan_batch("ag_a").unwrap().unwrap();
        purge(&mb, &ids[2]).await;
        assert!(!mb.commit_plan(&plan).unwrap());
        assert!(mb.store.is_empty(Tree::SearchPostings));
        // Another merge commits between a plan and its commit.
        let stale = mb.plan_batch("ag_a").unwrap().unwrap();
        assert_eq!(mb.merge_search("ag_a").unwrap(), 4);
        assert!(!mb.commit_plan(&stale).unwrap());
        let mut found = search(&mb, "alpha");
        found.sort();
        let mut want: Vec<String> = ids.iter().filter(|i| **i != ids[2]).cloned().collect();
        want.sort();
        assert_eq!(found, want);
        assert!(mb.store.is_empty(Tree::SearchPending));
        assert!(mb
            .store
            .get(Tree::SearchDocs, ids[2].as_bytes())
            .unwrap()
            .is_none());
    }
}
