//! Running a text query: candidates come newest first from the index, each is checked
//! against the other words and the list filters, and the page is filled completely.
//!
//! One word of the query drives: the union of the posting lists of every indexed term it is
//! a prefix of, merged newest first. The driver is the word with the fewest postings
//! (counted up to [`COUNT_CAP`]), so "zurich invoice" walks whichever is rarer. A word that
//! starts more than [`MAX_EXPANSIONS`] terms ("a", "s") is too broad to merge; when every
//! word is, the arrival timeline drives instead, which such a query matches densely
//! anyway. Other words are checked on the candidate's forward record (one read), then the
//! record itself against the list filters. No budget cuts a page short: a page ends when it
//! is full or the driver is exhausted.

use super::super::{index, Folder, ListPage, MailboxError, MailboxService, StoredMessage};
use super::blocks::{self, Pos};
use super::postings::{decode_doc, prefix_end, prefix_start, term_base, term_of};
use super::tokens::has_prefix;
use crate::store::{keys, Entry, StoreError, Tree};
use std::ops::Bound;

/// Terms one query word may expand to and still drive a merge.
const MAX_EXPANSIONS: usize = 256;
/// Postings counted per word when choosing the driver.
const COUNT_CAP: usize = 500;

/// What a search page is asked for, besides its words.
pub(in crate::mailbox) struct Window<'a> {
    pub folder: Option<Folder>,
    pub since_ms: Option<i64>,
    pub cursor: Option<&'a (i64, String)>,
    pub limit: usize,
}

type Iter<'a> = Box<dyn Iterator<Item = Result<Entry, StoreError>> + 'a>;

/// Where a walk's positions come from.
enum Source<'a> {
    /// Keys that are positions themselves (the timelines).
    Keys,
    /// One term's posting blocks: the current block's remaining positions, ascending (the
    /// walk pops the newest), and the bounds positions are filtered by.
    Blocks {
        buf: Vec<Pos>,
        since_ms: i64,
        before: Option<Pos>,
    },
    /// Messages not yet merged into blocks whose terms hold `word` as a prefix.
    Pending {
        store: &'a crate::store::Store,
        word: String,
    },
}

/// One ordered walk of (received ms, message id) positions under `base`, newest first.
struct Walk<'a> {
    base: Vec<String>,
    it: Iter<'a>,
    src: Source<'a>,
    head: Option<Pos>,
}

impl<'a> Walk<'a> {
    /// A walk of the keys under `base` in `tree` (a timeline, or SearchPending).
    fn keys(
        store: &'a crate::store::Store,
        tree: Tree,
        base: Vec<String>,
        w: &Window<'_>,
        src: Source<'a>,
    ) -> Self {
        let lo = Bound::Included(index::timeline_from(&base, w.since_ms.unwrap_or(0)));
        let hi = match w.cursor {
            Some((ms, id)) => Bound::Excluded(index::timeline_at(&base, *ms, id)),
            None => Bound::Excluded(index::timeline_end(&base)),
        };
        let it = store.range(tree, lo, hi, true);
        Walk {
            base,
            it,
            src,
            head: None,
        }
    }

    fn timeline(
        store: &'a crate::store::Store,
        tree: Tree,
        base: Vec<String>,
        w: &Window<'_>,
    ) -> Self {
        Self::keys(store, tree, base, w, Source::Keys)
    }

    /// `agent`'s pending messages that hold a term starting with `word`.
    fn pending(store: &'a crate::store::Store, agent: &str, word: &str, w: &Window<'_>) -> Self {
        let src = Source::Pending {
            store,
            word: word.to_string(),
        };
        Self::keys(store, Tree::SearchPending, vec![agent.to_string()], w, src)
    }

    /// The blocks of the term whose postings sit under `base`. A block may start before
    /// the window and end inside it, so the walk reads from the block holding the cursor
    /// down, and filters positions.
    fn blocks(store: &'a crate::store::Store, base: Vec<String>, w: &Window<'_>) -> Self {
        let parts: Vec<&str> = base.iter().map(String::as_str).collect();
        let lo = Bound::Included(keys::prefix(&parts));
        let hi = match w.cursor {
            Some((ms, id)) => Bound::Included(index::timeline_at(&base, *ms, id)),
            None => Bound::Excluded(index::timeline_end(&base)),
        };
        let it = store.range(Tree::SearchPostings, lo, hi, true);
        Walk {
            base,
            it,
            src: Source::Blocks {
                buf: Vec::new(),
                since_ms: w.since_ms.unwrap_or(0),
                before: w.cursor.cloned(),
            },
            head: None,
        }
    }

    fn advance(&mut self) -> Result<(), StoreError> {
        self.head = None;
        if let Source::Blocks {
            buf,
            since_ms,
            before,
        } = &mut self.src
        {
            loop {
                while let Some(p) = buf.pop() {
                    if before.as_ref().is_some_and(|b| p >= *b) {
                        continue;
                    }
                    if p.0 >= *since_ms {
                        self.head = Some(p);
                    }
                    // Older than the window: so is everything after it.
                    return Ok(());
                }
                let Some(r) = self.it.next() else {
                    return Ok(());
                };
                let (k, v) = r?;
                if let Some(at) = index::parse_timed(&self.base, &k) {
                    *buf = blocks::decode(&at, &v);
                }
            }
        }
        for r in self.it.by_ref() {
            let (k, _) = r?;
            let Some(pos) = index::parse_timed(&self.base, &k) else {
                continue;
            };
            if let Source::Pending { store, word } = &self.src {
                let terms = store
                    .get(Tree::SearchDocs, pos.1.as_bytes())?
                    .map(|v| decode_doc(&v))
                    .unwrap_or_default();
                if !has_prefix(&terms, word) {
                    continue;
                }
            }
            self.head = Some(pos);
            break;
        }
        Ok(())
    }
}

/// The union of several walks, newest first, each position once.
struct Merge<'a> {
    walks: Vec<Walk<'a>>,
}

impl<'a> Merge<'a> {
    fn new(mut walks: Vec<Walk<'a>>) -> Result<Self, StoreError> {
        for w in &mut walks {
            w.advance()?;
        }
        Ok(Merge { walks })
    }

    fn next(&mut self) -> Result<Option<(i64, String)>, StoreError> {
        let Some(top) = self.walks.iter().filter_map(|w| w.head.clone()).max() else {
            return Ok(None);
        };
        for w in &mut self.walks {
            if w.head.as_ref() == Some(&top) {
                w.advance()?;
            }
        }
        Ok(Some(top))
    }
}

impl MailboxService {
    /// Indexed terms starting with `prefix`, in order; None when there are more than
    /// [`MAX_EXPANSIONS`]. Each step seeks past the previous term's postings, so the cost is
    /// the number of terms, not of postings.
    fn expansions(&self, agent: &str, prefix: &str) -> Result<Option<Vec<String>>, StoreError> {
        let end = prefix_end(agent, prefix);
        let mut from = prefix_start(agent, prefix);
        let mut out = Vec::new();
        loop {
            let next = self
                .store
                .range(
                    Tree::SearchPostings,
                    Bound::Included(from),
                    Bound::Excluded(end.clone()),
                    false,
                )
                .next();
            let Some(r) = next else { break };
            let (k, _) = r?;
            let Some(term) = term_of(agent, &k) else {
                break;
            };
            if out.len() == MAX_EXPANSIONS {
                return Ok(None);
            }
            from = index::timeline_end(&term_base(agent, term));
            out.push(term.to_string());
        }
        Ok(Some(out))
    }

    /// Postings under `terms`, counted up to [`COUNT_CAP`].
    fn count_postings(&self, agent: &str, terms: &[String]) -> Result<usize, StoreError> {
        let mut n = 0;
        for t in terms {
            let base = term_base(agent, t);
            let lo = Bound::Included(index::timeline_from(&base, 0));
            let hi = Bound::Excluded(index::timeline_end(&base));
            for r in self.store.range(Tree::SearchPostings, lo, hi, false) {
                n += blocks::count(&r?.1);
                if n >= COUNT_CAP {
                    return Ok(n);
                }
            }
        }
        Ok(n)
    }

    /// A complete page of `agent`'s messages holding every word of `words` (as prefixes of
    /// indexed terms) and passing `keep`, newest first.
    pub(in crate::mailbox) fn search_page(
        &self,
        agent: &str,
        words: &[String],
        keep: &dyn Fn(&StoredMessage) -> bool,
        w: &Window<'_>,
    ) -> Result<ListPage, MailboxError> {
        // The driver: the word with the fewest postings among those narrow enough to merge.
        let mut driver: Option<(usize, usize, Vec<String>)> = None;
        for (i, word) in words.iter().enumerate() {
            let Some(terms) = self.expansions(agent, word)? else {
                continue;
            };
            // A word no block holds may still be in a message not yet merged: it drives
            // with no blocks, over the pending messages only.
            let n = self.count_postings(agent, &terms)?;
            if driver.as_ref().is_none_or(|(best, _, _)| n < *best) {
                driver = Some((n, i, terms));
            }
        }
        let (mut candidates, checked): (Merge<'_>, Vec<&String>) = match driver {
            Some((_, i, terms)) => {
                let mut walks: Vec<Walk<'_>> = terms
                    .iter()
                    .map(|t| Walk::blocks(&self.store, term_base(agent, t), w))
                    .collect();
                walks.push(Walk::pending(&self.store, agent, &words[i], w));
                let rest = words
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, t)| t)
                    .collect();
                (Merge::new(walks)?, rest)
            }
            None => {
                let tree = match w.folder {
                    Some(_) => Tree::FolderTimeline,
                    None => Tree::MailTimeline,
                };
                let walk =
                    Walk::timeline(&self.store, tree, index::timeline_base(agent, w.folder), w);
                (Merge::new(vec![walk])?, words.iter().collect())
            }
        };

        let mut items: Vec<StoredMessage> = Vec::new();
        let mut scanned = 0;
        let mut next_cursor = None;
        while let Some((_, id)) = candidates.next()? {
            scanned += 1;
            if !checked.is_empty() {
                let terms = self
                    .store
                    .get(Tree::SearchDocs, id.as_bytes())?
                    .map(|v| decode_doc(&v))
                    .unwrap_or_default();
                if !checked.iter().all(|word| has_prefix(&terms, word)) {
                    continue;
                }
            }
            let rec = self
                .store
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
                .filter(|m| m.agent_id == agent && keep(m));
            if let Some(rec) = rec {
                if items.len() == w.limit {
                    // One more exists: resume after the last item returned.
                    next_cursor = items
                        .last()
                        .map(|m| super::super::list::encode_cursor(m.received_at_ms, &m.id));
                    break;
                }
                items.push(rec);
            }
        }
        Ok(ListPage {
            items,
            next_cursor,
            scanned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testutil::*;
    use super::super::super::{Deleted, ListQuery};
    use super::*;

    fn search(mb: &MailboxService, agent: &str, q: &str) -> Vec<String> {
        let query = ListQuery {
            q: Some(q.into()),
            ..ListQuery::default()
        };
        let page = mb.list_for(agent, &query).unwrap();
        page.items.into_iter().map(|m| m.id).collect()
    }

    #[tokio::test]
    async fn words_prefixes_and_and() {
        let (_d, mb) = service(0);
        let a = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            &simple("alice", "Meeting in Zürich"),
        )
        .await;
        let b = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            &simple("bob", "Zurichsee invoice"),
        )
        .await;
        deliver(&mb, "ag_b", Folder::Inbox, &simple("carl", "Zürich too")).await;
        assert_eq!(
            search(&mb, "ag_a", "zurich"),
            vec![b.id.clone(), a.id.clone()]
        );
        assert_eq!(search(&mb, "ag_a", "ZÜR"), vec![b.id.clone(), a.id.clone()]);
        assert_eq!(search(&mb, "ag_a", "zur meet"), vec![a.id.clone()]);
        assert_eq!(search(&mb, "ag_a", "invoice zurichsee"), vec![b.id.clone()]);
        assert_eq!(search(&mb, "ag_a", "bob@b.test"), vec![b.id.clone()]);
        assert!(search(&mb, "ag_a", "zurich nothing").is_empty());
        assert!(
            search(&mb, "ag_a", "eeting").is_empty(),
            "prefixes, not substrings"
        );
        // Words of the body too; another agent's mail never.
        assert_eq!(
            search(&mb, "ag_a", "body"),
            vec![b.id.clone(), a.id.clone()]
        );
        assert!(search(&mb, "ag_a", "carl").is_empty());
        // Broad words (one letter) are checked on each candidate of the timeline.
        assert_eq!(search(&mb, "ag_a", "m z"), vec![a.id.clone()]);
    }

    #[tokio::test]
    async fn purged_mail_leaves_the_index_and_trash_follows_the_listing() {
        let (_d, mb) = service(0);
        let me = reader("ag_a");
        let m = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "Ephemeral note")).await;
        assert!(matches!(
            mb.delete(&me, &m.id).await.unwrap(),
            Deleted::Trashed(_)
        ));
        assert!(
            search(&mb, "ag_a", "ephemeral").is_empty(),
            "Trash is not listed by default"
        );
        let in_trash = ListQuery {
            q: Some("ephemeral".into()),
            folder: Some("Trash".into()),
            ..ListQuery::default()
        };
        assert_eq!(mb.list_for("ag_a", &in_trash).unwrap().items.len(), 1);
        assert!(matches!(
            mb.delete(&me, &m.id).await.unwrap(),
            Deleted::Purged(_)
        ));
        assert!(mb.list_for("ag_a", &in_trash).unwrap().items.is_empty());
        assert!(mb.store.is_empty(Tree::SearchPostings));
        assert!(mb.store.is_empty(Tree::SearchDocs));
    }

    #[tokio::test]
    async fn pages_are_complete_with_filters_and_cursors() {
        let (_d, mb) = service(0);
        let mut want = Vec::new();
        for i in 0..60 {
            let folder = if i % 3 == 0 {
                Folder::Archive
            } else {
                Folder::Inbox
            };
            let m = deliver(&mb, "ag_a", folder, &simple("x", &format!("report {i}"))).await;
            if folder == Folder::Inbox {
                want.push(m.id);
            }
            deliver(
                &mb,
                "ag_a",
                Folder::Inbox,
                &simple("y", &format!("other {i}")),
            )
            .await;
        }
        want.reverse();
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let q = ListQuery {
                q: Some("report".into()),
                folder: Some("INBOX".into()),
                limit: Some(7),
                cursor: cursor.clone(),
                ..ListQuery::default()
            };
            let page = mb.list_for("ag_a", &q).unwrap();
            got.extend(page.items.iter().map(|m| m.id.clone()));
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(page.items.len(), 7, "a page with a cursor is full");
                    cursor = Some(c);
                }
                None => break,
            }
        }
        assert_eq!(got, want);
    }
}
