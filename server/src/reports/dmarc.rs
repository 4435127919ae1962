//! DMARC aggregate reports as reporters send them: RFC 7489 appendix C, and the DMARCbis
//! aggregate format (`urn:ietf:params:xml:ns:dmarc-2.0`: `np`, `testing`, `discovery_method`,
//! no `pct`). Elements are matched by local name, so both, and the namespace-less XML most
//! reporters still send, read the same. Parsed with roxmltree, which refuses a DTD (so no
//! entity is ever expanded: a billion-laughs document fails at its `<!DOCTYPE`).

use super::ReportsError;
use roxmltree::{Document, Node, ParsingOptions};
use serde::{Deserialize, Serialize};

/// One received aggregate report, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DmarcReport {
    pub org_name: String,
    pub email: String,
    pub report_id: String,
    /// Unix seconds, as in the report.
    pub begin: i64,
    pub end: i64,
    pub policy: PolicyPublished,
    pub records: Vec<DmarcRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyPublished {
    pub domain: String,
    pub adkim: String,
    pub aspf: String,
    pub p: String,
    pub sp: String,
    /// RFC 7489 only (DMARCbis dropped it).
    pub pct: Option<u32>,
    /// DMARCbis: the policy for non-existent subdomains, and `t=` testing.
    pub np: String,
    pub testing: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DmarcRecord {
    pub source_ip: String,
    pub count: u64,
    pub disposition: String,
    /// The aligned results the reporter's DMARC evaluation used (`policy_evaluated`).
    pub dkim: String,
    pub spf: String,
    pub header_from: String,
    pub envelope_from: String,
    pub dkim_results: Vec<AuthResult>,
    pub spf_results: Vec<AuthResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthResult {
    pub domain: String,
    pub result: String,
    /// DKIM selector or SPF scope.
    #[serde(default)]
    pub detail: String,
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text(n: Option<Node<'_, '_>>, name: &str) -> String {
    n.and_then(|n| child(n, name))
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .unwrap_or_default()
}

/// Parses one report document. `max_nodes` bounds the tree roxmltree builds.
pub fn parse(xml: &[u8], max_nodes: u32) -> Result<DmarcReport, ReportsError> {
    let s = std::str::from_utf8(xml)
        .map_err(|_| ReportsError::Parse("the report is not UTF-8".into()))?;
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: max_nodes,
    };
    let doc = Document::parse_with_options(s, opts)
        .map_err(|e| ReportsError::Parse(format!("bad XML: {e}")))?;
    let root = doc.root_element();
    if root.tag_name().name() != "feedback" {
        return Err(ReportsError::Parse("not a DMARC aggregate report".into()));
    }
    let meta = child(root, "report_metadata");
    let range = meta.and_then(|m| child(m, "date_range"));
    let pp = child(root, "policy_published");
    let num = |n: Option<Node<'_, '_>>, name: &str| text(n, name).parse::<i64>().unwrap_or(0);
    let mut r = DmarcReport {
        org_name: text(meta, "org_name"),
        email: text(meta, "email"),
        report_id: text(meta, "report_id"),
        begin: num(range, "begin"),
        end: num(range, "end"),
        policy: PolicyPublished {
            domain: text(pp, "domain").to_ascii_lowercase(),
            adkim: text(pp, "adkim"),
            aspf: text(pp, "aspf"),
            p: text(pp, "p"),
            sp: text(pp, "sp"),
            pct: text(pp, "pct").parse().ok(),
            np: text(pp, "np"),
            testing: text(pp, "testing"),
        },
        records: Vec::new(),
    };
    if r.org_name.is_empty() || r.report_id.is_empty() {
        return Err(ReportsError::Parse(
            "report_metadata lacks org_name or report_id".into(),
        ));
    }
    for rec in root
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "record")
    {
        let row = child(rec, "row");
        let pe = row.and_then(|r| child(r, "policy_evaluated"));
        let ids = child(rec, "identifiers");
        let auth = child(rec, "auth_results");
        let results = |kind: &str, detail: &str| -> Vec<AuthResult> {
            auth.map(|a| {
                a.children()
                    .filter(|c| c.is_element() && c.tag_name().name() == kind)
                    .map(|c| AuthResult {
                        domain: text(Some(c), "domain").to_ascii_lowercase(),
                        result: text(Some(c), "result").to_ascii_lowercase(),
                        detail: text(Some(c), detail),
                    })
                    .collect()
            })
            .unwrap_or_default()
        };
        r.records.push(DmarcRecord {
            source_ip: text(row, "source_ip"),
            count: text(row, "count").parse().unwrap_or(0),
            disposition: text(pe, "disposition").to_ascii_lowercase(),
            dkim: text(pe, "dkim").to_ascii_lowercase(),
            spf: text(pe, "spf").to_ascii_lowercase(),
            header_from: text(ids, "header_from").to_ascii_lowercase(),
            envelope_from: text(ids, "envelope_from").to_ascii_lowercase(),
            dkim_results: results("dkim", "selector"),
            spf_results: results("spf", "scope"),
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOGLE: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>1234567890123456789</report_id>
    <date_range><begin>1764892800</begin><end>1764979199</end></date_range>
  </report_metadata>
  <policy_published>
    <domain>example.org</domain><adkim>r</adkim><aspf>r</aspf><p>quarantine</p><sp>quarantine</sp><pct>100</pct><np>quarantine</np>
  </policy_published>
  <record>
    <row>
      <source_ip>192.0.2.25</source_ip><count>3</count>
      <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results>
      <dkim><domain>example.org</domain><result>pass</result><selector>lg1</selector></dkim>
      <spf><domain>example.org</domain><result>pass</result></spf>
    </auth_results>
  </record>
</feedback>"#;

    #[test]
    fn parses_a_google_shaped_report() {
        let r = parse(GOOGLE.as_bytes(), 10_000).unwrap();
        assert_eq!(r.org_name, "google.com");
        assert_eq!(r.report_id, "1234567890123456789");
        assert_eq!((r.begin, r.end), (1764892800, 1764979199));
        assert_eq!(r.policy.domain, "example.org");
        assert_eq!(r.policy.pct, Some(100));
        assert_eq!(r.records.len(), 1);
        let rec = &r.records[0];
        assert_eq!((rec.source_ip.as_str(), rec.count), ("192.0.2.25", 3));
        assert_eq!(rec.dkim_results[0].detail, "lg1");
        assert_eq!(rec.spf_results[0].result, "pass");
    }

    #[test]
    fn parses_dmarcbis_namespaced() {
        let x = r#"<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"><version>1.0</version>
<report_metadata><org_name>x</org_name><email>a@x</email><report_id>r1</report_id>
<date_range><begin>1</begin><end>2</end></date_range></report_metadata>
<policy_published><domain>Example.ORG</domain><p>reject</p><testing>n</testing>
<discovery_method>treewalk</discovery_method></policy_published></feedback>"#;
        let r = parse(x.as_bytes(), 1000).unwrap();
        assert_eq!(r.policy.domain, "example.org");
        assert_eq!(r.policy.testing, "n");
        assert_eq!(r.policy.pct, None);
    }

    #[test]
    fn refuses_entities_and_node_floods() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<feedback><report_metadata><org_name>&lol3;</org_name></report_metadata></feedback>"#;
        let started = std::time::Instant::now();
        assert!(parse(bomb.as_bytes(), 1_000_000).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let many = format!("<feedback>{}</feedback>", "<record/>".repeat(5000));
        assert!(parse(many.as_bytes(), 1000).is_err());
        assert!(parse(b"<other/>", 100).is_err());
    }
}
