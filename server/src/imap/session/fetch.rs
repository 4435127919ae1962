//! FETCH and UID FETCH (RFC 9051 §6.4.5) with BINARY (RFC 3516), CHANGEDSINCE and VANISHED
//! (RFC 7162).
//!
//! Responses are built a batch of messages at a time in the blocking pool (reading and
//! parsing bodies is CPU and disk work) and written out as they are made, so a FETCH of
//! a whole mailbox never sits in memory. A whole-message item (`BODY[]`, `RFC822`) of a
//! large message is streamed from its blob to the socket, never held per client.
//! Reading a body without PEEK sets `\Seen` first, through the mailbox like any STORE.

use super::fetch_items::{encode_fetch, is_whole, items_for, plan, Plan};
use super::{other_code, Reply, Session, State};
use crate::imap::render::MessageView;
use crate::mailbox::{MailboxService, StoredMessage};
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::SequenceSet;
use std::collections::VecDeque;
use std::sync::Arc;

/// Whole messages at least this large are streamed from the blob.
const STREAM_AT: u64 = 1024 * 1024;
/// A batch ends after `imap.fetch_batch_messages` messages or `imap.fetch_batch_bytes`
/// response bytes. Each batch is a hand-off to the blocking pool and back: on a loaded
/// machine every one waits its turn for a core, so a bulk FETCH of small messages wants few
/// of them; a session holds at most `AHEAD + 1` batches.
/// Batches built ahead while the one before is written: the blocking pool reads and
/// renders while the session writes, and on more than one core at once. A session holds at
/// most this many batches plus the one it writes.
const AHEAD: usize = 2;

/// Messages whose responses are built together, with the ids whose `\\Seen` this command set.
struct Batch {
    msgs: Vec<(u32, StoredMessage)>,
    seen_now: Arc<std::collections::HashSet<String>>,
}

/// One message's output: encoded bytes, or bytes then a body streamed from the blob.
enum Piece {
    Bytes(Vec<u8>),
    Stream {
        head: Vec<u8>,
        id: String,
        size: u64,
    },
}

/// Builds one batch's output in the blocking pool.
fn build_batch(
    mb: &MailboxService,
    agent: &str,
    plan: &Plan,
    batch: &[(u32, StoredMessage)],
    seen_now: &std::collections::HashSet<String>,
    max_bytes: u64,
    spare: Option<Vec<u8>>,
) -> (Vec<Piece>, bool) {
    let mut unknown_cte = false;
    let mut out = Vec::new();
    // The batch's responses in one buffer (a body read straight into it), cut only where a
    // large body is streamed: one allocation and one write per batch, not per message, and
    // none when an earlier batch's written buffer is handed back.
    let estimate: u64 = batch
        .iter()
        .map(|(_, r)| 96 + if r.size < STREAM_AT { r.size } else { 0 })
        .sum();
    let mut buf: Vec<u8> = spare.unwrap_or_default();
    buf.clear();
    buf.reserve(usize::try_from(estimate.min(2 * max_bytes)).unwrap_or(0));
    let whole_wanted = plan.names.iter().any(is_whole);
    let wholes = plan.names.iter().filter(|n| is_whole(n)).count();
    let only_whole = plan.names.iter().all(|n| {
        !matches!(
            n,
            MessageDataItemName::Envelope
                | MessageDataItemName::Body
                | MessageDataItemName::BodyStructure
                | MessageDataItemName::Rfc822Header
                | MessageDataItemName::Rfc822Text
                | MessageDataItemName::Binary { .. }
                | MessageDataItemName::BinarySize { .. }
        ) && !matches!(
            n,
            MessageDataItemName::BodyExt {
                section: Some(_),
                ..
            }
        ) && !matches!(
            n,
            MessageDataItemName::BodyExt {
                partial: Some(_),
                ..
            }
        )
    });
    for (seq, rec) in batch {
        let stream_whole = whole_wanted && rec.size >= STREAM_AT;
        // The whole message and nothing that needs its parse: its bytes go from the blob
        // into the output as they are, without being held apart (`BODY.PEEK[]`, what a
        // client downloading a mailbox asks).
        let direct = wholes == 1 && only_whole && !stream_whole;
        // A streamed message whose other items need no parse is never read whole here.
        let (whole, header);
        let bytes: Option<&[u8]> = if !plan.needs_raw || (stream_whole && only_whole) || direct {
            None
        } else if plan.header_only {
            header = mb.raw_header_of_record(agent, rec).ok();
            header.as_deref()
        } else {
            whole = mb.raw_of_record(agent, rec).ok();
            whole.as_deref()
        };
        // A whole message already in memory goes on the wire as it is, after the encoded
        // items, like a streamed one: handing it to the encoder as a literal copied it
        // twice more, a fifth of a bulk FETCH's time.
        let inline_whole = wholes == 1 && !stream_whole && bytes.is_some();
        let view = bytes.map(MessageView::parse);
        let (mut items, streamed) = items_for(
            plan,
            rec,
            view.as_ref(),
            stream_whole || inline_whole || direct,
            &mut unknown_cte,
        );
        // RFC 9051 §6.4.5: flags changed by reading (\Seen set) are reported with the data.
        if seen_now.contains(&rec.id) && !plan.names.contains(&MessageDataItemName::Flags) {
            items.push(MessageDataItem::Flags(super::selected::flags_of(rec)));
        }
        let Some(s) = streamed else {
            if let Some(b) = encode_fetch(*seq, items) {
                buf.extend_from_slice(&b);
            }
            continue;
        };
        items.push(s);
        let Some(b) = encode_fetch(*seq, items) else {
            continue;
        };
        // The placeholder is the last item: `... NIL)\r\n` becomes `... {n}\r\n`, the
        // body, `)\r\n`.
        let Some(head) = b.strip_suffix(b"NIL)\r\n") else {
            continue;
        };
        if direct {
            let mark = buf.len();
            buf.extend_from_slice(head);
            let literal_at = buf.len();
            buf.extend_from_slice(format!("{{{}}}\r\n", rec.size).as_bytes());
            let body_at = buf.len();
            match mb.raw_into_of_record(agent, rec, &mut buf) {
                Ok(n) if n as u64 == rec.size => {}
                Ok(n) => {
                    // The record's size is not the body's (a damaged file: `store verify
                    // --deep` finds it): the literal says what is sent.
                    tracing::warn!(id = %rec.id, recorded = rec.size, read = n, "a body is shorter than its record says");
                    let body = buf.split_off(body_at);
                    buf.truncate(literal_at);
                    buf.extend_from_slice(format!("{{{n}}}\r\n").as_bytes());
                    buf.extend_from_slice(&body);
                }
                Err(_) => {
                    // Gone since the records were read: left out, as a failed read is.
                    buf.truncate(mark);
                    continue;
                }
            }
            buf.extend_from_slice(b")\r\n");
            continue;
        }
        if let (true, Some(raw)) = (inline_whole, bytes) {
            buf.extend_from_slice(head);
            buf.extend_from_slice(format!("{{{}}}\r\n", raw.len()).as_bytes());
            buf.extend_from_slice(raw);
            buf.extend_from_slice(b")\r\n");
            continue;
        }
        let mut head = head.to_vec();
        head.extend_from_slice(format!("{{{}}}\r\n", rec.size).as_bytes());
        if !buf.is_empty() {
            out.push(Piece::Bytes(std::mem::take(&mut buf)));
        }
        out.push(Piece::Stream {
            head,
            id: rec.id.clone(),
            size: rec.size,
        });
    }
    if !buf.is_empty() {
        out.push(Piece::Bytes(buf));
    }
    (out, unknown_cte)
}

impl Session {
    pub(super) async fn fetch(
        &mut self,
        set: SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) -> Reply {
        // The command's written batches are built into again, and freed when it ends. A
        // batch reserves up to twice `fetch_batch_bytes`; a buffer grown larger than that (by
        // one large item) is not kept.
        let max = usize::try_from(self.ctx.config.fetch_batch_bytes.saturating_mul(2))
            .unwrap_or(usize::MAX);
        self.conn.keep_spares(max);
        let reply = self.fetch_keeping_spares(set, items, uid, modifiers).await;
        self.conn.drop_spares();
        reply
    }

    async fn fetch_keeping_spares(
        &mut self,
        set: SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) -> Reply {
        let mut changed_since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(v) => changed_since = Some(v.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && (!uid || !self.enabled.qresync || changed_since.is_none()) {
            return Reply::bad("VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE");
        }
        if changed_since.is_some() {
            self.enabled.condstore = true;
        }
        let max_content = self.ctx.config.max_fetch_content_items;
        let plan = match plan(items, uid, changed_since.is_some(), max_content) {
            Ok(p) => Arc::new(p),
            Err(r) => return r,
        };
        if let (true, Some(since)) = (vanished, changed_since) {
            self.vanished_earlier(&set, since).await;
        }
        let uids = match self.uids_in_set(&set, uid) {
            Ok(u) => u,
            Err(r) => return r,
        };
        let State::Selected(a, sel) = &self.state else {
            return Reply::bad("Select a mailbox first");
        };
        let (actor, agent, folder, read_only) =
            (a.actor.clone(), a.agent.clone(), sel.folder, sel.read_only);
        if plan.needs_raw {
            if let Err(e) = self.ctx.mailbox.authorize_read(&actor, folder, uids.len()) {
                return super::write::mailbox_error(e);
            }
        }
        let mut unknown_cte = false;
        // One pipeline over the whole command: the records of the next chunk are read (and
        // its batches queued) while the batches of the one before are still being built or
        // written, so the blocking pool never idles at a chunk boundary.
        let mut chunks = uids.chunks(super::write::CHUNK);
        let mut queued: VecDeque<Batch> = VecDeque::new();
        let mut building: VecDeque<tokio::task::JoinHandle<(Vec<Piece>, bool)>> = VecDeque::new();
        // A chunk that failed: said once what came before it is written, as before.
        let mut failed: Option<Reply> = None;
        loop {
            while building.len() < AHEAD && failed.is_none() {
                if let Some(b) = queued.pop_front() {
                    building.push_back(self.build(&agent, &plan, b));
                    continue;
                }
                let Some(chunk) = chunks.next() else { break };
                match self
                    .batches_of(chunk, &plan, changed_since, &actor, folder, read_only)
                    .await
                {
                    Ok(b) => queued.extend(b),
                    Err(r) => failed = Some(r),
                }
            }
            let Some(next) = building.pop_front() else {
                break;
            };
            match self.write_batch(&agent, next).await {
                Ok(cte) => unknown_cte |= cte,
                Err(r) => return r,
            }
        }
        if let Some(r) = failed {
            return r;
        }
        if unknown_cte {
            return Reply::no("Cannot decode a part's transfer encoding")
                .code(imap_codec::imap_types::response::Code::UnknownCte);
        }
        Reply::ok("FETCH completed")
    }

    /// The batches of one chunk of UIDs: its records read, `\\Seen` set where a body is read
    /// without PEEK, each message numbered, cut where a batch is full.
    async fn batches_of(
        &mut self,
        chunk: &[u32],
        plan: &Plan,
        changed_since: Option<u64>,
        actor: &crate::identity::Actor,
        folder: crate::mailbox::Folder,
        read_only: bool,
    ) -> Result<Vec<Batch>, Reply> {
        // Only numbers, flags and the id are read: every item is rendered from those and
        // the message's bytes.
        let mut recs = self.records_for_as(chunk, true)?;
        if let Some(since) = changed_since {
            recs.retain(|r| r.modseq > since);
        }
        let seen_now = if plan.sets_seen && !read_only {
            self.mark_seen(actor, folder, &mut recs).await?
        } else {
            Default::default()
        };
        // `imap.max_fetch_bytes_per_message`: the bound on what one command makes a session
        // hold.
        let max_output = self.ctx.config.max_fetch_bytes_per_message;
        if let Some(big) = recs
            .iter()
            .find(|r| r.size.saturating_mul(plan.content_items) > max_output)
        {
            return Err(Reply::no(format!(
                "Message UID {} is {} bytes: fetch fewer items of it at once",
                big.uid, big.size
            ))
            .code(other_code("LIMIT")));
        }
        let max_messages = self.ctx.config.fetch_batch_messages.max(1);
        let max_bytes = self.ctx.config.fetch_batch_bytes;
        let Some(sel) = self.selected_mut() else {
            return Err(Reply::bad("Select a mailbox first"));
        };
        let seen_now = Arc::new(seen_now);
        let mut numbered = recs
            .into_iter()
            .filter_map(|r| sel.seq_of(r.uid).map(|s| (s, r)))
            .peekable();
        let mut batches = Vec::new();
        while numbered.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            while batch.len() < max_messages && bytes < max_bytes {
                let Some(next) = numbered.next() else { break };
                // Whole messages from the streaming size on are not built in memory.
                let size = next.1.size;
                bytes += if !plan.needs_raw {
                    100
                } else if size >= STREAM_AT {
                    size.saturating_mul(plan.content_items.saturating_sub(1))
                        .max(100)
                } else {
                    size.saturating_mul(plan.content_items)
                };
                batch.push(next);
            }
            batches.push(Batch {
                msgs: batch,
                seen_now: seen_now.clone(),
            });
        }
        Ok(batches)
    }

    /// Starts building a batch's responses in the blocking pool.
    fn build(
        &mut self,
        agent: &str,
        plan: &Arc<Plan>,
        b: Batch,
    ) -> tokio::task::JoinHandle<(Vec<Piece>, bool)> {
        let (mb, agent, plan) = (self.ctx.mailbox.clone(), agent.to_string(), plan.clone());
        let max_bytes = self.ctx.config.fetch_batch_bytes;
        let spare = self.conn.take_spare();
        tokio::task::spawn_blocking(move || {
            build_batch(&mb, &agent, &plan, &b.msgs, &b.seen_now, max_bytes, spare)
        })
    }

    /// Sets `\\Seen` on the unread of `recs` (a FETCH of a body without PEEK) and updates
    /// them; the ids whose flags changed.
    async fn mark_seen(
        &mut self,
        actor: &crate::identity::Actor,
        folder: crate::mailbox::Folder,
        recs: &mut [StoredMessage],
    ) -> Result<std::collections::HashSet<String>, Reply> {
        let mut seen_now = std::collections::HashSet::new();
        let unseen: Vec<String> = recs
            .iter()
            .filter(|r| r.is_unread())
            .map(|r| r.id.clone())
            .collect();
        if unseen.is_empty() {
            return Ok(seen_now);
        }
        let edit = crate::mailbox::SetEdit::Change(crate::mailbox::Delta {
            add: vec![crate::mailbox::flags::SEEN.to_string()],
            remove: vec![],
        });
        match self
            .ctx
            .mailbox
            .store_flags(actor, folder, &unseen, &edit, None)
            .await
        {
            Ok(o) => {
                if let Some(sel) = self.selected_mut() {
                    sel.own.extend(o.changed.iter().map(|r| r.modseq));
                }
                let mut changed: std::collections::HashMap<String, StoredMessage> =
                    o.changed.into_iter().map(|r| (r.id.clone(), r)).collect();
                for slot in recs.iter_mut() {
                    if let Some(r) = changed.remove(&slot.id) {
                        seen_now.insert(r.id.clone());
                        *slot = r;
                    }
                }
                Ok(seen_now)
            }
            // Only `mail:read`: the body is still served, unmarked, as EXAMINE would.
            Err(crate::mailbox::MailboxError::Denied(_)) => Ok(seen_now),
            Err(e) => Err(super::write::mailbox_error(e)),
        }
    }

    /// Writes a built batch; true when some part had a transfer encoding BINARY cannot undo.
    async fn write_batch(
        &mut self,
        agent: &str,
        built: tokio::task::JoinHandle<(Vec<Piece>, bool)>,
    ) -> Result<bool, Reply> {
        let Ok((pieces, cte)) = built.await else {
            return Err(Reply::no("Fetch failed").code(other_code("SERVERBUG")));
        };
        for p in pieces {
            match p {
                Piece::Bytes(b) => {
                    self.conn.send_owned(b);
                    if self.conn.maybe_flush().await.is_err() {
                        self.state = State::Logout;
                        return Err(Reply::none());
                    }
                }
                Piece::Stream { head, id, size } => {
                    self.conn.send_raw(&head);
                    let Ok((_, reader)) = self.ctx.mailbox.raw_reader_of(agent, &id) else {
                        // The literal's length is already promised: only goodbye is left.
                        self.bye(None, "Message vanished while being sent");
                        return Err(Reply::none());
                    };
                    if self.conn.stream_from(reader, size).await.is_err() {
                        self.state = State::Logout;
                        return Err(Reply::none());
                    }
                    self.conn.send_raw(b")\r\n");
                }
            }
        }
        if self.conn.maybe_flush().await.is_err() {
            self.state = State::Logout;
            return Err(Reply::none());
        }
        Ok(cte)
    }

    /// `VANISHED (EARLIER)` for UIDs of `set` expunged since `since` (UID FETCH VANISHED).
    async fn vanished_earlier(&mut self, set: &SequenceSet, since: u64) {
        let State::Selected(a, sel) = &self.state else {
            return;
        };
        let (agent, folder) = (a.agent.clone(), sel.folder);
        let replayed = super::selected::replay(
            self.ctx.mailbox.clone(),
            agent,
            folder,
            since,
            Some(set.clone()),
        )
        .await;
        let (Some((vanished, _)), State::Selected(_, sel)) = (replayed, &self.state) else {
            return;
        };
        let gone: Vec<u32> = vanished
            .into_iter()
            .filter(|u| sel.uids.binary_search(u).is_err())
            .collect();
        if let Some(set) = super::seqset::to_set(&gone) {
            self.data(Data::Vanished {
                earlier: true,
                known_uids: set,
            });
        }
    }
}
