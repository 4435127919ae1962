//! `legate approvals …`: sends held for a human's approval (`first_contact = hold`).

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum ApprovalsCmd {
    /// Held sends (default: pending ones, of every agent).
    List {
        /// pending, approved, rejected, expired or all.
        #[arg(long)]
        status: Option<String>,
        /// Only this agent's (id or address).
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Approve a held send: its signed message is queued as it is.
    Approve {
        /// The message id (msg_...).
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject a held send: it is never sent, and the agent is told.
    Reject {
        id: String,
        #[arg(long)]
        note: Option<String>,
    },
}

pub(super) async fn approvals(cfg: Config, c: ApprovalsCmd) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    let r = match c {
        ApprovalsCmd::List {
            status,
            agent,
            limit,
            cursor,
        } => {
            s.call(
                "approval.list",
                json!({"status": status, "agent": agent, "limit": limit, "cursor": cursor}),
            )
            .await?
        }
        ApprovalsCmd::Approve { id, note } => {
            s.call("approval.approve", json!({"id": id, "note": note}))
                .await?
        }
        ApprovalsCmd::Reject { id, note } => {
            s.call("approval.reject", json!({"id": id, "note": note}))
                .await?
        }
    };
    print_json(&r);
    Ok(ExitCode::SUCCESS)
}
