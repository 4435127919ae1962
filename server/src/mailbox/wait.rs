//! `wait`: long-poll for the next matching message (how an agent waits for a verification
//! email).
//!
//! Each agent with a waiter has a broadcast channel; `deliver` sends on it after the message
//! is durable, so a woken waiter can always read what it was told about. A waiter subscribes
//! *before* it looks in the store, so nothing delivered between the look and the sleep is
//! missed; if its channel overflows it looks in the store again rather than trusting it.

use super::StoredMessage;
use super::{index, parse_since, Folder, MailboxError, MailboxService, Message, SenderFilter};
use crate::audit::Outcome;
use crate::identity::{Actor, Scope};
use crate::store::Tree;
use serde::Deserialize;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
pub const MAX_TIMEOUT_SECS: u64 = 300;
/// Deliveries a slow waiter may fall behind by before it rescans the store.
const CHANNEL_DEPTH: usize = 64;
/// Timeline entries one store look may examine.
const SCAN_LIMIT: usize = 1000;

/// `GET /v1/messages/wait` parameters (also the MCP tool's arguments).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// The sender's address (`user@example.com`, exact) or domain (`@example.com` exactly,
    /// `example.com` also its subdomains); case-insensitive, never the display name.
    pub from: Option<String>,
    /// true: only mail whose sender is proven (`auth.sender_authenticated`), which is what
    /// a verification code should be taken from.
    pub authenticated: Option<bool>,
    /// Case-insensitive substring of the subject.
    pub subject: Option<String>,
    /// RFC 3339 or unix seconds: also accept messages already received since then.
    pub since: Option<String>,
    /// Seconds, at most 300; default 30.
    pub timeout: Option<u64>,
    /// true: only mail from a first contact; false: only from known correspondents.
    #[serde(default)]
    pub first_contact: Option<bool>,
    /// true: only mail whose proven sender is allowlisted.
    #[serde(default)]
    pub allowlisted: Option<bool>,
}

#[derive(Default)]
pub(super) struct Waiters {
    /// A std mutex: held for a map lookup, never across an await.
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<StoredMessage>>>>,
    closed: CancellationToken,
    /// Concurrent waits one agent may hold (`api.max_waits_per_agent`; 0 = unlimited). Each
    /// wait holds a connection and a task for up to five minutes, so one key could
    /// otherwise pin thousands of them.
    max_per_agent: AtomicUsize,
    /// Woken when signals from other nodes may have been lost: waiters look in the store.
    rescan: tokio::sync::Notify,
}

/// A subscription that removes its agent's channel when the last waiter leaves.
struct Subscription<'a> {
    rx: Option<broadcast::Receiver<Arc<StoredMessage>>>,
    agent: String,
    waiters: &'a Waiters,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut map = self
            .waiters
            .channels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.agent)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            map.remove(&self.agent);
        }
    }
}

impl Waiters {
    /// A new waiter for `agent`, or `TooManyWaits` when it already holds its share.
    fn subscribe(&self, agent: &str) -> Result<Subscription<'_>, MailboxError> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let max = self.max_per_agent.load(Ordering::Relaxed);
        if max > 0 && map.get(agent).is_some_and(|tx| tx.receiver_count() >= max) {
            return Err(MailboxError::TooManyWaits(max));
        }
        let tx = map
            .entry(agent.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_DEPTH).0);
        Ok(Subscription {
            rx: Some(tx.subscribe()),
            agent: agent.to_string(),
            waiters: self,
        })
    }

    pub(super) fn set_max_per_agent(&self, max: usize) {
        self.max_per_agent.store(max, Ordering::Relaxed);
    }

    pub(super) fn notify(&self, rec: &StoredMessage) {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&rec.agent_id) {
            // No receiver left is not an error: the last waiter just timed out.
            let _ = tx.send(Arc::new(rec.clone()));
        }
    }

    /// Whether `agent` has a waiter now.
    pub(super) fn has(&self, agent: &str) -> bool {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.get(agent).is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Every waiter looks in the store again (`nodes`).
    pub(super) fn rescan_all(&self) {
        self.rescan.notify_waiters();
    }

    pub(super) fn close(&self) {
        self.closed.cancel();
    }

    #[cfg(test)]
    fn channels(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

struct Filter {
    from: Option<SenderFilter>,
    authenticated: Option<bool>,
    subject: Option<String>,
    first_contact: Option<bool>,
    allowlisted: Option<bool>,
}

impl Filter {
    fn matches(&self, m: &StoredMessage) -> bool {
        m.folder != Folder::Trash
            && self.from.as_ref().is_none_or(|f| f.matches(m))
            && self
                .authenticated
                .is_none_or(|a| m.sender_authenticated() == a)
            && self
                .subject
                .as_deref()
                .is_none_or(|s| m.subject.to_lowercase().contains(s))
            && self.first_contact.is_none_or(|f| m.is_first_contact() == f)
            && self.allowlisted.is_none_or(|a| m.is_allowlisted() == a)
    }
}

impl MailboxService {
    /// `mail:read`. The first message that matches and arrives after the call (or was
    /// received since `since`), or None when `timeout` passes first.
    pub async fn wait(
        &self,
        actor: &Actor,
        q: &WaitQuery,
    ) -> Result<Option<Message>, MailboxError> {
        self.wait_rechecked(actor, q, || Ok(actor.clone())).await
    }

    /// [`wait`](Self::wait) for front-ends that can authenticate their caller again.
    ///
    /// A wait lasts up to five minutes, far longer than a revocation takes to apply, and
    /// "revoked means refused on the next request" must also hold for a request already in
    /// flight. So when the wait ends (a match or the timeout), `recheck` authenticates the
    /// caller as it is *now* (key, agent, ancestors, scopes); a revoked caller gets that
    /// error, one that lost `mail:read` is denied, and neither is handed the message.
    pub async fn wait_rechecked(
        &self,
        actor: &Actor,
        q: &WaitQuery,
        recheck: impl FnOnce() -> Result<Actor, crate::identity::IdentityError>,
    ) -> Result<Option<Message>, MailboxError> {
        let agent = actor.require(&self.audit, Scope::MailRead, "mail.wait", "")?;
        let timeout = q.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if timeout > MAX_TIMEOUT_SECS {
            return Err(MailboxError::Invalid(format!(
                "timeout is at most {MAX_TIMEOUT_SECS} seconds"
            )));
        }
        let since = parse_since(q.since.as_deref())?;
        let lower = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase)
        };
        let filter = Filter {
            from: SenderFilter::parse(q.from.as_deref())?,
            authenticated: q.authenticated,
            subject: lower(&q.subject),
            first_contact: q.first_contact,
            allowlisted: q.allowlisted,
        };
        let started = std::time::Instant::now();
        let found = self
            .wait_for(agent, &filter, since, Duration::from_secs(timeout))
            .await?;
        let now = recheck().map_err(MailboxError::Identity)?;
        if now.require(&self.audit, Scope::MailRead, "mail.wait", "")? != agent {
            // A key belongs to one agent for life; anything else is a caller's bug.
            return Err(crate::identity::Denied::Other(
                "the caller changed during the wait".into(),
            )
            .into());
        }
        let actor = &now;
        let message = match found {
            // Read it back: a woken waiter returns the message as it is now.
            Some(id) => match self.message(agent, &id).await {
                Ok(m) => Some(m),
                Err(MailboxError::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        actor.audit(
            &self.audit,
            "mail.wait",
            message.as_ref().map_or("", |m| m.meta.id.as_str()),
            Outcome::Ok,
            serde_json::json!({
                "matched": message.is_some(),
                "waited_ms": started.elapsed().as_millis() as u64,
            }),
        )?;
        Ok(message)
    }

    async fn wait_for(
        &self,
        agent: &str,
        filter: &Filter,
        since: Option<i64>,
        timeout: Duration,
    ) -> Result<Option<String>, MailboxError> {
        let mut sub = self.waiters.subscribe(agent)?;
        let threshold = since.unwrap_or_else(crate::util::now_millis);
        if let Some(id) = self.first_since(agent, threshold, filter)? {
            return Ok(Some(id));
        }
        let Some(rx) = sub.rx.as_mut() else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                _ = self.waiters.closed.cancelled() => return Ok(None),
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                _ = self.waiters.rescan.notified() => {
                    if let Some(id) = self.first_since(agent, threshold, filter)? {
                        return Ok(Some(id));
                    }
                }
                r = rx.recv() => match r {
                    Ok(m) if filter.matches(&m) => return Ok(Some(m.id.clone())),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(id) = self.first_since(agent, threshold, filter)? {
                            return Ok(Some(id));
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(None),
                },
            }
        }
    }

    /// The oldest matching message received at or after `threshold`, looking at no more than
    /// [`SCAN_LIMIT`] entries.
    fn first_since(
        &self,
        agent: &str,
        threshold: i64,
        filter: &Filter,
    ) -> Result<Option<String>, MailboxError> {
        let base = index::timeline_base(agent, None);
        let lo = Bound::Included(index::timeline_from(&base, threshold));
        let hi = Bound::Excluded(index::timeline_end(&base));
        for r in self
            .store
            .range(Tree::MailTimeline, lo, hi, false)
            .take(SCAN_LIMIT)
        {
            let (key, _) = r?;
            let Some((_, id)) = index::parse_timed(&base, &key) else {
                continue;
            };
            let rec = self
                .store
                .get_record::<StoredMessage>(Tree::Messages, id.as_bytes())?;
            if rec.is_some_and(|m| m.agent_id == agent && filter.matches(&m)) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::time::Instant;

    fn wq(from: Option<&str>, subject: Option<&str>, timeout: u64) -> WaitQuery {
        WaitQuery {
            from: from.map(str::to_string),
            subject: subject.map(str::to_string),
            since: None,
            authenticated: None,
            timeout: Some(timeout),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn returns_as_soon_as_a_match_arrives() {
        let (_d, mb) = service(0);
        let mb = Arc::new(mb);
        let bg = mb.clone();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bg.deliver("ag_a", Folder::Inbox, simple("noise", "other"), meta(now()))
                .await
                .unwrap();
            bg.deliver(
                "ag_b",
                Folder::Inbox,
                simple("shop", "Your CODE"),
                meta(now()),
            )
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            bg.deliver(
                "ag_a",
                Folder::Inbox,
                simple("shop", "Your CODE is 1"),
                meta(now()),
            )
            .await
            .unwrap()
        });
        let t = Instant::now();
        let got = mb
            .wait(
                &reader("ag_a"),
                &wq(Some("SHOP@b.test"), Some("your code"), 20),
            )
            .await
            .unwrap()
            .expect("a message");
        let sent = sender.await.unwrap();
        assert_eq!(got.meta.id, sent.id);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(
            mb.waiters.channels(),
            0,
            "the channel is dropped with its last waiter"
        );
    }

    #[tokio::test]
    async fn times_out_with_none_and_honours_since() {
        let (_d, mb) = service(0);
        let old = deliver(&mb, "ag_a", Folder::Inbox, &simple("x", "earlier")).await;
        let t = Instant::now();
        let none = mb.wait(&reader("ag_a"), &wq(None, None, 1)).await.unwrap();
        assert!(none.is_none());
        assert!(t.elapsed() >= Duration::from_millis(900));
        let q = WaitQuery {
            since: Some((old.received_at_ms / 1000).to_string()),
            ..wq(None, Some("earlier"), 5)
        };
        let got = mb.wait(&reader("ag_a"), &q).await.unwrap().unwrap();
        assert_eq!(got.meta.id, old.id);
        assert!(matches!(
            mb.wait(&reader("ag_a"), &wq(None, None, 301)).await,
            Err(MailboxError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn shutdown_releases_waiters() {
        let (_d, mb) = service(0);
        let mb = Arc::new(mb);
        let bg = mb.clone();
        let w = tokio::spawn(async move { bg.wait(&reader("ag_a"), &wq(None, None, 60)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        mb.shutdown();
        let r = tokio::time::timeout(Duration::from_secs(2), w).await;
        assert!(r.unwrap().unwrap().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_caller_revoked_or_narrowed_during_the_wait_gets_no_message() {
        use crate::identity::{AuthFailure, IdentityError};
        let (_d, mb) = service(0);
        let since = WaitQuery {
            since: Some("1000".into()),
            ..wq(None, Some("code"), 5)
        };
        deliver(&mb, "ag_a", Folder::Inbox, &simple("shop", "code")).await;
        let me = reader("ag_a");
        let revoked = mb
            .wait_rechecked(&me, &since, || {
                Err(IdentityError::Unauthorized(AuthFailure::KeyRevoked))
            })
            .await;
        assert!(
            matches!(
                revoked,
                Err(MailboxError::Identity(IdentityError::Unauthorized(
                    AuthFailure::KeyRevoked
                )))
            ),
            "{revoked:?}"
        );
        let narrowed = mb
            .wait_rechecked(&me, &since, || Ok(agent("ag_a", &[Scope::MailSend])))
            .await;
        assert!(
            matches!(narrowed, Err(MailboxError::Denied(_))),
            "{narrowed:?}"
        );
        let still = mb
            .wait_rechecked(&me, &since, || Ok(reader("ag_a")))
            .await
            .unwrap();
        assert_eq!(still.unwrap().meta.subject, "code");
    }

    fn now() -> i64 {
        crate::util::now_millis()
    }
}
