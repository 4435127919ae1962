//! Reading bounce and complaint reports: DSNs (RFC 3464, `multipart/report;
//! report-type=delivery-status`) and ARF complaints (RFC 5965, `report-type=feedback-report`).
//! A pure function of the bytes: everything in them is hostile, so each field is bounded,
//! and anything that is not one of the two shapes is `Err`, kept by the caller unlinked.

use mail_parser::{MessageParser, MimeHeaders};

/// Recipient groups read from one DSN; more are ignored.
const MAX_GROUPS: usize = 100;
/// Longest field value kept.
const MAX_VALUE: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DsnRcpt {
    /// From `Final-Recipient` (else `Original-Recipient`), lower case.
    pub address: String,
    /// `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: String,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Dsn {
        reporting_mta: Option<String>,
        rcpts: Vec<DsnRcpt>,
        original: Original,
    },
    Arf {
        /// `abuse`, `fraud`, `virus`, `other`, ...
        feedback_type: String,
        user_agent: Option<String>,
        original_mail_from: Option<String>,
        original_rcpt_to: Vec<String>,
        arrival_date: Option<String>,
        original: Original,
    },
}

/// What the report quotes of the message it is about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Original {
    /// Without angle brackets, lower case.
    pub message_id: Option<String>,
    pub return_path: Option<String>,
    pub to: Vec<String>,
}

fn bounded(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE)
        .collect::<String>()
        .trim()
        .to_string()
}

/// `rfc822; <User@Example.com>` -> `user@example.com`.
fn address_of(v: &str) -> String {
    let a = v.split_once(';').map_or(v, |(_, a)| a);
    bounded(a)
        .trim_matches(|c| c == '<' || c == '>' || c == ' ')
        .to_ascii_lowercase()
}

/// Header-style field groups separated by blank lines (RFC 3464 §2.1), names lower case.
fn groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                if out.len() > MAX_GROUPS {
                    break;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                if v.len() < MAX_VALUE {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            cur.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(g: &'a [(String, String)], name: &str) -> Option<&'a str> {
    g.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn original_of(bytes: &[u8]) -> Original {
    let Some(m) = MessageParser::default().parse_headers(bytes) else {
        return Original::default();
    };
    let to = m
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.address())
                .map(|s| bounded(s).to_ascii_lowercase())
                .take(MAX_GROUPS)
                .collect()
        })
        .unwrap_or_default();
    Original {
        message_id: m
            .message_id()
            .map(|s| bounded(s).trim_matches(['<', '>']).to_ascii_lowercase()),
        return_path: m
            .header_raw("Return-Path")
            .map(address_of)
            .filter(|s| !s.is_empty()),
        to,
    }
}

/// Reads `raw` as a DSN or an ARF report.
pub fn parse(raw: &[u8]) -> Result<Report, String> {
    let m = MessageParser::default()
        .parse(raw)
        .ok_or("the message does not parse")?;
    let ct = m.content_type().ok_or("no Content-Type")?;
    let report_type = ct
        .attribute("report-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if !ct.ctype().eq_ignore_ascii_case("multipart")
        || !ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    {
        return Err("not a multipart/report".into());
    }
    let mut status_part = None;
    let mut original = Original::default();
    let want = match report_type.as_str() {
        "delivery-status" => ["delivery-status", "global-delivery-status"],
        "feedback-report" => ["feedback-report", "feedback-report"],
        other => {
            return Err(format!(
                "report-type {:?} is neither delivery-status nor feedback-report",
                bounded(other)
            ))
        }
    };
    for part in m.parts.iter().skip(1) {
        let Some(pct) = part.content_type() else {
            continue;
        };
        let sub = pct.subtype().unwrap_or("").to_ascii_lowercase();
        let main = pct.ctype().to_ascii_lowercase();
        if main == "message" && want.contains(&sub.as_str()) && status_part.is_none() {
            status_part = Some(String::from_utf8_lossy(part.contents()).to_string());
        } else if ((main == "message" && (sub == "rfc822" || sub == "global"))
            || (main == "text" && sub == "rfc822-headers"))
            && original == Original::default()
        {
            original = original_of(part.contents());
        }
    }
    let text = status_part.ok_or("the report has no machine-readable part")?;
    let gs = groups(&text);
    if report_type == "delivery-status" {
        let reporting_mta = gs
            .first()
            .and_then(|g| field(g, "reporting-mta"))
            .map(address_of);
        let mut rcpts = Vec::new();
        for g in gs.iter().skip(1).take(MAX_GROUPS) {
            let addr = field(g, "final-recipient").or_else(|| field(g, "original-recipient"));
            let (Some(addr), Some(action)) = (addr, field(g, "action")) else {
                continue;
            };
            rcpts.push(DsnRcpt {
                address: address_of(addr),
                action: bounded(action).to_ascii_lowercase(),
                status: bounded(field(g, "status").unwrap_or("")),
                diagnostic: field(g, "diagnostic-code")
                    .map(|d| bounded(d.split_once(';').map_or(d, |(_, d)| d))),
                remote_mta: field(g, "remote-mta").map(address_of),
            });
        }
        if rcpts.is_empty() {
            return Err("the DSN names no recipient with an action".into());
        }
        return Ok(Report::Dsn {
            reporting_mta,
            rcpts,
            original,
        });
    }
    let g: Vec<(String, String)> = gs.into_iter().flatten().collect();
    let feedback_type = field(&g, "feedback-type")
        .map(|s| bounded(s).to_ascii_lowercase())
        .ok_or("the ARF report has no Feedback-Type")?;
    Ok(Report::Arf {
        feedback_type,
        user_agent: field(&g, "user-agent").map(bounded),
        original_mail_from: field(&g, "original-mail-from")
            .map(address_of)
            .filter(|s| !s.is_empty()),
        original_rcpt_to: g
            .iter()
            .filter(|(n, _)| n == "original-rcpt-to")
            .map(|(_, v)| address_of(v))
            .take(MAX_GROUPS)
            .collect(),
        arrival_date: field(&g, "arrival-date").map(bounded),
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DSN: &str = "From: MAILER-DAEMON@mx.b.test\r\n\
To: ops+b.x@a.test\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.b.test\r\n\
Arrival-Date: Sun, 6 Dec 2026 18:00:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822; Gone@B.test\r\n\
Original-Recipient: rfc822;gone@b.test\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Remote-MTA: dns; mx.b.test\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <gone@b.test>: Recipient address rejected:\r\n\
\x20User unknown in local recipient table\r\n\
\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: ops@a.test\r\n\
To: gone@b.test\r\n\
Message-ID: <Abc.123@mx.a.test>\r\n\
Subject: hi\r\n\
\r\n\
--B--\r\n";

    #[test]
    fn a_dsn_is_read_with_its_recipient_status_and_original() {
        let Report::Dsn {
            reporting_mta,
            rcpts,
            original,
        } = parse(DSN.as_bytes()).unwrap()
        else {
            panic!("not a DSN");
        };
        assert_eq!(reporting_mta.as_deref(), Some("mx.b.test"));
        assert_eq!(rcpts.len(), 1);
        assert_eq!(rcpts[0].address, "gone@b.test");
        assert_eq!(rcpts[0].action, "failed");
        assert_eq!(rcpts[0].status, "5.1.1");
        let d = rcpts[0].diagnostic.as_deref().unwrap();
        assert!(
            d.starts_with("550 5.1.1") && d.ends_with("recipient table"),
            "{d}"
        );
        assert_eq!(original.message_id.as_deref(), Some("abc.123@mx.a.test"));
    }

    #[test]
    fn an_arf_complaint_is_read() {
        let arf = "From: fbl@mail.example\r\n\
Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\
\r\n\
--F\r\n\
Content-Type: text/plain\r\n\
\r\n\
This is an email abuse report.\r\n\
--F\r\n\
Content-Type: message/feedback-report\r\n\
\r\n\
Feedback-Type: abuse\r\n\
User-Agent: SomeGenerator/1.0\r\n\
Version: 1\r\n\
Original-Mail-From: <ops+b.tok@a.test>\r\n\
Original-Rcpt-To: <u@mail.example>\r\n\
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\n\
\r\n\
--F\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: ops@a.test\r\n\
To: u@mail.example\r\n\
Message-ID: <m1@mx.a.test>\r\n\
Subject: buy\r\n\
\r\n\
body\r\n\
--F--\r\n";
        let Report::Arf {
            feedback_type,
            original_mail_from,
            original_rcpt_to,
            original,
            ..
        } = parse(arf.as_bytes()).unwrap()
        else {
            panic!("not ARF");
        };
        assert_eq!(feedback_type, "abuse");
        assert_eq!(original_mail_from.as_deref(), Some("ops+b.tok@a.test"));
        assert_eq!(original_rcpt_to, vec!["u@mail.example"]);
        assert_eq!(original.message_id.as_deref(), Some("m1@mx.a.test"));
    }

    #[test]
    fn malformed_reports_are_errors() {
        for bad in [
            "Subject: hi\r\n\r\nplain text\r\n".to_string(),
            DSN.replace("report-type=delivery-status", "report-type=other"),
            DSN.replace("Action: failed\r\n", ""),
            DSN.replace(
                "Content-Type: message/delivery-status",
                "Content-Type: text/plain",
            ),
            String::from_utf8_lossy(&[0xff, 0xfe, 0, 1]).to_string(),
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
