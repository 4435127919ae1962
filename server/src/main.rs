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

#[derive(Parser)]
#[command(
    name = "legate",
    version,
    about = "Mail and identity appliance for AI agents"
)]
struct Cli {
    /// Config file; without one, the embedded dev defaults (data in ./data).
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
}

/// `legate store …`: opens the store alone (no services), without the start-up sweep, so
/// orphans are reported rather than silently removed.
fn store_cmd(cfg: Config, c: StoreCmd) -> anyhow::Result<ExitCode> {
    let opts = legate::store::StoreOptions {
        cache_mb: cfg.storage.cache_mb,
        sweep_on_open: false,
        ..Default::default()
    };
    let store = legate::store::Store::open_with(&cfg.storage.path, &opts)
        .with_context(|| format!("cannot open the store in {}", cfg.storage.path.display()))?;
    match c {
        StoreCmd::Verify {
            deep,
            sweep,
            grace_secs,
        } => {
            let grace = sweep.then(|| std::time::Duration::from_secs(grace_secs));
            let report = store.verify_blobs(deep, grace)?;
            let clean = report.is_clean();
            let mut v = serde_json::to_value(&report)?;
            v["clean"] = serde_json::Value::Bool(clean);
            print_json(&v);
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
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

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => config::load_file(p).map_err(|e| anyhow::anyhow!("{e}")),
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
    if path.is_none() {
        tracing::warn!("no --config given: running with embedded dev defaults (data in ./data, loopback ports)");
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

/// Opens the data directory for an offline command, acting as the first human.
fn dkim(cfg: Config, c: DkimCmd) -> anyhow::Result<ExitCode> {
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

fn audit_cli(s: &Services, actor: &Actor, action: &str, target: &str) -> anyhow::Result<()> {
    actor.audit(
        &s.audit,
        action,
        target,
        legate::audit::Outcome::Ok,
        serde_json::Value::Null,
    )?;
    Ok(())
}

fn open_offline(cfg: Config) -> anyhow::Result<(Services, Actor)> {
    // As `serve` does: clients reach the API over HTTPS when that listener is on.
    let api = if cfg.listen.https.is_empty() {
        &cfg.listen.http
    } else {
        &cfg.listen.https
    };
    let did = app::did_host(&cfg, api.rsplit(':').next().and_then(|p| p.parse().ok()));
    let services = Services::open(cfg, did)?;
    let human = services.identity.first_human()?.context(
        "this data directory has no admin yet: run `legate init` or `legate serve` first",
    )?;
    let actor = Actor::cli(&human.id, &human.email);
    Ok((services, actor))
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn agent(cfg: Config, c: AgentCmd) -> anyhow::Result<ExitCode> {
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

async fn key(cfg: Config, c: KeyCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        KeyCmd::Create {
            agent,
            name,
            scopes,
            expires_in,
        } => {
            let (k, token) = id
                .create_key(
                    &actor,
                    &agent,
                    &NewKey {
                        name,
                        scopes,
                        expires_in,
                    },
                )
                .await?;
            let mut v = k.to_json();
            v["key"] = serde_json::json!(token.as_str());
            print_json(&v);
        }
        KeyCmd::List { agent } => {
            for k in id.list_keys(&actor, &agent)? {
                print_json(&k.to_json());
            }
        }
        KeyCmd::Revoke { agent, key_id } => {
            id.revoke_key(&actor, &agent, &key_id).await?;
            println!("revoked key {key_id}");
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
}

async fn admin_token(cfg: Config, c: TokenCmd) -> anyhow::Result<ExitCode> {
    let (s, actor) = open_offline(cfg)?;
    let id = &s.identity;
    match c {
        TokenCmd::List => {
            for t in id.list_admin_tokens(&actor)? {
                println!("{t}");
            }
        }
        TokenCmd::Create { name, expires_in } => {
            let (k, token) = id
                .create_admin_token(
                    &actor,
                    &legate::identity::NewAdminToken { name, expires_in },
                )
                .await?;
            let mut v = id.admin_token_json(&k, true);
            v["key"] = serde_json::json!(token.as_str());
            print_json(&v);
        }
        TokenCmd::Keep { id: key_id } => {
            id.keep_admin_token(&actor, &key_id).await?;
            println!("kept admin token {key_id}");
        }
        TokenCmd::Revoke { id: key_id } => {
            id.revoke_admin_token(&actor, &key_id).await?;
            println!("revoked admin token {key_id}");
        }
    }
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(ExitCode::SUCCESS)
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
    let (s, actor) = open_offline(cfg.clone()).context(
        "cannot open the data directory (if the server is running, use --server URL with an admin token)",
    )?;
    let plan = legate::dns::DnsWizard::new(&s.config, &s.vault, &s.audit).plan(&actor)?;
    // Services::open may have just made the DKIM keys: keep them.
    s.audit.sync_blocking();
    s.store.flush_blocking()?;
    Ok(plan)
}

async fn dns(cfg: Config, c: DnsCmd) -> anyhow::Result<ExitCode> {
    match c {
        DnsCmd::Plan { format, source } => {
            let plan = dns_plan(&cfg, &source).await?;
            print!("{}", legate::dns::render::render(&plan, format)?);
            Ok(ExitCode::SUCCESS)
        }
        DnsCmd::Check {
            nameserver,
            json,
            source,
        } => {
            let plan = dns_plan(&cfg, &source).await?;
            let servers = if nameserver.is_empty() {
                legate::dns::configured_nameservers(&cfg)?
            } else {
                nameserver
            };
            let report =
                legate::dns::resolve::check(&plan, &servers, legate::dns::timeout(&cfg)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", legate::dns::report_text(&report));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn rotate_master(cfg: Config, new_key: &Path) -> anyhow::Result<ExitCode> {
    let store = legate::store::Store::open(&cfg.storage.path)?;
    let (n, created) = legate::vault::rotate_master_files(
        &store,
        &cfg.vault.master_key_file,
        &cfg.storage.path,
        new_key,
    )?;
    if created {
        println!("created new root key {} (mode 0600)", new_key.display());
    }
    println!("re-wrapped {n} agent key(s) and all custody keys under the new root key");
    println!(
        "now set vault.master_key_file = \"{}\" (the old key no longer opens this vault)",
        new_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn audit(cfg: Config, c: AuditCmd) -> anyhow::Result<ExitCode> {
    let did = app::did_host(&cfg, None);
    let s = Services::open(cfg, did)?;
    match c {
        AuditCmd::Verify { head } => {
            let external = match head.as_deref() {
                Some(h) => Some(
                    legate::audit::parse_head(h)
                        .ok_or_else(|| anyhow::anyhow!("--head wants SEQ:HASH (64 hex digits)"))?,
                ),
                None => None,
            };
            let r = s.audit.verify_with(external)?;
            for w in &r.warnings {
                println!("warning: {w}");
            }
            match r.first_broken {
                None => {
                    println!("audit chain ok: {} entries verified", r.entries);
                    if let Some(c) = &r.checkpoint {
                        println!("{c}");
                    }
                    if let Some(h) = &r.head {
                        println!("head: {h}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(seq) => {
                    println!(
                        "audit chain BROKEN at entry {seq}: {} ({} entries verified before it)",
                        r.reason.unwrap_or_default(),
                        r.entries
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditCmd::Tail {
            lines,
            agent,
            action,
        } => {
            let agent = match agent {
                Some(a) => Some(s.identity.find_agent(&a)?.map(|a| a.id).unwrap_or(a)),
                None => None,
            };
            let f = legate::audit::Filter {
                agent,
                action,
                ..Default::default()
            };
            let page = s.audit.query(&f, lines, None)?;
            for e in page.items.iter().rev() {
                println!("{}", e.to_json());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
