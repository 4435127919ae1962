//! Planned record vs what DNS answers: ok, missing or wrong, with the exact fix. Pure, so
//! every tolerance rule (trailing dots, case, TXT strings, unrelated TXT at the apex) is
//! tested without a network.

use super::plan::{Note, PlannedRecord, RecordType};
use super::render::zone_lines;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    Wrong,
    /// The lookup itself failed (timeout, SERVFAIL): nothing is known about the record.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::Wrong => "wrong",
            Self::Error => "error",
        }
    }
}

/// What a lookup gave: the values in presentation form (TXT strings joined), or why not.
/// NXDOMAIN and NODATA are an empty answer, not a failure.
pub type Answer = Result<Vec<String>, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCheck {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub status: Status,
    pub purpose: String,
    pub expected: Vec<String>,
    pub found: Vec<String>,
    /// Zone-file lines to publish (and, for wrong records, what to replace); empty when ok.
    pub fix: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Domain names compare without case or the trailing dot.
fn norm_name(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Normalises one value of a record type so equal data compares equal.
fn norm_value(rtype: RecordType, v: &str) -> String {
    match rtype {
        RecordType::TXT => norm_txt(v),
        RecordType::A | RecordType::AAAA => v
            .trim()
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_else(|_| v.trim().to_ascii_lowercase()),
        RecordType::CNAME => norm_name(v),
        // "3 1 1 ABCD..": numbers as numbers, the hex data in lower case and unbroken.
        RecordType::TLSA => {
            let fields: Vec<&str> = v.split_whitespace().collect();
            match fields.as_slice() {
                [u, s, m, hex @ ..] => format!(
                    "{} {} {} {}",
                    u.parse::<u8>().map_or(u.to_string(), |n| n.to_string()),
                    s.parse::<u8>().map_or(s.to_string(), |n| n.to_string()),
                    m.parse::<u8>().map_or(m.to_string(), |n| n.to_string()),
                    hex.concat().to_ascii_lowercase()
                ),
                _ => v.trim().to_ascii_lowercase(),
            }
        }
        // "10 host." and "0 1 587 host.": numbers as numbers, the last field a name.
        RecordType::MX | RecordType::SRV => {
            let fields: Vec<&str> = v.split_whitespace().collect();
            match fields.split_last() {
                Some((host, nums)) => {
                    let mut out: Vec<String> = nums
                        .iter()
                        .map(|n| n.parse::<u32>().map_or(n.to_string(), |n| n.to_string()))
                        .collect();
                    let host = norm_name(host);
                    out.push(if host.is_empty() { ".".into() } else { host });
                    out.join(" ")
                }
                None => String::new(),
            }
        }
    }
}

/// Tag-value records (DKIM, DMARC, MTA-STS, TLS-RPT) ignore whitespace around tags and a
/// final `;`; SPF is whitespace-separated and case-insensitive (RFC 7208 §4.6.1).
fn norm_txt(v: &str) -> String {
    let v = v.trim();
    if tag(v) == "v=spf1" {
        return v
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
    }
    v.split(';')
        .map(|t| t.split_whitespace().collect::<String>())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(";")
}

/// The version tag a TXT record starts with (`v=spf1`, `v=dkim1`, ...), lowercase. Records
/// with different tags at one name (SPF next to a site verification) are unrelated.
fn tag(v: &str) -> String {
    v.trim()
        .split([';', ' ', '\t'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Compares one planned record set with the live answer for its name and type.
///
/// TXT: only live values with the planned value's version tag are ours to judge, except at
/// names that exist only for legate (anything below the domain), where any TXT is judged.
/// Exactly one matching value is ok; two values with one tag (two SPF records) are wrong,
/// since receivers treat that as an error. Other types: the live set must equal the plan.
pub fn compare(record: &PlannedRecord, domain: &str, answer: Answer) -> RecordCheck {
    let mut check = RecordCheck {
        name: record.name.clone(),
        rtype: record.rtype.as_str().into(),
        status: Status::Ok,
        purpose: record.purpose.clone(),
        expected: record.values.clone(),
        found: Vec::new(),
        fix: Vec::new(),
        message: String::new(),
    };
    let live = match answer {
        Ok(v) => v,
        Err(e) => {
            check.status = Status::Error;
            check.message = format!("lookup failed: {e}");
            check.fix = zone_lines(record);
            return check;
        }
    };
    let rtype = record.rtype;
    let dedicated = norm_name(&record.name) != norm_name(domain);
    let status = if rtype == RecordType::TXT {
        let mut relevant_any = false;
        let mut all_ok = true;
        for want in &record.values {
            let relevant: Vec<&String> = live
                .iter()
                .filter(|v| dedicated || tag(v) == tag(want))
                .collect();
            relevant_any |= !relevant.is_empty();
            check.found.extend(relevant.iter().map(|v| (*v).clone()));
            let ok = relevant.len() == 1
                && relevant
                    .first()
                    .is_some_and(|v| norm_txt(v) == norm_txt(want));
            all_ok &= ok;
        }
        check.found.dedup();
        if all_ok {
            Status::Ok
        } else if relevant_any {
            Status::Wrong
        } else {
            Status::Missing
        }
    } else {
        check.found = live.clone();
        let mut want: Vec<String> = record.values.iter().map(|v| norm_value(rtype, v)).collect();
        let mut have: Vec<String> = live.iter().map(|v| norm_value(rtype, v)).collect();
        want.sort();
        want.dedup();
        have.sort();
        have.dedup();
        if have == want {
            Status::Ok
        } else if have.is_empty() {
            Status::Missing
        } else {
            Status::Wrong
        }
    };
    check.status = status;
    match status {
        Status::Ok => {}
        Status::Missing => {
            check.message = "not published".into();
            check.fix = zone_lines(record);
        }
        _ => {
            check.message = format!(
                "published with different data; replace the {} {} record(s) found with:",
                record.name,
                rtype.as_str()
            );
            check.fix = zone_lines(record);
        }
    }
    check
}

/// A note about the host's addresses is satisfied by any A or AAAA answer.
pub fn compare_note(note: &Note, a: Answer, aaaa: Answer) -> RecordCheck {
    let mut check = RecordCheck {
        name: note.name.clone(),
        rtype: note.rtype.clone(),
        status: Status::Ok,
        purpose: note.text.clone(),
        expected: Vec::new(),
        found: Vec::new(),
        fix: Vec::new(),
        message: String::new(),
    };
    let mut errors = Vec::new();
    for answer in [a, aaaa] {
        match answer {
            Ok(v) => check.found.extend(v),
            Err(e) => errors.push(e),
        }
    }
    if check.found.is_empty() {
        if errors.is_empty() {
            check.status = Status::Missing;
            check.message = "the mail host has no address".into();
            check.fix = vec![format!("; {}", note.text)];
        } else {
            check.status = Status::Error;
            check.message = format!("lookup failed: {}", errors.join("; "));
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, rtype: RecordType, values: &[&str]) -> PlannedRecord {
        PlannedRecord {
            name: name.into(),
            rtype,
            ttl: 300,
            values: values.iter().map(|v| v.to_string()).collect(),
            purpose: "p".into(),
        }
    }

    fn live(v: &[&str]) -> Answer {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    const D: &str = "d.test";

    #[test]
    fn mx_tolerates_case_dots_and_spacing() {
        let r = rec(D, RecordType::MX, &["10 mx.d.test."]);
        assert_eq!(compare(&r, D, live(&["10  MX.D.TEST"])).status, Status::Ok);
        let wrong = compare(&r, D, live(&["20 mx.d.test."]));
        assert_eq!(wrong.status, Status::Wrong);
        assert_eq!(wrong.fix, ["d.test. 300 IN MX 10 mx.d.test."]);
        assert_eq!(wrong.found, ["20 mx.d.test."]);
        let extra = compare(&r, D, live(&["10 mx.d.test.", "20 backup.other."]));
        assert_eq!(extra.status, Status::Wrong, "mail could go elsewhere");
        let missing = compare(&r, D, live(&[]));
        assert_eq!(missing.status, Status::Missing);
        assert_eq!(missing.fix, ["d.test. 300 IN MX 10 mx.d.test."]);
    }

    #[test]
    fn txt_joins_and_ignores_unrelated_values_at_the_apex() {
        let spf = rec(D, RecordType::TXT, &["v=spf1 mx -all"]);
        let ok = compare(
            &spf,
            D,
            live(&["google-site-verification=abc", "v=spf1  MX -all"]),
        );
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert_eq!(ok.found, ["v=spf1  MX -all"]);
        assert_eq!(
            compare(&spf, D, live(&["google-site-verification=abc"])).status,
            Status::Missing
        );
        let two = compare(&spf, D, live(&["v=spf1 mx -all", "v=spf1 a -all"]));
        assert_eq!(two.status, Status::Wrong, "two SPF records are a permerror");
        let other = compare(&spf, D, live(&["v=spf1 a ~all"]));
        assert_eq!(other.status, Status::Wrong);
        assert_eq!(other.fix, ["d.test. 300 IN TXT \"v=spf1 mx -all\""]);
    }

    #[test]
    fn tag_value_records_ignore_spacing_but_not_key_bytes() {
        let key = format!("v=DKIM1; k=rsa; p={}", "A".repeat(300));
        let r = rec("s._domainkey.d.test", RecordType::TXT, &[&key]);
        // A resolver hands back the 255-byte strings joined; spaces after ';' may differ.
        let joined = key.replace("; ", ";");
        assert_eq!(compare(&r, D, live(&[&joined])).status, Status::Ok);
        let tampered = key.replacen("AAAA", "AAAB", 1);
        let w = compare(&r, D, live(&[&tampered]));
        assert_eq!(w.status, Status::Wrong);
        assert!(w.fix[0].starts_with("s._domainkey.d.test. 300 IN TXT \"v=DKIM1; k=rsa; p=AAA"));
        assert!(w.fix[0].contains("\" \""), "long value is split in the fix");
        // At a name that exists only for legate, any TXT is judged (no v= tag needed).
        let dmarc = rec(
            "_dmarc.d.test",
            RecordType::TXT,
            &["v=DMARC1; p=quarantine"],
        );
        assert_eq!(compare(&dmarc, D, live(&["p=none"])).status, Status::Wrong);
        assert_eq!(
            compare(&dmarc, D, live(&["v=DMARC1;p=quarantine;"])).status,
            Status::Ok
        );
    }

    #[test]
    fn srv_cname_and_addresses() {
        let srv = rec("_imap._tcp.d.test", RecordType::SRV, &["0 0 0 ."]);
        assert_eq!(compare(&srv, D, live(&["0 0 0 ."])).status, Status::Ok);
        assert_eq!(
            compare(&srv, D, live(&["10 1 143 mx.d.test."])).status,
            Status::Wrong
        );
        let cname = rec("autoconfig.d.test", RecordType::CNAME, &["mx.d.test."]);
        assert_eq!(compare(&cname, D, live(&["MX.d.test"])).status, Status::Ok);
        let a = rec("mx.d.test", RecordType::AAAA, &["2001:db8::1"]);
        assert_eq!(
            compare(&a, D, live(&["2001:0db8:0:0::1"])).status,
            Status::Ok
        );
    }

    #[test]
    fn lookup_errors_are_reported_not_hidden() {
        let r = rec(D, RecordType::MX, &["10 mx.d.test."]);
        let c = compare(&r, D, Err("timed out".into()));
        assert_eq!(c.status, Status::Error);
        assert!(c.message.contains("timed out"));
        assert!(!c.fix.is_empty());
    }

    #[test]
    fn address_note() {
        let n = Note {
            name: "mx.d.test".into(),
            rtype: "A/AAAA".into(),
            text: "publish it".into(),
        };
        assert_eq!(
            compare_note(&n, live(&["192.0.2.1"]), live(&[])).status,
            Status::Ok
        );
        let m = compare_note(&n, live(&[]), live(&[]));
        assert_eq!(m.status, Status::Missing);
        assert_eq!(m.fix, ["; publish it"]);
        assert_eq!(
            compare_note(&n, Err("x".into()), live(&[])).status,
            Status::Error
        );
    }
}
