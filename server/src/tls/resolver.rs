//! The certificate every TLS listener serves, swappable while running, and the TLS-ALPN-01
//! challenge certificates (RFC 8737) answered while an ACME order is being validated.

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The ALPN protocol an ACME server offers (and only it) when it validates TLS-ALPN-01.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Shared by all listeners' `ServerConfig`s; a handshake reads it once, so swapping the
/// certificate affects new connections only and never a session in progress.
#[derive(Debug)]
pub struct CertResolver {
    /// A std lock: held for a pointer copy, never across an await.
    current: RwLock<Arc<CertifiedKey>>,
    /// Challenge certificates by lower-case domain, present only during validation.
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertResolver {
    pub fn new(initial: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(initial),
            challenges: RwLock::new(HashMap::new()),
        }
    }

    /// Serves `ck` from the next handshake on.
    pub fn set(&self, ck: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = ck;
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Answers `acme-tls/1` handshakes for `domain` with `ck` until removed.
    pub fn add_challenge(&self, domain: &str, ck: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(domain.to_ascii_lowercase(), ck);
    }

    pub fn remove_challenge(&self, domain: &str) {
        self.challenges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&domain.to_ascii_lowercase());
    }

    #[cfg(test)]
    pub(crate) fn challenges_for_test(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.challenges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(domain)
            .cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .map(|mut protos| protos.any(|p| p == ACME_TLS_ALPN))
            .unwrap_or(false);
        if acme {
            // Never fall back to the real certificate: RFC 8737 §3 wants the challenge
            // certificate or a failed handshake.
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&name)
                .cloned();
        }
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{load_pem, resolver_config};
    use rustls::pki_types::ServerName;

    fn ck(name: &str) -> (Arc<CertifiedKey>, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let pem = made.cert.pem();
        let ck = load_pem(
            pem.as_bytes(),
            made.signing_key.serialize_pem().as_bytes(),
            name,
        )
        .unwrap();
        (ck, pem)
    }

    /// Does a handshake in memory and returns the DER of the certificate the server sent and
    /// the negotiated ALPN, or None if the handshake failed.
    fn handshake(
        cfg: Arc<rustls::ServerConfig>,
        sni: &str,
        alpn: &[&[u8]],
    ) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        #[derive(Debug)]
        struct AcceptAll;
        impl rustls::client::danger::ServerCertVerifier for AcceptAll {
            fn verify_server_cert(
                &self,
                _: &rustls::pki_types::CertificateDer<'_>,
                _: &[rustls::pki_types::CertificateDer<'_>],
                _: &ServerName<'_>,
                _: &[u8],
                _: rustls::pki_types::UnixTime,
            ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            fn verify_tls12_signature(
                &self,
                _: &[u8],
                _: &rustls::pki_types::CertificateDer<'_>,
                _: &rustls::DigitallySignedStruct,
            ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
            {
                Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
            }
            fn verify_tls13_signature(
                &self,
                _: &[u8],
                _: &rustls::pki_types::CertificateDer<'_>,
                _: &rustls::DigitallySignedStruct,
            ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>
            {
                Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
            }
            fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
                crate::tls::provider()
                    .signature_verification_algorithms
                    .supported_schemes()
            }
        }
        let mut ccfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAll))
            .with_no_client_auth();
        ccfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut client = rustls::ClientConnection::new(
            Arc::new(ccfg),
            ServerName::try_from(sni.to_string()).unwrap(),
        )
        .unwrap();
        let mut server = rustls::ServerConnection::new(cfg).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                server.read_tls(&mut &buf[..]).unwrap();
                server.process_new_packets().ok()?;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                client.read_tls(&mut &buf[..]).unwrap();
                client.process_new_packets().ok()?;
            }
            if !client.is_handshaking() {
                let cert = client.peer_certificates()?.first()?.to_vec();
                return Some((cert, client.alpn_protocol().map(|p| p.to_vec())));
            }
        }
        None
    }

    fn der(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn swapped_certificate_is_served_on_the_next_handshake() {
        let (a, a_pem) = ck("mx.a.test");
        let (b, b_pem) = ck("mx.a.test");
        let r = Arc::new(CertResolver::new(a));
        let cfg = resolver_config(r.clone(), &[]).unwrap();
        assert_eq!(
            handshake(cfg.clone(), "mx.a.test", &[]).unwrap().0,
            der(&a_pem)
        );
        r.set(b);
        assert_eq!(handshake(cfg, "mx.a.test", &[]).unwrap().0, der(&b_pem));
    }

    #[test]
    fn acme_alpn_gets_the_challenge_certificate_only() {
        let (real, real_pem) = ck("mx.a.test");
        let (chal, chal_pem) = ck("mx.a.test");
        let r = Arc::new(CertResolver::new(real));
        let cfg = resolver_config(r.clone(), &[b"http/1.1", ACME_TLS_ALPN]).unwrap();
        assert!(
            handshake(cfg.clone(), "mx.a.test", &[ACME_TLS_ALPN]).is_none(),
            "no challenge registered: the handshake fails instead of showing the real cert"
        );
        r.add_challenge("MX.a.test", chal);
        let (cert, alpn) = handshake(cfg.clone(), "mx.a.test", &[ACME_TLS_ALPN]).unwrap();
        assert_eq!(cert, der(&chal_pem));
        assert_eq!(alpn.as_deref(), Some(ACME_TLS_ALPN));
        let (cert, alpn) = handshake(cfg.clone(), "mx.a.test", &[b"http/1.1"]).unwrap();
        assert_eq!(cert, der(&real_pem));
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        r.remove_challenge("mx.a.test");
        assert!(handshake(cfg, "mx.a.test", &[ACME_TLS_ALPN]).is_none());
    }
}
