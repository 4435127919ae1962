//! DMARC aggregate (RFC 7489 §7.2) and TLS-RPT (RFC 8460) reports, both ways.
//!
//! Received: mail to `dmarc-reports@` and `tls-reports@` of a hosted domain (the addresses our
//! DNS plan publishes as `rua`) is handed here at the end of DATA, unpacked under byte caps,
//! parsed, stored once per (reporter, report id), and summarised for admins.
//! Sent: inbound DMARC evaluations and outbound TLS outcomes are recorded per day; a daily
//! job turns them into reports for the domains that ask for them (`send`).

mod decode;
pub mod dmarc;
mod generate;
mod outbox;
mod record;
mod send;
mod summary;
pub mod tlsrpt;

pub use decode::{gunzip, gzip};
pub use generate::{dmarc_report_xml, tls_report_json, Reporter};
pub use outbox::{resolver, rua_of, Outbox, SendSummary};
pub use record::{DmarcEvent, TlsCounter};
pub use tlsrpt::{TlsFailure, TlsPolicyType, TlsResultType};

use crate::audit::{ActorRef, Audit, NewEntry, Outcome};
use crate::identity::{Actor, Denied};
use crate::metrics::Metrics;
use crate::store::{keys, Store, StoreError, Tree, TxError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("sending: {0}")]
    Send(String),
}

impl From<crate::audit::AuditError> for ReportsError {
    fn from(e: crate::audit::AuditError) -> Self {
        ReportsError::Send(format!("audit: {e}"))
    }
}

/// Which report address a message was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    Dmarc,
    Tls,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Dmarc => "dmarc",
            ReportKind::Tls => "tls",
        }
    }

    /// The report address local parts (those `dns::plan` publishes as `rua`).
    pub fn of_local(local: &str) -> Option<ReportKind> {
        let base = local.split_once('+').map_or(local, |(b, _)| b);
        if base.eq_ignore_ascii_case("dmarc-reports") {
            Some(ReportKind::Dmarc)
        } else if base.eq_ignore_ascii_case("tls-reports") {
            Some(ReportKind::Tls)
        } else {
            None
        }
    }
}

/// The settings of `[reports]` and `[dmarc]`.
#[derive(Debug, Clone)]
pub struct ReportsSettings {
    pub domain: String,
    pub limits: decode::Limits,
    pub max_xml_nodes: u32,
    pub send_dmarc: bool,
    pub max_dmarc_events_per_day: u64,
    pub send_tls: bool,
    pub danger_allow_private_report_urls: bool,
}

impl ReportsSettings {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            domain: c.server.domain.clone(),
            limits: decode::Limits {
                max_compressed: c.reports.max_compressed_bytes,
                max_decompressed: c.reports.max_decompressed_bytes,
                max_zip_files: c.reports.max_zip_files,
            },
            max_xml_nodes: c.reports.max_xml_nodes,
            send_dmarc: c.dmarc.send_reports,
            max_dmarc_events_per_day: c.dmarc.max_events_per_day,
            send_tls: c.reports.send_tls_reports,
            danger_allow_private_report_urls: c.reports.danger_allow_private_report_urls,
        }
    }
}

/// A received report as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredReport {
    pub received_at: i64,
    /// Envelope sender and peer of the message that carried it.
    pub mail_from: String,
    pub peer: String,
    pub dmarc: Option<dmarc::DmarcReport>,
    pub tls: Option<tlsrpt::TlsReport>,
}

/// What became of one received report message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Stored reports and repeats (already stored under the same reporter and id).
    Stored { new: usize, duplicate: usize },
    /// Nothing usable: why, for the SMTP reply and the audit entry.
    Failed(String),
}

pub struct ReportsService {
    store: Store,
    audit: Arc<Audit>,
    metrics: Arc<Metrics>,
    settings: ReportsSettings,
    /// How reports leave (the queue and a resolver): set once they exist.
    outbox: std::sync::OnceLock<outbox::Outbox>,
}

impl ReportsService {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        metrics: Arc<Metrics>,
        settings: ReportsSettings,
    ) -> Self {
        Self {
            store,
            audit,
            metrics,
            settings,
            outbox: std::sync::OnceLock::new(),
        }
    }

    pub fn settings(&self) -> &ReportsSettings {
        &self.settings
    }

    /// A report message for `kind` at the end of DATA. Unpacking and parsing are CPU work on
    /// peer bytes: they run off the async threads.
    pub async fn receive(
        self: &Arc<Self>,
        kind: ReportKind,
        raw: Vec<u8>,
        mail_from: String,
        peer: IpAddr,
    ) -> Received {
        let me = self.clone();
        let mf = mail_from.clone();
        match tokio::task::spawn_blocking(move || me.receive_blocking(kind, &raw, &mf, peer)).await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the report parser failed");
                self.failed(kind, &mail_from, peer, "internal error")
            }
        }
    }

    /// [`ReportsService::receive`] on the calling thread.
    pub fn receive_blocking(
        &self,
        kind: ReportKind,
        raw: &[u8],
        mail_from: &str,
        peer: IpAddr,
    ) -> Received {
        let docs = match decode::documents(raw, &self.settings.limits) {
            Ok(d) => d,
            Err(e) => return self.failed(kind, mail_from, peer, &e.to_string()),
        };
        let mut parsed = Vec::new();
        for doc in &docs {
            let r = match kind {
                ReportKind::Dmarc => dmarc::parse(doc, self.settings.max_xml_nodes)
                    .map(|d| (d.org_name.clone(), d.report_id.clone(), Some(d), None)),
                ReportKind::Tls => tlsrpt::parse(doc)
                    .map(|t| (t.org_name.clone(), t.report_id.clone(), None, Some(t))),
            };
            match r {
                Ok(x) => parsed.push(x),
                Err(e) => return self.failed(kind, mail_from, peer, &e.to_string()),
            }
        }
        let (mut new, mut duplicate) = (0, 0);
        for (org, id, dmarc, tls) in parsed {
            let rec = StoredReport {
                received_at: crate::util::now_unix(),
                mail_from: mail_from.to_string(),
                peer: peer.to_string(),
                dmarc,
                tls,
            };
            match self.store_report(kind, &org, &id, &rec) {
                Ok(true) => {
                    new += 1;
                    self.count_received(kind, "stored");
                    let _ = self.audit.append(NewEntry {
                        actor: ActorRef::system(),
                        chain: Vec::new(),
                        action: format!("reports.{}.receive", kind.as_str()),
                        target: format!("{org}/{id}"),
                        outcome: Outcome::Ok,
                        detail: serde_json::json!({"from": mail_from, "peer": peer.to_string()}),
                    });
                }
                Ok(false) => {
                    duplicate += 1;
                    self.count_received(kind, "duplicate");
                }
                Err(e) => return self.failed(kind, mail_from, peer, &e.to_string()),
            }
        }
        Received::Stored { new, duplicate }
    }

    fn count_received(&self, kind: ReportKind, outcome: &str) {
        self.metrics
            .reports_received
            .with_label_values(&[kind.as_str(), outcome])
            .inc();
    }

    /// A report that could not be used: counted (store and metrics) and audited, never more.
    fn failed(&self, kind: ReportKind, mail_from: &str, peer: IpAddr, why: &str) -> Received {
        self.count_received(kind, "failed");
        let key = keys::join(&["parse_failures", kind.as_str()]);
        if let Err(e) = self.bump(Tree::ReportsState, &key, 1) {
            tracing::warn!(error = %e, "cannot count a report parse failure");
        }
        let _ = self.audit.append(NewEntry {
            actor: ActorRef::system(),
            chain: Vec::new(),
            action: format!("reports.{}.receive", kind.as_str()),
            target: mail_from.to_string(),
            outcome: Outcome::Error,
            detail: serde_json::json!({"peer": peer.to_string(), "reason": why}),
        });
        Received::Failed(why.to_string())
    }

    /// Reports of `kind` that could not be parsed, ever.
    pub fn parse_failures(&self, kind: ReportKind) -> Result<u64, ReportsError> {
        let key = keys::join(&["parse_failures", kind.as_str()]);
        Ok(self
            .store
            .get(Tree::ReportsState, &key)?
            .and_then(|v| keys::read_u64(&v))
            .unwrap_or(0))
    }

    /// Stores a report unless one with the same reporter and id is there; true if stored.
    fn store_report(
        &self,
        kind: ReportKind,
        org: &str,
        id: &str,
        rec: &StoredReport,
    ) -> Result<bool, ReportsError> {
        let key = keys::join(&[kind.as_str(), &clean(org), &clean(id)]);
        let bytes = crate::store::encode(rec)?;
        let r = self
            .store
            .transact::<bool, ()>(&[Tree::ReportsReceived], |tx| {
                if tx.get(Tree::ReportsReceived, &key)?.is_some() {
                    return Ok(false);
                }
                tx.put(Tree::ReportsReceived, &key, &bytes)?;
                Ok(true)
            });
        tx_result(r)
    }

    /// Adds `n` to the u64 counter at `key`, atomically (concurrent sessions count right).
    fn bump(&self, tree: Tree, key: &[u8], n: u64) -> Result<u64, ReportsError> {
        let r = self.store.transact::<u64, ()>(&[tree], |tx| {
            let cur = tx
                .get(tree, key)?
                .and_then(|v| keys::read_u64(&v))
                .unwrap_or(0);
            let next = cur.saturating_add(n);
            tx.put(tree, key, &keys::u64_key(next))?;
            Ok(next)
        });
        tx_result(r)
    }

    /// Stored reports of `kind`, in key order.
    fn stored(&self, kind: ReportKind) -> Result<Vec<StoredReport>, ReportsError> {
        let mut out = Vec::new();
        for e in self
            .store
            .scan_prefix(Tree::ReportsReceived, &keys::prefix(&[kind.as_str()]))
        {
            let (_, v) = e?;
            match crate::store::decode::<StoredReport>(&v) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable stored report"),
            }
        }
        Ok(out)
    }

    fn require_admin(&self, actor: &Actor, action: &str) -> Result<(), ReportsError> {
        actor.require_admin(&self.audit, action, "reports")?;
        Ok(())
    }

    fn audit_read(&self, actor: &Actor, action: &str) -> Result<(), ReportsError> {
        actor.audit(
            &self.audit,
            action,
            "reports",
            Outcome::Ok,
            serde_json::Value::Null,
        )?;
        Ok(())
    }
}

/// Keys join parts with NUL: a reporter's org or id never carries one into a key.
fn clean(s: &str) -> String {
    s.replace('\0', " ")
}

fn tx_result<T>(r: Result<T, TxError<()>>) -> Result<T, ReportsError> {
    match r {
        Ok(v) => Ok(v),
        Err(TxError::Store(e)) => Err(e.into()),
        Err(TxError::Abort(())) => Err(ReportsError::Invalid("aborted".into())),
    }
}

/// The UTC day (`YYYY-MM-DD`) of a unix time.
pub fn day_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_else(|_| "1970-01-01".into())
}

/// The first second of a `YYYY-MM-DD` day, if it is one.
pub fn day_start(day: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(day, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

/// A query time: RFC 3339, `YYYY-MM-DD` (its first second) or unix seconds.
pub fn parse_time(s: &str) -> Result<i64, ReportsError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Some(t) = day_start(s) {
        return Ok(t);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            ReportsError::Invalid(format!(
                "{s:?} is not an RFC 3339 time, a YYYY-MM-DD day or unix seconds"
            ))
        })
}
