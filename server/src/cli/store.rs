//! `legate store …`: blob store checks and storage statistics.

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
}

/// `legate store …`: opens the store alone (no services), without the start-up sweep, so
/// orphans are reported rather than silently removed.
pub(super) fn store_cmd(cfg: Config, c: StoreCmd) -> anyhow::Result<ExitCode> {
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
    }
}
