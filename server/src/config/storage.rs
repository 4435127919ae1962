//! Where and how the store keeps its data: the sled or PostgreSQL backend, its cache and the
//! disk reserve.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub path: PathBuf,
    /// The database's page cache in MiB. sled's own default (1 GiB) let memory grow with
    /// the mailbox; bodies live in the blob store (`<path>/blobs`), not in this cache.
    pub cache_mb: u64,
    /// Free space, in MiB, kept on the filesystem of `path` (postfix's `queue_minfree`):
    /// below it new mail is refused with a temporary error, so the database and the blob
    /// store never meet a full disk while mail already accepted still has room. 0 = off.
    pub min_free_mb: u64,
    /// zstd for message bodies of at least `compression_min_bytes` in the blob store and
    /// for the pages of a database created with it on (an existing database keeps the
    /// choice it was created with). Readers handle either form, so it can be turned off
    /// at any time.
    pub compression: bool,
    pub compression_min_bytes: u64,
    /// `"sled"` (embedded, the default) or `"postgres"` (several nodes on one database).
    pub backend: String,
    /// PostgreSQL connection URL (`postgres://user:password@host:port/db`). Prefer
    /// `url_file` for one holding a password. Redacted in Debug.
    #[serde(skip_serializing)]
    pub url: String,
    /// A file holding the URL (mode 0600), read when the store opens.
    pub url_file: String,
    /// Connections to PostgreSQL (each on a thread of its own).
    pub pool_size: u32,
    /// `"verify-full"` (TLS, certificate and host name verified; the default) or
    /// `"disable"` (only for loopback or a Unix socket, unless `danger_plaintext`).
    pub sslmode: String,
    /// PEM roots for verifying the database's certificate; empty: the system's.
    pub ca_file: String,
    /// Allow `sslmode = "disable"` to a database across a network.
    pub danger_plaintext: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data"),
            cache_mb: 64,
            min_free_mb: 256,
            compression: true,
            compression_min_bytes: 1024,
            backend: "sled".into(),
            url: String::new(),
            url_file: String::new(),
            pool_size: 8,
            sslmode: "verify-full".into(),
            ca_file: String::new(),
            danger_plaintext: false,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the database password.
        f.debug_struct("StorageConfig")
            .field("path", &self.path)
            .field("cache_mb", &self.cache_mb)
            .field("min_free_mb", &self.min_free_mb)
            .field("compression", &self.compression)
            .field("compression_min_bytes", &self.compression_min_bytes)
            .field("backend", &self.backend)
            .field(
                "url",
                &if self.url.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("sslmode", &self.sslmode)
            .field("ca_file", &self.ca_file)
            .field("danger_plaintext", &self.danger_plaintext)
            .finish()
    }
}

impl StorageConfig {
    /// `min_free_mb` in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1024 * 1024)
    }

    /// How the server opens its store. `sweep_on_open` is off only for tools that report
    /// orphan blobs instead of removing them.
    pub fn store_options(&self, sweep_on_open: bool) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_mb: self.cache_mb,
            sweep_on_open,
            min_free_bytes: self.min_free_bytes(),
            compress: self.compression,
            compress_min_bytes: usize::try_from(self.compression_min_bytes).unwrap_or(usize::MAX),
            backend: self.backend(),
        }
    }

    /// The engine `backend` names (validated at load: anything but "postgres" is sled).
    pub fn backend(&self) -> crate::store::Backend {
        if self.backend != "postgres" {
            return crate::store::Backend::Sled;
        }
        let opt_path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        crate::store::Backend::Postgres(crate::store::PgOptions {
            url: zeroize::Zeroizing::new(self.url.clone()),
            url_file: opt_path(&self.url_file),
            pool_size: usize::try_from(self.pool_size).unwrap_or(8),
            sslmode: if self.sslmode == "disable" {
                crate::store::SslMode::Disable
            } else {
                crate::store::SslMode::VerifyFull
            },
            ca_file: opt_path(&self.ca_file),
            danger_plaintext: self.danger_plaintext,
        })
    }
}
