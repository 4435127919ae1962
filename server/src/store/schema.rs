//! Schema version and migrations.
//!
//! The version lives in `Meta/schema_version`. Opening a database runs every migration from
//! its version up to [`CURRENT`], each in order, recording progress after each step, so an
//! interrupted upgrade resumes where it stopped.

use super::{Store, StoreError, Tree};

/// The schema this binary writes.
pub const CURRENT: u32 = 5;
const KEY: &[u8] = b"schema_version";
/// Present in `Meta` while messages stored before schema 4 still lack search postings:
/// `mailbox::MailboxService::build_search_index` indexes them and removes it.
pub const SEARCH_BACKFILL_KEY: &[u8] = b"search_backfill_pending";

/// `MIGRATIONS[i]` upgrades a database from version `i + 1` to `i + 2`.
type Migration = fn(&Store) -> Result<(), StoreError>;
const MIGRATIONS: &[Migration] = &[
    queue_blobs_to_holds,
    bodies_to_blob_store,
    search_index_owed,
    drop_derived_content,
];

/// 1 -> 2: the outbound queue stops keeping its own copy of each message and holds the Sent
/// copy's blob instead (`mailbox::holds`). Each queued copy becomes a hold, and the blob
/// itself if the Sent copy was purged meanwhile. Schema 1 removed a queued copy in the same
/// transaction that made its last recipient final, so every copy left belongs to a message
/// still being delivered, whose worker releases the hold as usual. One transaction per message: a crash
/// part-way leaves every message either moved or still in the old tree, and the rerun
/// finishes the rest.
fn queue_blobs_to_holds(store: &Store) -> Result<(), StoreError> {
    let ids: Vec<Vec<u8>> = store
        .scan_prefix(Tree::QueueBlobs, &[])
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()?;
    let trees = [Tree::QueueBlobs, Tree::MessageBlobs, Tree::BlobHolds];
    for id in ids {
        let moved = store.transact::<_, StoreError>(&trees, |tx| {
            let Some(raw) = tx.get(Tree::QueueBlobs, &id)? else {
                return Ok(());
            };
            if tx.get(Tree::MessageBlobs, &id)?.is_none() {
                tx.put(Tree::MessageBlobs, &id, &raw)?;
            }
            tx.put(Tree::BlobHolds, &id, &[])?;
            tx.remove(Tree::QueueBlobs, &id)?;
            Ok(())
        });
        moved.map_err(|e| match e {
            super::TxError::Abort(e) | super::TxError::Store(e) => e,
        })?;
    }
    Ok(())
}

/// 2 -> 3: raw bodies leave the `MessageBlobs` tree for the blob store (`store::blob`).
/// Per message: the body is written to its file (fsynced) first, then one transaction links
/// it and removes the tree value. Interrupted anywhere, a message is either still in the
/// tree (the rerun puts it again; an identical file is kept as is) or moved; at worst an
/// unreferenced file remains, which the sweep after opening removes.
fn bodies_to_blob_store(store: &Store) -> Result<(), StoreError> {
    let ids: Vec<Vec<u8>> = store
        .scan_prefix(Tree::MessageBlobs, &[])
        .map(|r| r.map(|(k, _)| k))
        .collect::<Result<_, _>>()?;
    let total = ids.len();
    for (n, id) in ids.into_iter().enumerate() {
        let Some(raw) = store.get(Tree::MessageBlobs, &id)? else {
            continue;
        };
        let pin = store.put_blob(&raw)?;
        let moved = store.transact::<_, StoreError>(&[Tree::MessageBlobs, Tree::BlobRefs], |tx| {
            if tx.get(Tree::MessageBlobs, &id)?.is_none() {
                return Ok(());
            }
            tx.link_blob(&id, &pin.id())?;
            tx.remove(Tree::MessageBlobs, &id)?;
            Ok(())
        });
        moved.map_err(|e| match e {
            super::TxError::Abort(e) | super::TxError::Store(e) => e,
        })?;
        drop(pin);
        if (n + 1) % 10_000 == 0 {
            // Progress survives an interruption: make it durable now and then.
            store.flush_blocking()?;
            tracing::info!(
                moved = n + 1,
                total,
                "moving message bodies to the blob store"
            );
        }
    }
    Ok(())
}

/// 3 -> 4: full-text search postings (`Tree::SearchPostings`). Building them means
/// reading messages, which is the mailbox's business, not the store's: this step records
/// that they are owed, and the mailbox service builds them, resumably, before serving. A
/// store with no message owes nothing.
fn search_index_owed(store: &Store) -> Result<(), StoreError> {
    if !store.is_empty(Tree::Messages) {
        store.put(Tree::Meta, SEARCH_BACKFILL_KEY, &[1])?;
    }
    Ok(())
}

/// 4 -> 5: messages stop keeping derived content (bodies, extracted text, headers) beside
/// their blob; it re-derives on read, identically. Removing what is left is all there is:
/// a reader finds no record and derives, so an interruption anywhere is harmless and the
/// rerun removes the rest.
fn drop_derived_content(store: &Store) -> Result<(), StoreError> {
    let mut removed = 0u64;
    loop {
        let batch: Vec<Vec<u8>> = store
            .scan_prefix(Tree::MessageContent, &[])
            .take(1000)
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_, _>>()?;
        if batch.is_empty() {
            break;
        }
        for k in &batch {
            store.remove(Tree::MessageContent, k)?;
        }
        removed += batch.len() as u64;
        if removed.is_multiple_of(10_000) {
            store.flush_blocking()?;
            tracing::info!(removed, "dropping derived message content");
        }
    }
    Ok(())
}

pub(super) fn migrate(store: &Store) -> Result<(), StoreError> {
    let found = match store.get(Tree::Meta, KEY)? {
        Some(v) => {
            let b: [u8; 4] = v
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("schema_version".into()))?;
            u32::from_be_bytes(b)
        }
        None => {
            store.put(Tree::Meta, KEY, &CURRENT.to_be_bytes())?;
            store.flush_blocking()?;
            return Ok(());
        }
    };
    if found > CURRENT {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: CURRENT,
        });
    }
    for v in found..CURRENT {
        let step = MIGRATIONS
            .get((v - 1) as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("no migration from schema {v}")))?;
        step(store)?;
        store.put(Tree::Meta, KEY, &(v + 1).to_be_bytes())?;
        store.flush_blocking()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_1_queue_copies_become_holds() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(Tree::Meta, KEY, &1u32.to_be_bytes()).unwrap();
            // One queued message whose Sent copy exists, one whose Sent copy was purged.
            s.put(Tree::MessageBlobs, b"msg_a", b"signed a").unwrap();
            s.put(Tree::QueueBlobs, b"msg_a", b"signed a").unwrap();
            s.put(Tree::QueueBlobs, b"msg_b", b"signed b").unwrap();
            s.flush_blocking().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Tree::Meta, KEY).unwrap(),
            Some(CURRENT.to_be_bytes().to_vec())
        );
        assert!(s.is_empty(Tree::QueueBlobs));
        for (id, raw) in [(&b"msg_a"[..], &b"signed a"[..]), (b"msg_b", b"signed b")] {
            assert_eq!(s.blob_of(id).unwrap().as_deref(), Some(raw));
            assert!(s.get(Tree::BlobHolds, id).unwrap().is_some());
        }
    }

    #[test]
    fn schema_2_bodies_move_to_the_blob_store_and_a_rerun_finishes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(Tree::Meta, KEY, &2u32.to_be_bytes()).unwrap();
            // Two messages with the same body (stored once), one different; msg_c is
            // "already moved" by an interrupted run whose version bump never happened.
            s.put(Tree::MessageBlobs, b"msg_a", b"same body").unwrap();
            s.put(Tree::MessageBlobs, b"msg_b", b"same body").unwrap();
            s.put(Tree::MessageBlobs, b"msg_c", b"other").unwrap();
            s.put(Tree::Messages, b"msg_a", b"rec").unwrap();
            s.put(Tree::Messages, b"msg_b", b"rec").unwrap();
            s.put(Tree::Messages, b"msg_c", b"rec").unwrap();
            s.flush_blocking().unwrap();
        }
        {
            // The interrupted run: msg_c moved, version still 2.
            let s = Store::open(dir.path()).unwrap();
            assert!(s.is_empty(Tree::MessageBlobs));
            s.put(Tree::Meta, KEY, &2u32.to_be_bytes()).unwrap();
            s.put(Tree::MessageBlobs, b"msg_a", b"same body").unwrap();
            s.put(Tree::MessageBlobs, b"msg_b", b"same body").unwrap();
            s.transact::<_, ()>(&[Tree::BlobRefs], |tx| {
                tx.unlink_blob(b"msg_a")?;
                tx.unlink_blob(b"msg_b")?;
                Ok(())
            })
            .unwrap();
            s.flush_blocking().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Tree::Meta, KEY).unwrap(),
            Some(CURRENT.to_be_bytes().to_vec())
        );
        assert!(s.is_empty(Tree::MessageBlobs));
        assert_eq!(s.blob_of(b"msg_a").unwrap().unwrap(), b"same body");
        assert_eq!(s.blob_of(b"msg_b").unwrap().unwrap(), b"same body");
        assert_eq!(s.blob_of(b"msg_c").unwrap().unwrap(), b"other");
        let r = s.verify_blobs(true, None).unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!((r.records, r.blobs), (3, 2));
    }

    #[test]
    fn schema_4_derived_content_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(Tree::Meta, KEY, &4u32.to_be_bytes()).unwrap();
            for i in 0..2500u32 {
                s.put(
                    Tree::MessageContent,
                    format!("msg_{i}").as_bytes(),
                    b"derived",
                )
                .unwrap();
            }
            s.put(Tree::Messages, b"msg_1", b"rec").unwrap();
            s.flush_blocking().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Tree::Meta, KEY).unwrap(),
            Some(CURRENT.to_be_bytes().to_vec())
        );
        assert!(s.is_empty(Tree::MessageContent));
        assert_eq!(s.get(Tree::Messages, b"msg_1").unwrap().unwrap(), b"rec");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put(Tree::Meta, KEY, &(CURRENT + 1).to_be_bytes())
                .unwrap();
            s.flush_blocking().unwrap();
        }
        match Store::open(dir.path()) {
            Err(StoreError::SchemaTooNew { found, .. }) => assert_eq!(found, CURRENT + 1),
            other => panic!("expected SchemaTooNew, got {:?}", other.err()),
        }
    }
}
