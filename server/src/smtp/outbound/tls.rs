//! The TLS client for STARTTLS between MTAs.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// Accepts any server certificate, because opportunistic TLS between MTAs (RFC 7435, and
/// postfix's `smtp_tls_security_level = may` / `encrypt`) does not authenticate the server:
/// MX hosts commonly present self-signed or mismatched certificates, and refusing them would
/// only push the mail to clear text, which is strictly worse than unauthenticated
/// encryption. Authenticated delivery needs MTA-STS or DANE, which this verifier does not
/// claim to be.
///
/// It still checks the handshake signatures with the provider's algorithms, so the peer
/// must hold the private key of the certificate it sent; only the chain and name go
/// unchecked.
#[derive(Debug)]
pub(crate) struct DangerAcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for DangerAcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The connector for every STARTTLS (ring provider, TLS 1.2 and 1.3).
pub(crate) fn danger_opportunistic_connector() -> Result<TlsConnector, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(DangerAcceptAnyServerCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// SNI and the name rustls wants: the MX name when it is one, else the address.
pub(crate) fn server_name(host: &str, ip: std::net::IpAddr) -> ServerName<'static> {
    ServerName::try_from(host.trim_end_matches('.').to_string())
        .unwrap_or_else(|_| ServerName::IpAddress(ip.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_names() {
        assert!(danger_opportunistic_connector().is_ok());
        let ip = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            server_name("mx.b.test.", ip),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("not a name!", ip),
            ServerName::IpAddress(_)
        ));
    }
}
