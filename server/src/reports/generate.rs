//! The reports we send: the RFC 7489 appendix C aggregate XML (elements in the XSD's order;
//! only what that schema allows, so both the 2015 and the DMARCbis readers accept it) and
//! the RFC 8460 §4 TLS-RPT JSON.

use super::record::{DmarcEvent, TlsCounter};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The sender of a report: our domain and its contact address.
pub struct Reporter<'a> {
    pub org_name: &'a str,
    pub email: &'a str,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

/// What RFC 7489's `DKIMResultType` allows.
fn dkim_result(r: &str) -> &str {
    match r {
        "pass" | "fail" | "neutral" | "none" | "temperror" | "permerror" | "policy" => r,
        "softfail" => "fail",
        _ => "none",
    }
}

fn spf_result(r: &str) -> &str {
    match r {
        "pass" | "fail" | "softfail" | "neutral" | "none" | "temperror" | "permerror" => r,
        _ => "none",
    }
}

/// The aggregate report for `domain` over `[begin, end]` from `events` (all of that domain).
pub fn dmarc_report_xml(
    reporter: &Reporter<'_>,
    domain: &str,
    begin: i64,
    end: i64,
    events: &[DmarcEvent],
) -> String {
    // Rows group identical evaluations, as RFC 7489 §7.2 has them counted.
    let mut rows: BTreeMap<String, (u64, &DmarcEvent)> = BTreeMap::new();
    for e in events {
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}|{:?}",
            e.source_ip,
            e.disposition,
            e.dkim_aligned,
            e.spf_aligned,
            e.header_from,
            e.spf_domain,
            e.spf_result,
            e.dkim
        );
        rows.entry(key).or_insert((0, e)).0 += 1;
    }
    let policy = events.first().map_or("none", |e| e.policy.as_str());
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n");
    x.push_str("  <version>1.0</version>\n");
    x.push_str("  <report_metadata>\n");
    x.push_str(&format!(
        "    <org_name>{}</org_name>\n",
        esc(reporter.org_name)
    ));
    x.push_str(&format!("    <email>{}</email>\n", esc(reporter.email)));
    x.push_str(&format!(
        "    <report_id>{}</report_id>\n",
        esc(&format!("{}.{}.{begin}", reporter.org_name, domain))
    ));
    x.push_str(&format!(
        "    <date_range>\n      <begin>{begin}</begin>\n      <end>{end}</end>\n    </date_range>\n"
    ));
    x.push_str("  </report_metadata>\n  <policy_published>\n");
    x.push_str(&format!("    <domain>{}</domain>\n", esc(domain)));
    x.push_str("    <adkim>r</adkim>\n    <aspf>r</aspf>\n");
    x.push_str(&format!(
        "    <p>{}</p>\n    <sp>{}</sp>\n",
        esc(policy),
        esc(policy)
    ));
    x.push_str("    <pct>100</pct>\n    <fo>0</fo>\n  </policy_published>\n");
    for (count, e) in rows.values() {
        let pass = |b: bool| if b { "pass" } else { "fail" };
        x.push_str("  <record>\n    <row>\n");
        x.push_str(&format!(
            "      <source_ip>{}</source_ip>\n",
            esc(&e.source_ip)
        ));
        x.push_str(&format!("      <count>{count}</count>\n"));
        x.push_str(&format!(
            "      <policy_evaluated>\n        <disposition>{}</disposition>\n        <dkim>{}</dkim>\n        <spf>{}</spf>\n      </policy_evaluated>\n",
            esc(&e.disposition),
            pass(e.dkim_aligned),
            pass(e.spf_aligned)
        ));
        x.push_str("    </row>\n    <identifiers>\n");
        x.push_str(&format!(
            "      <header_from>{}</header_from>\n",
            esc(&e.header_from)
        ));
        x.push_str("    </identifiers>\n    <auth_results>\n");
        for (d, sel, r) in &e.dkim {
            x.push_str(&format!(
                "      <dkim>\n        <domain>{}</domain>\n        <selector>{}</selector>\n        <result>{}</result>\n      </dkim>\n",
                esc(d),
                esc(sel),
                dkim_result(r)
            ));
        }
        // The schema requires one SPF result: the checked domain, or the From domain when
        // none was (the result is then `none`).
        let spf_domain = if e.spf_domain.is_empty() {
            &e.header_from
        } else {
            &e.spf_domain
        };
        x.push_str(&format!(
            "      <spf>\n        <domain>{}</domain>\n        <scope>mfrom</scope>\n        <result>{}</result>\n      </spf>\n",
            esc(spf_domain),
            spf_result(&e.spf_result)
        ));
        x.push_str("    </auth_results>\n  </record>\n");
    }
    x.push_str("</feedback>\n");
    x
}

/// The TLS-RPT report for `policy_domain` over `[begin, end]` from its counters.
pub fn tls_report_json(
    reporter: &Reporter<'_>,
    policy_domain: &str,
    begin: i64,
    end: i64,
    counters: &[TlsCounter],
) -> Value {
    #[derive(Default)]
    struct P {
        mx: std::collections::BTreeSet<String>,
        ok: u64,
        fail: u64,
        details: Vec<Value>,
    }
    let mut by_type: BTreeMap<&str, P> = BTreeMap::new();
    for c in counters {
        let p = by_type.entry(c.policy_type.as_str()).or_default();
        p.mx.insert(c.mx_host.clone());
        if c.result == "ok" {
            p.ok += c.count;
        } else {
            p.fail += c.count;
            let mut d = json!({
                "result-type": c.result,
                "receiving-mx-hostname": c.mx_host,
                "failed-session-count": c.count,
            });
            if !c.receiving_ip.is_empty() {
                d["receiving-ip"] = json!(c.receiving_ip);
            }
            p.details.push(d);
        }
    }
    let policies: Vec<Value> = by_type
        .into_iter()
        .map(|(t, p)| {
            let mut policy = json!({
                "policy-type": t,
                "policy-domain": policy_domain,
            });
            if t != "no-policy-found" {
                policy["mx-host"] = json!(p.mx);
            }
            let mut v = json!({
                "policy": policy,
                "summary": {
                    "total-successful-session-count": p.ok,
                    "total-failure-session-count": p.fail,
                },
            });
            if !p.details.is_empty() {
                v["failure-details"] = json!(p.details);
            }
            v
        })
        .collect();
    json!({
        "organization-name": reporter.org_name,
        "date-range": {
            "start-datetime": crate::util::rfc3339(begin),
            "end-datetime": crate::util::rfc3339(end),
        },
        "contact-info": reporter.email,
        "report-id": format!("{}.{}.{begin}@{}", begin, policy_domain, reporter.org_name),
        "policies": policies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::TlsPolicyType;

    fn event(ip: &str, pass: bool) -> DmarcEvent {
        DmarcEvent {
            at: 0,
            source_ip: ip.into(),
            header_from: "example.org".into(),
            envelope_from: "example.org".into(),
            policy: "reject".into(),
            disposition: if pass { "none" } else { "reject" }.into(),
            dkim_aligned: pass,
            spf_aligned: pass,
            spf_domain: "example.org".into(),
            spf_result: if pass { "pass" } else { "softfail" }.into(),
            dkim: vec![("example.org".into(), "s1".into(), "pass".into())],
        }
    }

    const R: Reporter<'static> = Reporter {
        org_name: "legate.test",
        email: "dmarc-reports@legate.test",
    };

    #[test]
    fn dmarc_xml_has_the_required_elements_and_reads_back() {
        let ev = [
            event("192.0.2.1", true),
            event("192.0.2.1", true),
            event("198.51.100.7", false),
        ];
        let x = dmarc_report_xml(&R, "example.org", 100, 200, &ev);
        for el in [
            "<feedback>",
            "<report_metadata>",
            "<org_name>legate.test</org_name>",
            "<email>dmarc-reports@legate.test</email>",
            "<report_id>",
            "<begin>100</begin>",
            "<end>200</end>",
            "<policy_published>",
            "<domain>example.org</domain>",
            "<p>reject</p>",
            "<pct>100</pct>",
            "<source_ip>192.0.2.1</source_ip>",
            "<count>2</count>",
            "<disposition>reject</disposition>",
            "<header_from>example.org</header_from>",
            "<selector>s1</selector>",
            "<scope>mfrom</scope>",
        ] {
            assert!(x.contains(el), "missing {el} in\n{x}");
        }
        // What we send is what we read.
        let back = crate::reports::dmarc::parse(x.as_bytes(), 10_000).unwrap();
        assert_eq!(back.records.len(), 2);
        assert_eq!(back.records.iter().map(|r| r.count).sum::<u64>(), 3);
        assert_eq!(back.policy.domain, "example.org");
    }

    #[test]
    fn xml_escapes_peer_text() {
        let mut e = event("192.0.2.1", true);
        e.dkim[0].1 = "<a&b>".into();
        let x = dmarc_report_xml(&R, "example.org", 0, 1, &[e]);
        assert!(x.contains("&lt;a&amp;b&gt;"));
        assert!(roxmltree::Document::parse(&x).is_ok());
    }

    #[test]
    fn tls_json_has_the_required_members() {
        let c = vec![
            TlsCounter {
                policy_type: TlsPolicyType::Sts,
                mx_host: "mx.example.org".into(),
                result: "ok".into(),
                receiving_ip: String::new(),
                count: 7,
            },
            TlsCounter {
                policy_type: TlsPolicyType::Sts,
                mx_host: "mx.example.org".into(),
                result: "certificate-expired".into(),
                receiving_ip: "192.0.2.9".into(),
                count: 2,
            },
        ];
        let v = tls_report_json(&R, "example.org", 0, 86399, &c);
        assert_eq!(v["organization-name"], "legate.test");
        assert_eq!(v["date-range"]["start-datetime"], "1970-01-01T00:00:00Z");
        assert!(v["report-id"].as_str().unwrap().contains("example.org"));
        let p = &v["policies"][0];
        assert_eq!(p["policy"]["policy-type"], "sts");
        assert_eq!(p["summary"]["total-successful-session-count"], 7);
        assert_eq!(p["summary"]["total-failure-session-count"], 2);
        assert_eq!(
            p["failure-details"][0]["result-type"],
            "certificate-expired"
        );
        // Our own parser reads it back.
        let back = crate::reports::tlsrpt::parse(v.to_string().as_bytes()).unwrap();
        assert_eq!(back.policies[0].failure, 2);
    }
}
