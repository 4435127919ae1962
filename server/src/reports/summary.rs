//! What an operator reads of the received reports: per source IP and per header-from
//! domain for DMARC, per policy domain for TLS-RPT; plus the list of reports. Admin only.

use super::{ReportKind, ReportsError, ReportsService};
use crate::identity::Actor;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Default)]
struct DmarcAgg {
    messages: u64,
    dmarc_pass: u64,
    spf_aligned_pass: u64,
    dkim_aligned_pass: u64,
    dispositions: BTreeMap<String, u64>,
    reporters: BTreeSet<String>,
}

impl DmarcAgg {
    fn json(&self, key: &str, name: &str) -> Value {
        let rate = |n: u64| {
            if self.messages == 0 {
                0.0
            } else {
                n as f64 / self.messages as f64
            }
        };
        json!({
            key: name,
            "messages": self.messages,
            "dmarc_pass_rate": rate(self.dmarc_pass),
            "spf_aligned_pass_rate": rate(self.spf_aligned_pass),
            "dkim_aligned_pass_rate": rate(self.dkim_aligned_pass),
            "dispositions": self.dispositions,
            "reporters": self.reporters,
        })
    }
}

/// Whether a report's range `[begin, end]` meets the query window.
fn in_window(begin: i64, end: i64, since: Option<i64>, until: Option<i64>) -> bool {
    since.is_none_or(|s| end >= s) && until.is_none_or(|u| begin <= u)
}

impl ReportsService {
    /// `GET /v1/reports/dmarc`: the received aggregate reports overlapping `[since, until]`.
    pub fn dmarc_summary(
        &self,
        actor: &Actor,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Value, ReportsError> {
        self.require_admin(actor, "reports.dmarc.read")?;
        let mut by_ip: BTreeMap<String, DmarcAgg> = BTreeMap::new();
        let mut by_from: BTreeMap<String, DmarcAgg> = BTreeMap::new();
        let mut reports = Vec::new();
        let mut total = DmarcAgg::default();
        for s in self.stored(ReportKind::Dmarc)? {
            let Some(r) = s.dmarc else { continue };
            if !in_window(r.begin, r.end, since, until) {
                continue;
            }
            let mut messages = 0;
            for rec in &r.records {
                messages += rec.count;
                let dkim = rec.dkim == "pass";
                let spf = rec.spf == "pass";
                for agg in [
                    by_ip.entry(rec.source_ip.clone()).or_default(),
                    by_from.entry(rec.header_from.clone()).or_default(),
                    &mut total,
                ] {
                    agg.messages += rec.count;
                    agg.dmarc_pass += if dkim || spf { rec.count } else { 0 };
                    agg.spf_aligned_pass += if spf { rec.count } else { 0 };
                    agg.dkim_aligned_pass += if dkim { rec.count } else { 0 };
                    let d = if rec.disposition.is_empty() {
                        "none"
                    } else {
                        &rec.disposition
                    };
                    *agg.dispositions.entry(d.to_string()).or_default() += rec.count;
                    agg.reporters.insert(r.org_name.clone());
                }
            }
            reports.push(json!({
                "org_name": r.org_name,
                "email": r.email,
                "report_id": r.report_id,
                "domain": r.policy.domain,
                "policy": r.policy,
                "begin": crate::util::rfc3339(r.begin),
                "end": crate::util::rfc3339(r.end),
                "records": r.records.len(),
                "messages": messages,
                "received_at": crate::util::rfc3339(s.received_at),
            }));
        }
        self.audit_read(actor, "reports.dmarc.read")?;
        Ok(json!({
            "total": total.json("scope", "all"),
            "by_source_ip": by_ip.iter().map(|(k, a)| a.json("source_ip", k)).collect::<Vec<_>>(),
            "by_header_from": by_from.iter().map(|(k, a)| a.json("header_from", k)).collect::<Vec<_>>(),
            "reports": reports,
            "parse_failures": self.parse_failures(ReportKind::Dmarc)?,
        }))
    }

    /// `GET /v1/reports/tls`: the received TLS-RPT reports overlapping `[since, until]`.
    pub fn tls_summary(
        &self,
        actor: &Actor,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Value, ReportsError> {
        self.require_admin(actor, "reports.tls.read")?;
        #[derive(Default)]
        struct Agg {
            success: u64,
            failure: u64,
            failure_types: BTreeMap<String, u64>,
            reporters: BTreeSet<String>,
        }
        let mut by_policy: BTreeMap<(String, String), Agg> = BTreeMap::new();
        let mut reports = Vec::new();
        for s in self.stored(ReportKind::Tls)? {
            let Some(r) = s.tls else { continue };
            if !in_window(r.begin, r.end, since, until) {
                continue;
            }
            for p in &r.policies {
                let a = by_policy
                    .entry((p.policy_domain.clone(), p.policy_type.clone()))
                    .or_default();
                a.success += p.success;
                a.failure += p.failure;
                for f in &p.failures {
                    *a.failure_types.entry(f.result_type.clone()).or_default() += f.count;
                }
                a.reporters.insert(r.org_name.clone());
            }
            reports.push(json!({
                "org_name": r.org_name,
                "report_id": r.report_id,
                "contact_info": r.contact_info,
                "begin": crate::util::rfc3339(r.begin),
                "end": crate::util::rfc3339(r.end),
                "policies": r.policies,
                "received_at": crate::util::rfc3339(s.received_at),
            }));
        }
        self.audit_read(actor, "reports.tls.read")?;
        let policies: Vec<Value> = by_policy
            .iter()
            .map(|((d, t), a)| {
                json!({
                    "policy_domain": d,
                    "policy_type": t,
                    "success": a.success,
                    "failure": a.failure,
                    "failure_types": a.failure_types,
                    "reporters": a.reporters,
                })
            })
            .collect();
        Ok(json!({
            "policies": policies,
            "reports": reports,
            "parse_failures": self.parse_failures(ReportKind::Tls)?,
        }))
    }
}
