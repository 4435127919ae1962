//! `legate dns …`: the records to publish (from the data directory, or a running server's
//! API), and a live check of them.

use super::offline::open_existing_store;
use super::session::Session;
use anyhow::Context;
use clap::{Args, Subcommand};
use legate::config::Config;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(super) enum DnsCmd {
    /// Print the records to publish (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, SRV, autoconfig).
    Plan {
        /// zone (BIND zone-file lines), json, or text (a checklist).
        #[arg(long, default_value = "zone")]
        format: legate::dns::Format,
        #[command(flatten)]
        source: PlanSource,
    },
    /// Resolve every planned record and report ok / missing / wrong with the fix; exit 1
    /// unless all are ok.
    Check {
        /// ip:port of a nameserver to ask (repeatable); default: [dns] nameservers, else the
        /// system resolver.
        #[arg(long)]
        nameserver: Vec<std::net::SocketAddr>,
        #[command(flatten)]
        source: PlanSource,
    },
}

/// Where the plan comes from: the data directory (server stopped), or a running server's API.
#[derive(Args)]
pub(super) struct PlanSource {
    /// Base URL of a running server (e.g. http://127.0.0.1:8080): its store is locked while it
    /// runs, so the plan is fetched from GET /v1/dns/plan instead.
    #[arg(long, env = "LEGATE_URL")]
    server: Option<String>,
    /// Admin token for --server.
    #[arg(long, env = "LEGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// The plan from a running server's API, or else from the data directory.
async fn dns_plan(cfg: &Config, source: &PlanSource) -> anyhow::Result<legate::dns::Plan> {
    if let Some(base) = &source.server {
        let token = source
            .token
            .as_deref()
            .context("--server needs an admin token (--token or LEGATE_ADMIN_TOKEN)")?;
        let url = format!("{}/v1/dns/plan", base.trim_end_matches('/'));
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("{url} answered {status}: {body}");
        }
        return serde_json::from_str(&body).with_context(|| format!("{url}: not a DNS plan"));
    }
    if let Some(mut c) = Session::server(cfg).await? {
        let v = c
            .call(&legate::admin::Request::new(
                "dns.plan",
                serde_json::json!({}),
            ))
            .await?;
        return serde_json::from_value(v).context("the server's answer is not a DNS plan");
    }
    let store = open_existing_store(cfg)?;
    let domain = &cfg.server.domain;
    legate::dns::plan_from_store(cfg, &store)?.with_context(|| {
        format!(
            "no DKIM keys for {domain} in {}: is this the config `legate init` wrote \
             (--config <data>/config.toml)?",
            cfg.storage.path.display()
        )
    })
}

pub(super) async fn dns(cfg: Config, c: DnsCmd, json: bool) -> anyhow::Result<ExitCode> {
    match c {
        DnsCmd::Plan { format, source } => {
            let plan = dns_plan(&cfg, &source).await?;
            print!("{}", legate::dns::render::render(&plan, format)?);
            Ok(ExitCode::SUCCESS)
        }
        DnsCmd::Check { nameserver, source } => {
            let report = dns_check(&cfg, &source, nameserver).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", legate::dns::report_text(&report));
            }
            Ok(super::exit::problem_if(!report.ok))
        }
    }
}

/// The live check: by the running server when one listens (as `GET /v1/dns/check` does,
/// audited), else here from the plan of `--server` or the data directory.
async fn dns_check(
    cfg: &Config,
    source: &PlanSource,
    nameserver: Vec<std::net::SocketAddr>,
) -> anyhow::Result<legate::dns::CheckReport> {
    if source.server.is_none() {
        if let Some(mut c) = Session::server(cfg).await? {
            let names: Vec<String> = nameserver.iter().map(|n| n.to_string()).collect();
            let req =
                legate::admin::Request::new("dns.check", serde_json::json!({"nameservers": names}));
            let v = c.call(&req).await?;
            return serde_json::from_value(v).context("the server's answer is not a DNS report");
        }
    }
    let plan = dns_plan(cfg, source).await?;
    let servers = if nameserver.is_empty() {
        legate::dns::configured_nameservers(cfg)?
    } else {
        nameserver
    };
    Ok(legate::dns::resolve::check(&plan, &servers, legate::dns::timeout(cfg)).await?)
}

/// `dns check` as `legate doctor` runs it: the configured nameservers, the plan from the
/// running server or the data directory.
pub(super) async fn live_report(cfg: &Config) -> anyhow::Result<legate::dns::CheckReport> {
    let source = PlanSource {
        server: None,
        token: None,
    };
    dns_check(cfg, &source, Vec::new()).await
}
