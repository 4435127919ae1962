//! `legate dkim …`: the domain's DKIM selectors: list, rotate, remove.

use super::offline::{audit_cli, open_offline};
use clap::Subcommand;
use legate::app::{self, Services};
use legate::config::Config;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum DkimCmd {
    /// List every selector (active and retired) with its TXT record.
    Records {
        #[arg(long)]
        json: bool,
    },
    /// Add a new Ed25519 + RSA selector pair and sign with it from now on. The old pair stops
    /// signing but stays published (in `legate dns plan`) so mail in flight still verifies.
    Rotate {
        #[arg(long)]
        json: bool,
    },
    /// Unpublish a retired selector once mail signed with it has been delivered (a week is
    /// safe); an active selector cannot be removed.
    Remove { selector: String },
}

/// `legate dkim …`.
pub(super) fn dkim(cfg: Config, c: DkimCmd) -> anyhow::Result<ExitCode> {
    let domain = cfg.server.domain.clone();
    let prefix = cfg.dkim.selector_prefix.clone();
    let (s, records, json) = match c {
        // Reading needs no admin: the keys exist as soon as the data directory does, so the
        // records can be published before the first `serve`.
        DkimCmd::Records { json } => {
            let did = app::did_host(&cfg, None);
            let s = Services::open(cfg, did)?;
            let r = s.vault.dkim_records(&domain)?;
            (s, r, json)
        }
        DkimCmd::Rotate { json } => {
            let (s, actor) = open_offline(cfg)?;
            let r = s.vault.rotate_dkim(&domain, &prefix)?;
            audit_cli(&s, &actor, "dkim.rotate", &domain)?;
            (s, r, json)
        }
        DkimCmd::Remove { selector } => {
            let (s, actor) = open_offline(cfg)?;
            let r = s.vault.remove_dkim(&domain, &selector)?;
            audit_cli(&s, &actor, "dkim.remove", &selector)?;
            (s, r, false)
        }
    };
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    if json {
        let items: Vec<serde_json::Value> = records
            .iter()
            .map(|k| {
                serde_json::json!({
                    "selector": k.selector,
                    "algorithm": k.algorithm,
                    "name": format!("{}._domainkey.{domain}", k.selector),
                    "txt": k.txt(),
                    "active": k.retired_at.is_none(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
    } else {
        for k in &records {
            let state = if k.retired_at.is_none() {
                "active"
            } else {
                "retired"
            };
            println!(
                "{}._domainkey.{domain} ({state}) TXT \"{}\"",
                k.selector,
                k.txt()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
