//! rustls server configurations for every TLS listener (SMTP STARTTLS and 465, IMAP, HTTPS).
//!
//! The ring provider is named explicitly rather than relying on a process-wide default: the
//! dependency graph also links other rustls users, and an implicit default panics at runtime when
//! more than one provider is compiled in.
//!
//! When the operator configures neither `[tls]` nor `[acme]`, [`self_signed`] makes a
//! certificate once in the data directory and reuses it on every start, so clients that pinned
//! it keep working across restarts.

use std::fs;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// File names of the generated development certificate inside the data directory.
const SELF_SIGNED_CERT: &str = "tls-self-signed.crt.pem";
const SELF_SIGNED_KEY: &str = "tls-self-signed.key.pem";

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no certificate found in PEM file")]
    NoCertificate(PathBuf),
    #[error("{0}: no private key found in PEM file")]
    NoPrivateKey(PathBuf),
    #[error("rustls rejected the configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads every certificate of a PEM chain (leaf first, as the file lists them).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(io_err(path))?
        .ok_or_else(|| TlsError::NoPrivateKey(path.to_path_buf()))
}

/// A server configuration from a certificate chain and key in PEM files, with the ring provider
/// and rustls' safe protocol versions (TLS 1.2 and 1.3).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert)?;
    let key = load_key(key)?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// Returns the paths of a self-signed certificate for `hostnames` in `dir`, generating it on
/// first use. The key file is created with mode 0600 so only the service user can read it.
/// An existing pair is reused as is, even if `hostnames` changed: replacing a certificate that
/// clients may have pinned is the operator's decision (delete the files to regenerate).
pub fn self_signed(dir: &Path, hostnames: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join(SELF_SIGNED_CERT);
    let key_path = dir.join(SELF_SIGNED_KEY);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(hostnames.to_vec())?;
    let key_pem = zeroize::Zeroizing::new(signing_key.serialize_pem());
    write_private(&key_path, key_pem.as_bytes())?;
    fs::write(&cert_path, cert.pem()).map_err(io_err(&cert_path))?;
    Ok((cert_path, key_path))
}

/// Writes a file that only its owner may read, creating it with that mode so the secret is never
/// briefly world-readable.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client configuration that trusts exactly the given certificate, for tests that talk
    /// TLS to our own listeners.
    pub(crate) fn client_config_trusting(cert: &Path) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(cert).unwrap() {
            roots.add(c).unwrap();
        }
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        Arc::new(config)
    }

    #[test]
    fn self_signed_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_string()];
        let (cert, key) = self_signed(dir.path(), &names).unwrap();
        let first = fs::read(&cert).unwrap();
        let (cert2, _) = self_signed(dir.path(), &names).unwrap();
        assert_eq!(first, fs::read(&cert2).unwrap(), "reused, not regenerated");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        server_config(&cert, &key).unwrap();
        client_config_trusting(&cert);
    }

    #[test]
    fn missing_or_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "nothing here").unwrap();
        assert!(matches!(
            load_certs(&empty),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(matches!(load_key(&empty), Err(TlsError::NoPrivateKey(_))));
        assert!(matches!(
            load_certs(&dir.path().join("absent.pem")),
            Err(TlsError::Io { .. })
        ));
    }
}
