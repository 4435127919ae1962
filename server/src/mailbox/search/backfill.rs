//! Indexing the mail stored before the index existed.
//!
//! The schema 3 -> 4 migration (in `store`, which knows nothing of messages) only marks the
//! index as owed (`store::SEARCH_BACKFILL_KEY`); this pays the debt when the services
//! open, before any listener serves a search. Each message is indexed in its own
//! transaction together with its forward record, which is also the mark that it is done: an
//! interrupted run resumes by skipping what has a record, and the mark is removed only
//! after the last message.

use super::super::{MailboxError, MailboxService, MessageContent, StoredMessage};
use super::{index_message, message_terms};
use crate::store::{Tree, SEARCH_BACKFILL_KEY};

/// Messages between two progress flushes (and log lines).
const PROGRESS_EVERY: usize = 5000;

impl MailboxService {
    /// Indexes every message that has no index entry yet, if the store says some are owed.
    /// Blocking (it reads and may parse every old message): run it before serving.
    /// Returns how many messages it indexed.
    pub fn build_search_index(&self) -> Result<u64, MailboxError> {
        if self.store.get(Tree::Meta, SEARCH_BACKFILL_KEY)?.is_none() {
            return Ok(0);
        }
        let ids: Vec<Vec<u8>> = self
            .store
            .scan_prefix(Tree::Messages, &[])
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        let total = ids.len();
        tracing::info!(total, "building the search index for stored mail");
        let mut done = 0u64;
        for (n, id) in ids.into_iter().enumerate() {
            if self.store.get(Tree::SearchDocs, &id)?.is_some() {
                continue;
            }
            let Some(rec) = self
                .store
                .get_record::<StoredMessage>(Tree::Messages, &id)?
            else {
                continue;
            };
            let terms = self.terms_of_stored(&rec)?;
            let trees = [Tree::Messages, Tree::SearchDocs, Tree::SearchPending];
            self.store.transact::<_, MailboxError>(&trees, |tx| {
                let Some(cur) = tx.get_record::<StoredMessage>(Tree::Messages, &id)? else {
                    return Ok(());
                };
                if tx.get(Tree::SearchDocs, &id)?.is_none() {
                    index_message(tx, &cur, &terms)?;
                }
                Ok(())
            })?;
            done += 1;
            if (n + 1) % PROGRESS_EVERY == 0 {
                // Progress survives an interruption: make it durable now and then.
                self.store.flush_blocking()?;
                tracing::info!(indexed = n + 1, total, "building the search index");
            }
        }
        self.merge_search_all()?;
        self.store.remove(Tree::Meta, SEARCH_BACKFILL_KEY)?;
        self.store.flush_blocking()?;
        tracing::info!(indexed = done, "the search index is complete");
        Ok(done)
    }

    /// A stored message's terms, from its derived content (or its raw bytes, for the
    /// agent's own copies that keep none), as delivery would have computed them.
    fn terms_of_stored(&self, rec: &StoredMessage) -> Result<Vec<String>, MailboxError> {
        let key = rec.id.as_bytes();
        let content = match self
            .store
            .get_record::<MessageContent>(Tree::MessageContent, key)?
        {
            Some(c) => c,
            None => match self.store.blob_of(key)? {
                Some(raw) => MessageContent::derive(&raw),
                None => MessageContent::default(),
            },
        };
        let addrs = rec.from.iter().chain(&rec.to).chain(&rec.cc);
        Ok(message_terms(
            &rec.subject,
            addrs,
            &[content.text.as_deref(), Some(&content.extracted_text)],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::testutil::*;
    use super::super::super::{Folder, ListQuery};
    use super::*;

    /// Turns a current store back into what schema 3 left: no search trees, version 3.
    fn as_schema_3(mb: &MailboxService, keep_doc_of: Option<&str>) {
        let s = &mb.store;
        for tree in [Tree::SearchPostings, Tree::SearchDocs, Tree::SearchPending] {
            let keys: Vec<Vec<u8>> = s.scan_prefix(tree, &[]).map(|r| r.unwrap().0).collect();
            for k in keys {
                let kept = keep_doc_of.is_some_and(|id| {
                    k == id.as_bytes() || k.windows(id.len()).any(|w| w == id.as_bytes())
                });
                if !kept {
                    s.remove(tree, &k).unwrap();
                }
            }
        }
        s.put(Tree::Meta, b"schema_version", &3u32.to_be_bytes())
            .unwrap();
        s.flush_blocking().unwrap();
    }

    fn search(mb: &MailboxService, q: &str) -> usize {
        let query = ListQuery {
            q: Some(q.into()),
            ..ListQuery::default()
        };
        mb.list_for("ag_a", &query).unwrap().items.len()
    }

    #[tokio::test]
    async fn an_upgraded_store_is_indexed_once_and_an_interrupted_run_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let mb = service_in(dir.path(), 0);
            let a = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "Grüezi Zürich")).await;
            // An own copy keeps no derived content: its words come from the raw bytes.
            deliver(&mb, "ag_a", Folder::Sent, &simple("y", "Zurich plans")).await;
            deliver(&mb, "ag_a", Folder::Inbox, &simple("z", "unrelated")).await;
            // "Interrupted": the first message was indexed before the stop.
            as_schema_3(&mb, Some(&a.id));
            a.id
        };
        let mb = service_in(dir.path(), 0);
        assert!(mb
            .store
            .get(Tree::Meta, SEARCH_BACKFILL_KEY)
            .unwrap()
            .is_some());
        assert_eq!(mb.build_search_index().unwrap(), 2);
        assert!(mb
            .store
            .get(Tree::Meta, SEARCH_BACKFILL_KEY)
            .unwrap()
            .is_none());
        assert_eq!(mb.build_search_index().unwrap(), 0, "done once");
        let everywhere = ListQuery {
            q: Some("zurich".into()),
            ..ListQuery::default()
        };
        let found = mb.list_for("ag_a", &everywhere).unwrap().items;
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].id, first);
        assert_eq!(search(&mb, "gruezi"), 1);
        assert_eq!(search(&mb, "unrelated"), 1);
        // And a store that never had mail owes nothing.
        let (_d, empty) = service(0);
        assert!(empty
            .store
            .get(Tree::Meta, SEARCH_BACKFILL_KEY)
            .unwrap()
            .is_none());
    }
}
