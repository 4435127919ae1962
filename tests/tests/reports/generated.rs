use legate::reports::{DmarcEvent, ReportKind, TlsFailure, TlsPolicyType, TlsResultType};
use legate_tests::TestServer;

#[tokio::test]
async fn recorded_tls_outcomes_make_an_rfc8460_report() {
    let s = TestServer::start().await;
    let r = s.services().reports.clone();
    let day = "2026-12-05";
    // Concurrent sessions count right (the counters are bumped in store transactions).
    let mut tasks = Vec::new();
    for i in 0..20 {
        let r = r.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            let res = if i % 5 == 0 {
                Err(TlsFailure {
                    result_type: TlsResultType::CertificateHostMismatch,
                    receiving_ip: Some("192.0.2.7".parse().expect("ip")),
                })
            } else {
                Ok(())
            };
            r.record_tls_outcome_on(
                day,
                "Example.ORG",
                TlsPolicyType::Sts,
                "mx1.example.org",
                res,
            )
            .expect("record");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    r.record_tls_outcome_on(
        day,
        "plain.test",
        TlsPolicyType::NoPolicyFound,
        "mx.plain.test",
        Ok(()),
    )
    .expect("record");
    // The live entry point (today) works too.
    r.record_tls_outcome(
        "example.org",
        TlsPolicyType::Tlsa,
        "mx1.example.org",
        Ok(()),
    );

    let doc = r.build(ReportKind::Tls, "example.org", day).expect("build");
    let v: serde_json::Value = serde_json::from_str(&doc).expect("json");
    assert_eq!(v["organization-name"], "agents.test");
    assert_eq!(v["contact-info"], "tls-reports@agents.test");
    assert_eq!(v["date-range"]["start-datetime"], "2026-12-05T00:00:00Z");
    assert_eq!(v["date-range"]["end-datetime"], "2026-12-05T23:59:59Z");
    let p = &v["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts");
    assert_eq!(p["policy"]["policy-domain"], "example.org");
    assert_eq!(p["policy"]["mx-host"][0], "mx1.example.org");
    assert_eq!(p["summary"]["total-successful-session-count"], 16);
    assert_eq!(p["summary"]["total-failure-session-count"], 4);
    assert_eq!(
        p["failure-details"][0]["result-type"],
        "certificate-host-mismatch"
    );
    assert_eq!(p["failure-details"][0]["receiving-ip"], "192.0.2.7");
    assert_eq!(
        v["policies"].as_array().map(Vec::len),
        Some(1),
        "only that day: {v}"
    );
}

#[tokio::test]
async fn recorded_dmarc_evaluations_make_an_aggregate_report() {
    let s = TestServer::start().await;
    let r = s.services().reports.clone();
    let at = legate::reports::day_start("2026-12-05").expect("day") + 3600;
    for (ip, pass) in [
        ("192.0.2.1", true),
        ("192.0.2.1", true),
        ("198.51.100.9", false),
    ] {
        r.record_dmarc_event(&DmarcEvent {
            at,
            source_ip: ip.into(),
            header_from: "sender.example".into(),
            envelope_from: "sender.example".into(),
            policy: "quarantine".into(),
            disposition: if pass { "none" } else { "quarantine" }.into(),
            dkim_aligned: pass,
            spf_aligned: pass,
            spf_domain: "sender.example".into(),
            spf_result: if pass { "pass" } else { "fail" }.into(),
            dkim: vec![(
                "sender.example".into(),
                "s1".into(),
                if pass { "pass" } else { "fail" }.into(),
            )],
        })
        .expect("record");
    }
    let xml = r
        .build(ReportKind::Dmarc, "sender.example", "2026-12-05")
        .expect("build");
    let parsed = legate::reports::dmarc::parse(xml.as_bytes(), 100_000).expect("parse");
    assert_eq!(parsed.org_name, "agents.test");
    assert_eq!(parsed.email, "dmarc-reports@agents.test");
    assert_eq!(parsed.policy.domain, "sender.example");
    assert_eq!(parsed.policy.p, "quarantine");
    assert_eq!(parsed.records.len(), 2);
    let good = parsed
        .records
        .iter()
        .find(|x| x.source_ip == "192.0.2.1")
        .expect("row");
    assert_eq!(
        (good.count, good.dkim.as_str(), good.spf.as_str()),
        (2, "pass", "pass")
    );
    let bad = parsed
        .records
        .iter()
        .find(|x| x.source_ip == "198.51.100.9")
        .expect("row");
    assert_eq!(bad.disposition, "quarantine");
    // Over the admin socket's dispatch, as `legate reports generate` asks for it.
    let (st, v) = s
        .call("GET", "/v1/reports/dmarc", Some(&s.admin_token), None)
        .await;
    assert_eq!(st, 200, "{v}");
}
