//! Filtered, newest-first, cursor-paged reads of the log.
//!
//! An agent filter walks the per-agent index, so an agent's page costs its own entries, not
//! the whole log; time bounds stop the walk early because sequence order is time order.

use super::page::{self, Page};
use super::{AuditError, Entry, Outcome};
use crate::store::{keys, Store, Tree};
use std::ops::Bound;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub agent: Option<String>,
    /// Who acted: the actor's id (`ag_…`, a human's email, an admin token id, a peer IP) or
    /// `kind:id` (`human:alice@acme.com`), ASCII case-insensitive.
    pub actor: Option<String>,
    /// Exact action, or a prefix when it ends with `.` or `*` (`vault.*`).
    pub action: Option<String>,
    pub outcome: Option<Outcome>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl Filter {
    /// The agent an actor filter names (`agent:ag_…` or a bare `ag_…` id): every entry an
    /// agent made is in its per-agent index, so such a filter walks that, not the whole log.
    fn actor_agent(&self) -> Option<&str> {
        let a = self.actor.as_deref()?;
        let id = a.strip_prefix("agent:").unwrap_or(a);
        id.starts_with("ag_").then_some(id)
    }

    fn matches(&self, e: &Entry) -> bool {
        if let Some(a) = &self.actor {
            let id = a
                .split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(&e.actor.kind))
                .map_or(a.as_str(), |(_, id)| id);
            if !id.eq_ignore_ascii_case(&e.actor.id) {
                return false;
            }
        }
        if let Some(a) = &self.action {
            let ok = match a.strip_suffix('*') {
                Some(prefix) => e.action.starts_with(prefix),
                None if a.ends_with('.') => e.action.starts_with(a.as_str()),
                None => e.action == *a,
            };
            if !ok {
                return false;
            }
        }
        if self.outcome.is_some_and(|o| o != e.outcome) {
            return false;
        }
        if self.until.is_some_and(|u| e.ts > u) {
            return false;
        }
        true
    }
}

pub struct QueryPage {
    pub items: Vec<Entry>,
    pub next_cursor: Option<String>,
}

/// Largest number of entries one request may examine, so a filter that matches nothing
/// cannot make one request walk an unbounded log; the cursor lets the client continue.
const SCAN_BUDGET: usize = 10_000;

/// Pages (newest first) with, for agent queries, the sequence numbers of interest in each.
type PageWithSeqs = (Page, Option<Vec<u64>>);
type PageIter<'a> = Box<dyn Iterator<Item = Result<PageWithSeqs, AuditError>> + 'a>;

fn pages<'a>(store: &'a Store, agent: Option<&str>, before: u64) -> PageIter<'a> {
    match agent {
        Some(agent) => {
            let lo = keys::prefix(&[agent]);
            let hi = keys::with_u64(&[agent], before);
            Box::new(
                store
                    .range(
                        Tree::AuditByAgent,
                        Bound::Included(lo),
                        Bound::Excluded(hi),
                        true,
                    )
                    .filter_map(move |r| {
                        let step = || -> Result<Option<PageWithSeqs>, AuditError> {
                            let (k, v) = r?;
                            let first = keys::read_u64(&k).unwrap_or(0);
                            let seqs: Vec<u64> = crate::store::decode(&v)?;
                            Ok(page::load(store, &keys::u64_key(first))?.map(|p| (p, Some(seqs))))
                        };
                        step().transpose()
                    }),
            )
        }
        None => Box::new(
            store
                .range(
                    Tree::Audit,
                    Bound::Unbounded,
                    Bound::Excluded(keys::u64_key(before).to_vec()),
                    true,
                )
                .map(|r| {
                    let (_, v) = r?;
                    Ok((crate::store::decode::<Page>(&v)?, None))
                }),
        ),
    }
}

pub(super) fn run(
    store: &Store,
    filter: &Filter,
    limit: usize,
    cursor: Option<&str>,
) -> Result<QueryPage, AuditError> {
    let limit = limit.clamp(1, 1000);
    let before = match cursor {
        Some(c) => c.parse::<u64>().map_err(|_| AuditError::BadCursor)?,
        None => u64::MAX,
    };
    let mut items = Vec::new();
    let mut scanned = 0usize;
    let mut last_seen = None;
    // A cursor may point inside a page: the page holding it starts below it.
    let start = if before == u64::MAX {
        before
    } else {
        before.saturating_add(1)
    };
    let walk = filter.agent.as_deref().or_else(|| filter.actor_agent());
    for item in pages(store, walk, start) {
        let (page, seqs) = item?;
        for e in page.entries.into_iter().rev() {
            if e.seq >= before || seqs.as_ref().is_some_and(|s| !s.contains(&e.seq)) {
                continue;
            }
            scanned += 1;
            if scanned > SCAN_BUDGET {
                return Ok(QueryPage {
                    items,
                    next_cursor: last_seen.map(|s: u64| s.to_string()),
                });
            }
            last_seen = Some(e.seq);
            if filter.since.is_some_and(|s| e.ts < s) {
                return Ok(QueryPage {
                    items,
                    next_cursor: None,
                });
            }
            if filter.matches(&e) {
                items.push(e);
                if items.len() == limit {
                    let next = items.last().map(|e| e.seq.to_string());
                    return Ok(QueryPage {
                        items,
                        next_cursor: next,
                    });
                }
            }
        }
    }
    Ok(QueryPage {
        items,
        next_cursor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{ActorRef, Audit, NewEntry};
    use super::*;

    #[test]
    fn pages_filter_and_follow_cursors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let audit = Audit::open(store).unwrap();
        for i in 0..10 {
            let agent = if i % 2 == 0 { "ag_even" } else { "ag_odd" };
            audit
                .append(NewEntry {
                    actor: ActorRef::agent(agent),
                    chain: vec![],
                    action: if i < 5 {
                        "vault.get".into()
                    } else {
                        "mail.send".into()
                    },
                    target: "x".into(),
                    outcome: if i == 9 { Outcome::Denied } else { Outcome::Ok },
                    detail: serde_json::Value::Null,
                })
                .unwrap();
        }
        let f = Filter {
            agent: Some("ag_even".into()),
            ..Default::default()
        };
        let p = audit.query(&f, 2, None).unwrap();
        assert_eq!(
            p.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![9, 7]
        );
        let p2 = audit.query(&f, 10, p.next_cursor.as_deref()).unwrap();
        assert_eq!(
            p2.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![5, 3, 1]
        );
        assert!(p2.next_cursor.is_none());

        let f = Filter {
            actor: Some("AGENT:ag_odd".into()),
            ..Default::default()
        };
        let p = audit.query(&f, 10, None).unwrap();
        assert_eq!(
            p.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![10, 8, 6, 4, 2]
        );
        let f = Filter {
            actor: Some("ag_even".into()),
            outcome: Some(Outcome::Denied),
            ..Default::default()
        };
        assert!(audit.query(&f, 10, None).unwrap().items.is_empty());

        let f = Filter {
            action: Some("vault.*".into()),
            ..Default::default()
        };
        assert_eq!(audit.query(&f, 100, None).unwrap().items.len(), 5);
        let f = Filter {
            outcome: Some(Outcome::Denied),
            ..Default::default()
        };
        assert_eq!(audit.query(&f, 100, None).unwrap().items[0].seq, 10);
        assert!(audit.query(&Filter::default(), 5, Some("zz")).is_err());
    }
}
