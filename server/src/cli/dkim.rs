//! `legate dkim …`: the domain's DKIM selectors: list, rotate, remove.

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum DkimCmd {
    /// List every selector (active and retired) with its TXT record.
    Records,
    /// Add a new Ed25519 + RSA selector pair and sign with it from now on. The old pair stops
    /// signing but stays published (in `legate dns plan`) so mail in flight still verifies.
    Rotate,
    /// Unpublish a retired selector once mail signed with it has been delivered (a week is
    /// safe); an active selector cannot be removed.
    Remove { selector: String },
}

/// `legate dkim …`.
pub(super) async fn dkim(cfg: Config, c: DkimCmd, as_json: bool) -> anyhow::Result<ExitCode> {
    // Reading needs no admin: the keys exist as soon as the data directory does, so the
    // records can be published before the first `serve`.
    let mut s = match c {
        DkimCmd::Records => Session::open_reader(&cfg).await?,
        _ => Session::open(&cfg).await?,
    };
    let (r, json_out) = match c {
        DkimCmd::Records => (s.call("dkim.records", json!({})).await?, as_json),
        DkimCmd::Rotate => (s.call("dkim.rotate", json!({})).await?, as_json),
        DkimCmd::Remove { selector } => (
            s.call("dkim.remove", json!({"selector": selector})).await?,
            false,
        ),
    };
    let items = r["items"].as_array().cloned().unwrap_or_default();
    if json_out {
        print_json(&Value::Array(items));
    } else {
        for k in &items {
            let state = if k["active"] == Value::Bool(true) {
                "active"
            } else {
                "retired"
            };
            println!(
                "{} ({state}) TXT \"{}\"",
                k["name"].as_str().unwrap_or_default(),
                k["txt"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
