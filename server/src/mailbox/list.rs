//! Listing: newest first, filtered, paged by cursor.
//!
//! A page is a reverse range walk over an arrival-ordered index (MailTimeline for all mail
//! but Trash, FolderTimeline for one folder) starting just before the cursor, so its cost is
//! the page size plus the entries filters skip — never the mailbox size. Skipping is bounded
//! too: after [`SCAN_BUDGET`] entries a page returns what it found with a cursor where it
//! stopped, so a rare filter costs several short requests instead of one long one.
//!
//! With `q`, the candidates come from the full-text index instead (`search`): only
//! messages holding every word, newest first, so a page is always complete (no budget),
//! and the other filters apply to those candidates. Cursors have one shape for both.

use super::search::{tokens, Window};
use super::summary::Summary;
use super::{
    index, parse_since, Folder, MailboxError, MailboxService, SenderFilter, StoredMessage,
};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::Tree;
use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// Index entries one request may examine.
pub const SCAN_BUDGET: usize = 2000;
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// `GET /v1/messages` parameters (also the MCP tool's arguments).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One folder; absent means every folder except Trash.
    pub folder: Option<String>,
    pub unread: Option<bool>,
    /// The sender's address (`user@example.com`, exact) or domain (`@example.com` exactly,
    /// `example.com` also its subdomains); case-insensitive, never the display name.
    pub from: Option<String>,
    /// true: only mail whose sender is proven (`auth.sender_authenticated`); false: only
    /// mail whose sender is not.
    pub authenticated: Option<bool>,
    /// RFC 3339 or unix seconds: received at or after.
    pub since: Option<String>,
    /// Words that must all occur (each as the start of a word) in the subject, the
    /// From/To/Cc names and addresses, or the body; case and accents are ignored.
    pub q: Option<String>,
    pub label: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// true: only mail from a sender this agent had never exchanged mail with (as it
    /// arrived); false: only mail from known correspondents.
    #[serde(default)]
    pub first_contact: Option<bool>,
    /// true: only mail whose proven sender is on the agent's or the org's allow list.
    #[serde(default)]
    pub allowlisted: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub items: Vec<StoredMessage>,
    pub next_cursor: Option<String>,
    /// Index entries examined (the page's cost; for tests and metrics).
    pub scanned: usize,
}

/// `{items, next_cursor}` with list items (no bodies), borrowing the page: REST serialises
/// it straight to the response body.
#[derive(Serialize)]
pub struct PageView<'a> {
    items: Vec<Summary<'a>>,
    next_cursor: Option<&'a str>,
}

impl ListPage {
    pub fn view(&self) -> PageView<'_> {
        PageView {
            items: self.items.iter().map(StoredMessage::summary).collect(),
            next_cursor: self.next_cursor.as_deref(),
        }
    }

    /// The same as a JSON value: the MCP answer.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.view()).unwrap_or(serde_json::Value::Null)
    }
}

/// The filters, validated and lower-cased once.
struct Filter {
    folder: Option<Folder>,
    unread: Option<bool>,
    from: Option<SenderFilter>,
    authenticated: Option<bool>,
    label: Option<String>,
    first_contact: Option<bool>,
    allowlisted: Option<bool>,
}

impl Filter {
    fn matches(&self, m: &StoredMessage) -> bool {
        let in_folder = match self.folder {
            Some(f) => m.folder == f,
            None => m.folder != Folder::Trash,
        };
        in_folder
            && self.unread.is_none_or(|u| m.is_unread() == u)
            && self.from.as_ref().is_none_or(|f| f.matches(m))
            && self
                .authenticated
                .is_none_or(|a| m.sender_authenticated() == a)
            && self
                .label
                .as_deref()
                .is_none_or(|l| m.labels.iter().any(|x| x.eq_ignore_ascii_case(l)))
            && self.first_contact.is_none_or(|f| m.is_first_contact() == f)
            && self.allowlisted.is_none_or(|a| m.is_allowlisted() == a)
    }
}

/// Cursors name an index position: (received ms, message id).
pub(super) fn encode_cursor(ms: i64, id: &str) -> String {
    BASE64URL_NOPAD.encode(format!("{ms}:{id}").as_bytes())
}

pub(super) fn decode_cursor(c: &str) -> Result<(i64, String), MailboxError> {
    let bad = || MailboxError::BadRequest("invalid cursor".into());
    let bytes = BASE64URL_NOPAD
        .decode(c.trim().as_bytes())
        .map_err(|_| bad())?;
    let s = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ms, id) = s.split_once(':').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    if !index::valid_message_id(id) {
        return Err(bad());
    }
    Ok((ms, id.to_string()))
}

impl MailboxService {
    /// `mail:read`. A page of the agent's messages, newest first.
    pub fn list(&self, actor: &Actor, q: &ListQuery) -> Result<ListPage, MailboxError> {
        let target = q.folder.as_deref().unwrap_or("");
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.list", target)?;
        let page = self.list_for(agent, q)?;
        actor.audit(
            &self.audit,
            "mail.list",
            target,
            Outcome::Ok,
            serde_json::json!({"count": page.items.len()}),
        )?;
        Ok(page)
    }

    /// The listing itself, for an already authorised agent.
    pub fn list_for(&self, agent: &str, q: &ListQuery) -> Result<ListPage, MailboxError> {
        let filter = Filter {
            folder: q
                .folder
                .as_deref()
                .map(|f| self.resolve_folder(agent, f))
                .transpose()?,
            unread: q.unread,
            from: SenderFilter::parse(q.from.as_deref())?,
            authenticated: q.authenticated,
            first_contact: q.first_contact,
            allowlisted: q.allowlisted,
            label: q.label.as_deref().map(str::trim).map(str::to_string),
        };
        let since = parse_since(q.since.as_deref())?;
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let words = tokens::query_terms(q.q.as_deref().unwrap_or(""));
        if words.len() > tokens::MAX_QUERY_TERMS {
            return Err(MailboxError::Invalid(format!(
                "q may hold at most {} words",
                tokens::MAX_QUERY_TERMS
            )));
        }
        if !words.is_empty() {
            let window = Window {
                folder: filter.folder,
                since_ms: since,
                cursor: cursor.as_ref(),
                limit,
            };
            return self.search_page(agent, &words, &|m| filter.matches(m), &window);
        }

        let base = index::timeline_base(agent, filter.folder);
        let tree = match filter.folder {
            Some(_) => Tree::FolderTimeline,
            None => Tree::MailTimeline,
        };
        let lo = Bound::Included(index::timeline_from(&base, since.unwrap_or(0)));
        let hi = match &cursor {
            Some((ms, id)) => Bound::Excluded(index::timeline_at(&base, *ms, id)),
            None => Bound::Excluded(index::timeline_end(&base)),
        };

        let mut items: Vec<StoredMessage> = Vec::new();
        let mut scanned = 0;
        let mut next_cursor = None;
        for r in self.store.range(tree, lo, hi, true) {
            let (key, _) = r?;
            scanned += 1;
            let Some((ms, id)) = index::parse_timed(&base, &key) else {
                continue;
            };
            let rec = self
                .store
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?
                .filter(|m| m.agent_id == agent && filter.matches(m));
            if let Some(rec) = rec {
                if items.len() == limit {
                    // One more exists: resume after the last item returned.
                    next_cursor = items.last().map(|m| encode_cursor(m.received_at_ms, &m.id));
                    break;
                }
                items.push(rec);
            }
            if scanned >= SCAN_BUDGET.max(limit + 1) {
                next_cursor = Some(encode_cursor(ms, &id));
                break;
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
    use super::super::testutil::*;
    use super::super::DeliveryMeta;
    use super::*;
    use crate::identity::Scope;

    fn q() -> ListQuery {
        ListQuery::default()
    }

    #[tokio::test]
    async fn pages_newest_first_at_page_cost() {
        let (_d, mb) = service(0);
        let mut ids = Vec::new();
        for i in 0..250 {
            ids.push(
                deliver(&mb, "ag_a", Folder::Inbox, &simple("x", &format!("m{i}")))
                    .await
                    .id,
            );
        }
        deliver(&mb, "ag_b", Folder::Inbox, &simple("x", "not mine")).await;
        ids.reverse();
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = mb
                .list_for(
                    "ag_a",
                    &ListQuery {
                        limit: Some(20),
                        cursor: cursor.clone(),
                        ..q()
                    },
                )
                .unwrap();
            assert!(page.scanned <= 21, "a page cost {} entries", page.scanned);
            seen.extend(page.items.iter().map(|m| m.id.clone()));
            pages += 1;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 13);
        assert_eq!(seen, ids);
        // The same walk inside one folder.
        let page = mb
            .list_for(
                "ag_a",
                &ListQuery {
                    folder: Some("inbox".into()),
                    limit: Some(5),
                    ..q()
                },
            )
            .unwrap();
        assert_eq!(page.items.len(), 5);
        assert_eq!(page.items[0].id, ids[0]);
        assert!(page.scanned <= 6);
    }

    #[tokio::test]
    async fn same_millisecond_mail_pages_in_arrival_order_and_deleted_mail_leaves() {
        let (_d, mb) = service(0);
        let at = tick();
        let mut ids = Vec::new();
        for i in 0..60 {
            let raw = simple("x", &format!("same ms {i}"));
            ids.push(
                mb.deliver("ag_a", Folder::Inbox, raw, meta(at))
                    .await
                    .unwrap()
                    .id,
            );
        }
        // Ids sort in creation order, so records delivered together sit together in the
        // Messages tree and a tie on the received time breaks by arrival.
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        let gone = ids.remove(25);
        mb.delete(&reader("ag_a"), &gone).await.unwrap();
        ids.reverse();
        let (mut seen, mut cursor) = (Vec::new(), None);
        loop {
            let query = ListQuery {
                limit: Some(7),
                cursor: cursor.take(),
                ..q()
            };
            let page = mb.list_for("ag_a", &query).unwrap();
            assert!(page.items.len() <= 7 && page.scanned <= 8);
            seen.extend(page.items.into_iter().map(|m| m.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        assert!(!seen.contains(&gone));
        // The JSON page REST sends is the MCP one, item for item.
        let page = mb
            .list_for(
                "ag_a",
                &ListQuery {
                    limit: Some(3),
                    ..q()
                },
            )
            .unwrap();
        let rest = serde_json::to_value(page.view()).unwrap();
        assert_eq!(rest, page.to_json());
        assert_eq!(rest["items"][0]["id"], ids[0].as_str());
        assert_eq!(rest["items"][0], page.items[0].summary_json());
        assert!(rest["next_cursor"].is_string());
    }

    #[tokio::test]
    async fn filters_select_and_trash_is_hidden_by_default() {
        let (_d, mb) = service(0);
        let a = deliver(&mb, "ag_a", Folder::Inbox, &simple("alice", "Your code")).await;
        let b = deliver(&mb, "ag_a", Folder::Junk, &simple("bob", "Offer")).await;
        let t = deliver(&mb, "ag_a", Folder::Trash, &simple("carol", "old")).await;
        let ids = |p: ListPage| p.items.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            ids(mb.list_for("ag_a", &q()).unwrap()),
            vec![b.id.clone(), a.id.clone()]
        );
        let trash = ListQuery {
            folder: Some("Trash".into()),
            ..q()
        };
        assert_eq!(
            ids(mb.list_for("ag_a", &trash).unwrap()),
            vec![t.id.clone()]
        );
        let from = ListQuery {
            from: Some("ALICE@B.test".into()),
            ..q()
        };
        assert_eq!(ids(mb.list_for("ag_a", &from).unwrap()), vec![a.id.clone()]);
        let text = ListQuery {
            q: Some("offer".into()),
            ..q()
        };
        assert_eq!(ids(mb.list_for("ag_a", &text).unwrap()), vec![b.id.clone()]);
        let since = ListQuery {
            since: Some(((b.received_at_ms / 1000) + 1).to_string()),
            ..q()
        };
        assert!(mb.list_for("ag_a", &since).unwrap().items.is_empty());
        let unread = ListQuery {
            unread: Some(false),
            ..q()
        };
        assert!(mb.list_for("ag_a", &unread).unwrap().items.is_empty());
        let label = ListQuery {
            label: Some("none".into()),
            ..q()
        };
        assert!(mb.list_for("ag_a", &label).unwrap().items.is_empty());
        assert!(matches!(
            mb.list_for(
                "ag_a",
                &ListQuery {
                    folder: Some("Spam".into()),
                    ..q()
                }
            ),
            Err(MailboxError::UnknownFolder(_))
        ));
        assert!(matches!(
            mb.list_for(
                "ag_a",
                &ListQuery {
                    cursor: Some("!!".into()),
                    ..q()
                }
            ),
            Err(MailboxError::BadRequest(_))
        ));
        let forged = BASE64URL_NOPAD.encode(b"5:ag_\0x");
        assert!(mb
            .list_for(
                "ag_a",
                &ListQuery {
                    cursor: Some(forged),
                    ..q()
                }
            )
            .is_err());
    }

    #[tokio::test]
    async fn from_matches_the_address_never_the_display_name() {
        let (_d, mb) = service(0);
        let raw = |from: &str| format!("From: {from}\r\nSubject: code\r\n\r\n1\r\n");
        let spoof = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            raw("\"bank.test\" <bank.test@attacker.test>").as_bytes(),
        )
        .await;
        let real = deliver(
            &mb,
            "ag_a",
            Folder::Inbox,
            raw("Bank <alerts@mail.bank.test>").as_bytes(),
        )
        .await;
        let ids = |from: &str| {
            let q = ListQuery {
                from: Some(from.into()),
                ..q()
            };
            let page = mb.list_for("ag_a", &q).unwrap();
            page.items.into_iter().map(|m| m.id).collect::<Vec<_>>()
        };
        assert_eq!(ids("bank.test"), vec![real.id.clone()]);
        assert_eq!(ids(" Bank.Test "), vec![real.id.clone()]);
        assert!(ids("@bank.test").is_empty(), "@domain is that domain only");
        assert_eq!(ids("@mail.bank.test"), vec![real.id.clone()]);
        assert_eq!(ids("ALERTS@mail.bank.test"), vec![real.id.clone()]);
        assert!(ids("alerts@bank.test").is_empty());
        assert!(ids("ank.test").is_empty(), "not a substring match");
        assert_eq!(ids("attacker.test"), vec![spoof.id.clone()]);
        assert_eq!(ids("bank.test@attacker.test"), vec![spoof.id.clone()]);
        for bad in [
            "Bank",
            "\"bank.test\"",
            "a@b@c.test",
            "<a@b.test>",
            "a@",
            "bank .test",
        ] {
            let q = ListQuery {
                from: Some(bad.into()),
                ..q()
            };
            assert!(
                matches!(mb.list_for("ag_a", &q), Err(MailboxError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn authenticated_selects_mail_whose_from_domain_passed_dmarc() {
        let (_d, mb) = service(0);
        let put = |from: &'static str, auth: Option<serde_json::Value>| {
            let mb = &mb;
            async move {
                let raw = format!("From: {from}\r\nSubject: code\r\n\r\n1\r\n");
                let meta = DeliveryMeta {
                    auth,
                    ..meta(tick())
                };
                mb.deliver("ag_a", Folder::Inbox, raw.into_bytes(), meta)
                    .await
                    .unwrap()
            }
        };
        let verdict = |result: &str, domain: &str| {
            Some(serde_json::json!({"dmarc": {"result": result, "from_domain": domain}}))
        };
        let aligned = put("Bank <a@bank.test>", verdict("pass", "bank.test")).await;
        // DMARC passed, but for another domain than the From this record shows.
        let other = put("Bank <a@bank.test>", verdict("pass", "attacker.test")).await;
        let failed = put("Bank <a@bank.test>", verdict("fail", "bank.test")).await;
        let legacy = put(
            "Bank <a@bank.test>",
            Some(serde_json::json!({"dmarc": "pass"})),
        )
        .await;
        let none = put("Bank <a@bank.test>", None).await;
        let local = put(
            "Ops <ops@agents.test>",
            Some(serde_json::json!({"internal": true, "sender": "OPS@agents.test"})),
        )
        .await;
        let forged_local = put(
            "Bank <a@bank.test>",
            Some(serde_json::json!({"internal": true, "sender": "ops@agents.test"})),
        )
        .await;
        let list = |authenticated| {
            let q = ListQuery {
                authenticated: Some(authenticated),
                ..q()
            };
            let page = mb.list_for("ag_a", &q).unwrap();
            page.items.into_iter().map(|m| m.id).collect::<Vec<_>>()
        };
        assert_eq!(list(true), vec![local.id.clone(), aligned.id.clone()]);
        assert_eq!(
            list(false),
            vec![forged_local.id, none.id, legacy.id, failed.id, other.id]
        );
        let page = mb.list_for("ag_a", &q()).unwrap();
        let item = page.items.iter().find(|m| m.id == aligned.id).unwrap();
        let v = item.summary_json();
        assert_eq!(v["auth"]["sender_authenticated"], true);
        assert_eq!(v["auth"]["from_domain"], "bank.test");
        let full = mb.message("ag_a", &aligned.id).await.unwrap().to_json();
        assert_eq!(full["auth"]["sender_authenticated"], true);
        assert_eq!(full["auth"]["dmarc"]["result"], "pass");
    }

    #[tokio::test]
    async fn a_rare_match_is_found_across_budgeted_pages() {
        let (_d, mb) = service(0);
        let needle = deliver(&mb, "ag_a", Folder::Inbox, &simple("rare", "needle")).await;
        for i in 0..(SCAN_BUDGET + 10) {
            // Index entries only: the budget counts entries, whatever they hold.
            let k = index::timeline("ag_a", needle.received_at_ms + 1 + i as i64, "msg_zz");
            mb.store.put(Tree::MailTimeline, &k, &[]).unwrap();
        }
        let query = ListQuery {
            from: Some("rare@b.test".into()),
            ..q()
        };
        let first = mb.list_for("ag_a", &query).unwrap();
        assert!(first.items.is_empty());
        assert_eq!(first.scanned, SCAN_BUDGET);
        let second = mb
            .list_for(
                "ag_a",
                &ListQuery {
                    cursor: first.next_cursor,
                    ..query
                },
            )
            .unwrap();
        assert_eq!(second.items[0].id, needle.id);
        assert_eq!(second.next_cursor, None);
    }

    #[tokio::test]
    async fn listing_needs_mail_read() {
        let (_d, mb) = service(0);
        let no = agent("ag_a", &[Scope::MailSend]);
        assert!(matches!(mb.list(&no, &q()), Err(MailboxError::Denied(_))));
        assert!(mb.list(&reader("ag_a"), &q()).unwrap().items.is_empty());
    }
}
