//! Limits the per-source failure limiter (`audit::Denials`) cannot express: failed logins
//! per *address* (a botnet guessing one agent's key from many sources), and sessions per
//! agent (one agent's client opening hundreds of connections).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Addresses tracked at once; past it the oldest windows are forgotten first, so a flood
/// of made-up addresses cannot grow the map without bound.
const MAX_TRACKED: usize = 10_000;

pub(super) struct Limits {
    failures_per_minute: u32,
    max_sessions_per_agent: usize,
    creates_per_hour: u32,
    /// Folder creations per agent in the current hour: folder names stay interned for the
    /// life of the process, so a create/delete loop with fresh names must be slow.
    creates: Mutex<HashMap<String, (Instant, u32)>>,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
    sessions: Arc<Mutex<HashMap<String, usize>>>,
}

/// An agent's place among its sessions; given back on drop.
pub(super) struct AgentSlot {
    agent: String,
    sessions: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for AgentSlot {
    fn drop(&mut self) {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.agent);
            }
        }
    }
}

impl Limits {
    pub(super) fn new(
        failures_per_minute: u32,
        max_sessions_per_agent: usize,
        creates_per_hour: u32,
    ) -> Limits {
        Limits {
            failures_per_minute,
            max_sessions_per_agent,
            creates_per_hour,
            creates: Mutex::default(),
            failures: Mutex::default(),
            sessions: Arc::default(),
        }
    }

    /// True while `login` has used up its failures for this minute.
    pub(super) fn login_blocked(&self, login: &str) -> bool {
        let key = login.trim().to_lowercase();
        let m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&key)
            .is_some_and(|(start, n)| start.elapsed() < WINDOW && *n >= self.failures_per_minute)
    }

    pub(super) fn login_failed(&self, login: &str) {
        let key: String = login.trim().to_lowercase().chars().take(320).collect();
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_TRACKED && !m.contains_key(&key) {
            m.retain(|_, (start, _)| start.elapsed() < WINDOW);
            if m.len() >= MAX_TRACKED {
                if let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, (s, _))| *s)
                    .map(|(k, _)| k.clone())
                {
                    m.remove(&oldest);
                }
            }
        }
        let e = m.entry(key).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    pub(super) fn login_succeeded(&self, login: &str) {
        let key = login.trim().to_lowercase();
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Takes one of `agent`'s folder creations for this hour; false when none is left.
    pub(super) fn take_folder_create(&self, agent: &str) -> bool {
        let mut m = self.creates.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_TRACKED && !m.contains_key(agent) {
            m.retain(|_, (start, _)| start.elapsed() < HOUR);
        }
        let e = m.entry(agent.to_string()).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= HOUR {
            *e = (Instant::now(), 0);
        }
        if e.1 >= self.creates_per_hour {
            return false;
        }
        e.1 += 1;
        true
    }

    /// A session slot for `agent`, or None when it holds its share already.
    pub(super) fn admit_agent(&self, agent: &str) -> Option<AgentSlot> {
        let mut m = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(agent.to_string()).or_insert(0);
        if *n >= self.max_sessions_per_agent {
            return None;
        }
        *n += 1;
        Some(AgentSlot {
            agent: agent.to_string(),
            sessions: self.sessions.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_one_address_until_success() {
        let l = Limits::new(3, 2, 2);
        for _ in 0..2 {
            l.login_failed("A@x.test");
        }
        assert!(!l.login_blocked("a@x.test"));
        l.login_failed("a@x.test ");
        assert!(l.login_blocked("a@X.test"));
        assert!(!l.login_blocked("b@x.test"));
        l.login_succeeded("a@x.test");
        assert!(!l.login_blocked("a@x.test"));
    }

    #[test]
    fn agent_sessions_are_capped_and_given_back() {
        let l = Limits::new(3, 2, 2);
        let a = l.admit_agent("ag_a").unwrap();
        let _b = l.admit_agent("ag_a").unwrap();
        assert!(l.admit_agent("ag_a").is_none());
        assert!(l.admit_agent("ag_b").is_some());
        drop(a);
        assert!(l.admit_agent("ag_a").is_some());
    }

    #[test]
    fn folder_creations_are_rationed_per_agent() {
        let l = Limits::new(3, 2, 2);
        assert!(l.take_folder_create("ag_a") && l.take_folder_create("ag_a"));
        assert!(!l.take_folder_create("ag_a"));
        assert!(l.take_folder_create("ag_b"));
    }

    #[test]
    fn made_up_addresses_cannot_grow_the_map_without_bound() {
        let l = Limits::new(3, 2, 2);
        for i in 0..(MAX_TRACKED + 50) {
            l.login_failed(&format!("u{i}@x.test"));
        }
        assert!(l.failures.lock().unwrap().len() <= MAX_TRACKED);
    }
}
