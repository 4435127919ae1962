//! `legate admin token …`: the admin tokens, managed like agent keys.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum AdminCmd {
    /// List, create, keep or revoke admin tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand)]
pub(super) enum TokenCmd {
    /// Every admin token (never the secret) and whether it works now.
    List,
    /// A new admin token, printed once.
    Create {
        #[arg(long)]
        name: String,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Keep the LEGATE_BOOTSTRAP_ADMIN_TOKEN token working after other tokens exist.
    Keep { id: String },
    /// Revoke an admin token (the last working one is refused).
    Revoke { id: String },
}

pub(super) async fn admin_token(
    cfg: Config,
    c: TokenCmd,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    match c {
        TokenCmd::List => {
            let r = s.call("admin_token.list", json!({})).await?;
            if as_json {
                print_json(&r["items"]);
            } else {
                for t in r["items"].as_array().into_iter().flatten() {
                    println!("{t}");
                }
            }
        }
        TokenCmd::Create { name, expires_in } => print_json(
            &s.call(
                "admin_token.create",
                json!({"name": name, "expires_in": expires_in}),
            )
            .await?,
        ),
        TokenCmd::Keep { id } => {
            let r = s.call("admin_token.keep", json!({"id": id})).await?;
            if as_json {
                print_json(&r);
            } else {
                println!("kept admin token {id}");
            }
        }
        TokenCmd::Revoke { id } => {
            let r = s.call("admin_token.revoke", json!({"id": id})).await?;
            if as_json {
                print_json(&r);
            } else {
                println!("revoked admin token {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
