//! `legate suppressions …`: the org's suppression list (addresses no agent may send to).

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum SuppressionsCmd {
    /// The suppressed addresses of an org (default: the org of server.domain).
    List {
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Suppress an address: sends to it are refused (422 suppressed).
    Add {
        address: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        org: Option<String>,
    },
    /// Lift a suppression.
    Remove {
        address: String,
        #[arg(long)]
        org: Option<String>,
    },
}

pub(super) async fn suppressions(cfg: Config, c: SuppressionsCmd) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    let r = match c {
        SuppressionsCmd::List { org, limit, cursor } => {
            s.call(
                "suppression.list",
                json!({"org": org, "limit": limit, "cursor": cursor}),
            )
            .await?
        }
        SuppressionsCmd::Add {
            address,
            reason,
            org,
        } => {
            s.call(
                "suppression.add",
                json!({"address": address, "reason": reason, "org": org}),
            )
            .await?
        }
        SuppressionsCmd::Remove { address, org } => {
            s.call(
                "suppression.remove",
                json!({"address": address, "org": org}),
            )
            .await?
        }
    };
    print_json(&r);
    Ok(ExitCode::SUCCESS)
}
