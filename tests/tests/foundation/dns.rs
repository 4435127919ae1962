//! The DNS wizard end to end: the plan published into a loopback DNS server checks ok; a
//! removed or altered record is named with the line to publish, over the API and the CLI.
//! The documents DNS points at (MTA-STS policy, autoconfig, autodiscover) are served.

use legate::mailauth::StaticDns;
use legate_tests::{legate_bin, TestServer};
use serde_json::Value;
use std::net::Ipv4Addr;

/// Publishes every record of a plan (JSON from /v1/dns/plan) into `dns`, as an operator would.
fn publish(dns: &StaticDns, plan: &Value) {
    for r in plan["records"].as_array().expect("records") {
        let name = r["name"].as_str().expect("name");
        let values: Vec<&str> = match r.get("value") {
            Some(v) => vec![v.as_str().expect("value")],
            None => r["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| v.as_str().expect("value"))
                .collect(),
        };
        for v in values {
            let f: Vec<&str> = v.split_whitespace().collect();
            match r["type"].as_str().expect("type") {
                "TXT" => {
                    dns.add_txt(name, v);
                }
                "MX" => {
                    dns.add_mx(name, f[0].parse().unwrap(), f[1]);
                }
                "SRV" => {
                    dns.add_srv(
                        name,
                        f[0].parse().unwrap(),
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                        f[3],
                    );
                }
                "CNAME" => {
                    dns.set_cname(name, v);
                }
                "A" => {
                    dns.add_a(name, v.parse().unwrap());
                }
                "AAAA" => {
                    dns.add_aaaa(name, v.parse().unwrap());
                }
                "TLSA" => {
                    let data = data_encoding::HEXLOWER_PERMISSIVE
                        .decode(f[3].as_bytes())
                        .unwrap();
                    dns.add_tlsa(
                        name,
                        f[0].parse().unwrap(),
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                        data,
                    );
                }
                other => panic!("unexpected record type {other}"),
            }
        }
    }
    // The plan's note: the mail host needs an address.
    for n in plan["notes"].as_array().expect("notes") {
        dns.add_a(n["name"].as_str().unwrap(), Ipv4Addr::LOCALHOST);
    }
}

fn find<'a>(report: &'a Value, name: &str, rtype: &str) -> &'a Value {
    report["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name && r["type"] == rtype)
        .unwrap_or_else(|| panic!("{name} {rtype} not in {report:#}"))
}

#[tokio::test]
async fn plan_publish_check_and_served_documents() {
    let s = TestServer::start_smtp(StaticDns::new()).await;
    let dns = s.dns.clone().expect("dns");
    let admin = s.admin_token.clone();
    let (_, agent_key) = s.agent("ops", &["mail:read"]).await;

    // Admin only.
    assert_eq!(s.call("GET", "/v1/dns/plan", None, None).await.0, 401);
    assert_eq!(
        s.call("GET", "/v1/dns/plan", Some(&agent_key), None)
            .await
            .0,
        403
    );
    assert_eq!(
        s.call("GET", "/v1/dns/check", Some(&agent_key), None)
            .await
            .0,
        403
    );
    let (st, plan) = s.call("GET", "/v1/dns/plan", Some(&admin), None).await;
    assert_eq!(st, 200, "{plan}");
    assert_eq!(plan["domain"], "agents.test");
    let dkim: Vec<&Value> = plan["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["name"]
                .as_str()
                .unwrap()
                .ends_with("._domainkey.agents.test")
        })
        .collect();
    assert_eq!(dkim.len(), 2, "both DKIM selectors: {plan:#}");
    assert!(dkim
        .iter()
        .any(|r| r["value"].as_str().unwrap().contains("k=ed25519")));
    assert!(dkim
        .iter()
        .any(|r| r["value"].as_str().unwrap().contains("k=rsa")));

    // Nothing published yet: every record is missing.
    let (st, report) = s.call("GET", "/v1/dns/check", Some(&admin), None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(find(&report, "agents.test", "MX")["status"], "missing");

    publish(dns.records(), &plan);
    let (_, report) = s.call("GET", "/v1/dns/check", Some(&admin), None).await;
    assert_eq!(report["ok"], true, "{report:#}");
    for r in report["records"].as_array().unwrap() {
        assert_eq!(r["status"], "ok", "{r}");
    }

    // DANE: the plan's TLSA is the SHA-256 of the served certificate's key, and a record
    // that no longer matches it (another key) is named.
    let served = std::fs::read(s.data_dir().join("tls-cert.pem")).unwrap();
    let served = rustls_pemfile::certs(&mut &served[..])
        .next()
        .unwrap()
        .unwrap();
    let spki = legate::smtp::outbound::spki(&served).unwrap();
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&spki).to_vec()
    };
    let want = data_encoding::HEXLOWER.encode(&digest);
    let tlsa = find(&report, "_25._tcp.mx.agents.test", "TLSA");
    assert_eq!(tlsa["status"], "ok", "{tlsa}");
    assert_eq!(
        values(&plan, "_25._tcp.mx.agents.test", "TLSA"),
        [format!("3 1 1 {want}")]
    );
    dns.records().remove("_25._tcp.mx.agents.test");
    dns.records()
        .add_tlsa("_25._tcp.mx.agents.test", 3, 1, 1, vec![0xab; 32]);
    let (_, report) = s.call("GET", "/v1/dns/check", Some(&admin), None).await;
    let tlsa = find(&report, "_25._tcp.mx.agents.test", "TLSA");
    assert_eq!(tlsa["status"], "wrong", "{tlsa}");
    dns.records().remove("_25._tcp.mx.agents.test");
    dns.records()
        .add_tlsa("_25._tcp.mx.agents.test", 3, 1, 1, digest);

    // Drop DMARC: named, with the exact line to publish.
    dns.records().remove("_dmarc.agents.test");
    let (_, report) = s.call("GET", "/v1/dns/check", Some(&admin), None).await;
    assert_eq!(report["ok"], false);
    let dmarc = find(&report, "_dmarc.agents.test", "TXT");
    assert_eq!(dmarc["status"], "missing");
    assert_eq!(
        dmarc["fix"][0],
        "_dmarc.agents.test. 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@agents.test\""
    );
    let not_ok = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "ok")
        .count();
    assert_eq!(not_ok, 1, "only DMARC is off: {report:#}");

    // An altered DKIM key is wrong, and the CLI (against the running server) says so too.
    let ed = dkim
        .iter()
        .find(|r| r["value"].as_str().unwrap().contains("k=ed25519"))
        .unwrap();
    let ed_name = ed["name"].as_str().unwrap();
    dns.records().remove(ed_name);
    dns.records().add_txt(
        ed_name,
        "v=DKIM1; k=ed25519; p=AAAAC3NzaC1lZDI1NTE5AAAAIDoesNotMatch=",
    );
    let (_, report) = s.call("GET", "/v1/dns/check", Some(&admin), None).await;
    assert_eq!(find(&report, ed_name, "TXT")["status"], "wrong");

    let out = tokio::process::Command::new(legate_bin())
        .args([
            "dns",
            "check",
            "--server",
            &s.base,
            "--nameserver",
            &dns.addr().to_string(),
        ])
        .env("LEGATE_ADMIN_TOKEN", &admin)
        .env_remove("LEGATE_CONFIG")
        .output()
        .await
        .expect("run legate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("MISSING  TXT    _dmarc.agents.test"),
        "{stdout}"
    );
    assert!(
        stdout.contains("publish: _dmarc.agents.test. 3600 IN TXT \"v=DMARC1; p=quarantine;"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("WRONG    TXT    {ed_name}")),
        "{stdout}"
    );
    assert!(stdout.contains("2 of "), "{stdout}");

    // The MTA-STS policy is served, and its DNS id is derived from exactly these bytes.
    let resp = s
        .http
        .get(format!("{}/.well-known/mta-sts.txt", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let policy = resp.text().await.unwrap();
    assert_eq!(policy, plan["mta_sts_policy"].as_str().unwrap());
    assert!(policy.starts_with("version: STSv1\r\nmode: testing\r\nmx: mx.agents.test\r\n"));
    let sts = find(&report, "_mta-sts.agents.test", "TXT");
    assert_eq!(
        sts["expected"][0],
        format!("v=STSv1; id={}", legate::dns::plan::mta_sts_id(&policy))
    );

    // Autoconfig at both paths; autodiscover echoes the asked address.
    for path in [
        "/mail/config-v1.1.xml",
        "/.well-known/autoconfig/mail/config-v1.1.xml",
    ] {
        let resp = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let xml = resp.text().await.unwrap();
        assert!(xml.contains("<domain>agents.test</domain>"), "{xml}");
    }
    let resp = s
        .http
        .post(format!("{}/autodiscover/autodiscover.xml", s.base))
        .header("content-type", "text/xml")
        .body("<Autodiscover><Request><EMailAddress>ops@agents.test</EMailAddress></Request></Autodiscover>")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let xml = resp.text().await.unwrap();
    assert!(xml.contains("<Autodiscover xmlns="), "{xml}");
    assert!(
        !xml.contains("<Protocol>"),
        "the test server offers no IMAP/submission: {xml}"
    );
    let _ = s.stop().await;
}

/// The values of the record set `name`/`rtype` in a plan's JSON (empty when absent).
fn values(plan: &Value, name: &str, rtype: &str) -> Vec<String> {
    let r = plan["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["name"] == name && r["type"] == rtype);
    match r {
        None => Vec::new(),
        Some(r) => match r.get("value") {
            Some(v) => vec![v.as_str().expect("value").to_string()],
            None => r["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| v.as_str().expect("value").to_string())
                .collect(),
        },
    }
}

/// Runs the binary without `--config` (nor `LEGATE_CONFIG`) in `cwd`.
fn bare(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(legate_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("LEGATE_CONFIG")
        .output()
        .expect("run legate")
}

/// Issue 17: right after `legate init`, before any `serve`, `dns plan` prints every record
/// from the config and the keys init wrote; without `--config` it finds the config init's
/// default `--data` puts in ./data, and with no data directory at all it says so and makes none.
#[tokio::test]
async fn plan_right_after_init_before_any_start() {
    let dir = tempfile::tempdir().unwrap();
    let v = legate_tests::cli_init(&dir.path().join("data"), "plan.test");
    let cfg = v["config"].as_str().unwrap();
    let o = legate_tests::cli(cfg, &["dns", "plan", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["domain"], "plan.test");
    assert_eq!(values(&plan, "plan.test", "MX"), ["10 mx.plan.test."]);
    assert_eq!(values(&plan, "plan.test", "TXT"), ["v=spf1 mx -all"]);
    // Exactly the DKIM records init printed: the keys it wrote, nothing new.
    let dkim = v["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 2, "{v}");
    for r in dkim {
        assert_eq!(
            values(&plan, r["name"].as_str().unwrap(), "TXT"),
            [r["value"].as_str().unwrap()],
            "{plan:#}"
        );
    }
    let planned_dkim = plan["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"].as_str().unwrap().contains("._domainkey."))
        .count();
    assert_eq!(planned_dkim, 2, "{plan:#}");
    assert_eq!(
        values(&plan, "_dmarc.plan.test", "TXT"),
        ["v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@plan.test"]
    );
    assert!(values(&plan, "_mta-sts.plan.test", "TXT")[0].starts_with("v=STSv1; id="));
    assert!(values(&plan, "_smtp._tls.plan.test", "TXT")[0].starts_with("v=TLSRPTv1;"));
    assert!(!values(&plan, "_submissions._tcp.plan.test", "SRV").is_empty());
    assert_eq!(
        values(&plan, "autoconfig.plan.test", "CNAME"),
        ["mx.plan.test."]
    );

    // The zone format carries the same records.
    let o = legate_tests::cli(cfg, &["dns", "plan"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let zone = String::from_utf8_lossy(&o.stdout);
    assert!(
        zone.contains("plan.test. 3600 IN MX 10 mx.plan.test."),
        "{zone}"
    );
    assert!(zone.contains("_dmarc.plan.test. 3600 IN TXT"), "{zone}");

    // No --config, in the directory holding init's ./data: the same plan, not localhost's.
    let o = bare(dir.path(), &["dns", "plan", "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), plan);

    // No --config and no data directory: named, with the way out, and nothing made.
    let empty = tempfile::tempdir().unwrap();
    let o = bare(empty.path(), &["dns", "plan"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no data directory") && err.contains("legate init"),
        "{err}"
    );
    assert!(!empty.path().join("data").exists(), "dns plan made a store");
}
