//! ACME (RFC 8555) certificates for every TLS listener: obtained at start when none is stored,
//! renewed in the background before expiry, and swapped into the shared resolver so SMTP,
//! IMAP and HTTPS serve the new certificate without a restart.
//!
//! The state lives in the store ([`shared`]: chain, names, validity, the order lease, the
//! HTTP-01 answers) and the keys in the vault (`vault::acme`, sealed), so the nodes sharing
//! one PostgreSQL share one certificate: one node orders under a lease with an expiry, the
//! others reload, woken by the `cert` signal (LISTEN/NOTIFY, `crate::nodes`) and, should
//! one be lost, at their next check. A public copy of the chain is kept in
//! `<storage.path>/acme/cert.pem` for `legate doctor` and the DNS plan (TLSA), which read the
//! data directory only. Older versions kept the key and account there too: they are moved
//! into the vault at start ([`Acme::open`]).

pub mod challenge;
mod order;
pub mod shared;

pub use challenge::Http01Tokens;

use super::validity::{self, Validity};
use super::{write_private, CertResolver, TlsError};
use crate::config::{AcmeConfig, Config};
use crate::store::{Store, StoreError};
use crate::vault::{VaultError, VaultService};
use rustls::sign::CertifiedKey;
use shared::CertRecord;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One order may take this long before it is abandoned and retried later.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// The order lease outlives the longest order by a margin, so it never lapses under a live
/// order; a node killed mid-order holds it at most this long.
const LEASE_TTL: Duration = Duration::from_secs(360);
/// First retry after a failed order, in seconds; doubles up to `check_interval_secs`.
const RETRY_BASE_SECS: u64 = 60;
/// While another node holds the order lease, look again this often (at most): its new
/// certificate usually arrives first, by the `cert` signal.
const BUSY_RETRY_SECS: u64 = 10;
const SECS_PER_DAY: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("acme: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("acme: {0}")]
    Order(String),
    #[error("acme state: {0}")]
    Store(#[from] StoreError),
    #[error("acme keys: {0}")]
    Vault(#[from] VaultError),
}

/// The ACME state of one server.
pub struct Acme {
    cfg: AcmeConfig,
    /// Names on the certificate, in order.
    domains: Vec<String>,
    /// `<storage.path>/acme`: the public copy of the chain (and, before, the keys).
    dir: PathBuf,
    resolver: Arc<CertResolver>,
    tokens: Arc<Http01Tokens>,
    store: Store,
    vault: Arc<VaultService>,
    /// This process's name as holder of the order lease.
    node: String,
    /// Validity of the ACME certificate being served; None while only the self-signed
    /// fallback is (or the stored one is for other names), which makes an order due now.
    validity: Mutex<Option<Validity>>,
    /// Generation of the stored certificate being served; 0 while none is.
    served: AtomicU64,
}

/// What one check did.
#[derive(Debug)]
enum Checked {
    /// The certificate served is not due.
    Fresh,
    /// Another node holds the order lease.
    Busy,
    Renewed(Validity),
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

fn read_optional(path: &Path) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, TlsError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(zeroize::Zeroizing::new(b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TlsError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}

impl Acme {
    /// The validity of the certificate last served, from the public copy in the data
    /// directory (no key, no store: for `legate doctor`): None when there is none, Some(None)
    /// when it was issued for other names than those configured now.
    pub fn mirrored_validity(config: &Config) -> Result<Option<Option<Validity>>, TlsError> {
        let dir = dir_of(config);
        let Some(chain) = read_optional(&dir.join("cert.pem"))? else {
            return Ok(None);
        };
        let names = std::fs::read_to_string(dir.join("names")).unwrap_or_default();
        let same = names
            .lines()
            .eq(domains_of(config).iter().map(String::as_str));
        let v = validity::of_pem(&chain)?;
        Ok(Some(same.then_some(v)))
    }

    /// The ACME manager over the shared state, serving the stored certificate (if any) into
    /// `resolver` at once. Takes over the key files of older versions first.
    pub fn open(
        config: &Config,
        resolver: Arc<CertResolver>,
        store: Store,
        vault: Arc<VaultService>,
    ) -> Self {
        let acme = Self {
            cfg: config.acme.clone(),
            domains: domains_of(config),
            dir: dir_of(config),
            resolver,
            tokens: Arc::new(Http01Tokens::shared(store.clone())),
            store,
            vault,
            node: crate::util::new_id("node"),
            validity: Mutex::new(None),
            served: AtomicU64::new(0),
        };
        acme.migrate_files();
        acme.reload();
        acme
    }

    /// Moves `key.pem` and `account.json` of an older version into the vault, and its
    /// certificate into the store when the store has none; then deletes the key files.
    /// On failure they stay (and are tried again at the next start); this node orders anew.
    fn migrate_files(&self) {
        let (key, account) = (self.dir.join("key.pem"), self.dir.join("account.json"));
        if !key.exists() && !account.exists() {
            return;
        }
        match self.try_migrate(&key, &account) {
            Ok(()) => tracing::info!(
                dir = %self.dir.display(),
                "acme: the certificate key and account moved from the data directory into the vault"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "acme: the key files of an older version were not taken over")
            }
        }
    }

    fn try_migrate(&self, key: &Path, account: &Path) -> Result<(), AcmeError> {
        let key_pem = read_optional(key)?;
        let account_json = read_optional(account)?;
        self.vault.import_acme_files(
            key_pem.as_deref().map(Vec::as_slice),
            account_json.as_deref().map(Vec::as_slice),
        )?;
        if shared::cert(&self.store)?.is_none() {
            if let Some(chain) = read_optional(&self.dir.join("cert.pem"))? {
                let chain = String::from_utf8_lossy(&chain).into_owned();
                // Only a chain the stored key serves: another node's key may have won.
                if self.vault.acme_certificate(chain.as_bytes()).is_ok() {
                    let names = std::fs::read_to_string(self.dir.join("names"))
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_string)
                        .collect();
                    self.put(chain, names)?;
                }
            }
        }
        for p in [key, account] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(TlsError::Write {
                        path: p.display().to_string(),
                        reason: e.to_string(),
                    }
                    .into())
                }
            }
        }
        Ok(())
    }

    /// Stores `chain` as the next generation.
    fn put(&self, chain: String, names: Vec<String>) -> Result<CertRecord, AcmeError> {
        let v = validity::of_pem(chain.as_bytes())?;
        Ok(shared::put_cert(
            &self.store,
            CertRecord {
                generation: 0,
                chain_pem: chain,
                names,
                not_before: v.not_before,
                not_after: v.not_after,
                by: self.node.clone(),
            },
        )?)
    }

    /// Serves the stored certificate when it is not the one served now (another node
    /// renewed): what the `cert` signal and every check call. True when it changed.
    pub fn reload(&self) -> bool {
        match self.try_reload() {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(error = %e, "acme: cannot load the stored certificate");
                false
            }
        }
    }

    fn try_reload(&self) -> Result<bool, AcmeError> {
        let Some(rec) = shared::cert(&self.store)? else {
            return Ok(false);
        };
        if rec.generation == self.served.load(Ordering::Acquire) {
            return Ok(false);
        }
        let ck = self.vault.acme_certificate(rec.chain_pem.as_bytes())?;
        self.serve(&rec, ck);
        tracing::info!(generation = rec.generation, by = %rec.by, not_after = %crate::util::rfc3339(rec.not_after), "acme: serving the stored certificate");
        Ok(true)
    }

    fn serve(&self, rec: &CertRecord, ck: Arc<CertifiedKey>) {
        self.resolver.set(ck);
        let v = Validity {
            not_before: rec.not_before,
            not_after: rec.not_after,
        };
        *self.validity.lock().unwrap_or_else(|e| e.into_inner()) =
            (rec.names == self.domains).then_some(v);
        self.served.store(rec.generation, Ordering::Release);
        if let Err(e) = self.write_mirror(rec) {
            tracing::warn!(error = %e, "acme: cannot write the public copy of the certificate");
        }
    }

    /// The public copy for `legate doctor` and the DNS plan.
    fn write_mirror(&self, rec: &CertRecord) -> Result<(), TlsError> {
        ensure_private_dir(&self.dir)?;
        write_private(&self.dir.join("cert.pem"), rec.chain_pem.as_bytes())?;
        write_private(&self.dir.join("names"), rec.names.join("\n").as_bytes())
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

    /// Orders a certificate now, stores it for every node, serves it from the next
    /// handshake on, and tells the other nodes. The caller holds the order lease.
    pub async fn renew(&self) -> Result<Validity, AcmeError> {
        let chain = tokio::time::timeout(ORDER_TIMEOUT, order::issue(self))
            .await
            .map_err(|_| AcmeError::Order("the order timed out".into()))??;
        let ck = self.vault.acme_certificate(chain.as_bytes())?;
        let rec = self.put(chain, self.domains.clone())?;
        self.store.commit().await?;
        self.serve(&rec, ck);
        self.store
            .signal(&crate::nodes::Signal::Certificate.to_string());
        Ok(Validity {
            not_before: rec.not_before,
            not_after: rec.not_after,
        })
    }

    /// Reloads, and orders when due and no other node is ordering.
    async fn check(&self) -> Result<Checked, AcmeError> {
        self.reload();
        if !self.due(crate::util::now_unix()) {
            return Ok(Checked::Fresh);
        }
        let ttl = i64::try_from(LEASE_TTL.as_millis()).unwrap_or(i64::MAX);
        if !shared::take_lease(&self.store, &self.node, crate::util::now_millis(), ttl)? {
            return Ok(Checked::Busy);
        }
        let r = async {
            // The lease may have come free because its holder just stored a certificate.
            self.reload();
            if !self.due(crate::util::now_unix()) {
                return Ok(Checked::Fresh);
            }
            shared::clear_tokens(&self.store)?;
            tracing::info!(domains = ?self.domains, "acme: ordering a certificate");
            self.renew().await.map(Checked::Renewed)
        }
        .await;
        if let Err(e) = shared::release_lease(&self.store, &self.node) {
            tracing::warn!(error = %e, "acme: cannot release the order lease (it expires)");
        }
        r
    }

    /// Checks every `check_interval_secs` and orders when due, until `shutdown`. A failed order
    /// is retried after 1, 2, 4... minutes, never slower than the check interval.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = self.cfg.check_interval_secs.max(1);
        let mut failures: u32 = 0;
        loop {
            let mut wait = interval;
            match self.check().await {
                Ok(Checked::Fresh) => {}
                Ok(Checked::Busy) => {
                    tracing::debug!("acme: another node is ordering");
                    wait = interval.min(BUSY_RETRY_SECS);
                }
                Ok(Checked::Renewed(v)) => {
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

    fn vault(store: &Store) -> Arc<VaultService> {
        let audit = Arc::new(crate::audit::Audit::open(store.clone()).unwrap());
        Arc::new(
            VaultService::with_root(
                store.clone(),
                audit,
                Arc::new(crate::metrics::Metrics::new()),
                crate::vault::crypto::Key32::random(),
            )
            .unwrap(),
        )
    }

    fn pem_pair(names: &[&str], days: i64, key: &rcgen::KeyPair) -> String {
        let mut p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        p.not_after = p.not_before + time::Duration::days(days);
        p.self_signed(key).unwrap().pem()
    }

    fn fallback() -> Arc<CertResolver> {
        let made = rcgen::generate_simple_self_signed(vec!["x.test".into()]).unwrap();
        Arc::new(CertResolver::new(
            crate::tls::load_pem(
                made.cert.pem().as_bytes(),
                made.signing_key.serialize_pem().as_bytes(),
                "t",
            )
            .unwrap(),
        ))
    }

    fn served_der(r: &CertResolver) -> Vec<u8> {
        r.current().cert[0].to_vec()
    }

    /// A node upgraded with files on disk keeps serving them, from the store; the key files
    /// are gone; a second node on the same store reloads what the first stores next.
    #[test]
    fn files_migrate_into_the_store_and_a_newer_certificate_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = Store::open(&dir.path().join("db")).unwrap();
        let vault = vault(&store);
        let key = rcgen::KeyPair::generate().unwrap();
        let chain = pem_pair(&["mx.a.test", "a.test"], 90, &key);
        let acme_dir = dir_of(&cfg);
        ensure_private_dir(&acme_dir).unwrap();
        write_private(&acme_dir.join("key.pem"), key.serialize_pem().as_bytes()).unwrap();
        write_private(&acme_dir.join("cert.pem"), chain.as_bytes()).unwrap();
        write_private(&acme_dir.join("names"), b"mx.a.test\na.test").unwrap();

        let resolver_a = fallback();
        let a = Acme::open(&cfg, resolver_a.clone(), store.clone(), vault.clone());
        assert!(!acme_dir.join("key.pem").exists(), "the key left the disk");
        let stored = shared::cert(&store).unwrap().unwrap();
        assert_eq!(stored.generation, 1);
        assert_eq!(stored.chain_pem, chain);
        let leaf = rustls_pemfile::certs(&mut chain.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(served_der(&resolver_a), leaf.to_vec());
        let now = crate::util::now_unix();
        assert!(!a.due(now), "a fresh 90-day certificate is not due");
        assert!(a.due(a.validity().unwrap().not_after - 29 * SECS_PER_DAY));
        assert!(matches!(
            Acme::mirrored_validity(&cfg).unwrap(),
            Some(Some(_))
        ));

        // Node B on the same store serves it at once.
        let resolver_b = fallback();
        let b = Acme::open(&cfg, resolver_b.clone(), store.clone(), vault.clone());
        assert_eq!(served_der(&resolver_b), leaf.to_vec());
        assert!(!b.reload(), "nothing newer");

        // A renews (same key, as a renewal keeps it): B picks the newer one up on reload.
        let renewed = pem_pair(&["mx.a.test", "a.test"], 90, &key);
        let rec = a.put(renewed.clone(), a.domains.clone()).unwrap();
        assert_eq!(rec.generation, 2);
        assert!(b.reload());
        let leaf2 = rustls_pemfile::certs(&mut renewed.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(served_der(&resolver_b), leaf2.to_vec());
        assert!(!b.reload());

        // Other names configured: served, but replaced at once.
        let mut other = cfg.clone();
        other.acme.domains = vec!["new.a.test".into()];
        let c = Acme::open(&other, fallback(), store, vault);
        assert!(c.validity().is_none() && c.due(now));
        assert!(matches!(
            Acme::mirrored_validity(&other).unwrap(),
            Some(None)
        ));
    }

    #[test]
    fn a_broken_key_file_is_kept_and_nothing_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = Store::open(&dir.path().join("db")).unwrap();
        let acme_dir = dir_of(&cfg);
        ensure_private_dir(&acme_dir).unwrap();
        write_private(&acme_dir.join("key.pem"), b"not a key").unwrap();
        let a = Acme::open(&cfg, fallback(), store.clone(), vault(&store));
        assert!(acme_dir.join("key.pem").exists());
        assert!(shared::cert(&store).unwrap().is_none());
        assert!(a.due(0));
    }
}
