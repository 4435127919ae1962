//! `legate vault …`: re-wrap every key under a new root key.

use clap::Subcommand;
use legate::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum VaultCmd {
    /// Re-wrap every key under a new root key (created with mode 0600 if the file does not
    /// exist); then point vault.master_key_file at it. The old key opens nothing afterwards.
    RotateMaster {
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

/// Offline only: the running server holds the root key in memory, so it refuses (exit 3)
/// and says to stop it first; asking it keeps that answer the same as every admin command's.
pub(super) async fn rotate_master(cfg: Config, new_key: &Path) -> anyhow::Result<ExitCode> {
    if let Some(mut c) = super::session::Session::server(&cfg).await? {
        let req = legate::admin::Request::new("vault.rotate_master", serde_json::json!({}));
        c.call(&req).await?;
    }
    let store = legate::store::Store::open(&cfg.storage.path)?;
    let (n, created) = legate::vault::rotate_master_files(
        &store,
        &cfg.vault.master_key_file,
        &cfg.storage.path,
        new_key,
    )?;
    if created {
        println!("created new root key {} (mode 0600)", new_key.display());
    }
    println!("re-wrapped {n} agent key(s) and all custody keys under the new root key");
    println!(
        "now set vault.master_key_file = \"{}\" (the old key no longer opens this vault)",
        new_key.display()
    );
    Ok(ExitCode::SUCCESS)
}
