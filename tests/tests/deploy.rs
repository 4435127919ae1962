//! Deployment features over real sockets: the HTTPS listener, and a certificate swapped into
//! the shared resolver (what an ACME renewal does) served without a restart.

use legate_tests::{test_config, TestServer};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client trusting exactly the given PEM certificates.
fn connector(pems: &[&str]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for pem in pems {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// GET /healthz over TLS; returns the status line and the DER of the served certificate.
async fn get_healthz(
    c: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
) -> (String, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("mx.agents.test").unwrap();
    let mut tls = c.connect(name, tcp).await.unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: mx.agents.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = Vec::new();
    tls.read_to_end(&mut body).await.ok();
    let text = String::from_utf8_lossy(&body).to_string();
    (text.lines().next().unwrap_or_default().to_string(), cert)
}

fn der(pem: &str) -> Vec<u8> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn https_serves_the_api_and_a_swapped_certificate_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.listen.https = "127.0.0.1:0".into();
    let s = TestServer::start_with(dir, cfg).await;
    let running = s.running.as_ref().unwrap();
    let addr = running.https_addr.expect("https listener");
    let first = std::fs::read_to_string(s.data_dir().join("tls-cert.pem")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let (cert2, key2) = legate::tls::self_signed(other.path(), &["mx.agents.test".into()]).unwrap();
    let second = std::fs::read_to_string(&cert2).unwrap();
    let c = connector(&[&first, &second]);

    let (status, cert) = get_healthz(&c, addr).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(cert, der(&first));

    let ck = legate::tls::load_files(&cert2, &key2).unwrap();
    running.tls.set(ck);
    // A fresh client: a resumed TLS session would keep the identity of the first handshake.
    let c = connector(&[&first, &second]);
    let (status, cert) = get_healthz(&c, addr).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        cert,
        der(&second),
        "the next handshake gets the new certificate"
    );

    // A client that only trusts the old certificate now fails: nothing still serves it.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("mx.agents.test").unwrap();
    assert!(connector(&[&first]).connect(name, tcp).await.is_err());
    s.stop().await;
}
