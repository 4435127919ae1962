//! What the reports we send are made of: each inbound DMARC evaluation (one store entry per
//! message, under its day and header-from domain) and each outbound TLS session's outcome (a
//! counter per day, policy, MX and result, bumped in a transaction).

use super::tlsrpt::{TlsFailure, TlsPolicyType};
use super::{day_of, ReportsError, ReportsService};
use crate::mailauth::{relaxed_aligned as aligned, AuthVerdict, PolicyAction};
use crate::store::{keys, Tree};
use serde::{Deserialize, Serialize};

/// One inbound message's DMARC evaluation, as RFC 7489 §7.2 reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmarcEvent {
    pub at: i64,
    pub source_ip: String,
    pub header_from: String,
    pub envelope_from: String,
    /// The domain's published `p=` as evaluated (none when it has no record).
    pub policy: String,
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub spf_domain: String,
    pub spf_result: String,
    /// (domain, selector, result) per signature.
    pub dkim: Vec<(String, String, String)>,
}

impl DmarcEvent {
    pub fn from_verdict(v: &AuthVerdict, envelope_from: &str) -> DmarcEvent {
        let from = v.dmarc.from_domain.to_ascii_lowercase();
        let spf_aligned = v.spf.result.is_pass() && aligned(&v.spf.domain, &from);
        let dkim_aligned = v
            .dkim
            .iter()
            .any(|d| d.result.is_pass() && aligned(&d.domain, &from));
        DmarcEvent {
            at: crate::util::now_unix(),
            source_ip: v.remote_ip.to_string(),
            header_from: from,
            envelope_from: envelope_from
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default(),
            policy: v.dmarc.policy.as_str().to_string(),
            disposition: match v.action() {
                PolicyAction::Reject => "reject",
                PolicyAction::Quarantine => "quarantine",
                PolicyAction::Accept => "none",
            }
            .into(),
            dkim_aligned,
            spf_aligned,
            spf_domain: v.spf.domain.to_ascii_lowercase(),
            spf_result: v.spf.result.as_str().to_string(),
            dkim: v
                .dkim
                .iter()
                .map(|d| {
                    (
                        d.domain.to_ascii_lowercase(),
                        d.selector.clone(),
                        d.result.as_str().to_string(),
                    )
                })
                .collect(),
        }
    }
}

impl ReportsService {
    /// Records an inbound message's DMARC evaluation, when `dmarc.send_reports` is on and the
    /// message had a From domain. Best effort: a failure is logged, never fails the delivery.
    pub fn record_dmarc(&self, verdict: &AuthVerdict, envelope_from: &str) {
        if !self.settings.send_dmarc || verdict.dmarc.from_domain.is_empty() {
            return;
        }
        let e = DmarcEvent::from_verdict(verdict, envelope_from);
        if let Err(err) = self.record_dmarc_event(&e) {
            tracing::warn!(error = %err, "cannot record a DMARC evaluation");
        }
    }

    /// Stores one evaluation under its day (bounded by `dmarc.max_events_per_day`).
    pub fn record_dmarc_event(&self, e: &DmarcEvent) -> Result<(), ReportsError> {
        let day = day_of(e.at);
        let count_key = keys::join(&["dmarc_events", &day]);
        if self.bump(Tree::ReportsState, &count_key, 1)? > self.settings.max_dmarc_events_per_day {
            return Ok(());
        }
        let seq = self.store.next_id()?;
        let key = keys::with_u64(&[&day, &super::clean(&e.header_from)], seq);
        self.store.put_record(Tree::ReportsDmarcEvents, &key, e)?;
        Ok(())
    }

    /// Evaluations of `day` by header-from domain.
    pub fn dmarc_events(
        &self,
        day: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<DmarcEvent>>, ReportsError> {
        let mut out: std::collections::BTreeMap<String, Vec<DmarcEvent>> = Default::default();
        for r in self
            .store
            .scan_prefix(Tree::ReportsDmarcEvents, &keys::prefix(&[day]))
        {
            let (_, v) = r?;
            if let Ok(e) = crate::store::decode::<DmarcEvent>(&v) {
                out.entry(e.header_from.clone()).or_default().push(e);
            }
        }
        Ok(out)
    }

    /// Records one outbound TLS session (RFC 8460 §4): the outbound code calls this once per
    /// session attempt. Counted per UTC day, policy domain and type, MX host and result.
    pub fn record_tls_outcome(
        &self,
        policy_domain: &str,
        policy_type: TlsPolicyType,
        mx_host: &str,
        result: Result<(), TlsFailure>,
    ) {
        let day = day_of(crate::util::now_unix());
        if let Err(e) =
            self.record_tls_outcome_on(&day, policy_domain, policy_type, mx_host, result)
        {
            tracing::warn!(error = %e, "cannot record a TLS outcome");
        }
    }

    /// [`ReportsService::record_tls_outcome`] for a given day (tests and back-fills).
    pub fn record_tls_outcome_on(
        &self,
        day: &str,
        policy_domain: &str,
        policy_type: TlsPolicyType,
        mx_host: &str,
        result: Result<(), TlsFailure>,
    ) -> Result<(), ReportsError> {
        let (res, ip) = match &result {
            Ok(()) => ("ok".to_string(), String::new()),
            Err(f) => (
                f.result_type.as_str().to_string(),
                f.receiving_ip.map(|i| i.to_string()).unwrap_or_default(),
            ),
        };
        let key = keys::join(&[
            day,
            &super::clean(&policy_domain.to_ascii_lowercase()),
            policy_type.as_str(),
            &super::clean(&mx_host.to_ascii_lowercase()),
            &res,
            &ip,
        ]);
        self.bump(Tree::ReportsTlsCounters, &key, 1)?;
        Ok(())
    }

    /// The TLS counters of `day`: policy domain -> rows.
    pub fn tls_counters(
        &self,
        day: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<TlsCounter>>, ReportsError> {
        let mut out: std::collections::BTreeMap<String, Vec<TlsCounter>> = Default::default();
        for r in self
            .store
            .scan_prefix(Tree::ReportsTlsCounters, &keys::prefix(&[day]))
        {
            let (k, v) = r?;
            let parts: Vec<&str> = k
                .split(|b| *b == 0)
                .map(|p| std::str::from_utf8(p).unwrap_or(""))
                .collect();
            let [_, domain, ptype, mx, result, ip] = parts[..] else {
                continue;
            };
            let Some(policy_type) = TlsPolicyType::parse(ptype) else {
                continue;
            };
            out.entry(domain.to_string()).or_default().push(TlsCounter {
                policy_type,
                mx_host: mx.to_string(),
                result: result.to_string(),
                receiving_ip: ip.to_string(),
                count: keys::read_u64(&v).unwrap_or(0),
            });
        }
        Ok(out)
    }
}

/// One counter row of a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCounter {
    pub policy_type: TlsPolicyType,
    pub mx_host: String,
    /// `ok` or an RFC 8460 result type.
    pub result: String,
    pub receiving_ip: String,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_alignment_uses_organizational_domains() {
        assert!(aligned("mail.example.org", "example.org"));
        assert!(aligned("bounces.example.co.uk", "news.example.co.uk"));
        assert!(!aligned("alice.github.io", "github.io"));
        assert!(aligned("example.org", "example.org"));
        assert!(!aligned("example.com", "example.org"));
        assert!(!aligned("", "example.org"));
        assert!(!aligned("badexample.org", "example.org"));
    }

    #[test]
    fn an_evaluation_records_alignment_by_organizational_domain() {
        use crate::mailauth::{
            ArcResult, AuthStatus, DkimResult, DmarcPolicy, DmarcResult, SpfResult, SpfScope,
        };
        let verdict = |spf_domain: &str, dkim_domain: &str| AuthVerdict {
            spf: SpfResult {
                result: AuthStatus::Pass,
                scope: SpfScope::MailFrom,
                domain: spf_domain.into(),
                identity: format!("bounce@{spf_domain}"),
                explanation: None,
            },
            dkim: vec![DkimResult {
                result: AuthStatus::Pass,
                domain: dkim_domain.into(),
                selector: "s1".into(),
                algorithm: "ed25519-sha256".into(),
                reason: None,
            }],
            arc: ArcResult {
                result: AuthStatus::None,
                chain_length: 0,
                reason: None,
            },
            dmarc: DmarcResult {
                result: AuthStatus::Pass,
                policy: DmarcPolicy::None,
                from_domain: "news.example.co.uk".into(),
                reason: None,
            },
            remote_ip: "192.0.2.1".parse().unwrap(),
        };
        // Siblings under one registrable domain align.
        let e = DmarcEvent::from_verdict(
            &verdict("bounces.example.co.uk", "example.co.uk"),
            "bounce@bounces.example.co.uk",
        );
        assert!(e.spf_aligned && e.dkim_aligned, "{e:?}");
        // Another registrable domain under the same public suffix does not.
        let e = DmarcEvent::from_verdict(
            &verdict("other.co.uk", "mailer.other.co.uk"),
            "bounce@other.co.uk",
        );
        assert!(!e.spf_aligned && !e.dkim_aligned, "{e:?}");
    }
}
