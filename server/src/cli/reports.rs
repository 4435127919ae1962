//! `legate reports dmarc|tls`: the received reports, summarised; `legate reports generate`:
//! the report we would send for a day (what the interop suite validates).

use super::offline::print_json;
use super::session::Session;
use clap::Subcommand;
use legate::config::Config;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum ReportsCmd {
    /// DMARC aggregate reports received: per source IP, per header-from domain, the list.
    Dmarc {
        /// RFC 3339 time, YYYY-MM-DD or unix seconds.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// TLS-RPT reports received: per policy domain and type.
    Tls {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
    /// Print the report legate would send for DAY (YYYY-MM-DD) about DOMAIN: `dmarc` (the
    /// aggregate XML) or `tls` (the TLS-RPT JSON). Nothing is sent.
    Generate {
        kind: String,
        domain: String,
        day: String,
    },
    /// Send the reports of DAY (default: yesterday) now to the domains that ask for them
    /// (each day and domain is sent once; needs dmarc.send_reports / reports.send_tls_reports
    /// and agents holding dmarc-reports@ / tls-reports@).
    Send {
        #[arg(long)]
        day: Option<String>,
    },
}

pub(super) async fn reports(cfg: Config, c: ReportsCmd) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(&cfg).await?;
    let r = match c {
        ReportsCmd::Dmarc { since, until } => {
            s.call("reports.dmarc", json!({"since": since, "until": until}))
                .await?
        }
        ReportsCmd::Tls { since, until } => {
            s.call("reports.tls", json!({"since": since, "until": until}))
                .await?
        }
        ReportsCmd::Generate { kind, domain, day } => {
            let r = s
                .call(
                    "reports.generate",
                    json!({"kind": kind, "domain": domain, "day": day}),
                )
                .await?;
            // The document itself, as a reporter would attach it.
            if let Some(doc) = r.get("document").and_then(|d| d.as_str()) {
                println!("{doc}");
                return Ok(ExitCode::SUCCESS);
            }
            r
        }
        ReportsCmd::Send { day } => s.call("reports.send", json!({"day": day})).await?,
    };
    print_json(&r);
    Ok(ExitCode::SUCCESS)
}
