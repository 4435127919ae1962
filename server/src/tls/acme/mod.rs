//! ACME (RFC 8555) certificates for every TLS listener: obtained at start when none is stored,
//! renewed in the background before expiry, and swapped into the shared resolver so SMTP,
//! IMAP and HTTPS serve the new certificate without a restart. The account key and the
//! certificates live in `<storage.path>/acme/` with mode 0600.

pub mod challenge;
mod order;

pub use challenge::Http01Tokens;

use super::validity::{self, Validity};
use super::{load_pem, write_private, CertResolver, TlsError};
use crate::config::{AcmeConfig, Config};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One order may take this long before it is abandoned and retried later.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// First retry after a failed order, in seconds; doubles up to `check_interval_secs`.
const RETRY_BASE_SECS: u64 = 60;
const SECS_PER_DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("acme: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("acme: {0}")]
    Order(String),
}

/// A certificate found in the data directory, with its validity when it was issued for the
/// names configured now.
pub type Stored = (Arc<CertifiedKey>, Option<Validity>);

/// The ACME state of one server.
pub struct Acme {
    cfg: AcmeConfig,
    /// Names on the certificate, in order.
    domains: Vec<String>,
    /// `<storage.path>/acme`.
    dir: PathBuf,
    resolver: Arc<CertResolver>,
    tokens: Arc<Http01Tokens>,
    /// Validity of the ACME certificate being served; None while only the self-signed
    /// fallback is (or the stored one is for other names), which makes an order due now.
    validity: Mutex<Option<Validity>>,
}

fn domains_of(config: &Config) -> Vec<String> {
    if config.acme.domains.is_empty() {
        let mut d = vec![config.server.hostname.clone()];
        if config.server.domain != config.server.hostname {
            d.push(config.server.domain.clone());
        }
        d
    } else {
        config.acme.domains.clone()
    }
}

pub(crate) fn dir_of(config: &Config) -> PathBuf {
    config.storage.path.join("acme")
}

impl Acme {
    /// The certificate stored by a previous run, with its validity when it was issued for the
    /// names configured now.
    pub fn load_stored(config: &Config) -> Result<Option<Stored>, TlsError> {
        let dir = dir_of(config);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !(cert.exists() && key.exists()) {
            return Ok(None);
        }
        let chain = std::fs::read(&cert).map_err(|e| TlsError::Read {
            path: cert.display().to_string(),
            reason: e.to_string(),
        })?;
        let key_pem = zeroize::Zeroizing::new(std::fs::read(&key).map_err(|e| TlsError::Read {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?);
        let ck = load_pem(&chain, &key_pem, &cert.display().to_string())?;
        let names = std::fs::read_to_string(dir.join("names")).unwrap_or_default();
        let same = names
            .lines()
            .eq(domains_of(config).iter().map(String::as_str));
        let v = if same {
            Some(validity::of_pem(&chain)?)
        } else {
            None
        };
        Ok(Some((ck, v)))
    }

    pub fn new(config: &Config, resolver: Arc<CertResolver>, validity: Option<Validity>) -> Self {
        Self {
            cfg: config.acme.clone(),
            domains: domains_of(config),
            dir: dir_of(config),
            resolver,
            tokens: Arc::new(Http01Tokens::default()),
            validity: Mutex::new(validity),
        }
    }

    fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// The HTTP-01 route for the plain HTTP listener.
    pub fn http01_router(&self) -> axum::Router {
        challenge::router(self.tokens.clone())
    }

    /// Validity of the ACME certificate being served, if any.
    pub fn validity(&self) -> Option<Validity> {
        *self.validity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an order is due at unix time `now`.
    pub fn due(&self, now: i64) -> bool {
        let before = i64::try_from(self.cfg.renew_before_days)
            .unwrap_or(i64::MAX / SECS_PER_DAY)
            .saturating_mul(SECS_PER_DAY);
        match self.validity() {
            None => true,
            Some(v) => now >= v.renew_at(before),
        }
    }

    /// Orders a certificate now, stores it, and serves it from the next handshake on.
    pub async fn renew(&self) -> Result<Validity, AcmeError> {
        let issued = tokio::time::timeout(ORDER_TIMEOUT, order::issue(self))
            .await
            .map_err(|_| AcmeError::Order("the order timed out".into()))??;
        let ck = load_pem(
            issued.chain_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            "issued certificate",
        )?;
        let v = validity::of_pem(issued.chain_pem.as_bytes())?;
        self.store(&issued.chain_pem, &issued.key_pem)?;
        self.resolver.set(ck);
        *self.validity.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
        Ok(v)
    }

    fn store(&self, chain: &str, key: &str) -> Result<(), TlsError> {
        ensure_private_dir(&self.dir)?;
        // Key first: a crash in between leaves a new key with the old chain, which
        // `load_pem` rejects (keys must match) and the next start simply orders again.
        write_private(&self.dir.join("key.pem"), key.as_bytes())?;
        write_private(&self.dir.join("cert.pem"), chain.as_bytes())?;
        write_private(&self.dir.join("names"), self.domains.join("\n").as_bytes())
    }

    /// Checks every `check_interval_secs` and orders when due, until `shutdown`. A failed order
    /// is retried after 1, 2, 4... minutes, never slower than the check interval.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = self.cfg.check_interval_secs.max(1);
        let mut failures: u32 = 0;
        loop {
            let mut wait = interval;
            if self.due(crate::util::now_unix()) {
                tracing::info!(domains = ?self.domains, "acme: ordering a certificate");
                match self.renew().await {
                    Ok(v) => {
                        failures = 0;
                        tracing::info!(not_after = %crate::util::rfc3339(v.not_after), "acme: new certificate in service");
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        wait = RETRY_BASE_SECS
                            .saturating_mul(1u64 << failures.min(16).saturating_sub(1))
                            .min(interval);
                        tracing::warn!(error = %e, retry_in_secs = wait, "acme: order failed");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            }
        }
    }
}

pub(super) fn ensure_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| TlsError::Write {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::default();
        c.storage.path = dir.to_path_buf();
        c.server.hostname = "mx.a.test".into();
        c.server.domain = "a.test".into();
        c.acme.directory = "https://127.0.0.1:1/dir".into();
        c
    }

    fn pem_pair(names: &[&str], days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        p.not_after = p.not_before + time::Duration::days(days);
        (p.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn stored_certificate_is_reloaded_and_scheduled() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        assert!(Acme::load_stored(&cfg).unwrap().is_none());
        let (c, k) = pem_pair(&["x.test"], 2);
        let resolver = Arc::new(CertResolver::new(
            load_pem(c.as_bytes(), k.as_bytes(), "t").unwrap(),
        ));
        let acme = Acme::new(&cfg, resolver, None);
        assert_eq!(acme.domains, ["mx.a.test", "a.test"]);
        assert!(acme.due(0), "no ACME certificate yet: due at once");
        let (chain, key) = pem_pair(&["mx.a.test", "a.test"], 90);
        acme.store(&chain, &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join("acme").join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("key.pem"), 0o600);
        assert_eq!(mode(""), 0o700);
        let (_, v) = Acme::load_stored(&cfg).unwrap().unwrap();
        let v = v.unwrap();
        let acme = Acme::new(&cfg, acme.resolver.clone(), Some(v));
        let now = crate::util::now_unix();
        assert!(!acme.due(now), "a fresh 90-day certificate is not due");
        assert!(acme.due(v.not_after - 29 * SECS_PER_DAY));
        // Other names configured: the stored one is served but replaced at once.
        let mut other = cfg.clone();
        other.acme.domains = vec!["new.a.test".into()];
        assert!(Acme::load_stored(&other).unwrap().unwrap().1.is_none());
    }
}
