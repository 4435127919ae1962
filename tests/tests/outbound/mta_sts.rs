//! Issue 19: outbound MTA-STS and verified TLS against loopback peers. A test CA (rcgen)
//! signs every certificate and is given to legate as `outbound.danger_extra_roots_file`;
//! the policy host is a loopback HTTPS server, the MX hosts are Rust SMTP servers with
//! STARTTLS on 127.0.0.2 (a certificate for its MX name) and 127.0.0.3 (a certificate for
//! another name), and DNS is the loopback test server.

use super::remote::delivery_of;
use super::wait_for;
use legate::mailauth::StaticDns;
use legate_testdns::TestDns;
use legate_tests::{test_config, TestServer};
use serde_json::json;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const GOOD_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const BAD_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A CA whose certificates the server under test trusts.
pub(crate) struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    pub(crate) fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "legate test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A TLS server config presenting a certificate for `names` (and the CA above it).
    pub(crate) fn server(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        self.issue(names).0
    }

    /// A server config for `names`, and the certificate it presents.
    pub(crate) fn issue(
        &self,
        names: &[&str],
    ) -> (
        Arc<rustls::ServerConfig>,
        rustls::pki_types::CertificateDer<'static>,
    ) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        (Arc::new(cfg), cert.der().clone())
    }
}

/// Bodies an MX received, with the recipients of each.
pub(crate) type Got = Arc<Mutex<Vec<(Vec<String>, String)>>>;

/// An SMTP server on `ip:port` offering STARTTLS with `tls`; it accepts every message.
pub(crate) async fn tls_mx(ip: Ipv4Addr, port: u16, tls: Arc<rustls::ServerConfig>) -> Got {
    let l = TcpListener::bind((ip, port)).await.unwrap();
    let got: Got = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (g, tls) = (g.clone(), tls.clone());
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                let _ = s.get_mut().write_all(b"220 test MX\r\n").await;
                // Before TLS: EHLO, then STARTTLS; anything else is refused.
                loop {
                    let mut line = String::new();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let up = line.to_ascii_uppercase();
                    if up.starts_with("EHLO") {
                        let _ = s
                            .get_mut()
                            .write_all(b"250-test MX\r\n250 STARTTLS\r\n")
                            .await;
                    } else if up.starts_with("STARTTLS") {
                        let _ = s.get_mut().write_all(b"220 go ahead\r\n").await;
                        break;
                    } else {
                        let _ = s.get_mut().write_all(b"530 5.7.0 STARTTLS first\r\n").await;
                    }
                }
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let Ok(stream) = acceptor.accept(s.into_inner()).await else {
                    return;
                };
                smtp_after_tls(BufReader::new(stream), g).await;
            });
        }
    });
    got
}

pub(crate) async fn smtp_after_tls<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: BufReader<S>,
    got: Got,
) {
    let mut rcpts = Vec::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let up = line.to_ascii_uppercase();
        let reply: &[u8] = if up.starts_with("EHLO") {
            b"250 test MX\r\n"
        } else if up.starts_with("RCPT") {
            rcpts.push(line.trim().to_string());
            b"250 2.1.5 ok\r\n"
        } else if up.starts_with("DATA") {
            let _ = s.get_mut().write_all(b"354 go\r\n").await;
            let mut body = String::new();
            loop {
                let mut l = String::new();
                if s.read_line(&mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" {
                    break;
                }
                body.push_str(&l);
            }
            got.lock().unwrap().push((std::mem::take(&mut rcpts), body));
            b"250 2.0.0 queued\r\n"
        } else if up.starts_with("QUIT") {
            let _ = s.get_mut().write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n"
        };
        let _ = s.get_mut().write_all(reply).await;
    }
}

/// A loopback HTTPS server answering `/.well-known/mta-sts.txt` with the policy of the
/// request's host (404 for others); returns its port and the number of fetches.
async fn policy_server(
    tls: Arc<rustls::ServerConfig>,
    policies: HashMap<String, String>,
) -> (u16, Arc<Mutex<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let fetches = Arc::new(Mutex::new(0usize));
    let (f, policies) = (fetches.clone(), Arc::new(policies));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let (f, policies, acceptor) = (f.clone(), policies.clone(), acceptor.clone());
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&req).to_string();
                let host = req
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                let host = host.split(':').next().unwrap_or_default().to_string();
                let path_ok = req.starts_with("GET /.well-known/mta-sts.txt ");
                let resp = match policies.get(&host).filter(|_| path_ok) {
                    Some(body) => {
                        *f.lock().unwrap() += 1;
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, fetches)
}

pub(crate) fn free_port() -> u16 {
    // Free on 127.0.0.1; 127.0.0.2 and .3 are unused by anything else in the tests.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

pub(crate) async fn send(s: &TestServer, key: &str, to: &str) -> String {
    let (st, v) = s
        .call(
            "POST",
            "/v1/messages/send",
            Some(key),
            Some(json!({"to": to, "subject": format!("to {to}"), "text": "secret code 4711"})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

pub(crate) fn delivered_to(got: &Got, rcpt: &str) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r.iter().any(|l| l.contains(rcpt)))
        .count()
}

#[tokio::test]
async fn mta_sts_enforce_delivers_verified_defers_and_bounces_a_bad_certificate_and_testing_reports(
) {
    let ca = TestCa::new();
    let mx_port = free_port();
    let good = tls_mx(GOOD_MX, mx_port, ca.server(&["mx.s1.test"])).await;
    let bad = tls_mx(BAD_MX, mx_port, ca.server(&["other.test"])).await;
    let policies = HashMap::from([
        (
            "mta-sts.s1.test".to_string(),
            policy("enforce", "mx.s1.test"),
        ),
        (
            "mta-sts.s2.test".to_string(),
            policy("enforce", "*.s2.test"),
        ),
        (
            "mta-sts.s3.test".to_string(),
            policy("testing", "mx.s3.test"),
        ),
    ]);
    let names = ["mta-sts.s1.test", "mta-sts.s2.test", "mta-sts.s3.test"];
    let (sts_port, fetches) = policy_server(ca.server(&names), policies).await;

    let records = StaticDns::new();
    for (domain, ip) in [
        ("s1.test", GOOD_MX),
        ("s2.test", BAD_MX),
        ("s3.test", BAD_MX),
    ] {
        let mx = format!("mx.{domain}");
        records
            .add_mx(domain, 10, &mx)
            .add_a(&mx, ip)
            .add_a(&format!("mta-sts.{domain}"), Ipv4Addr::LOCALHOST)
            .add_txt(&format!("_mta-sts.{domain}"), "v=STSv1; id=20261206T1;");
    }
    let dns = TestDns::start(records).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut cfg = test_config(data.path());
    cfg.dns.nameservers = vec![dns.addr().to_string()];
    cfg.dns.timeout_secs = 2;
    cfg.outbound.mx_port = mx_port;
    cfg.outbound.mta_sts_port = sts_port;
    cfg.outbound.danger_extra_roots_file = ca_file.display().to_string();
    // The MX hosts and the policy host live on loopback.
    cfg.outbound.danger_allow_private_destinations = true;
    // A short retry window: deferred mail bounces after a few seconds.
    cfg.outbound.retry_secs = vec![1];
    cfg.outbound.scan_interval_secs = 1;
    cfg.outbound.max_age_secs = 4;
    cfg.outbound.timeout_secs = 5;
    // A route that requires TLS, to the MX whose certificate names another host.
    cfg.outbound.route.push(legate::config::RouteConfig {
        domain: "r.test".into(),
        next_hop: format!("{BAD_MX}:{mx_port}"),
        require_tls: true,
    });
    let s = TestServer::start_with(data, cfg).await;
    let (_a, ka) = s.agent("alice", &["mail:send", "mail:read"]).await;

    // (a) enforce, valid certificate for the MX name: delivered, verified.
    let id1 = send(&s, &ka, "u@s1.test").await;
    let d = delivery_of(&s, &ka, &id1, "delivered").await;
    assert_eq!(d["tls"], "verified", "{d}");
    assert_eq!(delivered_to(&good, "u@s1.test"), 1);

    // (c) testing, the same bad certificate: delivered without authentication, reported.
    let id3 = send(&s, &ka, "u@s3.test").await;
    let d = delivery_of(&s, &ka, &id3, "delivered").await;
    assert_eq!(d["tls"], "opportunistic", "{d}");
    assert_eq!(delivered_to(&bad, "u@s3.test"), 1);
    let m = &s.services().metrics;
    assert!(
        m.outbound_tls_failures
            .with_label_values(&["sts", "certificate-host-mismatch"])
            .get()
            >= 1
    );

    // (b) enforce, a certificate for another name: deferred, never sent, then bounced with
    // the reason once the retry window is over.
    let id2 = send(&s, &ka, "u@s2.test").await;
    let d = delivery_of(&s, &ka, &id2, "temporary_failure").await;
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.starts_with("451 4.7.5"), "{d}");
    assert!(reply.contains("certificate-host-mismatch"), "{d}");
    assert!(reply.contains("MTA-STS"), "{d}");
    // And the require_tls route to the same MX: deferred too.
    let idr = send(&s, &ka, "u@r.test").await;
    let d = delivery_of(&s, &ka, &idr, "temporary_failure").await;
    assert!(
        d["last_reply"]
            .as_str()
            .unwrap()
            .contains("certificate-host-mismatch"),
        "{d}"
    );

    let d = delivery_of(&s, &ka, &id2, "permanent_failure").await;
    assert!(
        d["last_reply"]
            .as_str()
            .unwrap()
            .contains("certificate-host-mismatch"),
        "{d}"
    );
    delivery_of(&s, &ka, &idr, "permanent_failure").await;
    assert_eq!(
        delivered_to(&bad, "u@s2.test"),
        0,
        "nothing went to the bad MX"
    );
    assert_eq!(delivered_to(&bad, "u@r.test"), 0);
    // The sender's DSN names the reason.
    let inbox = wait_for(&s, &ka, "INBOX", 2).await;
    let mut dsns = String::new();
    for m in &inbox {
        let id = m["id"].as_str().unwrap();
        let (_, _, raw) = s.get_bytes(&format!("/v1/messages/{id}/raw"), &ka).await;
        dsns.push_str(&String::from_utf8_lossy(&raw));
    }
    assert!(
        dsns.contains("Final-Recipient: rfc822; u@s2.test"),
        "{dsns}"
    );
    assert!(dsns.contains("certificate-host-mismatch"), "{dsns}");

    // Retries of s2 used the cached policy: one fetch per domain.
    assert_eq!(*fetches.lock().unwrap(), 3);
    assert!(
        m.mta_sts_cache.with_label_values(&["hit"]).get() >= 1,
        "retries hit the policy cache"
    );
    assert!(
        m.outbound_tls
            .with_label_values(&["sts", "verified", "success"])
            .get()
            >= 1
    );
    // The same outcomes feed the TLS-RPT counters (issue 19 item 5): a success and the
    // certificate-host-mismatch failure, per policy domain and type.
    let counters: Vec<String> = s
        .services()
        .store
        .scan_prefix(legate::store::Tree::ReportsTlsCounters, &[])
        .map(|r| String::from_utf8_lossy(&r.unwrap().0).replace('\0', "|"))
        .collect();
    assert!(
        counters
            .iter()
            .any(|k| k.contains("|sts|") && k.contains("|ok|")),
        "{counters:?}"
    );
    assert!(
        counters
            .iter()
            .any(|k| k.contains("|sts|") && k.contains("certificate-host-mismatch")),
        "{counters:?}"
    );
}
