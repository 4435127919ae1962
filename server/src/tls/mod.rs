//! TLS for every listener. One [`CertResolver`] is shared by SMTP (STARTTLS and implicit),
//! IMAP and HTTPS and holds the current certificate — configured files, an ACME-issued one,
//! or a self-signed one made in the data directory — so a renewed certificate is served from
//! the next handshake on, without a restart.

pub mod acme;
mod listener;
mod resolver;
pub mod validity;

pub use listener::TlsListener;
pub use resolver::{CertResolver, ACME_TLS_ALPN};

use crate::config::Config;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// The one TLS crypto provider: ring. (aws-lc-rs builds here with the cc crate and signs
/// DKIM rsa-sha256, see `mailauth::keys`; switching TLS too would be a separate change.)
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` to `path` with mode 0600 (private keys, ACME account), replacing it
/// atomically so a reader never sees half a key.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| TlsError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Parses a PEM chain and key into a certificate ready to serve. `what` names the source in
/// errors.
pub fn load_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!("{what}: no certificate")));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| TlsError::Invalid(format!("{what}: {e}")))?
        .ok_or_else(|| TlsError::Invalid(format!("{what}: no private key")))?;
    let ck = CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| TlsError::Invalid(format!("{what}: {e}")))?;
    Ok(Arc::new(ck))
}

/// The certificates of a PEM file (trust roots: `outbound.danger_extra_roots_file`).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "{}: no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The hex SHA-256 of the SubjectPublicKeyInfo of the certificate port 25 serves (the DANE
/// `3 1 1` data): the configured file, else the ACME-issued one, else the self-signed one in
/// the data directory. `None` when none exists yet (the plan then has no TLSA record). Reads
/// only; never makes a certificate.
pub fn served_spki_sha256(config: &Config) -> Option<String> {
    use sha2::{Digest, Sha256};
    let path = if !config.tls.cert.is_empty() {
        PathBuf::from(&config.tls.cert)
    } else {
        let acme = acme::dir_of(config).join("cert.pem");
        let own = config.storage.path.join("tls-cert.pem");
        match (
            !config.acme.directory.is_empty() && acme.exists(),
            own.exists(),
        ) {
            (true, _) => acme,
            (false, true) => own,
            (false, false) => return None,
        }
    };
    let leaf = read_certs(&path).ok()?.into_iter().next()?;
    let ee = webpki::EndEntityCert::try_from(&leaf).ok()?;
    let spki = ee.subject_public_key_info();
    Some(data_encoding::HEXLOWER.encode(&Sha256::digest(spki.as_ref())))
}

/// Loads a PEM chain file and key file.
pub fn load_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    load_pem(
        &read(cert)?,
        &read(key)?,
        &format!("{} / {}", cert.display(), key.display()),
    )
}

/// A server config answering with whatever `resolver` holds at handshake time. `alpn` lists
/// the protocols offered; mail listeners pass none (rustls would refuse a client whose ALPN
/// list does not overlap a non-empty one).
pub fn resolver_config(
    resolver: Arc<CertResolver>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A mail-listener config serving one fixed PEM pair (tests, tools).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    resolver_config(Arc::new(CertResolver::new(load_files(cert, key)?)), &[])
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
    write_private(&key, made.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| TlsError::Write {
        path: cert.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((cert, key))
}

/// The certificate state of a server: the shared resolver, and the ACME manager when `[acme]`
/// is on (it renews into the same resolver).
pub struct Tls {
    pub resolver: Arc<CertResolver>,
    pub acme: Option<Arc<acme::Acme>>,
}

impl Tls {
    /// The starting certificate: `[tls]` files; else, with `[acme]` and the store, the one
    /// the nodes sharing it last stored; else (and until ACME's first order completes) the
    /// self-signed one in the data directory. Without the store (tools), ACME is off.
    pub fn from_config(
        config: &Config,
        acme_state: Option<(&crate::store::Store, &Arc<crate::vault::VaultService>)>,
    ) -> Result<Tls, TlsError> {
        if !config.tls.cert.is_empty() {
            let ck = load_files(Path::new(&config.tls.cert), Path::new(&config.tls.key))?;
            return Ok(Tls {
                resolver: Arc::new(CertResolver::new(ck)),
                acme: None,
            });
        }
        let names = vec![config.server.hostname.clone(), config.server.domain.clone()];
        let (c, k) = self_signed(&config.storage.path, &names)?;
        let resolver = Arc::new(CertResolver::new(load_files(&c, &k)?));
        let acme = match acme_state {
            Some((store, vault)) if !config.acme.directory.is_empty() => Some(Arc::new(
                acme::Acme::open(config, resolver.clone(), store.clone(), vault.clone()),
            )),
            _ => None,
        };
        Ok(Tls { resolver, acme })
    }

    /// For SMTP and IMAP: no ALPN.
    pub fn mail_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        resolver_config(self.resolver.clone(), &[])
    }

    /// For HTTPS: HTTP/1.1, plus `acme-tls/1` so TLS-ALPN-01 validation (always on port 443)
    /// reaches the challenge certificate.
    pub fn https_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        resolver_config(self.resolver.clone(), &[b"http/1.1", ACME_TLS_ALPN])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_loads_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = self_signed(dir.path(), &["localhost".into()]).unwrap();
        let first = std::fs::read(&c).unwrap();
        assert!(load_files(&c, &k).is_ok());
        let (c2, _) = self_signed(dir.path(), &["localhost".into()]).unwrap();
        assert_eq!(first, std::fs::read(c2).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(load_files(&c, &c).is_err(), "a cert is not a key");
    }

    #[test]
    fn mismatched_key_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let err = load_pem(
            a.cert.pem().as_bytes(),
            b.signing_key.serialize_pem().as_bytes(),
            "test",
        );
        assert!(err.is_err());
    }

    #[test]
    fn default_config_gets_a_self_signed_resolver_without_acme() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.storage.path = dir.path().to_path_buf();
        let tls = Tls::from_config(&cfg, None).unwrap();
        assert!(tls.acme.is_none());
        assert!(dir.path().join("tls-cert.pem").exists());
        let https = tls.https_config().unwrap();
        assert_eq!(https.alpn_protocols.len(), 2);
        assert!(tls.mail_config().unwrap().alpn_protocols.is_empty());
    }
}
