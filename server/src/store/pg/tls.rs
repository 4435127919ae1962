//! TLS to PostgreSQL through rustls (ring), with the server certificate verified.

use crate::store::StoreError;
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// A connector verifying the server against `ca_file` (PEM) or the system's roots, and its
/// certificate's name against the host connected to.
pub(super) fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            let pem = std::fs::read(p)
                .map_err(|e| StoreError::Io(format!("storage.ca_file {}: {e}", p.display())))?;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| StoreError::Io(format!("storage.ca_file: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| StoreError::Io(format!("storage.ca_file: {e}")))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        return Err(StoreError::Io(
            "no trust roots to verify the database's certificate (set storage.ca_file)".into(),
        ));
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Io(format!("tls: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(cfg))
}

/// Every host of the configuration is a Unix socket or a loopback address (where plaintext
/// never crosses a network).
pub(super) fn all_local(cfg: &postgres::Config) -> bool {
    use postgres::config::Host;
    let hosts = cfg.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|h| match h {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Host::Unix(_) => true,
        })
        && cfg
            .get_hostaddrs()
            .iter()
            .all(std::net::IpAddr::is_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_sockets_count_as_local() {
        let local = |u: &str| all_local(&u.parse().unwrap());
        assert!(local("postgres://u@127.0.0.1:5432/db"));
        assert!(local("postgres://u@localhost/db"));
        assert!(local("host=/run/postgresql user=u"));
        assert!(!local("postgres://u@db.example.com/db"));
        assert!(!local("postgres://u@10.0.0.5/db"));
        assert!(!local("user=u"));
    }
}
