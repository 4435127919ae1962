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

/// On the running server when one answers (it swaps the root key it holds and goes on),
/// else on the data directory: either way every key is re-wrapped in one transaction.
pub(super) async fn rotate_master(
    cfg: Config,
    new_key: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let new_key = absolute(new_key)?;
    let mut session = super::session::Session::open(&cfg).await?;
    let v = session
        .call(
            "vault.rotate_master",
            serde_json::json!({ "new_key_file": new_key.display().to_string() }),
        )
        .await?;
    if json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    if v["created"].as_bool() == Some(true) {
        println!("created new root key {} (mode 0600)", new_key.display());
    }
    println!(
        "re-wrapped {} agent key(s) and all custody keys under the new root key",
        v["agent_keys"]
    );
    println!(
        "now set vault.master_key_file = \"{}\" (the old key no longer opens this vault)",
        new_key.display()
    );
    if let Some(w) = v["warning"].as_str() {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The server may run in another working directory: it gets an absolute path.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(p))
}
