//! `legate key …`: API keys of an agent.

use super::offline::{open_offline, print_json};
use clap::Subcommand;
use legate::config::Config;
use legate::identity::NewKey;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum KeyCmd {
    Create {
        agent: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    List {
        agent: String,
    },
    Revoke {
        agent: String,
        key_id: String,
    },
}

pub(super) async fn key(cfg: Config, c: KeyCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        KeyCmd::Create {
            agent,
            name,
            scopes,
            expires_in,
        } => {
            let (k, token) = id
                .create_key(
                    &actor,
                    &agent,
                    &NewKey {
                        name,
                        scopes,
                        expires_in,
                    },
                )
                .await?;
            let mut v = k.to_json();
            v["key"] = serde_json::json!(token.as_str());
            print_json(&v);
        }
        KeyCmd::List { agent } => {
            for k in id.list_keys(&actor, &agent)? {
                print_json(&k.to_json());
            }
        }
        KeyCmd::Revoke { agent, key_id } => {
            id.revoke_key(&actor, &agent, &key_id).await?;
            println!("revoked key {key_id}");
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}
