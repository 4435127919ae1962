//! Connection reuse: a session whose transaction ended cleanly waits here, briefly, for the
//! next message to the same address, instead of QUIT and a fresh connect, greeting, EHLO
//! and STARTTLS for every message. postfix does the same (`smtp_connection_cache_*`), and
//! large receivers rate-limit connections more tightly than messages.
//!
//! Limits follow postfix: a session idles at most `idle` (2 s by default) and is not reused
//! after 300 s or 100 transactions. A reused session the server has meanwhile closed is
//! noticed before any byte of a message was accepted, and the caller then connects afresh.

use super::attempt::Caps;
use super::client::{BoxStream, Client};
use crate::queue::TlsLevel;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// postfix's `smtp_connection_reuse_time_limit`.
const MAX_AGE: Duration = Duration::from_secs(300);
/// Transactions per connection before it is retired.
const MAX_USES: u32 = 100;
/// Idle sessions kept per address; more concurrent deliveries than this open their own.
const MAX_IDLE_PER_ADDR: usize = 32;

/// Where a session goes: the address, and the name TLS was (or would be) checked against.
pub(crate) type Key = (SocketAddr, String);

/// A session between transactions.
pub(crate) struct Parked {
    pub client: Client<BoxStream>,
    pub caps: Caps,
    /// The TLS level the session reached (a policy takes only sessions at its minimum).
    pub tls: TlsLevel,
    pub opened: Instant,
    pub uses: u32,
}

impl Parked {
    fn worn_out(&self) -> bool {
        self.uses >= MAX_USES || self.opened.elapsed() >= MAX_AGE
    }
}

#[derive(Default)]
struct Idle {
    by_addr: HashMap<Key, Vec<(u64, Parked)>>,
}

impl Idle {
    /// Takes the session at `pos` of `key`'s list, dropping the list once it is empty.
    fn remove_at(&mut self, key: &Key, pos: usize) -> Option<Parked> {
        let list = self.by_addr.get_mut(key)?;
        let (_, parked) = (pos < list.len()).then(|| list.remove(pos))?;
        if list.is_empty() {
            self.by_addr.remove(key);
        }
        Some(parked)
    }
}

pub(crate) struct Pool {
    idle: Mutex<Idle>,
    next_id: AtomicU64,
    /// How long a session may wait for its next message; zero turns reuse off.
    linger: Duration,
}

impl Pool {
    pub fn new(linger: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Idle::default()),
            next_id: AtomicU64::new(1),
            linger,
        })
    }

    pub fn enabled(&self) -> bool {
        !self.linger.is_zero()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently parked session to `key` (the one least likely to have timed out on
    /// the server's side), preferring one over TLS; only one at level `need` or above.
    pub fn take(&self, key: &Key, need: TlsLevel) -> Option<Parked> {
        let mut idle = self.lock();
        let list = idle.by_addr.get_mut(key)?;
        let want = need.max(TlsLevel::Opportunistic);
        let pos = match list.iter().rposition(|(_, p)| p.tls >= want) {
            Some(pos) => pos,
            None if need > TlsLevel::None => return None,
            None => list.len().checked_sub(1)?,
        };
        idle.remove_at(key, pos)
    }

    /// Keeps `parked` for the next message to `key`. Hands it back (for the caller to QUIT)
    /// when reuse is off, it is worn out or enough sessions already wait. Each kept session
    /// has a timer that QUITs it if nobody takes it in time.
    pub fn park(self: &Arc<Self>, key: Key, mut parked: Parked) -> Option<Parked> {
        parked.uses += 1;
        if !self.enabled() || parked.worn_out() {
            return Some(parked);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut idle = self.lock();
            let list = idle.by_addr.entry(key.clone()).or_default();
            if list.len() >= MAX_IDLE_PER_ADDR {
                return Some(parked);
            }
            list.push((id, parked));
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(pool.linger).await;
            if let Some(p) = pool.remove(&key, id) {
                p.client.quit().await;
            }
        });
        None
    }

    fn remove(&self, key: &Key, id: u64) -> Option<Parked> {
        let mut idle = self.lock();
        let pos = idle.by_addr.get(key)?.iter().position(|(i, _)| *i == id)?;
        idle.remove_at(key, pos)
    }

    /// Sessions waiting now, for tests.
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        self.lock().by_addr.values().map(Vec::len).sum()
    }
}
