//! TLS server configuration: the configured certificate, or a self-signed one made once in
//! the data directory (dev mode and tests; mail from the internet needs a real certificate).

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Loads a PEM chain and key into a rustls server config (ring provider, TLS 1.2 and 1.3).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key.display())))?
        .ok_or_else(|| TlsError::Invalid(format!("{}: no private key", key.display())))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Invalid(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| TlsError::Invalid(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// Paths of the self-signed pair in `dir`, made on first use (key file mode 0600).
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("tls-cert.pem");
    let key = dir.join("tls-key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Invalid(e.to_string()))?;
    let io = |p: &Path, e: std::io::Error| TlsError::Read {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .map_err(|e| io(&key, e))?;
        f.write_all(made.signing_key.serialize_pem().as_bytes())
            .map_err(|e| io(&key, e))?;
    }
    std::fs::write(&cert, made.cert.pem()).map_err(|e| io(&cert, e))?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_loads_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = self_signed(dir.path(), &["localhost".into()]).unwrap();
        let first = std::fs::read(&c).unwrap();
        assert!(server_config(&c, &k).is_ok());
        let (c2, _) = self_signed(dir.path(), &["localhost".into()]).unwrap();
        assert_eq!(first, std::fs::read(c2).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(server_config(&c, &c).is_err(), "a cert is not a key");
    }
}
