//! Audit entries for messages refused at end of data (RFC 5322 header counts, bare line
//! endings on submission), throttled per source IP.
//!
//! A refusal is worth an audit entry (someone tried to spoof a sender), but anyone can
//! trigger one, and the audit log is hash-chained and never pruned: one entry per refusal
//! would let a single client grow it without bound. So each source IP gets at most one
//! entry per interval; refusals in between are counted and the count rides on the next
//! entry. The prometheus counter sees every refusal.

use crate::audit::{ActorRef, Audit, NewEntry, Outcome, Source};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one source may add a `smtp.rejected` entry.
const INTERVAL: Duration = Duration::from_secs(60);
/// Sources remembered before the stale ones are forgotten (bounded memory under a spray).
const MAX_SOURCES: usize = 100_000;
/// Entries all sources together may add per interval: a spray from many addresses (an IPv6
/// botnet has more /64s than we have memory) is summed into one entry instead.
const MAX_ENTRIES_PER_INTERVAL: u32 = 120;

/// Per source: when its last entry was written and refusals since then; and across sources,
/// the entries written in this interval and the refusals summed past that cap.
#[derive(Default)]
pub struct RejectionAudit {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sources: HashMap<Source, (Instant, u64)>,
    window: Option<Instant>,
    written: u32,
    overflow: u64,
}

/// What one refusal turns into.
enum Write {
    /// Counted against its source (or the overflow), nothing written.
    Nothing,
    /// An entry for this source, with the refusals suppressed since its last one.
    Source(u64),
}

impl RejectionAudit {
    /// Records one refusal from `ip` (IPv6 counted by /64); writes an entry unless one was
    /// written for this source within the interval or the interval's entries are spent.
    /// Returns whether an entry for this refusal was written.
    pub fn record(
        &self,
        audit: &Audit,
        ip: IpAddr,
        reason: &str,
        detail: serde_json::Value,
    ) -> bool {
        let source = Source::from_ip(ip);
        let (decision, overflow) = self.decide(source);
        if let Some(n) = overflow {
            append(
                audit,
                "many sources",
                serde_json::json!({"reason": "summary", "refusals_from_other_sources": n}),
            );
        }
        let Write::Source(suppressed) = decision else {
            return false;
        };
        let mut detail = detail;
        if let serde_json::Value::Object(o) = &mut detail {
            o.insert("reason".into(), reason.into());
            o.insert("peer".into(), ip.to_string().into());
            o.insert("source".into(), source.label().into());
            o.insert("suppressed_since_last".into(), suppressed.into());
        }
        append(audit, &source.label(), detail);
        true
    }

    /// Under the lock: whether to write, and a finished interval's overflow count to report.
    fn decide(&self, source: Source) -> (Write, Option<u64>) {
        let mut m = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut overflow = None;
        if m.window.is_none_or(|w| w.elapsed() >= INTERVAL) {
            m.window = Some(Instant::now());
            m.written = 0;
            overflow = Some(std::mem::take(&mut m.overflow)).filter(|n| *n > 0);
            if overflow.is_some() {
                m.written += 1;
            }
        }
        if m.sources.len() >= MAX_SOURCES {
            m.sources.retain(|_, (t, _)| t.elapsed() < INTERVAL);
        }
        let spent = m.written >= MAX_ENTRIES_PER_INTERVAL || m.sources.len() >= MAX_SOURCES;
        let decision = match m.sources.get_mut(&source) {
            Some((t, n)) if t.elapsed() < INTERVAL => {
                *n += 1;
                Write::Nothing
            }
            _ if spent => {
                m.overflow += 1;
                Write::Nothing
            }
            Some((t, n)) => {
                *t = Instant::now();
                let n = std::mem::take(n);
                m.written += 1;
                Write::Source(n)
            }
            None => {
                m.sources.insert(source, (Instant::now(), 0));
                m.written += 1;
                Write::Source(0)
            }
        };
        (decision, overflow)
    }
}

fn append(audit: &Audit, target: &str, detail: serde_json::Value) {
    if let Err(e) = audit.append(NewEntry {
        actor: ActorRef::anonymous(target),
        chain: vec![],
        action: "smtp.rejected".into(),
        target: target.to_string(),
        outcome: Outcome::Denied,
        detail,
    }) {
        tracing::error!(error = %e, "could not audit a refused message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(r: &RejectionAudit, ip: &str) -> bool {
        matches!(
            r.decide(Source::from_ip(ip.parse().unwrap())).0,
            Write::Source(_)
        )
    }

    #[test]
    fn one_ipv6_subscriber_is_one_source() {
        let r = RejectionAudit::default();
        assert!(writes(&r, "2001:db8:1:2::1"));
        for i in 2..500 {
            assert!(!writes(&r, &format!("2001:db8:1:2::{i:x}")), "same /64");
        }
        assert!(writes(&r, "2001:db8:1:3::1"), "another /64");
    }

    #[test]
    fn a_spray_from_many_sources_is_summed_past_the_cap() {
        let r = RejectionAudit::default();
        let written = (0..10_000u32)
            .filter(|i| {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
                writes(&r, &ip.to_string())
            })
            .count();
        assert_eq!(written, MAX_ENTRIES_PER_INTERVAL as usize);
        let m = r.state.lock().unwrap();
        assert_eq!(m.overflow, 10_000 - u64::from(MAX_ENTRIES_PER_INTERVAL));
    }
}
