//! Failed authentication per source address: the one limiter every front-end consults (REST,
//! MCP, SMTP AUTH, IMAP), and the aggregation of the `auth.denied` entries it would otherwise
//! write one per attempt.
//!
//! Without it, anyone on the network can grow the hash-chained log (and the disk) at request
//! speed with a bad token. With it, a source gets `limits.auth_failures_per_minute` failures in
//! a minute before it is refused outright (`429`, `421 4.7.0`), and the log records at most two
//! entries per source per `limits.auth_denied_audit_interval_secs`: the first denial in full,
//! then one summary with the count of everything suppressed after it. The table of sources is
//! capped; evicted sources hand in their summary first, so nothing is silently dropped.
//!
//! It lives beside the audit log (which every front-end can reach and which is what it
//! protects); it holds only counters, never credentials.

use prometheus::IntCounter;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The rate-limit window: failures are counted per source per minute.
const WINDOW: Duration = Duration::from_secs(60);
/// Distinct reason codes kept per summary (there are only a handful; a cap keeps the map small
/// whatever a caller passes).
const MAX_REASONS: usize = 16;

/// The knobs of `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenialSettings {
    /// Failed authentications a source may make per minute; the next attempts are refused
    /// until the minute is over. 0 disables the limit (aggregation still applies).
    pub max_failures_per_minute: u32,
    /// One summary entry per source per interval.
    pub audit_interval: Duration,
    /// Sources tracked at once; past it the oldest half is summarised and forgotten.
    pub max_sources: usize,
}

impl Default for DenialSettings {
    fn default() -> Self {
        Self {
            max_failures_per_minute: 10,
            audit_interval: Duration::from_secs(60),
            max_sources: 100_000,
        }
    }
}

/// What a source did since its last written entry, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub source: String,
    /// Denials not written individually.
    pub suppressed: u64,
    /// Attempts refused by the limiter before authentication was even tried.
    pub throttled: u64,
    pub reasons: BTreeMap<String, u64>,
    /// Unix milliseconds of the first and last counted attempt.
    pub first_ms: i64,
    pub last_ms: i64,
}

/// Whether a denial should be written now or only counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Write,
    Suppress,
}

/// A source address: IPv4 as is, IPv6 by its /64 (one subscriber's whole allocation), and
/// everything unparsable together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(peer: &str) -> Self {
        match peer.parse::<IpAddr>() {
            Ok(ip) => Self::from_ip(ip),
            Err(_) => Source(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        }
    }

    pub fn from_ip(ip: IpAddr) -> Self {
        Source(crate::net::subscriber(ip))
    }

    /// How the source is named in audit entries and logs (`2001:db8::/64` for IPv6).
    pub fn label(&self) -> String {
        match self.0 {
            IpAddr::V6(_) => format!("{}/64", self.0),
            IpAddr::V4(v4) if v4.is_unspecified() => "unknown".into(),
            IpAddr::V4(_) => self.0.to_string(),
        }
    }
}

#[derive(Debug)]
struct Tally {
    window_start: Instant,
    failures: u32,
    /// Start of the aggregation interval; `None` when the next denial is written in full.
    interval_start: Option<Instant>,
    suppressed: u64,
    throttled: u64,
    reasons: BTreeMap<String, u64>,
    first_ms: i64,
    last_ms: i64,
}

impl Tally {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            failures: 0,
            interval_start: None,
            suppressed: 0,
            throttled: 0,
            reasons: BTreeMap::new(),
            first_ms: 0,
            last_ms: 0,
        }
    }

    fn roll_window(&mut self, now: Instant) {
        if now.duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.failures = 0;
        }
    }

    fn pending(&self) -> bool {
        self.suppressed > 0 || self.throttled > 0
    }

    fn note(&mut self, ms: i64) {
        if !self.pending() {
            self.first_ms = ms;
        }
        self.last_ms = ms;
    }

    /// Takes the counted attempts as a summary and ends the interval.
    fn take(&mut self, source: &Source) -> Option<Summary> {
        self.interval_start = None;
        if !self.pending() {
            return None;
        }
        let s = Summary {
            source: source.label(),
            suppressed: self.suppressed,
            throttled: self.throttled,
            reasons: std::mem::take(&mut self.reasons),
            first_ms: self.first_ms,
            last_ms: self.last_ms,
        };
        self.suppressed = 0;
        self.throttled = 0;
        Some(s)
    }

    fn idle(&self, now: Instant, interval: Duration) -> bool {
        !self.pending()
            && now.duration_since(self.window_start) >= WINDOW
            && self
                .interval_start
                .is_none_or(|s| now.duration_since(s) >= interval)
    }
}

struct Inner {
    settings: DenialSettings,
    sources: HashMap<Source, Tally>,
}

/// The limiter and aggregator (see the module docs).
pub struct Denials {
    inner: Mutex<Inner>,
    /// Sources tracked, readable without the lock: the hot path of a successful request asks
    /// nothing of an empty table.
    tracked: AtomicUsize,
    /// `/metrics` counters (failed authentications, throttled attempts), set once at start:
    /// every front-end reports its failures here, so this is the one place to count them.
    counters: OnceLock<Counters>,
}

/// The Prometheus counters [`Denials`] increments.
#[derive(Debug, Clone)]
pub struct Counters {
    pub failures: IntCounter,
    pub throttled: IntCounter,
}

impl Default for Denials {
    fn default() -> Self {
        Self::new(DenialSettings::default())
    }
}

impl Denials {
    pub fn new(settings: DenialSettings) -> Self {
        Self {
            inner: Mutex::new(Inner {
                settings,
                sources: HashMap::new(),
            }),
            tracked: AtomicUsize::new(0),
            counters: OnceLock::new(),
        }
    }

    /// Where failures and throttled attempts are counted from now on (a second call is
    /// ignored: one server, one registry).
    pub fn count_into(&self, counters: Counters) {
        let _ = self.counters.set(counters);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn configure(&self, settings: DenialSettings) {
        self.lock().settings = settings;
    }

    pub fn settings(&self) -> DenialSettings {
        self.lock().settings
    }

    /// Whether `ip` has used up its failures for this minute. Pure: SMTP asks before AUTH.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.blocked_at(Source::from_ip(ip), Instant::now(), false)
    }

    /// The front-end check before authenticating a request from `peer`: `true` means refuse
    /// it (429 / 421) without trying the credentials. A refused attempt is counted for the
    /// source's summary, never written on its own.
    pub fn throttle(&self, peer: &str) -> bool {
        self.blocked_at(Source::of(peer), Instant::now(), true)
    }

    fn blocked_at(&self, src: Source, now: Instant, count: bool) -> bool {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut g = self.lock();
        let limit = g.settings.max_failures_per_minute;
        let Some(t) = g.sources.get_mut(&src) else {
            return false;
        };
        t.roll_window(now);
        let blocked = limit > 0 && t.failures >= limit;
        if blocked && count {
            if let Some(c) = self.counters.get() {
                c.throttled.inc();
            }
            t.note(crate::util::now_millis());
            t.throttled += 1;
            if t.interval_start.is_none() {
                t.interval_start = Some(now);
            }
        }
        blocked
    }

    /// Counts one failed authentication from `peer` and says whether its entry is written now
    /// (the first of an interval) or only counted. `due` receives summaries that must be
    /// written first: this source's previous interval, and any sources evicted to make room.
    pub fn failed(&self, peer: &str, reason: &str, due: &mut Vec<Summary>) -> Decision {
        self.failed_at(Source::of(peer), reason, Instant::now(), due)
    }

    fn failed_at(
        &self,
        src: Source,
        reason: &str,
        now: Instant,
        due: &mut Vec<Summary>,
    ) -> Decision {
        if let Some(c) = self.counters.get() {
            c.failures.inc();
        }
        let mut g = self.lock();
        let interval = g.settings.audit_interval;
        if !g.sources.contains_key(&src) && g.sources.len() >= g.settings.max_sources.max(1) {
            evict(&mut g, now, due);
        }
        let t = g.sources.entry(src).or_insert_with(|| Tally::new(now));
        t.roll_window(now);
        t.failures = t.failures.saturating_add(1);
        let decision = match t.interval_start {
            Some(start) if now.duration_since(start) < interval => {
                t.note(crate::util::now_millis());
                t.suppressed += 1;
                if t.reasons.len() < MAX_REASONS || t.reasons.contains_key(reason) {
                    *t.reasons.entry(reason.to_string()).or_default() += 1;
                }
                Decision::Suppress
            }
            _ => {
                due.extend(t.take(&src));
                t.interval_start = Some(now);
                Decision::Write
            }
        };
        let n = g.sources.len();
        self.tracked.store(n, Ordering::Relaxed);
        decision
    }

    /// Summaries of intervals that are over (all of them with `force`, at shutdown), and the
    /// sources with nothing left to count are forgotten.
    pub fn take_due(&self, force: bool) -> Vec<Summary> {
        self.take_due_at(Instant::now(), force)
    }

    fn take_due_at(&self, now: Instant, force: bool) -> Vec<Summary> {
        let mut g = self.lock();
        let interval = g.settings.audit_interval;
        let mut out = Vec::new();
        for (src, t) in g.sources.iter_mut() {
            let over = t
                .interval_start
                .is_some_and(|s| now.duration_since(s) >= interval);
            if force || over {
                out.extend(t.take(src));
            }
        }
        g.sources.retain(|_, t| !t.idle(now, interval));
        self.tracked.store(g.sources.len(), Ordering::Relaxed);
        out
    }

    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }
}

/// Makes room: forgets idle sources, then (if still full) the older half by their last
/// activity, handing in what they still had to report.
fn evict(g: &mut Inner, now: Instant, due: &mut Vec<Summary>) {
    let interval = g.settings.audit_interval;
    g.sources.retain(|_, t| !t.idle(now, interval));
    let cap = g.settings.max_sources.max(1);
    if g.sources.len() < cap {
        return;
    }
    let mut ages: Vec<Instant> = g.sources.values().map(|t| t.window_start).collect();
    let mid = ages.len() / 2;
    let (_, median, _) = ages.select_nth_unstable(mid);
    let median = *median;
    let mut dropped = 0usize;
    g.sources.retain(|src, t| {
        if t.window_start <= median && dropped <= mid {
            due.extend(t.take(src));
            dropped += 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(limit: u32, max_sources: usize) -> DenialSettings {
        DenialSettings {
            max_failures_per_minute: limit,
            audit_interval: Duration::from_secs(60),
            max_sources,
        }
    }

    #[test]
    fn failures_and_throttled_attempts_are_counted_for_metrics() {
        let d = Denials::new(settings(2, 10));
        let counters = Counters {
            failures: IntCounter::new("f", "f").unwrap(),
            throttled: IntCounter::new("t", "t").unwrap(),
        };
        d.count_into(counters.clone());
        let src = Source::of("192.0.2.1");
        let t0 = Instant::now();
        let mut due = Vec::new();
        d.failed_at(src, "a", t0, &mut due);
        d.failed_at(src, "a", t0, &mut due);
        // Asking is not an attempt; a refused attempt is.
        assert!(d.blocked_at(src, t0, false));
        assert!(d.blocked_at(src, t0, true));
        assert_eq!((counters.failures.get(), counters.throttled.get()), (2, 1));
    }

    #[test]
    fn first_denial_is_written_the_rest_counted_then_summarised() {
        let d = Denials::new(settings(3, 10));
        let src = Source::of("192.0.2.1");
        let t0 = Instant::now();
        let mut due = Vec::new();
        assert_eq!(d.failed_at(src, "a", t0, &mut due), Decision::Write);
        assert_eq!(d.failed_at(src, "a", t0, &mut due), Decision::Suppress);
        assert_eq!(d.failed_at(src, "b", t0, &mut due), Decision::Suppress);
        assert!(d.blocked_at(src, t0, true));
        assert!(!d.blocked_at(Source::of("192.0.2.2"), t0, true));
        assert!(due.is_empty());
        // Nothing is due inside the interval; everything is once it is over.
        assert!(d.take_due_at(t0, false).is_empty());
        let later = t0 + Duration::from_secs(61);
        let s = d.take_due_at(later, false);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].suppressed, s[0].throttled), (2, 1));
        assert_eq!(s[0].reasons.get("b"), Some(&1));
        assert_eq!(s[0].source, "192.0.2.1");
        // A new minute: no longer blocked, and the next denial is written in full again.
        assert!(!d.blocked_at(src, later, false));
        assert_eq!(d.failed_at(src, "a", later, &mut due), Decision::Write);
    }

    #[test]
    fn a_denial_after_the_interval_hands_in_the_previous_summary() {
        let d = Denials::new(settings(0, 10));
        let src = Source::of("192.0.2.1");
        let t0 = Instant::now();
        let mut due = Vec::new();
        for _ in 0..100 {
            d.failed_at(src, "x", t0, &mut due);
        }
        assert!(!d.blocked_at(src, t0, false), "0 disables the limit");
        let later = t0 + Duration::from_secs(60);
        assert_eq!(d.failed_at(src, "x", later, &mut due), Decision::Write);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].suppressed, 99);
    }

    #[test]
    fn memory_is_bounded_and_evicted_sources_report_first() {
        let d = Denials::new(settings(5, 100));
        let t0 = Instant::now();
        let mut due = Vec::new();
        for i in 0..1000u32 {
            let src = Source::from_ip(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            d.failed_at(src, "x", t0, &mut due);
            d.failed_at(src, "x", t0, &mut due);
            assert!(d.tracked() <= 100);
        }
        // Every evicted source had one suppressed denial; each is in a summary.
        let reported: u64 = due.iter().map(|s| s.suppressed).sum::<u64>()
            + d.take_due_at(t0, true)
                .iter()
                .map(|s| s.suppressed)
                .sum::<u64>();
        assert_eq!(reported, 1000);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        assert_eq!(
            Source::of("2001:db8:1:2::1"),
            Source::of("2001:db8:1:2:ffff::9")
        );
        assert_ne!(Source::of("2001:db8:1:2::1"), Source::of("2001:db8:1:3::1"));
        assert_eq!(Source::of("::ffff:192.0.2.1"), Source::of("192.0.2.1"));
        assert_eq!(Source::of("not an ip").label(), "unknown");
    }
}
