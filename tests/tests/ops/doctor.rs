//! `legate doctor` on loopback: each check's ok and fail outcome, against a stopped server
//! and a running one, with a loopback NTP responder, DNS server and port-25 peer.

use legate::mailauth::StaticDns;
use legate_tests::{cli, cli_init, TestServer};
use serde_json::Value;
use std::sync::Arc;

/// A one-shot-per-packet SNTP server whose clock is `skew` seconds ahead.
async fn ntp_responder(skew: f64) -> std::net::SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 128];
        while let Ok((_, peer)) = sock.recv_from(&mut buf).await {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                + skew
                + 2_208_988_800.0;
            let mut out = [0u8; 48];
            out[0] = 0x24; // version 4, mode 4 (server)
            out[40..44].copy_from_slice(&(now as u32).to_be_bytes());
            out[44..48].copy_from_slice(&((now.fract() * 4_294_967_296.0) as u32).to_be_bytes());
            let _ = sock.send_to(&out, peer).await;
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `doctor --json`, with its exit code.
fn doctor(cfg: &str) -> (Option<i32>, Value) {
    let o = cli(cfg, &["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v)
}

fn status<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report:#}"))["status"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_every_check_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let init = cli_init(&data, "doctor.test");
    let mut cfg = super::admin_socket::served_config(init["config"].as_str().unwrap());
    // DNS: a loopback server knows this host's PTR and address, and none of the plan.
    let dns = StaticDns::new();
    // A documentation address: 127.0.0.1 would be answered from /etc/hosts.
    dns.add_ptr("192.0.2.25".parse().unwrap(), "mx.doctor.test");
    dns.add_a("mx.doctor.test", "192.0.2.25".parse().unwrap());
    let dns_server = Arc::new(legate_testdns::TestDns::start(dns).await.unwrap());
    cfg.dns.nameservers = vec![dns_server.addr().to_string()];
    cfg.storage.min_free_mb = 0;
    cfg.doctor.disk_warn_mb = 0;
    cfg.doctor.public_ip = "192.0.2.25".into();
    let peer25 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cfg.doctor.outbound_test_host = peer25.local_addr().unwrap().to_string();
    cfg.doctor.ntp_server = ntp_responder(0.0).await.to_string();
    // One listener port held by someone else, one free.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.listen.smtp = squatter.local_addr().unwrap().to_string();
    cfg.listen.http = format!("127.0.0.1:{}", free_port());
    let cfg_file = dir.path().join("doctor.toml");
    let write = |c: &legate::config::Config| {
        std::fs::write(&cfg_file, toml::to_string(c).unwrap()).unwrap();
        cfg_file.display().to_string()
    };
    let path = write(&cfg);

    let run = |p: String| tokio::task::spawn_blocking(move || doctor(&p));
    let (code, r) = run(path.clone()).await.unwrap();
    assert_eq!(code, Some(1), "{r:#}");
    assert_eq!(status(&r, "config"), "ok");
    assert_eq!(status(&r, "listen.smtp"), "fail", "{r:#}");
    assert_eq!(status(&r, "listen.http"), "ok");
    assert_eq!(status(&r, "store"), "ok", "{r:#}");
    assert_eq!(status(&r, "disk"), "ok");
    assert_eq!(status(&r, "certificate"), "warn", "self-signed: {r:#}");
    assert_eq!(status(&r, "dns"), "fail", "nothing published: {r:#}");
    assert_eq!(status(&r, "clock"), "ok", "{r:#}");
    assert_eq!(status(&r, "reverse dns"), "ok", "{r:#}");
    assert_eq!(status(&r, "outbound port 25"), "ok");
    // Every failure names its fix; the text form too.
    for c in r["checks"].as_array().unwrap() {
        if c["status"] != "ok" && c["status"] != "skip" {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
        }
    }
    let text = String::from_utf8_lossy(&cli(&path, &["doctor"]).stdout).into_owned();
    assert!(
        text.contains("fail  listen.smtp") && text.contains("fix: "),
        "{text}"
    );

    // The other outcomes: a skewed clock, a PTR naming another host, port 25 closed.
    let mut bad = cfg.clone();
    bad.doctor.ntp_server = ntp_responder(120.0).await.to_string();
    bad.server.hostname = "other.doctor.test".into();
    bad.doctor.outbound_test_host = format!("127.0.0.1:{}", free_port());
    bad.doctor.timeout_secs = 2;
    let (_, r) = run(write(&bad)).await.unwrap();
    assert_eq!(status(&r, "clock"), "fail", "{r:#}");
    assert_eq!(status(&r, "reverse dns"), "fail", "{r:#}");
    assert_eq!(status(&r, "outbound port 25"), "fail", "{r:#}");
    let mut none = cfg.clone();
    none.doctor.ntp_server.clear();
    none.doctor.public_ip.clear();
    none.doctor.outbound_test_host.clear();
    let (_, r) = run(write(&none)).await.unwrap();
    for n in ["clock", "reverse dns", "outbound port 25"] {
        assert_eq!(status(&r, n), "skip", "{n}");
    }

    // A broken config: one fail line naming the key, exit 1.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[server]\ncolour = 1\n").unwrap();
    let (code, r) = doctor(broken.to_str().unwrap());
    assert_eq!(code, Some(1));
    assert_eq!(status(&r, "config"), "fail");
    assert!(r.to_string().contains("server.colour"), "{r}");

    // Running: the listeners are bound by the server, the store answers through it.
    drop(squatter);
    let mut live = cfg.clone();
    live.listen.smtp = String::new();
    let path = write(&live);
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), live).await;
    let (_, r) = run(path).await.unwrap();
    assert_eq!(status(&r, "listen.http"), "ok", "{r:#}");
    assert!(r.to_string().contains("accepting"), "{r:#}");
    assert_eq!(status(&r, "store"), "ok", "{r:#}");
    assert!(r.to_string().contains("running server answers"), "{r:#}");
    s.stop().await;
}
