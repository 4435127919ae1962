//! The `legate` command line: the argument types of the top level, and the dispatch to one
//! module per command group. Only argument handling and printing live here and below; every
//! action is a service call of the `legate` library, so the CLI and the API cannot disagree.
//!
//! Modules only import downwards: this file imports the command groups, which import the
//! shared helpers (`offline`, `config_file`), which import no other command module.

mod admin;
mod agent;
mod audit;
mod config_file;
mod dkim;
mod dns;
mod init;
mod key;
mod offline;
mod serve;
mod store;
mod vault;

use admin::AdminCmd;
use agent::AgentCmd;
use audit::AuditCmd;
use clap::{Parser, Subcommand};
use config_file::load_config;
use dkim::DkimCmd;
use dns::DnsCmd;
use init::InitArgs;
use key::KeyCmd;
use std::path::PathBuf;
use std::process::ExitCode;
use store::StoreCmd;
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
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve,
    /// Create a data directory: config, master key, first human and org, admin token.
    Init(InitArgs),
    /// Manage agents (works on the data directory; stop the server first).
    #[command(subcommand)]
    Agent(AgentCmd),
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
    /// DKIM keys of the domain (stop the server first).
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Admin tokens (works on the data directory; stop the server first).
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Print the version.
    Version,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
            ExitCode::FAILURE
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
    match cli.cmd {
        Cmd::Version => {
            println!("legate {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve => serve::serve(cli.config.as_deref()).await,
        Cmd::Init(args) => init::init(args),
        Cmd::Agent(c) => agent::agent(load_config(cli.config.as_deref())?, c).await,
        Cmd::Key(c) => key::key(load_config(cli.config.as_deref())?, c).await,
        Cmd::Admin(AdminCmd::Token(c)) => {
            admin::admin_token(load_config(cli.config.as_deref())?, c).await
        }
        Cmd::Audit(c) => audit::audit(load_config(cli.config.as_deref())?, c),
        Cmd::Dns(c) => dns::dns(load_config(cli.config.as_deref())?, c).await,
        Cmd::Dkim(c) => dkim::dkim(load_config(cli.config.as_deref())?, c),
        Cmd::Store(c) => store::store_cmd(load_config(cli.config.as_deref())?, c),
        Cmd::Vault(VaultCmd::RotateMaster { new_key_file }) => {
            vault::rotate_master(load_config(cli.config.as_deref())?, &new_key_file)
        }
    }
}
