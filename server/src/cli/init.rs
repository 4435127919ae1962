//! `legate init`: questions on a terminal, flags otherwise; writes a new data directory.

use clap::Args;
use legate::init::prompt::{InitFlags, Prompter};
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `init`. On a terminal each one is the default of a question; otherwise (or with
/// `--json` / `--non-interactive`) they are the answers.
#[derive(Args)]
pub(super) struct InitArgs {
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

/// `json`: print what was created as one JSON object (implies --non-interactive).
pub(super) fn init(a: InitArgs, json: bool) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let flags = a.flags();
    let interactive = !json && !a.non_interactive && std::io::stdin().is_terminal();
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
    if json {
        println!("{}", o.to_json());
    } else {
        print!("{}", o.summary());
    }
    Ok(ExitCode::SUCCESS)
}
