//! Audit entries for messages refused at end of data (RFC 5322 header counts, bare line
//! endings on submission), throttled per source IP.
//!
//! A refusal is worth an audit entry (someone tried to spoof a sender), but anyone can
//! trigger one, and the audit log is hash-chained and never pruned: one entry per refusal
//! would let a single client grow it without bound. So each source IP gets at most one
//! entry per interval; refusals in between are counted and the count rides on the next
//! entry. The prometheus counter sees every refusal.

use crate::audit::{ActorRef, Audit, NewEntry, Outcome};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one source IP may add a `smtp.rejected` entry.
const INTERVAL: Duration = Duration::from_secs(60);
/// Sources remembered before the stale ones are forgotten (bounded memory under a spray).
const MAX_SOURCES: usize = 100_000;

/// Per source: when its last entry was written and refusals since then.
#[derive(Default)]
pub struct RejectionAudit {
    sources: Mutex<HashMap<IpAddr, (Instant, u64)>>,
}

impl RejectionAudit {
    /// Records one refusal from `ip`; writes an entry unless one was written for this IP
    /// within the interval. Returns whether an entry was written.
    pub fn record(
        &self,
        audit: &Audit,
        ip: IpAddr,
        reason: &str,
        detail: serde_json::Value,
    ) -> bool {
        let suppressed = {
            let mut m = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            if m.len() >= MAX_SOURCES {
                m.retain(|_, (t, _)| t.elapsed() < INTERVAL);
            }
            match m.get_mut(&ip) {
                Some((t, n)) if t.elapsed() < INTERVAL => {
                    *n += 1;
                    return false;
                }
                Some((t, n)) => {
                    *t = Instant::now();
                    std::mem::take(n)
                }
                None => {
                    m.insert(ip, (Instant::now(), 0));
                    0
                }
            }
        };
        let mut detail = detail;
        if let serde_json::Value::Object(o) = &mut detail {
            o.insert("reason".into(), reason.into());
            o.insert("peer".into(), ip.to_string().into());
            o.insert("suppressed_since_last".into(), suppressed.into());
        }
        if let Err(e) = audit.append(NewEntry {
            actor: ActorRef::anonymous(&ip.to_string()),
            chain: vec![],
            action: "smtp.rejected".into(),
            target: ip.to_string(),
            outcome: Outcome::Denied,
            detail,
        }) {
            tracing::error!(error = %e, "could not audit a refused message");
        }
        true
    }
}
