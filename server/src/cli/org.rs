//! `legate org …`: the orgs (mail domains) and who created them.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum OrgCmd {
    /// Create an org owning DOMAIN.
    Create {
        name: String,
        domain: String,
    },
    List,
}

pub(super) async fn org(cfg: Config, c: OrgCmd, as_json: bool) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    match c {
        OrgCmd::Create { name, domain } => print_json(
            &s.call("org.create", json!({"name": name, "domain": domain}))
                .await?,
        ),
        OrgCmd::List => {
            let r = s.call("org.list", json!({})).await?;
            if as_json {
                print_json(&r["items"]);
            } else {
                for o in r["items"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}",
                        super::agent::text(&o["id"]),
                        super::agent::text(&o["domain"]),
                        super::agent::text(&o["name"])
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
