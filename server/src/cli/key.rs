//! `legate key …`: API keys of an agent.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
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

pub(super) async fn key(cfg: Config, c: KeyCmd, as_json: bool) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    match c {
        KeyCmd::Create {
            agent,
            name,
            scopes,
            expires_in,
        } => {
            let key = json!({"name": name, "scopes": scopes, "expires_in": expires_in});
            print_json(
                &s.call("key.create", json!({"agent": agent, "key": key}))
                    .await?,
            )
        }
        KeyCmd::List { agent } => {
            let r = s.call("key.list", json!({"agent": agent})).await?;
            if as_json {
                print_json(&r["items"]);
            } else {
                for k in r["items"].as_array().into_iter().flatten() {
                    print_json(k);
                }
            }
        }
        KeyCmd::Revoke { agent, key_id } => {
            let r = s
                .call("key.revoke", json!({"agent": agent, "key_id": key_id}))
                .await?;
            if as_json {
                print_json(&r);
            } else {
                println!("revoked key {key_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
