use legate::mailauth::StaticDns;
use legate_tests::{SmtpClient, TestServer};
use std::io::Write;
use std::time::{Duration, Instant};

fn dns() -> StaticDns {
    let d = StaticDns::new();
    // The reporters' envelope domains pass SPF from loopback, as the real ones would from
    // their own networks.
    for dom in [
        "google.com",
        "protection.outlook.com",
        "tlsrpt.test",
        "bomb.test",
    ] {
        d.add_txt(dom, "v=spf1 ip4:127.0.0.1 -all");
    }
    d
}

const GOOGLE_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata>
    <org_name>google.com</org_name>
    <email>noreply-dmarc-support@google.com</email>
    <extra_contact_info>https://support.google.com/a/answer/2466580</extra_contact_info>
    <report_id>8141231853391785720</report_id>
    <date_range>
      <begin>1764892800</begin>
      <end>1764979199</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>agents.test</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>quarantine</sp>
    <pct>100</pct>
    <np>quarantine</np>
  </policy_published>
  <record>
    <row>
      <source_ip>203.0.113.10</source_ip>
      <count>8</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>pass</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>agents.test</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>agents.test</domain>
        <result>pass</result>
        <selector>lg2026a</selector>
      </dkim>
      <spf>
        <domain>agents.test</domain>
        <result>pass</result>
      </spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.66</source_ip>
      <count>2</count>
      <policy_evaluated>
        <disposition>quarantine</disposition>
        <dkim>fail</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <header_from>agents.test</header_from>
    </identifiers>
    <auth_results>
      <spf>
        <domain>spoofer.example</domain>
        <result>softfail</result>
      </spf>
    </auth_results>
  </record>
</feedback>
"#;

/// Microsoft writes the DMARCbis-era shape: a namespace, `<version>`, `envelope_to`.
const MICROSOFT_XML: &str = r#"<?xml version="1.0"?>
<feedback xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <version>1.0</version>
  <report_metadata>
    <org_name>Enterprise Outlook</org_name>
    <email>dmarcreport@microsoft.com</email>
    <report_id>e3b6c6f5a0d94b8c9a3f1d2e7b8c9d0e</report_id>
    <date_range>
      <begin>1764892800</begin>
      <end>1764979200</end>
    </date_range>
  </report_metadata>
  <policy_published>
    <domain>agents.test</domain>
    <adkim>r</adkim>
    <aspf>r</aspf>
    <p>quarantine</p>
    <sp>quarantine</sp>
    <pct>100</pct>
    <fo>0</fo>
  </policy_published>
  <record>
    <row>
      <source_ip>203.0.113.10</source_ip>
      <count>2</count>
      <policy_evaluated>
        <disposition>none</disposition>
        <dkim>pass</dkim>
        <spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>contoso.example</envelope_to>
      <envelope_from>bounce.agents.test</envelope_from>
      <header_from>agents.test</header_from>
    </identifiers>
    <auth_results>
      <dkim>
        <domain>agents.test</domain>
        <selector>lg2026a</selector>
        <result>pass</result>
      </dkim>
      <spf>
        <domain>bounce.agents.test</domain>
        <scope>mfrom</scope>
        <result>fail</result>
      </spf>
    </auth_results>
  </record>
</feedback>
"#;

const TLSRPT_JSON: &str = r#"{"organization-name":"Google Inc.","date-range":{"start-datetime":"2026-12-05T00:00:00Z","end-datetime":"2026-12-05T23:59:59Z"},"contact-info":"smtp-tls-reporting@google.com","report-id":"2026-12-05T00:00:00Z_agents.test","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.agents.test","max_age: 604800"],"policy-domain":"agents.test","mx-host":["mx.agents.test"]},"summary":{"total-successful-session-count":41,"total-failure-session-count":3},"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"209.85.220.41","receiving-mx-hostname":"mx.agents.test","receiving-ip":"192.0.2.25","failed-session-count":3}]}]}"#;

fn b64_lines(data: &[u8]) -> String {
    let s = data_encoding::BASE64.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn zip_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file(name, opts).expect("zip entry");
    w.write_all(data).expect("zip write");
    w.finish().expect("zip finish").into_inner()
}

/// A report message: a text part and the report attachment, as the big reporters send.
fn message(from: &str, to: &str, subject: &str, ct: &str, name: &str, data: &[u8]) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@reports.test>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is an aggregate report.\r\n--b1\r\nContent-Type: {ct}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        legate::util::new_id("m"),
        b64_lines(data)
    )
}

async fn send(s: &TestServer, from: &str, to: &str, msg: &str) -> String {
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    let r = c.cmd("EHLO reporter.test").await;
    assert!(r.starts_with("250"), "{r}");
    c.send_mail(from, &[to], msg).await
}

#[tokio::test]
async fn google_and_microsoft_dmarc_and_a_tls_report_are_summarised() {
    let s = TestServer::start_smtp(dns()).await;
    let google = message(
        "noreply-dmarc-support@google.com",
        "dmarc-reports@agents.test",
        "Report domain: agents.test Submitter: google.com Report-ID: 8141231853391785720",
        "application/zip",
        "google.com!agents.test!1764892800!1764979199.zip",
        &zip_of(
            "google.com!agents.test!1764892800!1764979199.xml",
            GOOGLE_XML.as_bytes(),
        ),
    );
    let r = send(
        &s,
        "noreply-dmarc-support@google.com",
        "dmarc-reports@agents.test",
        &google,
    )
    .await;
    assert!(r.starts_with("250"), "google: {r}");
    let ms = message(
        "dmarcreport@microsoft.com",
        "dmarc-reports@agents.test",
        "Report Domain: agents.test Submitter: enterprise.protection.outlook.com",
        "application/gzip",
        "enterprise.protection.outlook.com!agents.test!1764892800!1764979200.xml.gz",
        &legate::reports::gzip(MICROSOFT_XML.as_bytes()),
    );
    let r = send(
        &s,
        "dmarcreport@protection.outlook.com",
        "dmarc-reports@agents.test",
        &ms,
    )
    .await;
    assert!(r.starts_with("250"), "microsoft: {r}");
    // The same report again is answered 250 and stored once.
    let r = send(
        &s,
        "noreply-dmarc-support@google.com",
        "dmarc-reports@agents.test",
        &google,
    )
    .await;
    assert!(r.starts_with("250"), "repeat: {r}");
    let tls = message(
        "noreply-smtp-tls-reporting@tlsrpt.test",
        "tls-reports@agents.test",
        "Report Domain: agents.test Submitter: google.com Report-ID: <2026-12-05T00:00:00Z_agents.test>",
        "application/tlsrpt+gzip",
        "google.com!agents.test!1764892800!1764979199!001.json.gz",
        &legate::reports::gzip(TLSRPT_JSON.as_bytes()),
    );
    let r = send(
        &s,
        "noreply-smtp-tls-reporting@tlsrpt.test",
        "tls-reports@agents.test",
        &tls,
    )
    .await;
    assert!(r.starts_with("250"), "tls: {r}");

    let (st, v) = s
        .call(
            "GET",
            "/v1/reports/dmarc?since=2025-12-05&until=2025-12-06",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["reports"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["total"]["messages"], 12, "{v}");
    let ip = v["by_source_ip"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["source_ip"] == "203.0.113.10"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ip["messages"], 10, "{v}");
    assert_eq!(ip["dmarc_pass_rate"], 1.0);
    assert_eq!(ip["spf_aligned_pass_rate"], 0.8);
    assert_eq!(
        ip["reporters"],
        serde_json::json!(["Enterprise Outlook", "google.com"])
    );
    let bad = v["by_source_ip"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["source_ip"] == "198.51.100.66"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(bad["dmarc_pass_rate"], 0.0);
    assert_eq!(bad["dispositions"]["quarantine"], 2);
    let from = &v["by_header_from"][0];
    assert_eq!(from["header_from"], "agents.test");
    assert_eq!(from["messages"], 12);
    // A window that misses the reports shows none.
    let (_, v) = s
        .call(
            "GET",
            "/v1/reports/dmarc?since=2027-01-01",
            Some(&s.admin_token),
            None,
        )
        .await;
    assert_eq!(v["total"]["messages"], 0, "{v}");

    let (st, v) = s
        .call("GET", "/v1/reports/tls", Some(&s.admin_token), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let p = &v["policies"][0];
    assert_eq!(p["policy_domain"], "agents.test");
    assert_eq!(p["policy_type"], "sts");
    assert_eq!(
        (p["success"].as_u64(), p["failure"].as_u64()),
        (Some(41), Some(3))
    );
    assert_eq!(p["failure_types"]["certificate-expired"], 3);
    assert_eq!(p["reporters"], serde_json::json!(["Google Inc."]));

    // Admins only.
    let (_, key) = s.agent("ops", &["mail:read"]).await;
    let (st, _) = s.call("GET", "/v1/reports/dmarc", Some(&key), None).await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn a_zip_bomb_and_an_entity_bomb_are_refused_quickly() {
    let s = TestServer::start_smtp(dns()).await;
    let zeros = vec![0u8; 30 << 20];
    let bomb = zip_of("report.xml", &zeros);
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let msg = message(
        "x@bomb.test",
        "dmarc-reports@agents.test",
        "Report domain: agents.test",
        "application/zip",
        "bomb.zip",
        &bomb,
    );
    let started = Instant::now();
    let r = send(&s, "x@bomb.test", "dmarc-reports@agents.test", &msg).await;
    assert!(r.starts_with("550"), "zip bomb: {r}");
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<feedback><report_metadata><org_name>&lol9;</org_name><report_id>1</report_id></report_metadata></feedback>
"#;
    let msg = message(
        "x@bomb.test",
        "dmarc-reports@agents.test",
        "Report domain: agents.test",
        "application/gzip",
        "laughs.xml.gz",
        &legate::reports::gzip(laughs.as_bytes()),
    );
    let r = send(&s, "x@bomb.test", "dmarc-reports@agents.test", &msg).await;
    assert!(r.starts_with("550"), "entity bomb: {r}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Counted as failures, and the server still serves.
    let (st, v) = s
        .call("GET", "/v1/reports/dmarc", Some(&s.admin_token), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["parse_failures"], 2, "{v}");
    assert_eq!(v["reports"].as_array().map(Vec::len), Some(0));
    let (st, _) = s.call("GET", "/healthz", None, None).await;
    assert_eq!(st, 200);
    let (_, _, m) = s.get_bytes("/metrics", &s.admin_token).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains("legate_reports_received_total{kind=\"dmarc\",outcome=\"failed\"} 2"),
        "{m}"
    );
    // An ordinary address is still refused without an agent.
    let (mut c, _) = SmtpClient::connect(s.smtp_addr()).await;
    c.cmd("EHLO x.test").await;
    c.cmd("MAIL FROM:<x@bomb.test>").await;
    let r = c.cmd("RCPT TO:<nobody@agents.test>").await;
    assert!(r.starts_with("550"), "{r}");
}
