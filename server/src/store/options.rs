//! How to open the store: the engine and its settings.

use super::PgOptions;

/// Which engine to open.
#[derive(Debug, Clone, Default)]
pub enum Backend {
    /// sled under `<data>/db`, bodies under `<data>/blobs`.
    #[default]
    Sled,
    Postgres(PgOptions),
}

/// How to open the store; every field has a safe default.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in MiB (`storage.cache_mb`). sled's own default is 1 GiB, which
    /// is what let RSS grow with the mailbox.
    pub cache_mb: u64,
    /// Remove blob files left unreferenced by a crash while opening. Off only for
    /// `legate store verify`, which reports them instead.
    pub sweep_on_open: bool,
    /// Free bytes to keep on the data filesystem (`storage.min_free_mb`): below it new mail
    /// is refused ([`SpaceGuard`]). 0 = off, the default for tools that open the store alone.
    pub min_free_bytes: u64,
    /// zstd for what the store writes (`storage.compression`): message bodies of at least
    /// `compress_min_bytes` in the blob store, and the database's pages when it is created
    /// (sled fixes that choice for a database's life; an existing one keeps its own).
    pub compress: bool,
    pub compress_min_bytes: usize,
    /// `storage.backend`.
    pub backend: Backend,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_mb: 64,
            sweep_on_open: true,
            min_free_bytes: 0,
            compress: true,
            compress_min_bytes: 1024,
            backend: Backend::Sled,
        }
    }
}
