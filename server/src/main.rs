//! The `legate` command line. Only argument handling and printing live here; every action is a
//! service call, so the CLI and the API cannot disagree.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use legate::app::{self, Services, StartOptions};
use legate::config::{self, Config, LogFormat};
use legate::identity::{Actor, NewAgent, NewKey};
use legate::init::prompt::{InitFlags, Prompter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod cli_commands;
use cli_commands::*;

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

#[derive(Subcommand)]
enum AdminCmd {
    /// List, create, keep or revoke admin tokens.
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Every admin token (never the secret) and whether it works now.
    List,
    /// A new admin token, printed once.
    Create {
        #[arg(long)]
        name: String,
        /// Lifetime in seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Keep the LEGATE_BOOTSTRAP_ADMIN_TOKEN token working after other tokens exist.
    Keep { id: String },
    /// Revoke an admin token (the last working one is refused).
    Revoke { id: String },
}

/// Flags of `init`. On a terminal each one is the default of a question; otherwise (or with
/// `--json` / `--non-interactive`) they are the answers.
#[derive(Args)]
struct InitArgs {
    /// The agent mail domain, e.g. agents.example.com.
    #[arg(long)]
    domain: Option<String>,
    /// Data directory (config.toml and master.key are written into it).
    #[arg(long, default_value = "./data")]
    data: PathBuf,
    /// This host's name (default: mx.<domain>).
    #[arg(long)]
    hostname: Option<String>,
    /// The first human's email (default: admin@<domain>).
    #[arg(long)]
    admin_email: Option<String>,
    /// Address every listener binds to.
    #[arg(long, default_value = "0.0.0.0")]
    bind: String,
    /// Listener ports; 0 disables one.
    #[arg(long, default_value_t = 25)]
    smtp_port: u16,
    #[arg(long, default_value_t = 587)]
    submission_port: u16,
    #[arg(long, default_value_t = 465)]
    submissions_port: u16,
    #[arg(long, default_value_t = 143)]
    imap_port: u16,
    #[arg(long, default_value_t = 993)]
    imaps_port: u16,
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// Where the certificate comes from.
    #[arg(long, default_value = "self-signed", value_parser = ["self-signed", "acme", "files"])]
    cert: String,
    /// ACME contact (default: the admin email).
    #[arg(long)]
    acme_email: Option<String>,
    /// ACME directory URL (default: Let's Encrypt production).
    #[arg(long)]
    acme_directory: Option<String>,
    #[arg(long, default_value = "http-01", value_parser = ["http-01", "tls-alpn-01"])]
    acme_challenge: String,
    /// PEM chain for `--cert files`.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM key for `--cert files`.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Never ask, even on a terminal.
    #[arg(long)]
    non_interactive: bool,
    /// Replace an existing data directory (its data is deleted).
    #[arg(long)]
    force: bool,
    /// Print what was created as one JSON object (implies --non-interactive).
    #[arg(long)]
    json: bool,
}

impl InitArgs {
    fn flags(&self) -> InitFlags {
        InitFlags {
            domain: self.domain.clone(),
            hostname: self.hostname.clone(),
            data: self.data.clone(),
            admin_email: self.admin_email.clone(),
            bind: self.bind.clone(),
            ports: [
                self.smtp_port,
                self.submission_port,
                self.submissions_port,
                self.imap_port,
                self.imaps_port,
                self.http_port,
                self.https_port,
            ],
            cert: self.cert.clone(),
            acme_email: self.acme_email.clone(),
            acme_directory: self.acme_directory.clone(),
            acme_challenge: self.acme_challenge.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            force: self.force,
        }
    }
}

#[derive(Subcommand)]
enum AgentCmd {
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

#[derive(Subcommand)]
enum KeyCmd {
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

#[derive(Subcommand)]
enum DkimCmd {
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

#[derive(Subcommand)]
enum VaultCmd {
    /// Re-wrap every key under a new root key (created with mode 0600 if the file does not
    /// exist); then point vault.master_key_file at it. The old key opens nothing afterwards.
    RotateMaster {
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DnsCmd {
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
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        source: PlanSource,
    },
}

/// Where the plan comes from: the data directory (server stopped), or a running server's API.
#[derive(Args)]
struct PlanSource {
    /// Base URL of a running server (e.g. http://127.0.0.1:8080): its store is locked while it
    /// runs, so the plan is fetched from GET /v1/dns/plan instead.
    #[arg(long, env = "LEGATE_URL")]
    server: Option<String>,
    /// Admin token for --server.
    #[arg(long, env = "LEGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute the hash chain and compare its end with the signed head checkpoint; exit 1
    /// naming the first broken entry (or the truncation). Prints the head (SEQ:HASH): keep it
    /// elsewhere and pass it back with --head to check the log still reaches it.
    Verify {
        /// A head recorded earlier, SEQ:HASH: the log must still contain that entry.
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
    /// Print the newest entries.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        action: Option<String>,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Check that every message record has its body in the blob store and every blob file a
    /// holder; print a JSON report; exit 1 when anything is wrong.
    Verify {
        /// Also re-hash every blob file against its name (reads every body).
        #[arg(long)]
        deep: bool,
        /// Remove orphan blob files (no holder) older than --grace-secs.
        #[arg(long)]
        sweep: bool,
        /// Orphans younger than this are kept by --sweep.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// Print, as JSON, each tree's live entries and key/value bytes, the database's size on
    /// disk and the blob store's: what grows with the mailbox.
    Stats,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
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

/// Where `legate init` puts its config when given no `--data`.
const INIT_DEFAULT_CONFIG: &str = "./data/config.toml";

/// The config file to use: `--config` (or `LEGATE_CONFIG`), else the one `legate init` writes
/// with its default `--data` when it exists. The embedded dev defaults keep their data in
/// `./data` too, so using them on a directory `init` made would plan DNS, make DKIM keys and
/// serve for `localhost` instead of the operator's domain.
fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(INIT_DEFAULT_CONFIG)).filter(|p| p.is_file()),
    }
}

fn load_config(given: Option<&Path>) -> anyhow::Result<Config> {
    match config_path(given) {
        Some(p) => config::load_file(&p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(Config::default()),
    }
}

fn init_logging(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => b.json().init(),
        LogFormat::Human => b.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Version => {
            println!("legate {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve => serve(cli.config.as_deref()).await,
        Cmd::Init(args) => init(args),
        Cmd::Agent(c) => agent(load_config(cli.config.as_deref())?, c).await,
        Cmd::Key(c) => key(load_config(cli.config.as_deref())?, c).await,
        Cmd::Admin(AdminCmd::Token(c)) => admin_token(load_config(cli.config.as_deref())?, c).await,
        Cmd::Audit(c) => audit(load_config(cli.config.as_deref())?, c),
        Cmd::Dns(c) => dns(load_config(cli.config.as_deref())?, c).await,
        Cmd::Dkim(c) => dkim(load_config(cli.config.as_deref())?, c),
        Cmd::Store(c) => store_cmd(load_config(cli.config.as_deref())?, c),
        Cmd::Vault(VaultCmd::RotateMaster { new_key_file }) => {
            rotate_master(load_config(cli.config.as_deref())?, &new_key_file)
        }
    }
}

async fn serve(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
    init_logging(&cfg);
    match (path, config_path(path)) {
        (None, None) => tracing::warn!(
            "no --config given: running with embedded dev defaults (data in ./data, loopback ports)"
        ),
        (None, Some(found)) => {
            tracing::info!(config = %found.display(), "no --config given: using the config `legate init` wrote")
        }
        _ => {}
    }
    let opts = StartOptions {
        bootstrap_token: std::env::var("LEGATE_BOOTSTRAP_ADMIN_TOKEN").ok(),
    };
    // Handlers first: a SIGTERM that arrives while listeners start must still be graceful.
    let signals = Signals::install()?;
    let running = app::start(cfg, opts).await?;
    if let Some(b) = &running.bootstrap {
        println!(
            "legate: created admin {} and org {} ({})",
            b.human.email, b.org.name, b.org.domain
        );
        if let Some(t) = &b.token {
            println!("legate: admin token (shown once, keep it): {}", t.as_str());
        }
    }
    if let Some(a) = running.http_addr {
        println!("legate: HTTP API on http://{a}");
    }
    let token = running.shutdown_token();
    tokio::spawn(async move {
        signals.wait().await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
    running.wait().await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT, registered before anything starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

fn init(a: InitArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let flags = a.flags();
    let interactive = !a.json && !a.non_interactive && std::io::stdin().is_terminal();
    let plan = if interactive {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut out = std::io::stdout();
        Prompter::new(&mut input, &mut out).ask(&flags)?
    } else {
        flags.plan()?
    };
    let token = std::env::var("LEGATE_BOOTSTRAP_ADMIN_TOKEN").ok();
    let o = legate::init::write(&plan, token.as_deref())?;
    if a.json {
        println!("{}", o.to_json());
    } else {
        print!("{}", o.summary());
    }
    Ok(ExitCode::SUCCESS)
}
