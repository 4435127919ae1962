//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) with every key, ESEARCH return options
//! (RFC 4731: MIN, MAX, COUNT, ALL) and MODSEQ (RFC 7162).
//!
//! Flags, dates, sizes, addresses, subjects and UIDs are answered from the message
//! records; HEADER, BCC, BODY and TEXT read the stored message (all of it, in the
//! blocking pool, once per candidate), matching case-insensitively as substrings as the
//! RFC asks — not through the word index, whose prefix matching would miss `ello` in
//! `hello`.

use super::search_keys::{
    check_limits, depth_ok, light_filter, light_only, needs_raw, numbers_only, uses_modseq,
};
use super::seqset::contains as set_has;
use super::{other_code, Reply, Session, State};
use crate::imap::render::MessageView;
use crate::imap::search_text::{addr_text, Texts};
use crate::mailbox::StoredMessage;
use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::datetime::NaiveDate;
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::search::SearchKey;
use std::num::{NonZeroU32, NonZeroU64};

/// One candidate as a key sees it.
struct Candidate<'a> {
    rec: &'a StoredMessage,
    seq: u32,
    view: Option<&'a MessageView<'a>>,
    /// The subject and addresses, lower-cased (from the shared cache): `rec` may then be a
    /// light record, whose text fields are empty.
    texts: Option<&'a Texts>,
    /// The decoded body text and the whole message, lower-cased once per message however
    /// many BODY and TEXT keys ask.
    body_lower: std::cell::OnceCell<String>,
    all_lower: std::cell::OnceCell<String>,
}

impl Candidate<'_> {
    fn body_has(&self, needle: &str) -> bool {
        let Some(v) = self.view else { return false };
        let hay = self.body_lower.get_or_init(|| v.body_text().to_lowercase());
        hay.contains(&needle.to_lowercase())
    }

    fn text_has(&self, needle: &str) -> bool {
        let Some(v) = self.view else { return false };
        self.body_has(needle) || {
            let hay = self
                .all_lower
                .get_or_init(|| String::from_utf8_lossy(&v.section(None)).to_lowercase());
            hay.contains(&needle.to_lowercase())
        }
    }
}

struct Bounds {
    max_seq: u32,
    max_uid: u32,
    now_ms: i64,
}

fn midnight_ms(d: &NaiveDate) -> i64 {
    d.as_ref()
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

const DAY_MS: i64 = 86_400_000;

fn has_text(hay: &str, needle: &str) -> bool {
    needle.is_empty() || hay.to_lowercase().contains(&needle.to_lowercase())
}

/// [`has_text`] on a haystack already lower-cased.
fn has_lower(hay_lower: &str, needle: &str) -> bool {
    needle.is_empty() || hay_lower.contains(&needle.to_lowercase())
}

fn astr(s: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(s.as_ref()).into_owned()
}

/// [`eval`] for a key that [`numbers_only`] accepts.
fn eval_numbers(key: &SearchKey<'_>, seq: u32, uid: u32, b: &Bounds) -> bool {
    match key {
        SearchKey::All => true,
        SearchKey::SequenceSet(set) => set_has(set, seq, b.max_seq),
        SearchKey::Uid(set) => set_has(set, uid, b.max_uid),
        SearchKey::And(v) => v.as_ref().iter().all(|k| eval_numbers(k, seq, uid, b)),
        SearchKey::Not(k) => !eval_numbers(k, seq, uid, b),
        SearchKey::Or(x, y) => eval_numbers(x, seq, uid, b) || eval_numbers(y, seq, uid, b),
        _ => false,
    }
}

fn has_flag(rec: &StoredMessage, f: &str) -> bool {
    rec.flags.iter().any(|x| x.eq_ignore_ascii_case(f))
}

/// Midnight UTC (ms) of the day the message says it was sent, in the Date field's own zone
/// (RFC 9051: "disregarding time and timezone"). Without the message, the UTC day of the
/// record's date.
fn sent_day_ms(c: &Candidate<'_>) -> Option<i64> {
    match c.view.and_then(|v| v.sent_day()) {
        Some(day) => Some(day * 1000),
        None => c.rec.date.map(|s| (s * 1000).div_euclid(DAY_MS) * DAY_MS),
    }
}

fn eval(key: &SearchKey<'_>, c: &Candidate<'_>, b: &Bounds) -> bool {
    use crate::mailbox::flags::{ANSWERED, DELETED, DRAFT, FLAGGED, SEEN};
    let r = c.rec;
    let header = |name: &str, needle: &str| {
        c.view
            .is_some_and(|v| v.header_values(name).iter().any(|h| has_text(h, needle)))
    };
    match key {
        SearchKey::And(v) => v.as_ref().iter().all(|k| eval(k, c, b)),
        SearchKey::Not(k) => !eval(k, c, b),
        SearchKey::Or(x, y) => eval(x, c, b) || eval(y, c, b),
        SearchKey::All => true,
        SearchKey::SequenceSet(set) => set_has(set, c.seq, b.max_seq),
        SearchKey::Uid(set) => set_has(set, r.uid, b.max_uid),
        SearchKey::Answered => has_flag(r, ANSWERED),
        SearchKey::Unanswered => !has_flag(r, ANSWERED),
        SearchKey::Deleted => has_flag(r, DELETED),
        SearchKey::Undeleted => !has_flag(r, DELETED),
        SearchKey::Draft => has_flag(r, DRAFT),
        SearchKey::Undraft => !has_flag(r, DRAFT),
        SearchKey::Flagged => has_flag(r, FLAGGED),
        SearchKey::Unflagged => !has_flag(r, FLAGGED),
        SearchKey::Seen => has_flag(r, SEEN),
        SearchKey::Unseen => !has_flag(r, SEEN),
        // No message is ever \Recent here (RFC 9051 dropped it).
        SearchKey::Recent | SearchKey::New => false,
        SearchKey::Old => true,
        SearchKey::Keyword(k) => has_flag(r, k.as_ref()),
        SearchKey::Unkeyword(k) => !has_flag(r, k.as_ref()),
        SearchKey::Larger(n) => r.size > u64::from(*n),
        SearchKey::Smaller(n) => r.size < u64::from(*n),
        SearchKey::Before(d) => r.received_at_ms < midnight_ms(d),
        SearchKey::On(d) => {
            let m = midnight_ms(d);
            (m..m + DAY_MS).contains(&r.received_at_ms)
        }
        SearchKey::Since(d) => r.received_at_ms >= midnight_ms(d),
        SearchKey::SentBefore(d) => sent_day_ms(c).is_some_and(|s| s < midnight_ms(d)),
        SearchKey::SentOn(d) => sent_day_ms(c).is_some_and(|s| s == midnight_ms(d)),
        SearchKey::SentSince(d) => sent_day_ms(c).is_some_and(|s| s >= midnight_ms(d)),
        SearchKey::Older(secs) => r.received_at_ms <= b.now_ms - i64::from(secs.get()) * 1000,
        SearchKey::Younger(secs) => r.received_at_ms >= b.now_ms - i64::from(secs.get()) * 1000,
        SearchKey::From(s) => match c.texts {
            Some(t) => has_lower(&t.from, &astr(s)),
            None => has_text(&addr_text(r.from.as_slice()), &astr(s)),
        },
        SearchKey::To(s) => match c.texts {
            Some(t) => has_lower(&t.to, &astr(s)),
            None => has_text(&addr_text(&r.to), &astr(s)),
        },
        SearchKey::Cc(s) => match c.texts {
            Some(t) => has_lower(&t.cc, &astr(s)),
            None => has_text(&addr_text(&r.cc), &astr(s)),
        },
        SearchKey::Subject(s) => match c.texts {
            Some(t) => has_lower(&t.subject, &astr(s)),
            None => has_text(&r.subject, &astr(s)),
        },
        SearchKey::Bcc(s) => header("Bcc", &astr(s)),
        SearchKey::Header(name, value) => {
            let (name, value) = (astr(name), astr(value));
            match c.view {
                // RFC 9051: an empty value matches every message that has the field.
                Some(v) if value.is_empty() => !v.header_values(&name).is_empty(),
                _ => header(&name, &value),
            }
        }
        SearchKey::Body(s) => c.body_has(&astr(s)),
        SearchKey::Text(s) => c.text_has(&astr(s)),
        SearchKey::ModSequence { modseq, .. } => r.modseq >= *modseq,
    }
}

/// The matches among `chunk` (UIDs of the folder, ascending, within `uids`) of a `key` that
/// needs no message bytes and more than a light record: the light records (from the folder's
/// in-memory index), the light part of the key (`filter`), then the subjects and addresses
/// of those that pass from the shared cache, whole records read only for those not kept.
/// The same matches as evaluating whole records: the light fields are theirs, the texts
/// are their fields lower-cased, as [`has_text`] compares them.
#[allow(clippy::too_many_arguments)]
fn by_texts(
    mb: &crate::mailbox::MailboxService,
    cache: &crate::imap::search_text::SearchTexts,
    agent: &str,
    folder: crate::mailbox::Folder,
    chunk: &[u32],
    uids: &[u32],
    gone: &std::collections::BTreeSet<u32>,
    key: &SearchKey<'_>,
    filter: &[&SearchKey<'_>],
    b: &Bounds,
) -> Result<Vec<(u32, u32, u64)>, crate::mailbox::MailboxError> {
    let seq_of = |uid: u32| {
        uids.binary_search(&uid)
            .ok()
            .map(|i| u32::try_from(i + 1).unwrap_or(u32::MAX))
    };
    let pass: Vec<(u32, StoredMessage)> = mb
        .records_by_uid_light_where(agent, folder, chunk, |rec| {
            if gone.contains(&rec.uid) {
                return false;
            }
            let Some(seq) = seq_of(rec.uid) else {
                return false;
            };
            let c = Candidate {
                rec,
                seq,
                view: None,
                texts: None,
                body_lower: Default::default(),
                all_lower: Default::default(),
            };
            filter.iter().all(|k| eval(k, &c, b))
        })?
        .into_iter()
        .filter_map(|rec| seq_of(rec.uid).map(|seq| (seq, rec)))
        .collect();
    let mut texts = cache.get_many(pass.iter().map(|(_, r)| r.id.as_str()));
    let missing: Vec<u32> = pass
        .iter()
        .zip(&texts)
        .filter(|(_, t)| t.is_none())
        .map(|((_, r), _)| r.uid)
        .collect();
    if !missing.is_empty() {
        let whole = mb.records_by_uid(agent, folder, &missing)?;
        let made = cache.put_many(&whole);
        let by_uid: std::collections::HashMap<u32, _> =
            whole.iter().map(|r| r.uid).zip(made).collect();
        for ((_, rec), t) in pass.iter().zip(texts.iter_mut()) {
            if t.is_none() {
                *t = by_uid.get(&rec.uid).cloned();
            }
        }
    }
    let mut hits = Vec::new();
    for ((seq, rec), t) in pass.iter().zip(&texts) {
        // No whole record (expunged meanwhile): left out, as a whole-record read leaves it.
        let Some(t) = t else { continue };
        let c = Candidate {
            rec,
            seq: *seq,
            view: None,
            texts: Some(t),
            body_lower: Default::default(),
            all_lower: Default::default(),
        };
        if eval(key, &c, b) {
            hits.push((*seq, rec.uid, rec.modseq));
        }
    }
    Ok(hits)
}

/// Why a search in the blocking pool gave up.
enum SearchFail {
    Mailbox(crate::mailbox::MailboxError),
    Expired,
}
use SearchFail::Expired;

impl From<crate::mailbox::MailboxError> for SearchFail {
    fn from(e: crate::mailbox::MailboxError) -> Self {
        SearchFail::Mailbox(e)
    }
}

impl Session {
    pub(super) async fn search(
        &mut self,
        charset: Option<Charset<'static>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
        _unused: Option<()>,
    ) -> Reply {
        let ret = std::mem::take(&mut self.ext).search_return;
        if let Some(cs) = &charset {
            let name = match cs {
                Charset::Atom(a) => a.as_ref().to_string(),
                Charset::Quoted(q) => q.as_ref().to_string(),
            };
            if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
                return Reply::no("Only UTF-8 and US-ASCII are supported")
                    .code(Code::BadCharset { allowed: vec![] });
            }
        }
        let key = if criteria.as_ref().len() == 1 {
            criteria.into_inner().remove(0)
        } else {
            SearchKey::And(criteria)
        };
        if !depth_ok(&key, 0) {
            return Reply::bad("Search criteria nested too deeply");
        }
        let (max_keys, max_string) = (
            self.ctx.config.max_search_keys,
            self.ctx.config.max_search_string_bytes,
        );
        if let Err(why) = check_limits(&key, &mut 0, max_keys, max_string) {
            return Reply::no(why).code(other_code("LIMIT"));
        }
        let modseq_used = uses_modseq(&key);
        if modseq_used {
            self.enabled.condstore = true;
        }
        let State::Selected(a, sel) = &self.state else {
            return Reply::bad("Select a mailbox first");
        };
        let uids: Vec<u32> = sel.uids.clone();
        let gone = sel.gone.clone();
        let (agent, folder) = (a.agent.clone(), sel.folder);
        let mb = self.ctx.mailbox.clone();
        let cache = self.ctx.search_texts.clone();
        let raw = needs_raw(&key, 0);
        let light = light_only(&key, 0);
        // Searches that read bodies take turns: a few at once, whoever asks, so they cannot
        // fill the blocking pool that deliveries and commits need.
        let _permit = if raw {
            let wait = self.ctx.search_slots.clone().acquire_owned();
            match tokio::time::timeout(std::time::Duration::from_secs(30), wait).await {
                Ok(Ok(p)) => Some(p),
                _ => {
                    return Reply::no("The server is busy searching; try again")
                        .code(other_code("LIMIT"))
                }
            }
        } else {
            None
        };
        let deadline = std::time::Instant::now()
            + std::time::Duration::from_secs(self.ctx.config.search_budget_secs);
        let found = tokio::task::spawn_blocking(move || {
            let b = Bounds {
                max_seq: u32::try_from(uids.len()).unwrap_or(u32::MAX),
                max_uid: uids.last().copied().unwrap_or(0),
                now_ms: crate::util::now_millis(),
            };
            let mut hits: Vec<(u32, u32, u64)> = Vec::new();
            if numbers_only(&key, 0) {
                for (i, uid) in uids.iter().enumerate() {
                    let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    if !gone.contains(uid) && eval_numbers(&key, seq, *uid, &b) {
                        hits.push((seq, *uid, 0));
                    }
                }
                return Ok(hits);
            }
            let filter = light_filter(&key);
            // A chunk of records at a time: a search of a large mailbox never holds them all.
            for chunk in uids.chunks(super::write::CHUNK) {
                if !raw && !light {
                    // Subjects and addresses: light records, then the shared texts.
                    hits.extend(by_texts(
                        &mb, &cache, &agent, folder, chunk, &uids, &gone, &key, &filter, &b,
                    )?);
                    continue;
                }
                // Light records that pass the light part of the key (all of it for a light
                // key); whole ones, when needed, only of those.
                let passes = |rec: &StoredMessage| {
                    let Ok(i) = uids.binary_search(&rec.uid) else {
                        return false;
                    };
                    let c = Candidate {
                        rec,
                        seq: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        view: None,
                        texts: None,
                        body_lower: Default::default(),
                        all_lower: Default::default(),
                    };
                    if light {
                        eval(&key, &c, &b)
                    } else {
                        filter.iter().all(|k| eval(k, &c, &b))
                    }
                };
                let recs = if light {
                    mb.records_by_uid_light_where(&agent, folder, chunk, passes)?
                } else if filter.is_empty() {
                    mb.records_by_uid(&agent, folder, chunk)?
                } else {
                    let pass: Vec<u32> = mb
                        .records_by_uid_light_where(&agent, folder, chunk, passes)?
                        .iter()
                        .map(|rec| rec.uid)
                        .collect();
                    mb.records_by_uid(&agent, folder, &pass)?
                };
                for rec in &recs {
                    if gone.contains(&rec.uid) {
                        continue;
                    }
                    let Ok(i) = uids.binary_search(&rec.uid) else {
                        continue;
                    };
                    let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    let bytes = if raw {
                        mb.raw_of_record(&agent, rec).ok()
                    } else {
                        None
                    };
                    let view = bytes.as_deref().map(MessageView::parse);
                    if raw && std::time::Instant::now() > deadline {
                        return Err(Expired);
                    }
                    let c = Candidate {
                        rec,
                        seq,
                        view: view.as_ref(),
                        texts: None,
                        body_lower: Default::default(),
                        all_lower: Default::default(),
                    };
                    // A light key was evaluated whole by the walk that returned `recs`.
                    if light || eval(&key, &c, &b) {
                        hits.push((seq, rec.uid, rec.modseq));
                    }
                }
            }
            Ok::<_, SearchFail>(hits)
        })
        .await;
        let hits = match found {
            Ok(Ok(h)) => h,
            Ok(Err(SearchFail::Mailbox(e))) => return super::write::mailbox_error(e),
            Ok(Err(SearchFail::Expired)) => {
                return Reply::no("The search took too long; narrow it").code(other_code("LIMIT"))
            }
            Err(_) => return Reply::no("Search failed").code(other_code("SERVERBUG")),
        };
        let nums: Vec<u32> = hits.iter().map(|h| if uid { h.1 } else { h.0 }).collect();
        let top_modseq = hits.iter().map(|h| h.2).max();
        let esearch = ret.is_some() || self.enabled.rev2;
        if esearch {
            let opts = ret.unwrap_or_default();
            self.esearch(uid, &nums, &opts, top_modseq.filter(|_| modseq_used));
        } else {
            let list: Vec<NonZeroU32> = nums.iter().filter_map(|n| NonZeroU32::new(*n)).collect();
            let m = top_modseq.filter(|_| modseq_used).and_then(NonZeroU64::new);
            self.data(Data::Search(list, m));
        }
        Reply::ok("SEARCH completed")
    }

    /// `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set [MODSEQ m]` (RFC 4731), by hand:
    /// the codec has no ESEARCH response yet. Every value is a number or a number set.
    fn esearch(&mut self, uid: bool, nums: &[u32], opts: &[String], modseq: Option<u64>) {
        let all = opts.is_empty() || opts.iter().any(|o| o == "ALL");
        let mut line = String::from("* ESEARCH");
        if let Some(tag) = self.current_tag.as_ref() {
            line.push_str(&format!(" (TAG \"{tag}\")"));
        }
        if uid {
            line.push_str(" UID");
        }
        if !nums.is_empty() {
            if opts.iter().any(|o| o == "MIN") {
                line.push_str(&format!(" MIN {}", nums[0]));
            }
            if opts.iter().any(|o| o == "MAX") {
                line.push_str(&format!(" MAX {}", nums[nums.len() - 1]));
            }
        }
        if opts.iter().any(|o| o == "COUNT") {
            line.push_str(&format!(" COUNT {}", nums.len()));
        }
        if all && !nums.is_empty() {
            let mut sorted = nums.to_vec();
            sorted.sort_unstable();
            line.push_str(&format!(" ALL {}", super::seqset::compress(&sorted)));
        }
        if let Some(m) = modseq.filter(|_| !nums.is_empty()) {
            line.push_str(&format!(" MODSEQ {m}"));
        }
        line.push_str("\r\n");
        self.conn.send_raw(line.as_bytes());
    }
}
