//! Connection and failed-login accounting, shared by all sessions of a listener.
//!
//! Both use a std `Mutex`: the critical sections are a few map operations, never held across an
//! `.await`, and a tokio mutex would only add overhead. A poisoned lock (a panic elsewhere while
//! holding it) still holds consistent counts, so it is recovered rather than propagated.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Above this many tracked IPs, expired entries are swept on insert so a scan from many
/// addresses cannot grow the map without bound.
const SWEEP_THRESHOLD: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The unit limits apply to: an IPv4 address, or an IPv6 /64 (one host usually owns a whole
/// /64, so per-address counting would be no limit at all).
pub(crate) fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Which connection limit was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Over {
    Total,
    PerIp,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Open connections, in total and per IP.
pub(crate) struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

/// Holds one connection slot; dropping it frees the slot, however the session ends.
pub(crate) struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    key: IpAddr,
}

impl ConnLimiter {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Over> {
        let key = limit_key(ip);
        let mut c = lock(&self.counts);
        if c.total >= self.max_total {
            return Err(Over::Total);
        }
        let n = c.per_ip.entry(key).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Over::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnGuard {
            limiter: Arc::clone(self),
            key,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = lock(&self.limiter.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_ip.remove(&self.key);
            }
        }
    }
}

/// Failed logins per IP in a sliding window.
pub(crate) struct AuthLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AuthLimiter {
    pub(crate) fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this IP has used up its failed attempts for now.
    pub(crate) fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        let Some(times) = map.get_mut(&limit_key(ip)) else {
            return false;
        };
        self.expire(times, now);
        times.len() >= self.max_failures as usize
    }

    pub(crate) fn record_failure(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut map = lock(&self.failures);
        if map.len() >= SWEEP_THRESHOLD {
            map.retain(|_, times| {
                self.expire(times, now);
                !times.is_empty()
            });
        }
        let times = map.entry(limit_key(ip)).or_default();
        self.expire(times, now);
        times.push_back(now);
        // Older entries beyond the limit add nothing.
        while times.len() > self.max_failures as usize + 1 {
            times.pop_front();
        }
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_are_counted_and_freed() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let g1 = l.try_acquire(a).unwrap();
        let _g2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).err(), Some(Over::PerIp));
        let _g3 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).err(), Some(Over::Total));
        drop(g1);
        assert!(l.try_acquire(a).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = ConnLimiter::new(10, 1);
        let _g = l.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            l.try_acquire("2001:db8::ffff".parse().unwrap()).err(),
            Some(Over::PerIp)
        );
        assert!(l.try_acquire("2001:db8:0:1::1".parse().unwrap()).is_ok());
        assert_eq!(
            limit_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn failed_logins_block_then_expire() {
        let l = AuthLimiter::new(3, Duration::from_millis(80));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            assert!(!l.is_blocked(ip));
            l.record_failure(ip);
        }
        assert!(l.is_blocked(ip));
        assert!(!l.is_blocked("192.0.2.10".parse().unwrap()));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!l.is_blocked(ip), "the window slid past the failures");
    }
}
