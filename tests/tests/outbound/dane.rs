//! Issue 19: DANE (RFC 7672) against a DNSSEC-signed zone served by Knot DNS on loopback.
//! The zone `test.` is signed by knotd (its key is legate's trust anchor, in
//! `dns.trust_anchor_file`); `plain.test.` is an unsigned child zone. One Rust MX on
//! 127.0.0.2 presents a certificate from a CA legate does not trust, so only DANE can
//! authenticate it: a matching TLSA record gives `dane`, a wrong one defers, the unsigned
//! zone gets opportunistic TLS, and a zone whose parent has a DS but which is not signed
//! (bogus) defers. A second zone set covers RFC 7672 §2.2.2-2.2.3: TLSA records that are
//! secure but all unusable make TLS mandatory without authentication (delivered
//! `opportunistic` over TLS; a server without STARTTLS is deferred, never used in clear
//! text), and a domain without MX (the implicit MX) is held to the TLSA records of its own
//! name, or of the name its CNAME leads to, ahead of the alias's own.
//!
//! Needs `knotd` and `keymgr` (Debian `knot`, installed by tests/interop/setup.sh); without
//! them the test says so and passes.

use super::mta_sts::{delivered_to, free_port, send, smtp_after_tls, tls_mx, Got, TestCa};
use super::remote::delivery_of;
use legate_tests::{test_config, TestServer};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// An MX without STARTTLS.
const PLAIN_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

fn have(bin: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(bin).exists())
}

/// knotd serving `zones` (name, zone file, whether knotd signs it) on `127.0.0.1:port` from
/// `dir`, killed on drop.
async fn knot(dir: &Path, port: u16, zones: &[(&str, &str, bool)]) -> tokio::process::Child {
    for sub in ["zones", "run", "db"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display();
    let mut conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: \"{d}/run\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         database:\n    storage: \"{d}/db\"\n\
         policy:\n  - id: csk\n    algorithm: ecdsap256sha256\n    single-type-signing: on\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    file: \"%s.zone\"\n\
         zone:\n"
    );
    for (name, text, signed) in zones {
        conf.push_str(&format!("  - domain: {name}\n"));
        if *signed {
            conf.push_str("    dnssec-signing: on\n    dnssec-policy: csk\n");
        }
        std::fs::write(dir.join(format!("zones/{name}.zone")), text).unwrap();
    }
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
    tokio::process::Command::new("knotd")
        .arg("-c")
        .arg(dir.join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The zone's DNSKEY records once knotd has signed the zone, as a trust anchor file (keymgr
/// prints `test. DNSKEY ...`; hickory's parser wants the TTL and class too).
async fn trust_anchor(dir: &Path) -> String {
    for _ in 0..100 {
        let out = tokio::process::Command::new("keymgr")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .args(["test.", "dnskey"])
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // Signed once knotd has flushed the signed zone (with RRSIGs) to its file.
        let zone = std::fs::read_to_string(dir.join("zones/test.zone")).unwrap_or_default();
        if text.contains("DNSKEY") && zone.contains("RRSIG") {
            return text
                .lines()
                .filter_map(|l| l.split_once(" DNSKEY "))
                .map(|(name, key)| format!("{name} 300 IN DNSKEY {key}\n"))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("knotd made no key for test.");
}

/// legate with DANE on, resolving through knotd on `dns_port` with `anchor` as its trust
/// anchor, MX hosts on `mx_port`, retrying every second.
async fn dane_server(dns_port: u16, anchor: &Path, mx_port: u16) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = test_config(data.path());
    cfg.dns.nameservers = vec![format!("127.0.0.1:{dns_port}")];
    cfg.dns.timeout_secs = 2;
    cfg.dns.dnssec = true;
    cfg.dns.trust_anchor_file = anchor.display().to_string();
    cfg.outbound.mx_port = mx_port;
    cfg.outbound.danger_allow_private_destinations = true;
    cfg.outbound.retry_secs = vec![1];
    cfg.outbound.scan_interval_secs = 1;
    cfg.outbound.timeout_secs = 5;
    TestServer::start_with(data, cfg).await
}

/// An SMTP server on `ip:port` without STARTTLS; it accepts every message.
async fn plain_mx(ip: Ipv4Addr, port: u16) -> Got {
    let l = TcpListener::bind((ip, port)).await.unwrap();
    let got: Got = Default::default();
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let g = g.clone();
            tokio::spawn(async move {
                let _ = s.write_all(b"220 plain MX\r\n").await;
                smtp_after_tls(BufReader::new(s), g).await;
            });
        }
    });
    got
}

/// The hex SHA-256 of `cert`'s key, for `3 1 1` records.
fn spki_sha256(cert: &rustls::pki_types::CertificateDer<'_>) -> String {
    use sha2::Digest;
    let spki = legate::smtp::outbound::spki(cert).unwrap();
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(&spki))
}

#[tokio::test]
async fn dane_matching_tlsa_is_dane_wrong_tlsa_defers_unsigned_is_opportunistic_bogus_defers() {
    if !(have("knotd") && have("keymgr")) {
        eprintln!("knotd/keymgr not installed: DANE e2e test skipped (see tests/interop/setup.sh)");
        return;
    }
    let ca = TestCa::new();
    let mx_port = free_port();
    let (tls, cert) = ca.issue(&["mx.dane.test", "mx.wrong.test", "mx.plain.test"]);
    let got = tls_mx(MX, mx_port, tls).await;
    let digest = spki_sha256(&cert);
    let test_zone = format!(
        "$ORIGIN test.\n$TTL 300\n\
         @ SOA ns.test. admin.test. 1 3600 600 86400 300\n@ NS ns.test.\nns A 127.0.0.1\n\
         dane MX 10 mx.dane.test.\nmx.dane A {MX}\n\
         _{mx_port}._tcp.mx.dane TLSA 3 1 1 {digest}\n\
         wrong MX 10 mx.wrong.test.\nmx.wrong A {MX}\n\
         _{mx_port}._tcp.mx.wrong TLSA 3 1 1 {}\n\
         plain NS ns.test.\n\
         bogus NS ns.test.\nbogus DS 12345 13 2 {}\n",
        "ab".repeat(32),
        "cd".repeat(32)
    );
    let plain_zone = format!(
        "$ORIGIN plain.test.\n$TTL 300\n\
         @ SOA ns.test. admin.test. 1 3600 600 86400 300\n@ NS ns.test.\n\
         @ MX 10 mx.plain.test.\nmx A {MX}\n"
    );
    // Its parent says it is signed (a DS), but it is not: answers from it are bogus.
    let bogus_zone = format!(
        "$ORIGIN bogus.test.\n$TTL 300\n\
         @ SOA ns.test. admin.test. 1 3600 600 86400 300\n@ NS ns.test.\n\
         @ MX 10 mx.bogus.test.\nmx A {MX}\n"
    );
    let kdir = tempfile::tempdir().unwrap();
    let dns_port = free_port();
    let zones = [
        ("test", test_zone.as_str(), true),
        ("plain.test", plain_zone.as_str(), false),
        ("bogus.test", bogus_zone.as_str(), false),
    ];
    let _knotd = knot(kdir.path(), dns_port, &zones).await;
    let anchor = trust_anchor(kdir.path()).await;
    let anchor_file = kdir.path().join("anchor.keys");
    std::fs::write(&anchor_file, anchor).unwrap();

    let s = dane_server(dns_port, &anchor_file, mx_port).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;

    let id = send(&s, &ka, "u@dane.test").await;
    let d = delivery_of(&s, &ka, &id, "delivered").await;
    assert_eq!(d["tls"], "dane", "{d}");
    assert_eq!(delivered_to(&got, "u@dane.test"), 1);

    let id = send(&s, &ka, "u@wrong.test").await;
    let d = delivery_of(&s, &ka, &id, "temporary_failure").await;
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.starts_with("451 4.7.5"), "{d}");
    assert!(reply.contains("tlsa-invalid"), "{d}");
    assert_eq!(delivered_to(&got, "u@wrong.test"), 0);

    let id = send(&s, &ka, "u@plain.test").await;
    let d = delivery_of(&s, &ka, &id, "delivered").await;
    assert_eq!(d["tls"], "opportunistic", "{d}");

    let id = send(&s, &ka, "u@bogus.test").await;
    let d = delivery_of(&s, &ka, &id, "temporary_failure").await;
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.contains("dnssec-invalid"), "{d}");
    assert_eq!(delivered_to(&got, "u@bogus.test"), 0);

    let m = &s.services().metrics;
    assert!(
        m.outbound_tls
            .with_label_values(&["tlsa", "dane", "success"])
            .get()
            >= 1
    );
    assert!(
        m.outbound_tls_failures
            .with_label_values(&["tlsa", "tlsa-invalid"])
            .get()
            >= 1
    );
}

#[tokio::test]
async fn unusable_tlsa_requires_tls_and_mx_less_domains_use_dane_through_cnames() {
    if !(have("knotd") && have("keymgr")) {
        eprintln!("knotd/keymgr not installed: DANE e2e test skipped (see tests/interop/setup.sh)");
        return;
    }
    let ca = TestCa::new();
    let mx_port = free_port();
    let (tls, cert) = ca.issue(&["mx.unusable.test"]);
    let got = tls_mx(MX, mx_port, tls).await;
    let plain = plain_mx(PLAIN_MX, mx_port).await;
    let digest = spki_sha256(&cert);
    let wrong = "ab".repeat(32);
    let test_zone = format!(
        "$ORIGIN test.\n$TTL 300\n\
         @ SOA ns.test. admin.test. 1 3600 600 86400 300\n@ NS ns.test.\nns A 127.0.0.1\n\
         unusable MX 10 mx.unusable.test.\nmx.unusable A {MX}\n\
         _{mx_port}._tcp.mx.unusable TLSA 1 1 1 {digest}\n\
         _{mx_port}._tcp.mx.unusable TLSA 3 1 9 {digest}\n\
         _{mx_port}._tcp.mx.unusable TLSA 3 7 1 {digest}\n\
         cleartext MX 10 mx.cleartext.test.\nmx.cleartext A {PLAIN_MX}\n\
         _{mx_port}._tcp.mx.cleartext TLSA 0 0 1 {digest}\n\
         bare A {MX}\n_{mx_port}._tcp.bare TLSA 3 1 1 {digest}\n\
         barewrong A {MX}\n_{mx_port}._tcp.barewrong TLSA 3 1 1 {wrong}\n\
         alias CNAME host.target.test.\n_{mx_port}._tcp.alias TLSA 3 1 1 {wrong}\n\
         host.target A {MX}\n_{mx_port}._tcp.host.target TLSA 3 1 1 {digest}\n"
    );
    let kdir = tempfile::tempdir().unwrap();
    let dns_port = free_port();
    let _knotd = knot(kdir.path(), dns_port, &[("test", test_zone.as_str(), true)]).await;
    let anchor_file = kdir.path().join("anchor.keys");
    std::fs::write(&anchor_file, trust_anchor(kdir.path()).await).unwrap();
    let s = dane_server(dns_port, &anchor_file, mx_port).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;

    // Secure TLSA records, none usable (PKIX-EE, an unknown matching type, an unknown
    // selector): TLS without authentication; the test CA is not trusted, so `opportunistic`.
    let id = send(&s, &ka, "u@unusable.test").await;
    let d = delivery_of(&s, &ka, &id, "delivered").await;
    assert_eq!(d["tls"], "opportunistic", "{d}");
    assert_eq!(delivered_to(&got, "u@unusable.test"), 1);

    // The same with a server that offers no STARTTLS: deferred, never sent in clear text.
    let id = send(&s, &ka, "u@cleartext.test").await;
    let d = delivery_of(&s, &ka, &id, "temporary_failure").await;
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.starts_with("451 4.7.5"), "{d}");
    assert!(reply.contains("starttls-not-supported"), "{d}");
    assert!(reply.contains("requires TLS"), "{d}");
    assert!(
        plain.lock().unwrap().is_empty(),
        "nothing goes out in clear text"
    );

    // No MX: the domain's own secure address records and TLSA records apply.
    let id = send(&s, &ka, "u@bare.test").await;
    let d = delivery_of(&s, &ka, &id, "delivered").await;
    assert_eq!(d["tls"], "dane", "{d}");
    assert_eq!(delivered_to(&got, "u@bare.test"), 1);

    let id = send(&s, &ka, "u@barewrong.test").await;
    let d = delivery_of(&s, &ka, &id, "temporary_failure").await;
    assert!(
        d["last_reply"].as_str().unwrap().contains("tlsa-invalid"),
        "{d}"
    );
    assert_eq!(delivered_to(&got, "u@barewrong.test"), 0);

    // No MX and a CNAME: the TLSA records of the name the alias leads to come first (the
    // alias's own record here is wrong and must not be the one checked).
    let id = send(&s, &ka, "u@alias.test").await;
    let d = delivery_of(&s, &ka, &id, "delivered").await;
    assert_eq!(d["tls"], "dane", "{d}");
    assert_eq!(delivered_to(&got, "u@alias.test"), 1);

    let m = &s.services().metrics;
    assert!(
        m.outbound_tls
            .with_label_values(&["tlsa", "opportunistic", "success"])
            .get()
            >= 1
    );
    assert!(
        m.outbound_tls_failures
            .with_label_values(&["tlsa", "starttls-not-supported"])
            .get()
            >= 1
    );
}
