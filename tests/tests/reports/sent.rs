use legate::mailauth::StaticDns;
use legate::reports::{DmarcEvent, TlsPolicyType};
use legate_tests::{test_config, TestServer};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP endpoint that answers 200 to one request and hands back its bytes.
async fn collector() -> (String, tokio::sync::oneshot::Receiver<Vec<u8>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/tlsrpt", l.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.expect("accept");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read headers, then the announced body.
        loop {
            let n = c.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break;
                }
            }
        }
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await
            .expect("write");
        let _ = tx.send(buf);
    });
    (url, rx)
}

#[tokio::test]
async fn daily_reports_go_to_verified_rua_by_mail_and_https() {
    let (url, posted) = collector().await;
    let d = StaticDns::new();
    d.add_txt(
        "_smtp._tls.example.org",
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.org",
    );
    d.add_txt("_smtp._tls.web.example", format!("v=TLSRPTv1; rua={url}"));
    d.add_txt(
        "_dmarc.sender.example",
        "v=DMARC1; p=none; rua=mailto:agg@reports.example",
    );
    d.add_txt("sender.example._report._dmarc.reports.example", "v=DMARC1");
    // Names another domain's address without its consent: never sent (RFC 7489 §7.1).
    d.add_txt(
        "_dmarc.unverified.example",
        "v=DMARC1; p=none; rua=mailto:victim@elsewhere.example",
    );
    let dns = Arc::new(legate_testdns::TestDns::start(d).await.expect("dns"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = test_config(dir.path());
    cfg.dns.nameservers = vec![dns.addr().to_string()];
    cfg.dns.timeout_secs = 2;
    cfg.dmarc.send_reports = true;
    cfg.reports.send_tls_reports = true;
    cfg.reports.danger_allow_private_report_urls = true;
    let mut s = TestServer::start_with(dir, cfg).await;
    s.dns = Some(dns);
    let (tls_agent, _) = s.agent("tls-reports", &["mail:send"]).await;
    let _ = s.agent("dmarc-reports", &["mail:send"]).await;

    let r = s.services().reports.clone();
    let day = "2026-12-05";
    r.record_tls_outcome_on(
        day,
        "example.org",
        TlsPolicyType::Sts,
        "mx.example.org",
        Ok(()),
    )
    .expect("record");
    r.record_tls_outcome_on(
        day,
        "web.example",
        TlsPolicyType::NoPolicyFound,
        "mx.web.example",
        Ok(()),
    )
    .expect("record");
    r.record_tls_outcome_on(
        day,
        "silent.example",
        TlsPolicyType::NoPolicyFound,
        "mx.silent.example",
        Ok(()),
    )
    .expect("record");
    let at = legate::reports::day_start(day).expect("day") + 60;
    for from in ["sender.example", "unverified.example"] {
        r.record_dmarc_event(&DmarcEvent {
            at,
            source_ip: "192.0.2.1".into(),
            header_from: from.into(),
            envelope_from: from.into(),
            policy: "none".into(),
            disposition: "none".into(),
            dkim_aligned: true,
            spf_aligned: false,
            spf_domain: from.into(),
            spf_result: "fail".into(),
            dkim: vec![(from.into(), "s".into(), "pass".into())],
        })
        .expect("record");
    }

    let sum = r.send_day(day).await.expect("send");
    assert_eq!((sum.sent, sum.skipped, sum.failed), (3, 2, 0), "{sum:?}");
    // Each day and domain goes once.
    let again = r.send_day(day).await.expect("send");
    assert_eq!(again.sent, 0, "{again:?}");

    let (st, q) = s
        .call("GET", "/v1/queue?all=true", Some(&s.admin_token), None)
        .await;
    assert_eq!(st, 200, "{q}");
    let items = q["items"].as_array().cloned().unwrap_or_default();
    let find = |rcpt: &str| {
        items
            .iter()
            .find(|m| m["recipients"][0]["address"] == rcpt)
            .cloned()
            .unwrap_or_else(|| panic!("nothing queued for {rcpt}: {q}"))
    };
    let tls = find("tlsrpt@example.org");
    assert_eq!(tls["mail_from"], "tls-reports@agents.test");
    assert_eq!(
        tls["subject"],
        "Report Domain: example.org Submitter: agents.test Report-ID: <1764892800.example.org@agents.test>"
            .replace("1764892800", &legate::reports::day_start(day).unwrap_or_default().to_string())
    );
    let raw = s
        .services()
        .mailbox
        .raw_bytes(
            tls_agent["id"].as_str().unwrap_or_default(),
            tls["id"].as_str().unwrap_or_default(),
        )
        .expect("sent copy");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.contains("DKIM-Signature:"), "signed");
    assert!(raw.contains("application/tlsrpt+gzip"));
    assert!(raw.contains("TLS-Report-Domain: example.org"));
    let agg = find("agg@reports.example");
    assert_eq!(agg["mail_from"], "dmarc-reports@agents.test");
    assert!(items
        .iter()
        .all(|m| m["recipients"][0]["address"] != "victim@elsewhere.example"));

    // The https: rua got the gzipped JSON.
    let req = tokio::time::timeout(std::time::Duration::from_secs(5), posted)
        .await
        .expect("posted in time")
        .expect("posted");
    let end = req.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
    assert!(head.starts_with("post /tlsrpt"), "{head}");
    assert!(
        head.contains("content-type: application/tlsrpt+gzip"),
        "{head}"
    );
    let json = legate::reports::gunzip(&req[end..], 1 << 20).expect("gunzip");
    let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(v["policies"][0]["policy"]["policy-domain"], "web.example");
    assert_eq!(v["policies"][0]["policy"]["policy-type"], "no-policy-found");

    let (_, _, m) = s.get_bytes("/metrics", &s.admin_token).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains("legate_reports_sent_total{kind=\"tls\",outcome=\"sent\"} 2"),
        "{m}"
    );
    assert!(m.contains("legate_reports_sent_total{kind=\"dmarc\",outcome=\"sent\"} 1"));

    // A week on, what the reports were made of is gone.
    assert!(r.prune_before("2026-12-06").expect("prune") >= 5);
    assert!(r.tls_counters(day).expect("counters").is_empty());
    assert!(r.dmarc_events(day).expect("events").is_empty());
}
