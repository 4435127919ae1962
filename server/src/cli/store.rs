//! `legate store …`: blob store checks, storage statistics, schema migrations, and copying
//! a store between engines.

mod copy;

use super::offline::print_json;
use anyhow::Context;
use clap::Subcommand;
use legate::config::Config;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum StoreCmd {
    /// Check that every message record has its body in the blob store and every blob file a
    /// holder; print a JSON report; exit 1 when anything is wrong.
    Verify {
        /// Also re-hash every blob file against its name (reads every body).
        #[arg(long)]
        deep: bool,
        /// Remove orphan blob files (no holder) older than --grace-secs.
        #[arg(long)]
        sweep: bool,
        /// Orphans younger than this are kept by --sweep.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// Print, as JSON, each tree's live entries and key/value bytes, the database's size on
    /// disk and the blob store's: what grows with the mailbox.
    Stats,
    /// Bring the configured store's schema up to date (PostgreSQL: the versioned database
    /// migrations; both: the data migrations), then print the versions as JSON. `serve` runs
    /// them too; this runs them alone, e.g. before starting several nodes.
    Migrate,
    /// Copy every tree and every message body from one store into another, empty one, then
    /// verify entry counts per tree, blob counts and the audit chain. Each side is a sled
    /// data directory or a PostgreSQL URL (`postgres://…`), or `@FILE` for a URL kept in a
    /// file; TLS to PostgreSQL follows `[storage] sslmode` and `ca_file`. Stop the servers
    /// using the source first.
    Copy {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
}

/// `legate store …`: opens the store alone (no services), without the start-up sweep, so
/// orphans are reported rather than silently removed.
pub(super) fn store_cmd(cfg: Config, c: StoreCmd) -> anyhow::Result<ExitCode> {
    if let StoreCmd::Copy { from, to } = &c {
        return copy::copy(&cfg, from, to);
    }
    // No disk reserve: the tools must work on a full disk.
    let opts = legate::store::StoreOptions {
        min_free_bytes: 0,
        ..cfg.storage.store_options(false)
    };
    let store = legate::store::Store::open_with(&cfg.storage.path, &opts)
        .with_context(|| format!("cannot open the store in {}", cfg.storage.path.display()))?;
    match c {
        StoreCmd::Verify {
            deep,
            sweep,
            grace_secs,
        } => {
            let grace = sweep.then(|| std::time::Duration::from_secs(grace_secs));
            let report = store.verify_blobs(deep, grace)?;
            let clean = report.is_clean();
            let mut v = serde_json::to_value(&report)?;
            v["clean"] = serde_json::Value::Bool(clean);
            print_json(&v);
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        StoreCmd::Stats => {
            print_json(&serde_json::to_value(store.stats()?)?);
            Ok(ExitCode::SUCCESS)
        }
        StoreCmd::Migrate => {
            let (found, now) = store.database_schema();
            print_json(&serde_json::json!({
                "backend": store.backend_name(),
                "database_schema_found": found,
                "database_schema": now,
                "schema_version": legate::store::SCHEMA_VERSION,
            }));
            Ok(ExitCode::SUCCESS)
        }
        StoreCmd::Copy { .. } => Ok(ExitCode::FAILURE),
    }
}
