//! `legate backup` and `legate restore` (see `legate::backup` for why the copy is
//! consistent while the server takes mail).

use super::offline::{open_existing_store, print_json};
use super::session::Session;
use clap::Args;
use legate::admin::AdminError;
use legate::backup::Manifest;
use legate::config::Config;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(super) struct BackupArgs {
    /// The file to write (replaced atomically when complete).
    #[arg(long)]
    to: PathBuf,
}

#[derive(Args)]
pub(super) struct RestoreArgs {
    /// A file `legate backup` wrote.
    #[arg(long)]
    from: PathBuf,
    /// The new data directory: missing or empty.
    #[arg(long)]
    data: PathBuf,
}

/// Said by both commands: where the root key is not, and what that means.
const SEALED: &str = "the master key is not in the backup: the vault stays sealed until the \
restored server is given the same master key (vault.master_key_file or LEGATE_MASTER_KEY)";

pub(super) async fn backup(cfg: Config, a: BackupArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    // The server writes the file itself, so the path must not depend on its working directory.
    let to = std::path::absolute(&a.to)?;
    let v = match Session::server(&cfg).await? {
        Some(mut c) => {
            let req = legate::admin::Request::new("backup", json!({"to": to}));
            c.call(&req).await?
        }
        None => {
            let store = open_existing_store(&cfg)?;
            let data = cfg.storage.path.clone();
            let path = to.clone();
            let m =
                tokio::task::spawn_blocking(move || legate::backup::create(&store, &data, &path))
                    .await?
                    .map_err(AdminError::from)?;
            serde_json::to_value(m)?
        }
    };
    let m: Manifest = serde_json::from_value(v)?;
    if as_json {
        print_json(&serde_json::to_value(&m)?);
    } else {
        println!("backup written to {}", to.display());
        print!("{}", summary(&m));
        println!("{SEALED}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn restore(a: RestoreArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let (from, data) = (a.from.clone(), a.data.clone());
    let m = tokio::task::spawn_blocking(move || legate::backup::restore(&from, &data))
        .await?
        .map_err(AdminError::from)?;
    if as_json {
        print_json(&serde_json::to_value(&m)?);
    } else {
        println!(
            "restored into {} (manifest and audit chain verified)",
            a.data.display()
        );
        print!("{}", summary(&m));
        println!("{SEALED}");
        println!(
            "set storage.path = \"{}\" in the config (it is not in the backup) and start the server",
            a.data.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(m: &Manifest) -> String {
    let c = &m.counts;
    format!(
        "legate {} schema {}, made {}\n\
         {} agents, {} API keys, {} credentials, {} messages ({} bodies, {} bytes), {} queued\n\
         audit head {}\n",
        m.legate_version,
        m.schema_version,
        m.created_at,
        c.agents,
        c.api_keys,
        c.credentials,
        c.messages,
        c.blobs,
        c.blob_bytes,
        c.queued,
        m.audit_head.as_deref().unwrap_or("(empty log)")
    )
}
