//! Blob holds: one stored copy of a sent message serves both its Sent folder entry and the
//! outbound queue.
//!
//! The queue used to keep its own copy of every signed message next to the Sent copy: the
//! same bytes written twice, and in sled a large value costs its size again each time its
//! leaf is rewritten, so that second copy was a quarter of all bytes written per sent
//! message. Now the queue holds the Sent copy's blob instead. A hold is written in the
//! delivery's own transaction; while it exists a purge of the message removes everything but
//! the blob, and releasing the hold removes the blob if the message is gone by then.

use super::MailboxService;
use crate::store::{Tree, Tx, TxStoreError};

/// Trees a transaction that calls [`release`] must declare (on top of its own).
pub const RELEASE_TREES: [Tree; 3] = [Tree::BlobHolds, Tree::Messages, Tree::BlobRefs];

/// Keeps message `id`'s raw bytes until [`release`], whatever happens to the message.
pub fn hold(tx: &Tx<'_>, id: &str) -> Result<(), TxStoreError> {
    tx.put(Tree::BlobHolds, id.as_bytes(), &[])
}

/// Ends the hold on `id`; the blob goes too if its message was purged meanwhile.
pub fn release(tx: &Tx<'_>, id: &str) -> Result<(), TxStoreError> {
    if tx.get(Tree::BlobHolds, id.as_bytes())?.is_none() {
        return Ok(());
    }
    tx.remove(Tree::BlobHolds, id.as_bytes())?;
    if tx.get(Tree::Messages, id.as_bytes())?.is_none() {
        tx.unlink_blob(id.as_bytes())?;
    }
    Ok(())
}

/// Whether a purge must leave `id`'s blob in place.
pub(super) fn is_held(tx: &Tx<'_>, id: &str) -> Result<bool, TxStoreError> {
    Ok(tx.get(Tree::BlobHolds, id.as_bytes())?.is_some())
}

impl MailboxService {
    /// The raw bytes of a held message, for the hold's owner: no agent check, since the
    /// message may already be purged from its mailbox.
    pub fn held_raw(&self, id: &str) -> Result<Option<Vec<u8>>, super::MailboxError> {
        Ok(self.store.blob_of(id.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{Deleted, TxHook};
    use super::*;
    use crate::mailbox::Folder;

    async fn held_delivery(mb: &MailboxService) -> crate::mailbox::StoredMessage {
        let write = |tx: &Tx<'_>, rec: &crate::mailbox::StoredMessage| {
            Ok::<_, crate::store::TxFail<crate::mailbox::MailboxError>>(hold(tx, &rec.id)?)
        };
        let hook = TxHook {
            trees: &[Tree::BlobHolds],
            write: &write,
            before_commit: None,
        };
        mb.deliver_with(
            "ag_a",
            Folder::Sent,
            simple("x", "held"),
            meta(1),
            Some(hook),
        )
        .await
        .unwrap()
    }

    fn release_now(mb: &MailboxService, id: &str) {
        mb.store
            .transact::<_, ()>(&RELEASE_TREES, |tx| Ok(release(tx, id)?))
            .unwrap();
    }

    #[tokio::test]
    async fn a_purge_keeps_a_held_blob_until_the_hold_is_released() {
        let (_d, mb) = service(0);
        let me = reader("ag_a");
        let m = held_delivery(&mb).await;
        assert!(matches!(
            mb.delete(&me, &m.id).await.unwrap(),
            Deleted::Trashed(_)
        ));
        assert!(matches!(
            mb.delete(&me, &m.id).await.unwrap(),
            Deleted::Purged(_)
        ));
        // Gone from the mailbox, but the queue can still read it.
        assert!(mb.raw_bytes("ag_a", &m.id).is_err());
        assert_eq!(mb.held_raw(&m.id).unwrap(), Some(simple("x", "held")));
        release_now(&mb, &m.id);
        assert_eq!(mb.held_raw(&m.id).unwrap(), None);
        // The body's file went with its last holder.
        let report = mb.store.verify_blobs(false, None).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.blobs, 0);
        assert_eq!(
            mb.store.get(Tree::BlobHolds, m.id.as_bytes()).unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn releasing_a_hold_leaves_a_message_that_is_still_there() {
        let (_d, mb) = service(0);
        let m = held_delivery(&mb).await;
        release_now(&mb, &m.id);
        release_now(&mb, &m.id);
        assert_eq!(mb.raw_bytes("ag_a", &m.id).unwrap(), simple("x", "held"));
        assert_eq!(
            mb.store.get(Tree::BlobHolds, m.id.as_bytes()).unwrap(),
            None
        );
        // Without a hold, a purge takes the blob with it.
        let me = reader("ag_a");
        mb.delete(&me, &m.id).await.unwrap();
        mb.delete(&me, &m.id).await.unwrap();
        assert_eq!(mb.held_raw(&m.id).unwrap(), None);
    }
}
