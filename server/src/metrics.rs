//! The prometheus registry and the metric handles every layer updates.
//!
//! One struct, created at start-up and shared, so a test can build its own registry and
//! nothing depends on process-global state.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::time::Instant;

pub struct Metrics {
    registry: Registry,
    pub api_requests: IntCounterVec,
    pub api_latency: HistogramVec,
    pub smtp_sessions: IntCounterVec,
    pub smtp_active: IntGauge,
    pub smtp_messages: IntCounterVec,
    pub smtp_bytes: IntCounterVec,
    pub smtp_latency: HistogramVec,
    pub auth_results: IntCounterVec,
    pub vault_ops: IntCounterVec,
    pub queue_events: IntCounterVec,
    pub delivery: IntCounterVec,
    pub dkim_signed: IntCounterVec,
    pub imap_sessions: IntCounterVec,
    pub imap_active: IntGauge,
    pub imap_idle: IntGauge,
    /// IMAP commands by name and result (`ok`, `no`, `bad`).
    pub imap_commands: IntCounterVec,
    /// IMAP bytes by direction (`in`, `out`).
    pub imap_bytes: IntCounterVec,
    /// IMAP connections refused (`per_ip`, `full`, `per_agent`).
    pub imap_refused: IntCounterVec,
    /// SMTP connections refused (`per_ip`, `full`) or shed when idle at the cap (`shed`).
    pub smtp_connections_refused: IntCounterVec,
    /// Free bytes on the data filesystem, and the `storage.min_free_mb` reserve in bytes:
    /// alert well before the first falls to the second (new mail is refused there).
    /// Set from `store::space` at each scrape.
    pub storage_free_bytes: IntGauge,
    pub storage_reserve_bytes: IntGauge,
    /// 1 while new mail is accepted, 0 while the disk is below the reserve.
    pub storage_accepting: IntGauge,
    /// Failed authentications on every front-end (REST, MCP, SMTP AUTH, IMAP), and attempts
    /// refused by the per-source limiter before the credentials were tried. Counted by
    /// `audit::Denials`, which every front-end reports to.
    pub auth_failures: IntCounter,
    pub auth_throttled: IntCounter,
    /// DMARC/TLS-RPT reports received (`kind`: dmarc, tls; `outcome`: stored, duplicate,
    /// failed) and sent (`outcome`: sent, skipped, failed).
    pub reports_received: IntCounterVec,
    pub reports_sent: IntCounterVec,
    /// Where sending a message spends its time (`legate_send_stage_seconds{stage}`).
    pub send_stages: SendStages,
    /// Outbound TLS sessions by policy (`no-policy-found`, `route`, `sts`, `tlsa`), level
    /// reached and result (issue 19).
    pub outbound_tls: IntCounterVec,
    /// Outbound TLS policy failures by policy and RFC 8460 result type.
    pub outbound_tls_failures: IntCounterVec,
    /// MTA-STS policy cache lookups (`hit`, `miss`, `stale`).
    pub mta_sts_cache: IntCounterVec,
}

/// The stages of sending one message, in order. Each is timed (wall clock) into
/// `legate_send_stage_seconds{stage}`, so `_sum / _count` per stage is its mean per message
/// on a running server, with no profiler: the figures issue 23 asks of the send path, and
/// where to look first when sending slows down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStage {
    /// From the request (HTTP) or the end of DATA (submission) to the queue: request
    /// parsing, authentication, the submission header checks.
    Accept,
    /// Building the message from a REST request; fitting long lines; header checks.
    Compose,
    /// Both DKIM signatures.
    Dkim,
    /// Parsing the signed message for the Sent copy's record and its search terms.
    Parse,
    /// The Sent copy: its blob, the transaction with its record, the queue record and the
    /// schedule entry, and the group commit that makes them durable.
    Store,
    /// The sender's audit entry, written and made durable before the reply.
    Audit,
    /// From the message being durable to the delivery worker holding its bytes.
    Handoff,
    /// One SMTP transaction with the next hop (connection reused or made).
    Delivery,
    /// Recording the delivery outcomes and their audit entries.
    Record,
}

impl SendStage {
    pub const ALL: [SendStage; 9] = [
        SendStage::Accept,
        SendStage::Compose,
        SendStage::Dkim,
        SendStage::Parse,
        SendStage::Store,
        SendStage::Audit,
        SendStage::Handoff,
        SendStage::Delivery,
        SendStage::Record,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SendStage::Accept => "accept",
            SendStage::Compose => "compose",
            SendStage::Dkim => "dkim",
            SendStage::Parse => "parse",
            SendStage::Store => "store",
            SendStage::Audit => "audit",
            SendStage::Handoff => "handoff",
            SendStage::Delivery => "delivery",
            SendStage::Record => "record",
        }
    }
}

/// One histogram per [`SendStage`], resolved once: an observation is a few atomic adds,
/// no label lookup, so timing every message costs nothing measurable.
pub struct SendStages {
    by_stage: Vec<Histogram>,
}

impl SendStages {
    fn new(r: &Registry) -> Self {
        // Stages range from tens of microseconds (compose) to a network round trip.
        let buckets = vec![
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 1.0, 5.0,
        ];
        let name = "legate_send_stage_seconds";
        let help = "Time per message in each stage of sending (wall clock)";
        let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["stage"])
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        r.register(Box::new(h.clone()))
            .unwrap_or_else(|e| panic!("metric {name}: {e}"));
        let by_stage = SendStage::ALL
            .iter()
            .map(|s| h.with_label_values(&[s.name()]))
            .collect();
        Self { by_stage }
    }

    /// Records `stage` as having taken from `since` until now.
    pub fn done(&self, stage: SendStage, since: Instant) {
        self.observe(stage, since.elapsed().as_secs_f64());
    }

    pub fn observe(&self, stage: SendStage, seconds: f64) {
        // ALL lists every variant in declaration order, so the index is always in range.
        if let Some(h) = self.by_stage.get(stage as usize) {
            h.observe(seconds);
        }
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    // Registration fails only on a duplicate name: a programming error caught by tests.
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

fn plain_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let buckets = vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let smtp_active = IntGauge::new("legate_smtp_sessions_active", "Open SMTP sessions")
            .unwrap_or_else(|e| panic!("{e}"));
        r.register(Box::new(smtp_active.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            api_requests: counter(
                &r,
                "legate_api_requests_total",
                "HTTP API requests",
                &["method", "route", "status"],
            ),
            api_latency: histogram(
                &r,
                "legate_api_request_duration_seconds",
                "HTTP API latency",
                &["method", "route"],
            ),
            smtp_sessions: counter(
                &r,
                "legate_smtp_sessions_total",
                "SMTP sessions opened",
                &["listener"],
            ),
            smtp_active,
            smtp_messages: counter(
                &r,
                "legate_smtp_messages_total",
                "SMTP messages by outcome",
                &["outcome", "reason"],
            ),
            reports_received: counter(
                &r,
                "legate_reports_received_total",
                "DMARC aggregate and TLS-RPT reports received, by kind and outcome",
                &["kind", "outcome"],
            ),
            reports_sent: counter(
                &r,
                "legate_reports_sent_total",
                "DMARC aggregate and TLS-RPT reports sent, by kind and outcome",
                &["kind", "outcome"],
            ),
            smtp_connections_refused: counter(
                &r,
                "legate_smtp_connections_refused_total",
                "SMTP connections refused or shed at the connection limits",
                &["listener", "reason"],
            ),
            smtp_bytes: counter(
                &r,
                "legate_smtp_bytes_total",
                "Bytes of accepted SMTP messages",
                &["listener"],
            ),
            smtp_latency: histogram(
                &r,
                "legate_smtp_delivery_duration_seconds",
                "Time from end of DATA to reply",
                &["outcome"],
            ),
            auth_results: counter(
                &r,
                "legate_mailauth_results_total",
                "SPF/DKIM/DMARC results of inbound mail",
                &["method", "result"],
            ),
            vault_ops: counter(
                &r,
                "legate_vault_operations_total",
                "Vault operations",
                &["op", "outcome"],
            ),
            queue_events: counter(
                &r,
                "legate_queue_events_total",
                "Outbound queue events",
                &["event"],
            ),
            delivery: counter(
                &r,
                "legate_delivery_attempts_total",
                "Outbound delivery attempts",
                &["result"],
            ),
            dkim_signed: counter(
                &r,
                "legate_dkim_signatures_total",
                "DKIM signatures made",
                &["algorithm"],
            ),
            imap_sessions: counter(
                &r,
                "legate_imap_sessions_total",
                "IMAP sessions opened",
                &["listener"],
            ),
            imap_active: gauge(&r, "legate_imap_sessions_active", "IMAP sessions open now"),
            imap_idle: gauge(&r, "legate_imap_idle_sessions", "IMAP sessions in IDLE now"),
            imap_commands: counter(
                &r,
                "legate_imap_commands_total",
                "IMAP commands by name and result",
                &["command", "status"],
            ),
            imap_bytes: counter(
                &r,
                "legate_imap_bytes_total",
                "IMAP bytes by direction",
                &["direction"],
            ),
            imap_refused: counter(
                &r,
                "legate_imap_connections_refused_total",
                "IMAP connections refused at a limit",
                &["reason"],
            ),
            storage_free_bytes: gauge(
                &r,
                "legate_storage_free_bytes",
                "Bytes free on the filesystem of the data directory",
            ),
            storage_reserve_bytes: gauge(
                &r,
                "legate_storage_reserve_bytes",
                "storage.min_free_mb in bytes: below it new mail is refused (0 = off)",
            ),
            storage_accepting: gauge(
                &r,
                "legate_storage_accepting_mail",
                "1 while new mail is accepted, 0 while the disk is below the reserve",
            ),
            auth_failures: plain_counter(
                &r,
                "legate_auth_failures_total",
                "Failed authentications (REST, MCP, SMTP AUTH, IMAP)",
            ),
            auth_throttled: plain_counter(
                &r,
                "legate_auth_throttled_total",
                "Authentication attempts refused by the per-source failure limit",
            ),
            send_stages: SendStages::new(&r),
            outbound_tls: counter(
                &r,
                "legate_outbound_tls_total",
                "Outbound TLS sessions by policy, level reached and result",
                &["policy", "level", "result"],
            ),
            outbound_tls_failures: counter(
                &r,
                "legate_outbound_tls_failures_total",
                "Outbound TLS policy failures (MTA-STS, DANE, require_tls routes) by RFC 8460 result type",
                &["policy", "reason"],
            ),
            mta_sts_cache: counter(
                &r,
                "legate_mta_sts_policy_cache_total",
                "MTA-STS policy cache lookups: hit, miss (fetched), stale (fetch failed, cache used)",
                &["result"],
            ),
            registry: r,
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new();
        m.api_requests
            .with_label_values(&["GET", "/healthz", "200"])
            .inc();
        assert!(m.render().contains(
            "legate_api_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ));
    }

    #[test]
    fn send_stages_are_timed_under_their_names() {
        let m = Metrics::new();
        for (i, s) in SendStage::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "ALL is in declaration order");
        }
        m.send_stages.observe(SendStage::Dkim, 0.000_3);
        m.send_stages.observe(SendStage::Record, 0.002);
        let text = m.render();
        assert!(text.contains("legate_send_stage_seconds_count{stage=\"dkim\"} 1"));
        assert!(text.contains("legate_send_stage_seconds_sum{stage=\"record\"} 0.002"));
        assert!(text.contains("legate_send_stage_seconds_count{stage=\"accept\"} 0"));
    }
}
