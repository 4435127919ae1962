//! The reports we send, built for one day and domain from what `record` kept. `generate`
//! is what the daily job sends and what `legate reports generate` prints.

use super::generate::Reporter;
use super::{day_start, ReportKind, ReportsError, ReportsService};
use crate::identity::Actor;

impl ReportsService {
    /// The report of `kind` about `domain` for the UTC `day` (`YYYY-MM-DD`): the aggregate
    /// XML or the TLS-RPT JSON, as it would be attached (before gzip). Admin only, audited.
    pub fn generate(
        &self,
        actor: &Actor,
        kind: ReportKind,
        domain: &str,
        day: &str,
    ) -> Result<String, ReportsError> {
        let action = format!("reports.{}.generate", kind.as_str());
        self.require_admin(actor, &action)?;
        let doc = self.build(kind, domain, day)?;
        self.audit_read(actor, &action)?;
        Ok(doc)
    }

    /// [`ReportsService::generate`] without the actor (the daily job).
    pub fn build(&self, kind: ReportKind, domain: &str, day: &str) -> Result<String, ReportsError> {
        let begin = day_start(day)
            .ok_or_else(|| ReportsError::Invalid(format!("{day:?} is not a YYYY-MM-DD day")))?;
        let end = begin + 86_399;
        let domain = domain.to_ascii_lowercase();
        let email = match kind {
            ReportKind::Dmarc => format!("dmarc-reports@{}", self.settings.domain),
            ReportKind::Tls => format!("tls-reports@{}", self.settings.domain),
        };
        let reporter = Reporter {
            org_name: &self.settings.domain,
            email: &email,
        };
        match kind {
            ReportKind::Dmarc => {
                let events = self.dmarc_events(day)?.remove(&domain).unwrap_or_default();
                Ok(super::dmarc_report_xml(
                    &reporter, &domain, begin, end, &events,
                ))
            }
            ReportKind::Tls => {
                let rows = self.tls_counters(day)?.remove(&domain).unwrap_or_default();
                let v = super::tls_report_json(&reporter, &domain, begin, end, &rows);
                serde_json::to_string_pretty(&v).map_err(|e| ReportsError::Invalid(e.to_string()))
            }
        }
    }
}
