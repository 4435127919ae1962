//! The plan in the three formats of `legate dns plan --format`: a BIND zone fragment, JSON,
//! and a text checklist. The layouts are the templates in `dns-templates/`; this file only
//! produces resource-record lines in presentation form (quoting, 255-byte TXT strings).

use super::plan::{Plan, PlannedRecord, RecordType};
use super::template::{self, Context};
use super::DnsError;

const ZONE: &str = include_str!("../../../dns-templates/zone.txt");
const CHECKLIST: &str = include_str!("../../../dns-templates/checklist.txt");

/// RFC 1035 §3.3: a character-string holds at most 255 bytes.
pub const TXT_STRING_MAX: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Zone,
    Json,
    Text,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "zone" => Ok(Self::Zone),
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(format!("unknown format {other:?} (zone, json or text)")),
        }
    }
}

/// Splits a TXT value into character-strings of at most 255 bytes, never inside a UTF-8
/// sequence (DKIM values are ASCII; the care is for hand-written templates).
pub fn split_txt(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = value;
    while rest.len() > TXT_STRING_MAX {
        let mut cut = TXT_STRING_MAX;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head);
        rest = tail;
    }
    out.push(rest);
    out
}

/// `"..." "..."`: the TXT rdata in presentation form, `"` and `\` escaped (RFC 1035 §5.1).
pub fn quote_txt(value: &str) -> String {
    split_txt(value)
        .iter()
        .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One resource record line: `owner. ttl IN TYPE rdata`.
pub fn zone_line(record: &PlannedRecord, value: &str) -> String {
    let rdata = match record.rtype {
        RecordType::TXT => quote_txt(value),
        _ => value.to_string(),
    };
    format!(
        "{}. {} IN {} {}",
        record.name,
        record.ttl,
        record.rtype.as_str(),
        rdata
    )
}

/// Every line of a record set (what to publish to fix it).
pub fn zone_lines(record: &PlannedRecord) -> Vec<String> {
    record.values.iter().map(|v| zone_line(record, v)).collect()
}

fn base_context(plan: &Plan) -> Context {
    let mut ctx = Context::new();
    ctx.set("domain", &plan.domain)
        .set("hostname", &plan.hostname)
        .set("version", env!("CARGO_PKG_VERSION"))
        .set(
            "ttl",
            plan.records
                .first()
                .map(|r| r.ttl.to_string())
                .unwrap_or_default(),
        )
        .set("mta_sts_policy", plan.mta_sts_policy.replace("\r\n", "\n"));
    let notes = plan
        .notes
        .iter()
        .map(|n| {
            let mut c = Context::new();
            c.set("name", &n.name)
                .set("type", &n.rtype)
                .set("text", &n.text);
            c
        })
        .collect();
    ctx.list("notes", notes);
    ctx
}

pub fn render(plan: &Plan, format: Format) -> Result<String, DnsError> {
    match format {
        Format::Json => serde_json::to_string_pretty(plan)
            .map(|s| s + "\n")
            .map_err(|e| DnsError::Template(e.to_string())),
        Format::Zone => {
            let mut ctx = base_context(plan);
            let records = plan
                .records
                .iter()
                .map(|r| {
                    let mut c = Context::new();
                    let lines = zone_lines(r)
                        .into_iter()
                        .map(|l| {
                            let mut lc = Context::new();
                            lc.set("line", l);
                            lc
                        })
                        .collect();
                    c.set("purpose", &r.purpose).list("lines", lines);
                    c
                })
                .collect();
            ctx.list("records", records);
            Ok(template::render("zone.txt", ZONE, &ctx)?)
        }
        Format::Text => {
            let mut ctx = base_context(plan);
            let records = plan
                .records
                .iter()
                .map(|r| {
                    let values = r
                        .values
                        .iter()
                        .map(|v| {
                            let mut vc = Context::new();
                            vc.set("value", v);
                            vc
                        })
                        .collect();
                    let mut c = Context::new();
                    c.set("name", &r.name)
                        .set("type", r.rtype.as_str())
                        .set("purpose", &r.purpose)
                        .list("values", values);
                    c
                })
                .collect();
            ctx.list("records", records);
            Ok(template::render("checklist.txt", CHECKLIST, &ctx)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::plan::{build, DkimPublic};
    use crate::vault::DkimAlgorithm;

    fn plan() -> Plan {
        let mut c = crate::config::Config::default();
        c.server.domain = "agents.example.com".into();
        c.server.hostname = "mx.agents.example.com".into();
        let keys = vec![
            DkimPublic {
                selector: "lg1ed".into(),
                algorithm: DkimAlgorithm::Ed25519,
                public: vec![5; 32],
                retired: false,
            },
            DkimPublic {
                selector: "lg2rsa".into(),
                algorithm: DkimAlgorithm::Rsa,
                public: vec![6; 294],
                retired: false,
            },
        ];
        build(&c, &keys, None).unwrap()
    }

    #[test]
    fn split_at_255_bytes() {
        let v = "a".repeat(600);
        let parts = split_txt(&v);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert_eq!(parts.concat(), v);
        assert_eq!(split_txt("short"), ["short"]);
        assert_eq!(split_txt(""), [""]);
        assert_eq!(split_txt(&"b".repeat(255)).len(), 1);
        assert_eq!(split_txt(&"b".repeat(256)).len(), 2);
        // A multi-byte character straddling byte 255 moves whole to the next string.
        let v = format!("{}é{}", "x".repeat(254), "y".repeat(10));
        let parts = split_txt(&v);
        assert_eq!(parts[0].len(), 254);
        assert!(parts[1].starts_with('é'));
    }

    #[test]
    fn quoting_escapes_and_splits() {
        assert_eq!(quote_txt(r#"a"b\c"#), r#""a\"b\\c""#);
        let q = quote_txt(&"z".repeat(300));
        assert_eq!(q, format!("\"{}\" \"{}\"", "z".repeat(255), "z".repeat(45)));
    }

    #[test]
    fn zone_has_every_record_with_long_rsa_split() {
        let p = plan();
        let zone = render(&p, Format::Zone).unwrap();
        assert!(zone.contains("agents.example.com. 3600 IN MX 10 mx.agents.example.com.\n"));
        assert!(zone.contains("agents.example.com. 3600 IN TXT \"v=spf1 mx -all\"\n"));
        assert!(zone.contains(
            "_submission._tcp.agents.example.com. 3600 IN SRV 10 1 2587 mx.agents.example.com.\n"
        ));
        assert!(zone
            .contains("lg1ed._domainkey.agents.example.com. 3600 IN TXT \"v=DKIM1; k=ed25519; p="));
        let rsa = zone
            .lines()
            .find(|l| l.starts_with("lg2rsa._domainkey."))
            .unwrap();
        let strings: Vec<&str> = rsa.split_once(" TXT ").unwrap().1.split("\" \"").collect();
        assert!(strings.len() >= 2, "{rsa}");
        for s in &strings {
            assert!(s.trim_matches('"').len() <= 255);
        }
        // Every record line is a comment, blank, or a complete RR with an absolute owner.
        for l in zone.lines() {
            assert!(
                l.is_empty() || l.starts_with(';') || l.contains(". 3600 IN "),
                "{l}"
            );
        }
        // The A/AAAA reminder is a comment, not a record.
        assert!(zone.contains("; NOTE mx.agents.example.com A/AAAA: Publish"));
    }

    #[test]
    fn text_and_json_formats() {
        let p = plan();
        let text = render(&p, Format::Text).unwrap();
        assert!(text.contains("[ ] TXT _dmarc.agents.example.com\n"));
        assert!(text.contains("mode: testing\n"));
        let json: Plan = serde_json::from_str(&render(&p, Format::Json).unwrap()).unwrap();
        assert_eq!(json, p);
        assert_eq!("zone".parse::<Format>(), Ok(Format::Zone));
        assert!("yaml".parse::<Format>().is_err());
    }
}
