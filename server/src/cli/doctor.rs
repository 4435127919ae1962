//! `legate doctor`: the checks of `legate::doctor`, plus those that depend on whether a
//! server runs (listeners, store, DNS), printed as ok / warn / fail lines with fixes.

use super::config_file::config_path;
use super::exit::problem_if;
use super::offline::{open_existing_store, print_json};
use super::session::Session;
use legate::config::Config;
use legate::doctor::{probes, Check, Report};
use std::path::Path;
use std::process::ExitCode;

pub(super) async fn doctor(given: Option<&Path>, as_json: bool) -> anyhow::Result<ExitCode> {
    let mut r = Report::default();
    let cfg = match config_path(given) {
        Some(p) => match legate::config::load_file(&p) {
            Ok(c) => {
                r.push(Check::ok("config", format!("{} is valid", p.display())));
                c
            }
            Err(e) => {
                r.push(Check::fail(
                    "config",
                    format!("{}: {e}", p.display()),
                    "fix the keys named (config.toml.example documents every one)",
                ));
                return Ok(print(&r, as_json));
            }
        },
        None => {
            r.push(Check::warn(
                "config",
                "no config file: the embedded development defaults",
                "run `legate init`, or pass --config",
            ));
            Config::default()
        }
    };
    let server = Session::server(&cfg).await.ok().flatten();
    r.checks
        .extend(probes::listeners(&cfg, server.is_some()).await);
    r.push(store(&cfg, server).await);
    r.push(probes::disk(&cfg));
    r.push(probes::certificate(&cfg, legate::util::now_millis() / 1000));
    r.push(dns(&cfg).await);
    r.push(probes::clock(&cfg).await);
    r.push(probes::reverse_dns(&cfg).await);
    r.push(probes::outbound_25(&cfg).await);
    Ok(print(&r, as_json))
}

fn print(r: &Report, as_json: bool) -> ExitCode {
    if as_json {
        print_json(&r.to_json());
    } else {
        print!("{}", r.text());
    }
    problem_if(!r.ok())
}

/// The running server answers through its socket; else the store opens and every message
/// has its body.
async fn store(cfg: &Config, server: Option<legate::admin::client::Client>) -> Check {
    let name = "store";
    if let Some(mut c) = server {
        let req = legate::admin::Request::new("ping", serde_json::json!({}));
        return match c.call(&req).await {
            Ok(v) => Check::ok(
                name,
                format!(
                    "the running server answers (legate {}, schema {})",
                    v["version"].as_str().unwrap_or("?"),
                    v["schema_version"]
                ),
            ),
            Err(e) => Check::fail(name, format!("the running server: {e}"), "see its log"),
        };
    }
    let store = match open_existing_store(cfg) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                name,
                format!("{e:#}"),
                "run `legate init`, or stop the process holding the data directory",
            )
        }
    };
    match store.verify_blobs(false, None) {
        Ok(rep) if rep.missing.is_empty() => Check::ok(
            name,
            format!(
                "opens (schema {}); {} messages, every body present",
                legate::store::SCHEMA_VERSION,
                rep.records
            ),
        ),
        Ok(rep) => Check::fail(
            name,
            format!("{} message(s) without their body", rep.missing.len()),
            "legate store verify lists them; restore them from a backup",
        ),
        Err(e) => Check::fail(name, e.to_string(), "restore from a backup"),
    }
}

async fn dns(cfg: &Config) -> Check {
    let name = "dns";
    match super::dns::live_report(cfg).await {
        Ok(rep) if rep.ok => Check::ok(
            name,
            format!("all {} planned records are published", rep.records.len()),
        ),
        Ok(rep) => {
            let bad: Vec<String> = rep
                .records
                .iter()
                .filter(|c| c.status != legate::dns::Status::Ok)
                .map(|c| format!("{} {}", c.rtype, c.name))
                .collect();
            Check::fail(
                name,
                format!(
                    "{} of {} records missing or wrong: {}",
                    bad.len(),
                    rep.records.len(),
                    bad.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                ),
                "`legate dns check` prints each record to publish",
            )
        }
        Err(e) => Check::warn(
            name,
            format!("cannot check: {e:#}"),
            "check [dns] nameservers",
        ),
    }
}
