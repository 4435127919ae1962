//! `legate agent …`: create, list, show, revoke agents and rotate their identity keys.

use super::offline::{open_offline, print_json};
use clap::Subcommand;
use legate::config::Config;
use legate::identity::NewAgent;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum AgentCmd {
    /// Create an agent and its first API key (printed once).
    Create {
        /// Local part (ops) or a full address (ops@agents.example.com).
        address: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated scopes (default: all seven).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
    List,
    /// Show one agent by id or address.
    Show {
        agent: String,
    },
    /// Revoke an agent and its sub-agents.
    Revoke {
        agent: String,
    },
    /// Give an agent a new identity key. The old key stays in did.json and jwks.json (and
    /// verifies) for the overlap, then is dropped; keep it at least the longest token TTL.
    RotateKey {
        agent: String,
        /// Seconds the previous key stays published.
        #[arg(long, default_value_t = legate::identity::DEFAULT_ROTATION_OVERLAP_SECS)]
        overlap_secs: i64,
    },
}

pub(super) async fn agent(cfg: Config, c: AgentCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        AgentCmd::Create {
            address,
            name,
            scopes,
        } => {
            let (local, address) = if address.contains('@') {
                (None, Some(address))
            } else {
                (Some(address), None)
            };
            let req = NewAgent {
                local,
                address,
                name,
                scopes,
                org_id: None,
            };
            let created = id.create_agent(&actor, &req).await?;
            print_json(&id.created_json(&created));
        }
        AgentCmd::List => {
            let mut cursor = None;
            loop {
                let (items, next) = id.list_agents(&actor, 1000, cursor.as_deref())?;
                for a in &items {
                    println!(
                        "{}\t{}\t{:?}\t{}",
                        a.id,
                        a.address(),
                        a.status,
                        a.scopes.names().join(",")
                    );
                }
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
        }
        AgentCmd::Show { agent } => print_json(&id.agent_json(&id.get_agent(&actor, &agent)?)),
        AgentCmd::Revoke { agent } => {
            for a in id.revoke_agent(&actor, &agent).await? {
                println!("revoked {} ({})", a.id, a.address());
            }
        }
        AgentCmd::RotateKey {
            agent,
            overlap_secs,
        } => {
            let key = id.rotate_identity_key(&actor, &agent, overlap_secs).await?;
            let a = id.get_agent(&actor, &agent)?;
            print_json(&serde_json::json!({
                "agent": a.id,
                "kid": format!("{}#{}", id.agent_did(&a), key.kid),
                "public_key_multibase": legate::identity::multibase::ed25519_multikey(&key.public),
                "previous_keys_retire_at": legate::util::rfc3339(key.created_at + overlap_secs),
            }));
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}
