//! The `legate` command line: the argument types of the top level, and the dispatch to one
//! module per command group. Only argument handling and printing live here and below; every
//! action is a service call of the `legate` library, so the CLI and the API cannot disagree.
//!
//! Modules only import downwards: this file imports the command groups, which import the
//! shared helpers (`offline`, `config_file`), which import no other command module.

mod admin;
mod agent;
mod approvals;
mod arenas;
mod audit;
mod backup;
mod config_file;
mod dkim;
mod dns;
mod doctor;
mod exit;
mod init;
mod key;
mod offline;
mod org;
mod queue;
mod reports;
mod serve;
mod session;
mod store;
mod suppressions;
mod vault;

use admin::AdminCmd;
use agent::AgentCmd;
use approvals::ApprovalsCmd;
use audit::AuditCmd;
use clap::{Parser, Subcommand};
use config_file::load_config;
use dkim::DkimCmd;
use dns::DnsCmd;
use init::InitArgs;
use key::KeyCmd;
use org::OrgCmd;
use queue::QueueCmd;
use reports::ReportsCmd;
use std::path::PathBuf;
use std::process::ExitCode;
use store::StoreCmd;
use suppressions::SuppressionsCmd;
use vault::VaultCmd;

#[derive(Parser)]
#[command(
    name = "legate",
    version,
    about = "Mail and identity appliance for AI agents"
)]
struct Cli {
    /// Config file; without one, ./data/config.toml if `legate init` wrote it there, else the
    /// embedded dev defaults (data in ./data).
    #[arg(long, short, global = true, env = "LEGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Print the result as JSON (for scripts), where a command has a text form.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve,
    /// Create a data directory: config, master key, first human and org, admin token.
    Init(InitArgs),
    /// Manage agents and sub-agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Manage orgs (mail domains).
    #[command(subcommand)]
    Org(OrgCmd),
    /// The outbound queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// The org's suppression list: addresses no agent may send to.
    #[command(subcommand)]
    Suppressions(SuppressionsCmd),
    /// Sends held for a human's approval: list, approve, reject.
    #[command(subcommand)]
    Approvals(ApprovalsCmd),
    /// DMARC aggregate and TLS-RPT reports: what others reported, what we would send.
    #[command(subcommand)]
    Reports(ReportsCmd),
    /// Manage API keys of agents.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Check or read the audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Vault maintenance.
    #[command(subcommand)]
    Vault(VaultCmd),
    /// DNS wizard: the records to publish, and a live check of them.
    #[command(subcommand)]
    Dns(DnsCmd),
    /// Storage maintenance: check message bodies against their records (stop the server
    /// first).
    #[command(subcommand)]
    Store(StoreCmd),
    /// DKIM keys of the domain.
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Admin tokens.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Check config, listeners, certificate, DNS, store, disk, clock, reverse DNS and
    /// outbound port 25; ok / warn / fail lines with the fix; exit 1 if anything fails.
    Doctor,
    /// Write a consistent backup of the data directory (while the server runs, too).
    Backup(backup::BackupArgs),
    /// Restore a backup into a new data directory, verifying it.
    Restore(backup::RestoreArgs),
    /// Print the version and the data schema version this binary writes.
    Version,
}

pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    // `--version` says the schema too; clap wants a 'static string for it, made once here.
    let version: &'static str = Box::leak(version_string().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if matches!(cli.cmd, Cmd::Serve) {
        arenas::cap_for_serve();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads(cli.config.as_deref()))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::code_of(&e)
        }
    }
}

/// `limits.blocking_threads`, read before the runtime exists. A config that does not load
/// gets the default here; the command itself reports why when it loads it.
fn blocking_threads(path: Option<&std::path::Path>) -> usize {
    config_file::load_config(path).map_or_else(
        |_| legate::config::Config::default().limits.blocking_threads,
        |c| c.limits.blocking_threads,
    )
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.json;
    let cfg = || load_config(cli.config.as_deref());
    match cli.cmd {
        Cmd::Version => {
            println!("{}", version_line());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve => serve::serve(cli.config.as_deref()).await,
        Cmd::Init(args) => init::init(args, json),
        Cmd::Doctor => doctor::doctor(cli.config.as_deref(), json).await,
        Cmd::Backup(a) => backup::backup(cfg()?, a, json).await,
        Cmd::Restore(a) => backup::restore(a, json).await,
        Cmd::Agent(c) => agent::agent(cfg()?, c, json).await,
        Cmd::Org(c) => org::org(cfg()?, c, json).await,
        Cmd::Queue(c) => queue::queue(cfg()?, c).await,
        Cmd::Suppressions(c) => suppressions::suppressions(cfg()?, c).await,
        Cmd::Approvals(c) => approvals::approvals(cfg()?, c).await,
        Cmd::Reports(c) => reports::reports(cfg()?, c).await,
        Cmd::Key(c) => key::key(cfg()?, c, json).await,
        Cmd::Admin(AdminCmd::Token(c)) => admin::admin_token(cfg()?, c, json).await,
        Cmd::Admin(AdminCmd::Password { email }) => {
            admin::admin_password(cfg()?, email, json).await
        }
        Cmd::Audit(c) => audit::audit(cfg()?, c, json).await,
        Cmd::Dns(c) => dns::dns(cfg()?, c, json).await,
        Cmd::Dkim(c) => dkim::dkim(cfg()?, c, json).await,
        Cmd::Store(c) => store::store_cmd(cfg()?, c),
        Cmd::Vault(VaultCmd::RotateMaster { new_key_file }) => {
            vault::rotate_master(cfg()?, &new_key_file, json).await
        }
    }
}

/// `legate <version> (schema <n>)`: the schema is what decides whether a data directory
/// opens, so an operator comparing two installations needs both.
fn version_line() -> String {
    format!("legate {}", version_string())
}

fn version_string() -> String {
    format!(
        "{} (schema {})",
        env!("CARGO_PKG_VERSION"),
        legate::store::SCHEMA_VERSION
    )
}
