//! The TLS client for STARTTLS between MTAs, and the certificate check that makes a session
//! `verified` (issue 19).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// Accepts any server certificate in the handshake, because opportunistic TLS between MTAs
/// (RFC 7435, and postfix's `smtp_tls_security_level = may`) does not authenticate the
/// server: MX hosts commonly present self-signed or mismatched certificates, and refusing
/// them would only push the mail to clear text, which is strictly worse than
/// unauthenticated encryption. Authentication, where a policy asks for it, is
/// [`TlsClient::verify`] (or the DANE match) right after the handshake.
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

/// Where the trust roots for verified delivery come from (`outbound.trust_roots`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrustRoots {
    /// The Mozilla root program as compiled in (`webpki-root-certs`): the same on every
    /// host, and what a container without a CA bundle needs.
    #[default]
    Webpki,
    /// The operating system's store (`rustls-native-certs`), for operators who manage it.
    System,
}

/// The STARTTLS client: one handshake for every policy, then a policy-dependent check of
/// the certificate the server sent. The handshake accepts any chain (so opportunistic TLS
/// still encrypts to MX hosts with self-signed certificates); [`TlsClient::verify`] then
/// decides, before a byte of mail is sent, whether the session is `verified`. A policy that
/// requires it ends the session when it is not, and never falls back to clear text.
pub(crate) struct TlsClient {
    pub connector: TlsConnector,
    webpki: Arc<WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// `extra` are added to the roots (`outbound.danger_extra_roots_file`: a test CA).
    pub fn new(roots: TrustRoots, extra: &[CertificateDer<'static>]) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut store = RootCertStore::empty();
        match roots {
            TrustRoots::Webpki => {
                store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec());
            }
            TrustRoots::System => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "a system trust root could not be loaded");
                }
                store.add_parsable_certificates(found.certs);
            }
        }
        let (_, refused) = store.add_parsable_certificates(extra.to_vec());
        if refused > 0 {
            return Err(format!(
                "{refused} extra trust root(s) are not valid certificates"
            ));
        }
        if store.is_empty() {
            return Err("no trust roots: verified delivery would always fail".into());
        }
        let roots = Arc::new(store);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let verifier = Arc::new(DangerAcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            webpki,
            roots,
        })
    }

    /// An ordinary verifying client config over the same roots (the MTA-STS policy fetch).
    pub fn verified_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth())
    }

    /// Whether `chain` (leaf first, as the server sent it) is valid now for `name` under
    /// the trust roots: RFC 8461 §4.2 / RFC 6125 checks. The error says why not.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
    ) -> Result<(), rustls::Error> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        self.webpki
            .verify_server_cert(leaf, intermediates, name, &[], UnixTime::now())
            .map(|_| ())
    }
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
        assert!(TlsClient::new(TrustRoots::Webpki, &[]).is_ok());
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
