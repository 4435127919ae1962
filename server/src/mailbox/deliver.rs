//! Delivery: one message into one agent's folder, durable before the caller acknowledges.
//!
//! Raw blob, metadata, derived content (mail from others only; the agent's own Sent and
//! Drafts copies derive it when read), UID and timeline indexes, folder and agent counters,
//! the thread index and the change-feed entry are written in ONE store transaction, then
//! `Store::commit` makes them durable (shared with concurrent deliveries: group commit). Only
//! then may SMTP answer `250`; any error here means "do not acknowledge" (`451 4.3.0`, or
//! `552 5.2.2` for [`MailboxError::QuotaExceeded`]).

use super::admit::Admitted;
use super::model::{ChangeKind, DeliveryMeta, MessageContent, StoredMessage};
use super::parse::{is_own, unparsed};
pub use super::parse::{parse_for, Parsed};
use super::senders::SenderVerdict;
use super::slots::{
    folder_for_insert, index_in_folder, load_state, load_state_and_folder, next_uid,
};
use super::thread::{self, ThreadRefs};
use super::{index, Folder, MailboxError, MailboxService};
use crate::store::{Tree, Tx, TxFail};
use crate::util::{new_id, now_millis, now_unix};
use std::sync::Arc;

const TREES: [Tree; 12] = [
    Tree::Messages,
    Tree::ThreadMessages,
    Tree::BlobRefs,
    Tree::FolderUids,
    Tree::MailTimeline,
    Tree::FolderTimeline,
    Tree::Folders,
    Tree::MailChanges,
    Tree::MailThreads,
    Tree::SearchDocs,
    Tree::SearchPending,
    Tree::SendContacts,
];

/// Extra writes joined to a delivery's transaction (see [`MailboxService::deliver_with`]).
pub struct TxHook<'a> {
    /// Trees the hook writes, besides the mailbox's own.
    pub trees: &'a [Tree],
    /// Called once per transaction attempt (sled may retry on conflict), with the record as
    /// it will be stored. It may abort the whole delivery ([`MailboxError::HookRefused`]:
    /// the queue's send policy, decided on the counters inside this transaction).
    #[allow(clippy::type_complexity)]
    pub write: &'a (dyn Fn(&Tx<'_>, &StoredMessage) -> Result<(), TxFail<MailboxError>> + Sync),
    /// Called once the transaction is applied, before the commit that makes it durable:
    /// what must be durable with the message rides on that commit instead of a second one
    /// (the queue appends the sender's audit entry here). An error is returned after the
    /// commit, so the message is durable either way.
    #[allow(clippy::type_complexity)]
    pub before_commit: Option<&'a (dyn Fn(&StoredMessage) -> Result<(), MailboxError> + Sync)>,
}

impl MailboxService {
    /// Stores `raw` in `agent`'s `folder` and returns once it is durable.
    pub async fn deliver(
        &self,
        agent: &str,
        folder: Folder,
        raw: Vec<u8>,
        meta: DeliveryMeta,
    ) -> Result<StoredMessage, MailboxError> {
        self.deliver_with(agent, folder, raw, meta, None).await
    }

    /// [`deliver`](Self::deliver), with `hook` writing its own records in the SAME
    /// transaction: the outbound queue stores a message, its recipients and the sender's Sent
    /// copy atomically, so no crash can leave one without the other.
    pub async fn deliver_with(
        &self,
        agent: &str,
        folder: Folder,
        raw: Vec<u8>,
        meta: DeliveryMeta,
        hook: Option<TxHook<'_>>,
    ) -> Result<StoredMessage, MailboxError> {
        let admitted = self.admit(agent, meta, raw.len() as u64)?;
        self.parse_and_store(agent, folder, raw, admitted, hook)
            .await
    }

    /// [`deliver`](Self::deliver) for mail from the outside (the MX), judged first against
    /// the allow and block lists of the agent and of `org_id`: a refused copy is not stored
    /// ([`MailboxError::SenderRefused`]), an agent-level block files it to Junk.
    pub async fn deliver_inbound(
        &self,
        agent: &str,
        org_id: &str,
        folder: Folder,
        raw: Vec<u8>,
        meta: DeliveryMeta,
    ) -> Result<StoredMessage, MailboxError> {
        let mut admitted = self.admit(agent, meta, raw.len() as u64)?;
        admitted.senders = Some(org_id.to_string());
        self.parse_and_store(agent, folder, raw, admitted, None)
            .await
    }

    async fn parse_and_store(
        &self,
        agent: &str,
        folder: Folder,
        raw: Vec<u8>,
        admitted: Admitted,
        hook: Option<TxHook<'_>>,
    ) -> Result<StoredMessage, MailboxError> {
        // Parsing a large message is CPU work: keep it off the async workers. The bytes stay
        // shared with this task, so even a failed task cannot lose them.
        let raw: Arc<[u8]> = raw.into();
        let for_parse = raw.clone();
        let parsed = tokio::task::spawn_blocking(move || parse_for(folder, &for_parse))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(agent, error = %e, "the parse task failed; storing raw only");
                Parsed {
                    own: is_own(folder),
                    ex: unparsed(),
                    terms: Vec::new(),
                }
            });
        self.store_parsed(agent, folder, raw, parsed, admitted, hook, true)
            .await
    }

    /// [`deliver_with`](Self::deliver_with) for a caller that already ran [`parse_for`] on
    /// `raw` in its own blocking task (the queue does, beside signing), saving a thread hop.
    pub async fn deliver_parsed(
        &self,
        agent: &str,
        folder: Folder,
        raw: Arc<[u8]>,
        parsed: Parsed,
        meta: DeliveryMeta,
        hook: Option<TxHook<'_>>,
    ) -> Result<StoredMessage, MailboxError> {
        // A record-only parse stored for mail from others would lose its codes and links
        // for good: a caller bug, refused rather than stored.
        if parsed.own != is_own(folder) {
            return Err(MailboxError::Invalid(format!(
                "parsed for another kind of folder than {folder}"
            )));
        }
        let admitted = self.admit(agent, meta, raw.len() as u64)?;
        self.store_parsed(agent, folder, raw, parsed, admitted, hook, true)
            .await
    }

    /// [`deliver_parsed`](Self::deliver_parsed) for a sent message that no mailbox keeps:
    /// its bytes are stored durably and `hook` runs in the transaction that links them, but
    /// no record, index entry or change is written, so no surface (REST, MCP, IMAP, events)
    /// ever shows it. For mail carrying a secret for its recipient only (an owner invite):
    /// the sender's Sent copy would hand that secret to whoever reads the sender's mail.
    /// The hook must hold the bytes (`holds::hold`): releasing the hold removes them.
    pub async fn store_unfiled(
        &self,
        agent: &str,
        raw: Arc<[u8]>,
        parsed: Parsed,
        meta: DeliveryMeta,
        hook: TxHook<'_>,
    ) -> Result<StoredMessage, MailboxError> {
        let admitted = self.admit(agent, meta, raw.len() as u64)?;
        self.store_parsed(
            agent,
            Folder::Sent,
            raw,
            parsed,
            admitted,
            Some(hook),
            false,
        )
        .await
    }

    /// `filed`: false for [`store_unfiled`](Self::store_unfiled).
    #[allow(clippy::too_many_arguments)]
    async fn store_parsed(
        &self,
        agent: &str,
        folder: Folder,
        raw: Arc<[u8]>,
        parsed: Parsed,
        admitted: Admitted,
        hook: Option<TxHook<'_>>,
        filed: bool,
    ) -> Result<StoredMessage, MailboxError> {
        let Admitted {
            meta,
            flags,
            labels,
            senders,
        } = admitted;
        let mut ex = parsed.ex;
        let terms = parsed.terms;
        let size = raw.len() as u64;
        let id = index::new_message_id(now_unix());
        let fresh_thread = new_id("th");
        let refs = ThreadRefs::of(&ex);
        let external = !is_own(folder);
        // Kept for the reads right after this delivery (see `recent`); taken after the
        // thread references were read from the parse and before its fields move to the record.
        let content = (external && raw.len() <= super::recent::ENTRY_MAX)
            .then(|| MessageContent::take(&mut ex));
        // No derived copy is stored (schema 5): bodies, extracted text, codes, links and
        // headers re-derive from the blob when a whole message is read
        // (`MailboxService::message`). Storing them cost twice the raw size per message,
        // and a parse of one message on read is cheap beside a list of many.
        let mut base = StoredMessage {
            id: id.clone(),
            agent_id: agent.to_string(),
            folder,
            uid: 0,
            thread_id: String::new(),
            modseq: 0,
            flags,
            labels,
            received_at_ms: meta.received_at_ms,
            size,
            from: ex.from,
            to: ex.to,
            cc: ex.cc,
            reply_to: ex.reply_to,
            subject: ex.subject,
            date: ex.date,
            message_id: ex.message_id,
            preview: ex.preview,
            attachments: ex.attachments,
            auth_json: meta.auth.as_ref().map(|v| v.to_string()),
            envelope_from: meta.envelope_from,
            envelope_to: meta.envelope_to,
            external,
            trust: None,
        };
        if let Some(org) = &senders {
            let from = base.from.as_ref().map(|a| a.email.as_str());
            let proven = base.sender_authenticated();
            match self.judge_sender(org, agent, &base.envelope_from, from, proven)? {
                SenderVerdict::Accept => {}
                SenderVerdict::Junk => base.folder = Folder::Junk,
                SenderVerdict::Refuse(why) => return Err(MailboxError::SenderRefused(why)),
            }
            // Trust labels (issue 24, item 7), read before this delivery records the sender
            // as a contact; a stranger's mail goes to Screened when the agent asks for it.
            let trust = self.trust_of(org, agent, from, proven)?;
            if trust.first_contact
                && base.folder == Folder::Inbox
                && self.screening(agent)?.hold_first_contact
            {
                if let Some(f) = self.screened_folder(agent)? {
                    base.folder = f;
                }
            }
            base.trust = Some(trust);
        }
        let folder = base.folder;
        let (now, now_ms) = (now_unix(), now_millis());
        let quota = self.quota_bytes;
        // The body goes to the blob store first, durably (file and directory fsynced), so
        // the transaction that makes the message visible never points at bytes not on disk.
        let blob = {
            let store = self.store.clone();
            let raw = raw.clone();
            tokio::task::spawn_blocking(move || store.put_blob(&raw))
                .await
                .map_err(|e| crate::store::StoreError::Io(format!("the blob task failed: {e}")))??
        };

        let mut trees = TREES.to_vec();
        trees.extend_from_slice(&crate::store::EVENT_TREES);
        if let Some(h) = &hook {
            trees.extend_from_slice(h.trees);
        }
        trees.sort();
        trees.dedup();
        let rec = self.store.transact(&trees, |tx| {
            if !filed {
                let mut rec = base.clone();
                rec.thread_id = fresh_thread.clone();
                tx.link_blob(id.as_bytes(), &blob.id())?;
                if let Some(h) = &hook {
                    (h.write)(tx, &rec)?;
                }
                return Ok(rec);
            }
            let (mut st, found) = load_state_and_folder(tx, agent, folder, now)?;
            if quota > 0 && st.used_bytes.saturating_add(size) > quota {
                return Err(TxFail::Abort(MailboxError::QuotaExceeded {
                    used: st.used_bytes,
                    quota,
                    incoming: size,
                }));
            }
            let mut fs = folder_for_insert(found, folder, &st)?;
            let mut rec = base.clone();
            rec.uid = next_uid(&mut fs)?;
            st.modseq += 1;
            st.used_bytes += size;
            st.messages += 1;
            rec.modseq = st.modseq;
            rec.thread_id = thread::resolve(tx, agent, &refs, &fresh_thread)?;
            fs.add(size, rec.is_unread(), st.modseq);

            tx.put_record(Tree::Messages, id.as_bytes(), &rec)?;
            tx.link_blob(id.as_bytes(), &blob.id())?;
            index_in_folder(tx, &rec)?;
            super::search::index_message(tx, &rec, &terms)?;
            tx.put_record(Tree::Folders, &index::folder_state(agent, folder), &fs)?;
            tx.put_record(Tree::Folders, &index::agent_state(agent), &st)?;
            tx.put_record(
                Tree::MailChanges,
                &index::change(agent, st.modseq),
                &rec.change(ChangeKind::Added, st.modseq, now_ms),
            )?;
            if external {
                tx.emit(&super::events::received(&rec))?;
                super::contacts::record_received(tx, &rec)?;
            }
            if let Some(h) = &hook {
                (h.write)(tx, &rec)?;
            }
            Ok(rec)
        })?;
        drop(blob);
        let hooked = match hook.as_ref().and_then(|h| h.before_commit) {
            Some(f) => f(&rec),
            None => Ok(()),
        };
        // Before the commit, which is what lets the event dispatchers see this message: they
        // render it at once, and found nothing here when this came after (a parse each).
        // Content never changes for an id, so an entry for a commit that fails is harmless.
        if let Some(c) = content.filter(|_| filed) {
            self.recent.put(&rec.id, c, raw.len());
        }
        self.audit.commit().await?;
        hooked?;
        if !filed {
            return Ok(rec);
        }
        // What a client syncing the mailbox asks first, kept when one follows it now: a
        // mailbox nobody reads over IMAP would only fill the cache for nothing (a reader
        // that comes later reads the header from the blob once and keeps it then).
        if self.bells.listened(&rec.agent_id) {
            self.headers.put_from_raw(&rec.id, &raw);
        }
        self.delivered(&rec);
        Ok(rec)
    }

    /// Creates the agent's folders durably if it has none yet.
    pub(super) async fn ensure_mailbox(&self, agent: &str) -> Result<(), MailboxError> {
        if self.usage(agent)?.is_some() {
            return Ok(());
        }
        let now = now_unix();
        self.store
            .transact::<_, MailboxError>(&[Tree::Folders], |tx| {
                load_state(tx, agent, now)?;
                Ok(())
            })?;
        self.audit.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[tokio::test]
    async fn uids_grow_per_folder_and_state_is_counted() {
        let (_d, mb) = service(0);
        let a = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "one")).await;
        let b = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "two")).await;
        let c = deliver(&mb, "ag_a", Folder::Sent, &simple("x", "three")).await;
        let other = deliver(&mb, "ag_b", Folder::Inbox, &simple("x", "four")).await;
        assert_eq!((a.uid, b.uid, c.uid, other.uid), (1, 2, 1, 1));
        assert_eq!((a.modseq, b.modseq, c.modseq), (1, 2, 3));
        assert!(!c.external && a.external);
        let fs = mb.folders("ag_a").await.unwrap();
        assert_eq!(fs.len(), 6);
        let inbox = &fs[0];
        assert_eq!(inbox.folder, Folder::Inbox);
        assert_eq!((inbox.uidnext, inbox.exists, inbox.unseen), (3, 2, 2));
        assert_eq!(inbox.size, a.size + b.size);
        assert!(fs.iter().all(|f| f.uidvalidity == inbox.uidvalidity));
        let st = mb.usage("ag_a").unwrap().unwrap();
        assert_eq!((st.modseq, st.messages), (3, 3));
        assert_eq!(st.used_bytes, a.size + b.size + c.size);
        let uids = mb.uids("ag_a", Folder::Inbox, 1, 10).unwrap();
        assert_eq!(uids, vec![(1, a.id.clone()), (2, b.id.clone())]);
        let ch = mb.changes_since("ag_a", 1, 10).unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!(
            (ch[0].modseq, ch[0].kind, ch[0].uid),
            (2, ChangeKind::Added, 2)
        );
    }

    #[tokio::test]
    async fn own_messages_are_stored_raw_and_read_the_same() {
        let (_d, mb) = service(0);
        let raw = b"From: Ann <ann@agents.test>\r\nTo: bob@b.test\r\nSubject: Plan\r\n\
                    Message-ID: <p1@agents.test>\r\n\r\nYour code is 482913.\r\n\r\n\
                    -- \r\nAnn\r\n";
        let sent = deliver(&mb, "ag_a", Folder::Sent, raw).await;
        let inbox = deliver(&mb, "ag_a", Folder::Inbox, raw).await;
        // No copy keeps a derived record ...
        let stored = |id: &str| mb.store.get(Tree::MessageContent, id.as_bytes()).unwrap();
        assert!(stored(&sent.id).is_none());
        assert!(stored(&inbox.id).is_none());
        // ... and both read the same content.
        let a = mb.message("ag_a", &sent.id).await.unwrap().content;
        let b = mb.message("ag_a", &inbox.id).await.unwrap().content;
        assert_eq!(a, b);
        assert_eq!(a.extracted_text, "Your code is 482913.");
        assert_eq!(a.codes[0].code, "482913");
        assert_eq!(a.references, Vec::<String>::new());
        assert!(a.headers.iter().any(|(n, v)| n == "Subject" && v == "Plan"));
        // Unparseable bytes read as empty content, as they would have been stored.
        let junk = deliver(&mb, "ag_a", Folder::Drafts, b"\xff\xfe").await;
        let c = mb.message("ag_a", &junk.id).await.unwrap().content;
        assert_eq!(c.extracted_text, "");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_deliveries_get_distinct_uids_and_modseqs() {
        let (_d, mb) = service(0);
        let mb = Arc::new(mb);
        let tasks: Vec<_> = (0..24)
            .map(|i| {
                let mb = mb.clone();
                tokio::spawn(async move {
                    deliver(&mb, "ag_a", Folder::Inbox, &simple("x", &format!("c{i}"))).await
                })
            })
            .collect();
        let mut uids = Vec::new();
        let mut modseqs = Vec::new();
        for t in tasks {
            let m = t.await.unwrap();
            uids.push(m.uid);
            modseqs.push(m.modseq);
        }
        uids.sort();
        modseqs.sort();
        assert_eq!(uids, (1..=24).collect::<Vec<u32>>());
        assert_eq!(modseqs, (1..=24).collect::<Vec<u64>>());
        let inbox = &mb.folders("ag_a").await.unwrap()[0];
        assert_eq!((inbox.exists, inbox.uidnext), (24, 25));
    }

    #[tokio::test]
    async fn uidvalidity_and_uids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (v1, last) = {
            let mb = service_in(dir.path(), 0);
            deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "a")).await;
            let m = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "b")).await;
            (mb.folders("ag_a").await.unwrap()[0].uidvalidity, m.uid)
        };
        let mb = service_in(dir.path(), 0);
        let fs = mb.folders("ag_a").await.unwrap();
        assert_eq!(fs[0].uidvalidity, v1);
        let m = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "c")).await;
        assert_eq!(m.uid, last + 1);
    }

    #[tokio::test]
    async fn threads_follow_references_and_in_reply_to() {
        let (_d, mb) = service(0);
        let root = deliver(&mb, "ag_a", Folder::Inbox, &with_ids("r1@x", &[], &[])).await;
        let reply = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            &with_ids("r2@x", &["r1@x"], &["r1@x"]),
        )
        .await;
        // Only In-Reply-To, naming the reply rather than the root.
        let deeper = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            &with_ids("r3@x", &["r2@x"], &[]),
        )
        .await;
        let other = deliver(&mb, "ag_a", Folder::Inbox, &with_ids("z@x", &[], &[])).await;
        assert_eq!(reply.thread_id, root.thread_id);
        assert_eq!(deeper.thread_id, root.thread_id);
        assert_ne!(other.thread_id, root.thread_id);
        // Two replies to a message never seen agree with each other.
        let o1 = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            &with_ids("o1@x", &["gone@x"], &["gone@x"]),
        )
        .await;
        let o2 = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            &with_ids("o2@x", &["gone@x"], &[]),
        )
        .await;
        assert_eq!(o1.thread_id, o2.thread_id);
        // No ids at all: a thread of its own.
        let lone1 = deliver(&mb, "ag_a", Folder::Inbox, b"Subject: a\r\n\r\nx\r\n").await;
        let lone2 = deliver(&mb, "ag_a", Folder::Inbox, b"Subject: a\r\n\r\nx\r\n").await;
        assert_ne!(lone1.thread_id, lone2.thread_id);
    }

    #[tokio::test]
    async fn garbage_is_stored_whole_and_bad_input_refused() {
        let (_d, mb) = service(0);
        let m = deliver(&mb, "ag_a", Folder::Inbox, b"\x00\x01 not a message").await;
        assert_eq!(
            mb.raw_bytes("ag_a", &m.id).unwrap(),
            b"\x00\x01 not a message"
        );
        let mut bad = meta(1);
        bad.flags = vec!["\\Bogus".into()];
        assert!(matches!(
            mb.deliver("ag_a", Folder::Inbox, b"x".to_vec(), bad).await,
            Err(MailboxError::Invalid(_))
        ));
        assert!(mb
            .deliver("a\0b", Folder::Inbox, b"x".to_vec(), meta(1))
            .await
            .is_err());
    }
}
