//! `legate queue …`: the outbound queue: list, show, retry now, cancel.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum QueueCmd {
    /// Messages with recipients still pending (all messages with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One queued message and its recipients' states.
    Show { id: String },
    /// Try the pending recipients now.
    Retry { id: String },
    /// Give up on the pending recipients (they bounce).
    Cancel { id: String },
}

pub(super) async fn queue(cfg: Config, c: QueueCmd) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    let r = match c {
        QueueCmd::List { all, limit, cursor } => {
            s.call(
                "queue.list",
                json!({"all": all, "limit": limit, "cursor": cursor}),
            )
            .await?
        }
        QueueCmd::Show { id } => s.call("queue.get", json!({"id": id})).await?,
        QueueCmd::Retry { id } => s.call("queue.retry", json!({"id": id})).await?,
        QueueCmd::Cancel { id } => s.call("queue.cancel", json!({"id": id})).await?,
    };
    // The queue's answers are structured (recipients, states, times): JSON is the display.
    print_json(&r);
    Ok(ExitCode::SUCCESS)
}
