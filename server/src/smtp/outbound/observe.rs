//! Every outbound TLS outcome goes through [`Observer::record`]: the session reached a level,
//! or failed its policy (RFC 8460 result type), or the policy itself could not be had (an
//! MTA-STS fetch error). One function, so the metrics and a later TLS-RPT reporter (issue 19
//! item 5: per recipient domain and policy, successes and failures) count the same events.

use super::policy::{Failure, PolicySource};
use crate::queue::TlsLevel;
use prometheus::IntCounterVec;
use std::sync::Arc;

/// One outcome. `mx` is the host (`mx.b.test [192.0.2.1]`), empty when no session was
/// opened (a policy failure before connecting).
#[derive(Debug)]
pub struct TlsOutcome<'a> {
    pub domain: &'a str,
    pub mx: &'a str,
    pub policy: PolicySource,
    pub result: Result<TlsLevel, &'a Failure>,
}

/// A receiver of outcomes besides the metrics (the TLS-RPT aggregator, once it exists).
pub trait TlsReport: Send + Sync {
    fn record(&self, outcome: &TlsOutcome<'_>);
}

/// The counters the outbound client updates (handles into `crate::metrics::Metrics`).
#[derive(Clone)]
pub struct TlsCounters {
    /// `legate_outbound_tls_total{policy, level, result}`: every session's outcome.
    pub sessions: IntCounterVec,
    /// `legate_outbound_tls_failures_total{policy, reason}`: MTA-STS/DANE/route failures.
    pub failures: IntCounterVec,
    /// `legate_mta_sts_cache_total{result}`: policy cache hits and misses.
    pub sts_cache: IntCounterVec,
}

#[derive(Default, Clone)]
pub struct Observer {
    counters: Option<TlsCounters>,
    report: Option<Arc<dyn TlsReport>>,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("counters", &self.counters.is_some())
            .field("report", &self.report.is_some())
            .finish()
    }
}

impl Observer {
    pub fn new(counters: Option<TlsCounters>, report: Option<Arc<dyn TlsReport>>) -> Self {
        Self { counters, report }
    }

    /// The one place an outbound TLS outcome is recorded.
    pub fn record(&self, o: &TlsOutcome<'_>) {
        match o.result {
            Ok(level) => {
                tracing::debug!(
                    domain = o.domain,
                    mx = o.mx,
                    policy = o.policy.as_str(),
                    level = level.as_str(),
                    "outbound TLS"
                );
                if let Some(c) = &self.counters {
                    c.sessions
                        .with_label_values(&[o.policy.as_str(), level.as_str(), "success"])
                        .inc();
                }
            }
            Err(f) => {
                tracing::warn!(domain = o.domain, mx = o.mx, policy = o.policy.as_str(), reason = f.kind.as_str(), detail = %f.detail, "outbound TLS policy failure");
                if let Some(c) = &self.counters {
                    c.sessions
                        .with_label_values(&[o.policy.as_str(), "failed", "failure"])
                        .inc();
                    c.failures
                        .with_label_values(&[o.policy.as_str(), f.kind.as_str()])
                        .inc();
                }
            }
        }
        if let Some(r) = &self.report {
            r.record(o);
        }
    }

    /// An MTA-STS cache lookup: `hit`, `miss` (fetched) or `stale` (fetch failed, cached
    /// policy used).
    pub fn sts_cache(&self, result: &str) {
        if let Some(c) = &self.counters {
            c.sts_cache.with_label_values(&[result]).inc();
        }
    }
}
