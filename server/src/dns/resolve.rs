//! Live lookups for `legate dns check`: one hickory resolver per check (no cache carried over,
//! so a record fixed a minute ago is seen), every query in parallel, answers turned into the
//! presentation strings `compare` understands.

use super::compare::{compare, compare_note, Answer, RecordCheck, Status};
use super::plan::{Plan, RecordType};
use super::DnsError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType as HRecordType};
use hickory_resolver::TokioResolver;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The outcome of a check: every planned record (and note) with its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub domain: String,
    /// True when every record is ok.
    pub ok: bool,
    /// The nameservers asked; empty means the system resolver.
    pub nameservers: Vec<String>,
    pub records: Vec<RecordCheck>,
}

fn resolver(nameservers: &[SocketAddr], timeout: Duration) -> Result<TokioResolver, DnsError> {
    let cfg = crate::mailauth::ResolverConfig {
        nameservers: nameservers.to_vec(),
        timeout,
    };
    let (config, mut opts) = cfg.hickory().map_err(DnsError::Resolver)?;
    opts.attempts = 1;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| DnsError::Resolver(e.to_string()))
}

fn htype(t: RecordType) -> HRecordType {
    match t {
        RecordType::MX => HRecordType::MX,
        RecordType::A => HRecordType::A,
        RecordType::AAAA => HRecordType::AAAA,
        RecordType::TXT => HRecordType::TXT,
        RecordType::CNAME => HRecordType::CNAME,
        RecordType::SRV => HRecordType::SRV,
        RecordType::TLSA => HRecordType::TLSA,
    }
}

/// One value in presentation form; TXT character-strings joined (RFC 6376 §3.6.2.2, RFC 7208
/// §3.3: a record split into strings means their concatenation).
fn present(rdata: &RData) -> Option<String> {
    Some(match rdata {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::MX(mx) => format!("{} {}", mx.preference, mx.exchange),
        RData::SRV(s) => format!("{} {} {} {}", s.priority, s.weight, s.port, s.target),
        RData::CNAME(c) => c.0.to_string(),
        RData::TLSA(t) => format!(
            "{} {} {} {}",
            u8::from(t.cert_usage),
            u8::from(t.selector),
            u8::from(t.matching),
            data_encoding::HEXLOWER.encode(&t.cert_data)
        ),
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect::<String>(),
        _ => return None,
    })
}

async fn lookup(resolver: TokioResolver, name: String, rtype: RecordType) -> Answer {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let name = Name::from_ascii(&fqdn).map_err(|e| format!("bad name {fqdn}: {e}"))?;
    let want = htype(rtype);
    match resolver.lookup(name, want).await {
        Ok(answer) => Ok(answer
            .answers()
            .iter()
            .filter(|r| r.record_type() == want)
            .filter_map(|r| present(&r.data))
            .collect()),
        Err(e) if e.is_no_records_found() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Forward-confirmed reverse DNS of `ip` (what receivers check of a sending host): the PTR
/// names, and for each whether it resolves back to `ip`.
pub async fn reverse_confirmed(
    ip: std::net::IpAddr,
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<(String, bool)>, DnsError> {
    let resolver = resolver(nameservers, timeout)?;
    let names: Vec<String> = match resolver.reverse_lookup(ip).await {
        Ok(r) => r
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::PTR(p) => Some(p.0.to_string().trim_end_matches('.').to_string()),
                _ => None,
            })
            .collect(),
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => return Err(DnsError::Resolver(e.to_string())),
    };
    let mut out = Vec::new();
    for n in names {
        let t = if ip.is_ipv4() {
            RecordType::A
        } else {
            RecordType::AAAA
        };
        let back = lookup(resolver.clone(), n.clone(), t)
            .await
            .unwrap_or_default();
        let ok = back
            .iter()
            .any(|a| a.parse::<std::net::IpAddr>().ok() == Some(ip));
        out.push((n, ok));
    }
    Ok(out)
}

/// Resolves every record of `plan` and compares it with the plan.
pub async fn check(
    plan: &Plan,
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<CheckReport, DnsError> {
    let resolver = resolver(nameservers, timeout)?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, r) in plan.records.iter().enumerate() {
        let (res, name, t) = (resolver.clone(), r.name.clone(), r.rtype);
        tasks.spawn(async move { (i, 0, lookup(res, name, t).await) });
    }
    // Notes ask for the host's addresses: A and AAAA, answered at index records.len() + i.
    let base = plan.records.len();
    for (i, n) in plan.notes.iter().enumerate() {
        for (k, t) in [(1, RecordType::A), (2, RecordType::AAAA)] {
            let (res, name) = (resolver.clone(), n.name.clone());
            tasks.spawn(async move { (base + i, k, lookup(res, name, t).await) });
        }
    }
    let mut answers: Vec<[Option<Answer>; 3]> = (0..base + plan.notes.len())
        .map(|_| [None, None, None])
        .collect();
    while let Some(done) = tasks.join_next().await {
        let (i, k, answer) = done.map_err(|e| DnsError::Resolver(e.to_string()))?;
        if let Some(slot) = answers.get_mut(i).and_then(|a| a.get_mut(k)) {
            *slot = Some(answer);
        }
    }
    let missing = || Err::<Vec<String>, String>("no answer".into());
    let mut records = Vec::new();
    for (r, a) in plan.records.iter().zip(answers.iter_mut()) {
        records.push(compare(
            r,
            &plan.domain,
            a[0].take().unwrap_or_else(missing),
        ));
    }
    for (n, a) in plan.notes.iter().zip(answers.iter_mut().skip(base)) {
        if n.rtype == "A/AAAA" {
            records.push(compare_note(
                n,
                a[1].take().unwrap_or_else(missing),
                a[2].take().unwrap_or_else(missing),
            ));
        }
    }
    Ok(CheckReport {
        domain: plan.domain.clone(),
        ok: records.iter().all(|r| r.status == Status::Ok),
        nameservers: nameservers.iter().map(|a| a.to_string()).collect(),
        records,
    })
}

/// The report as the CLI prints it: one line per record, the fix under anything not ok.
pub fn report_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for r in &report.records {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Missing => "MISSING",
            Status::Wrong => "WRONG",
            Status::Error => "ERROR",
        };
        out.push_str(&format!("{status:<8} {:<6} {}\n", r.rtype, r.name));
        if r.status == Status::Ok {
            continue;
        }
        if !r.message.is_empty() {
            out.push_str(&format!("         {}\n", r.message));
        }
        for f in &r.found {
            out.push_str(&format!("         found:   {f}\n"));
        }
        for f in &r.fix {
            out.push_str(&format!("         publish: {f}\n"));
        }
    }
    let bad = report
        .records
        .iter()
        .filter(|r| r.status != Status::Ok)
        .count();
    if bad == 0 {
        out.push_str(&format!(
            "all {} records of {} are ok\n",
            report.records.len(),
            report.domain
        ));
    } else {
        out.push_str(&format!(
            "{bad} of {} records of {} need attention\n",
            report.records.len(),
            report.domain
        ));
    }
    out
}
