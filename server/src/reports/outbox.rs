//! Sending the daily reports: who asks for them (`rua` in `_dmarc` and `_smtp._tls` TXT,
//! with RFC 7489 §7.1 external destination verification), the message around the gzipped
//! report (RFC 7489 §7.2.1.1, RFC 8460 §5.3), and the way out: the queue (DKIM-signed, from
//! the agent holding `dmarc-reports@` / `tls-reports@`) or, for TLS-RPT `https:`, a POST
//! that only reaches public addresses.

use super::{day_of, gzip, ReportKind, ReportsError, ReportsService};
use crate::identity::{Actor, IdentityService, Principal, ScopeSet};
use crate::queue::{QueueService, SendAudit};
use crate::store::{keys, Tree};
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::hickory_resolver::TokioResolver;
use std::sync::Arc;

/// How reports leave: set once the queue and a resolver exist (`app`).
pub struct Outbox {
    pub queue: Arc<QueueService>,
    pub identity: Arc<IdentityService>,
    pub resolver: TokioResolver,
}

/// A resolver over `[dns]` for the `rua` lookups.
pub fn resolver(cfg: &crate::mailauth::ResolverConfig) -> Result<TokioResolver, String> {
    let (config, opts) = cfg.hickory()?;
    TokioResolver::builder_with_config(
        config,
        mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(|e| e.to_string())
}

/// What one run of the daily job did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SendSummary {
    pub sent: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl Outbox {
    async fn txt(&self, name: &str) -> Vec<String> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        match self.resolver.txt_lookup(fqdn.as_str()).await {
            Ok(l) => l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The `rua=` URIs of a tag-list record whose `v=` is `version`.
pub fn rua_of(records: &[String], version: &str) -> Vec<String> {
    let Some(rec) = records.iter().find(|r| {
        r.split(';')
            .next()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(&format!("v={version}")))
    }) else {
        return Vec::new();
    };
    rec.split(';')
        .filter_map(|t| t.trim().split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("rua"))
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|u| u.trim().to_string())
                .collect::<Vec<_>>()
        })
        // RFC 7489 §6.2: a `!size` suffix bounds the report size; ours are small.
        .map(|u| u.split('!').next().unwrap_or_default().to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

impl ReportsService {
    /// Wires the way out (once; later calls are ignored).
    pub fn set_outbox(&self, o: Outbox) {
        let _ = self.outbox.set(o);
    }

    /// The reports of every day before today not sent yet (the daily job; a test or the
    /// operator may call it at any time: a day and domain is only ever sent once).
    pub async fn send_due(&self) -> Result<SendSummary, ReportsError> {
        let now = crate::util::now_unix();
        let yesterday = day_of(now - 86_400);
        let sum = self.send_day(&yesterday).await?;
        // What reports are made of is kept a week past its day, then dropped.
        self.prune_before(&day_of(now - 8 * 86_400))?;
        Ok(sum)
    }

    /// Removes recorded evaluations and TLS counters of days before `day`.
    pub fn prune_before(&self, day: &str) -> Result<usize, ReportsError> {
        let mut n = 0;
        for tree in [Tree::ReportsDmarcEvents, Tree::ReportsTlsCounters] {
            let old: Vec<Vec<u8>> = self
                .store
                .range(
                    tree,
                    std::ops::Bound::Unbounded,
                    std::ops::Bound::Excluded(day.as_bytes().to_vec()),
                    false,
                )
                .filter_map(|r| r.ok().map(|(k, _)| k))
                .collect();
            for k in old {
                self.store.remove(tree, &k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// `legate reports send`: the job now, for `day` (default: yesterday). Admin, audited.
    pub async fn send_now(
        &self,
        actor: &Actor,
        day: Option<&str>,
    ) -> Result<SendSummary, ReportsError> {
        self.require_admin(actor, "reports.send")?;
        let day = match day {
            Some(d) => d.to_string(),
            None => day_of(crate::util::now_unix() - 86_400),
        };
        if super::day_start(&day).is_none() {
            return Err(ReportsError::Invalid(format!(
                "{day:?} is not a YYYY-MM-DD day"
            )));
        }
        let sum = self.send_day(&day).await?;
        actor.audit(
            &self.audit,
            "reports.send",
            &day,
            crate::audit::Outcome::Ok,
            serde_json::json!({"sent": sum.sent, "skipped": sum.skipped, "failed": sum.failed}),
        )?;
        Ok(sum)
    }

    /// The reports of `day`, for each domain that asks for them.
    pub async fn send_day(&self, day: &str) -> Result<SendSummary, ReportsError> {
        let mut sum = SendSummary::default();
        let Some(out) = self.outbox.get() else {
            return Ok(sum);
        };
        if self.settings.send_dmarc {
            for domain in self.dmarc_events(day)?.into_keys() {
                let r = self.send_one(out, ReportKind::Dmarc, &domain, day).await;
                self.tally(ReportKind::Dmarc, r, &mut sum);
            }
        }
        if self.settings.send_tls {
            for domain in self.tls_counters(day)?.into_keys() {
                let r = self.send_one(out, ReportKind::Tls, &domain, day).await;
                self.tally(ReportKind::Tls, r, &mut sum);
            }
        }
        Ok(sum)
    }

    fn tally(&self, kind: ReportKind, r: Result<bool, ReportsError>, sum: &mut SendSummary) {
        let outcome = match r {
            Ok(true) => {
                sum.sent += 1;
                "sent"
            }
            Ok(false) => {
                sum.skipped += 1;
                "skipped"
            }
            Err(e) => {
                tracing::warn!(error = %e, kind = kind.as_str(), "a report could not be sent");
                sum.failed += 1;
                "failed"
            }
        };
        self.metrics
            .reports_sent
            .with_label_values(&[kind.as_str(), outcome])
            .inc();
    }

    /// Sends one report; false when there was nobody to send it to (or it went already).
    async fn send_one(
        &self,
        out: &Outbox,
        kind: ReportKind,
        domain: &str,
        day: &str,
    ) -> Result<bool, ReportsError> {
        let mark = keys::join(&["sent", kind.as_str(), day, &super::clean(domain)]);
        if self.store.get(Tree::ReportsState, &mark)?.is_some() {
            return Ok(false);
        }
        let targets = match kind {
            ReportKind::Dmarc => self.dmarc_targets(out, domain).await,
            ReportKind::Tls => rua_of(&out.txt(&format!("_smtp._tls.{domain}")).await, "TLSRPTv1"),
        };
        if targets.is_empty() {
            return Ok(false);
        }
        let doc = self.build(kind, domain, day)?;
        let begin = super::day_start(day).unwrap_or_default();
        let end = begin + 86_399;
        let ours = &self.settings.domain;
        let (ext, ct) = match kind {
            ReportKind::Dmarc => ("xml.gz", "application/gzip"),
            ReportKind::Tls => ("json.gz", "application/tlsrpt+gzip"),
        };
        let filename = format!("{ours}!{domain}!{begin}!{end}.{ext}");
        let packed = gzip(doc.as_bytes());
        let mut any = false;
        for t in &targets {
            if let Some(addr) = t.strip_prefix("mailto:") {
                let raw = message(kind, ours, domain, addr, &filename, ct, &packed, begin);
                self.enqueue(out, kind, addr, raw).await?;
                any = true;
            } else if kind == ReportKind::Tls
                && (t.starts_with("https://")
                    || (self.settings.danger_allow_private_report_urls && t.starts_with("http://")))
            {
                self.post(t, &packed).await?;
                any = true;
            }
        }
        if any {
            self.store.put(Tree::ReportsState, &mark, &[])?;
        }
        Ok(any)
    }

    /// The verified `mailto:` targets of `domain`'s DMARC record (RFC 7489 §7.1): a target
    /// in another organizational domain (Public Suffix List) must publish `<domain>._report._dmarc.<target domain>` `v=DMARC1`.
    async fn dmarc_targets(&self, out: &Outbox, domain: &str) -> Vec<String> {
        let mut ok = Vec::new();
        for u in rua_of(&out.txt(&format!("_dmarc.{domain}")).await, "DMARC1") {
            let Some(addr) = u.strip_prefix("mailto:") else {
                continue;
            };
            let Some((_, rua_domain)) = addr.rsplit_once('@') else {
                continue;
            };
            if !crate::mailauth::relaxed_aligned(rua_domain, domain) {
                let name = format!("{domain}._report._dmarc.{rua_domain}");
                let recs = out.txt(&name).await;
                if !recs
                    .iter()
                    .any(|r| r.trim_start().to_ascii_lowercase().starts_with("v=dmarc1"))
                {
                    tracing::info!(
                        domain,
                        rua = addr,
                        "rua not verified (RFC 7489 §7.1); not sent"
                    );
                    continue;
                }
            }
            ok.push(u);
        }
        ok
    }

    async fn enqueue(
        &self,
        out: &Outbox,
        kind: ReportKind,
        to: &str,
        raw: Vec<u8>,
    ) -> Result<(), ReportsError> {
        let from = match kind {
            ReportKind::Dmarc => format!("dmarc-reports@{}", self.settings.domain),
            ReportKind::Tls => format!("tls-reports@{}", self.settings.domain),
        };
        // The queue sends as an agent: the one an admin made for the report address.
        let agent = out
            .identity
            .agent_by_address(&from)
            .map_err(|e| ReportsError::Send(e.to_string()))?
            .filter(|a| a.is_active())
            .ok_or_else(|| {
                ReportsError::Send(format!("no active agent holds {from} to send reports as"))
            })?;
        let actor = Actor {
            principal: Principal::Agent {
                id: agent.id.clone(),
                address: agent.address(),
                org_id: agent.org_id.clone(),
            },
            key_id: "reports".into(),
            scopes: ScopeSet::all(),
            chain: agent.chain.clone(),
        };
        let audit = SendAudit {
            actor: &actor,
            action: "reports.send",
            extra: serde_json::json!({"kind": kind.as_str()}),
            best_effort: true,
            sent_copy: true,
        };
        out.queue
            .enqueue(&agent, &[to.to_string()], raw, None, audit)
            .await
            .map_err(|e| ReportsError::Send(e.to_string()))?;
        Ok(())
    }

    /// RFC 8460 §5.4: POST the gzipped report; only public addresses unless the danger flag.
    async fn post(&self, url: &str, body: &[u8]) -> Result<(), ReportsError> {
        let mut b = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if !self.settings.danger_allow_private_report_urls {
            b = b
                .https_only(true)
                .dns_resolver(Arc::new(crate::net::GuardedResolver {
                    allow: crate::net::AllowPrivate::default(),
                }));
        }
        let client = b.build().map_err(|e| ReportsError::Send(e.to_string()))?;
        let r = client
            .post(url)
            .header("content-type", "application/tlsrpt+gzip")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| ReportsError::Send(format!("POST {url}: {e}")))?;
        if !r.status().is_success() {
            return Err(ReportsError::Send(format!("POST {url}: {}", r.status())));
        }
        Ok(())
    }
}

/// The report message: a short text part and the gzipped report (RFC 7489 §7.2.1.1 subject;
/// RFC 8460 §5.3 headers and `multipart/report; report-type="tlsrpt"`).
#[allow(clippy::too_many_arguments)]
fn message(
    kind: ReportKind,
    ours: &str,
    domain: &str,
    to: &str,
    filename: &str,
    ct: &str,
    packed: &[u8],
    begin: i64,
) -> Vec<u8> {
    let id = format!("{begin}.{domain}@{ours}");
    let boundary = format!("rpt_{}", crate::util::new_id("b"));
    let from = match kind {
        ReportKind::Dmarc => format!("dmarc-reports@{ours}"),
        ReportKind::Tls => format!("tls-reports@{ours}"),
    };
    let mut h = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: Report Domain: {domain} Submitter: {ours} Report-ID: <{id}>\r\nDate: {}\r\nMessage-ID: <{}@{ours}>\r\nMIME-Version: 1.0\r\n",
        crate::util::rfc2822(crate::util::now_unix()),
        crate::util::new_id("r"),
    );
    let text = match kind {
        ReportKind::Dmarc => {
            h.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n"
            ));
            format!("This is a DMARC aggregate report for {domain} from {ours}.")
        }
        ReportKind::Tls => {
            h.push_str(&format!(
                "TLS-Report-Domain: {domain}\r\nTLS-Report-Submitter: {ours}\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n"
            ));
            format!("This is an aggregate TLS report for {domain} from {ours}.")
        }
    };
    let b64 = data_encoding::BASE64.encode(packed);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "{h}\r\n--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}\r\n--{boundary}\r\nContent-Type: {ct}; name=\"{filename}\"\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--{boundary}--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rua_tags() {
        let r = vec![
            "v=spf1 -all".to_string(),
            "v=DMARC1; p=reject; rua=mailto:a@x.example!10m, mailto:b@y.example; ruf=mailto:f@x"
                .into(),
        ];
        assert_eq!(
            rua_of(&r, "DMARC1"),
            vec!["mailto:a@x.example", "mailto:b@y.example"]
        );
        let t = vec!["v=TLSRPTv1; rua=mailto:t@x.example,https://r.x.example/v1".to_string()];
        assert_eq!(rua_of(&t, "TLSRPTv1").len(), 2);
        assert!(rua_of(&t, "DMARC1").is_empty());
    }

    #[test]
    fn the_message_names_the_report() {
        let m = message(
            ReportKind::Tls,
            "legate.test",
            "example.org",
            "t@example.org",
            "f.json.gz",
            "application/tlsrpt+gzip",
            b"x",
            0,
        );
        let s = String::from_utf8(m).unwrap();
        assert!(s.contains("Subject: Report Domain: example.org Submitter: legate.test Report-ID: <0.example.org@legate.test>"));
        assert!(s.contains("TLS-Report-Domain: example.org"));
        assert!(s.contains("report-type=\"tlsrpt\""));
        assert!(s.contains("Content-Type: application/tlsrpt+gzip"));
    }
}
