//! `legate admin token …`: the admin tokens, managed like agent keys.

use super::offline::{open_offline, print_json};
use clap::Subcommand;
use legate::config::Config;
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

pub(super) async fn admin_token(cfg: Config, c: TokenCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        TokenCmd::List => {
            for t in id.list_admin_tokens(&actor)? {
                println!("{t}");
            }
        }
        TokenCmd::Create { name, expires_in } => {
            let (k, token) = id
                .create_admin_token(
                    &actor,
                    &legate::identity::NewAdminToken { name, expires_in },
                )
                .await?;
            let mut v = id.admin_token_json(&k, true);
            v["key"] = serde_json::json!(token.as_str());
            print_json(&v);
        }
        TokenCmd::Keep { id: key_id } => {
            id.keep_admin_token(&actor, &key_id).await?;
            println!("kept admin token {key_id}");
        }
        TokenCmd::Revoke { id: key_id } => {
            id.revoke_admin_token(&actor, &key_id).await?;
            println!("revoked admin token {key_id}");
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}
