//! `legate serve`: logging, signal handlers, the server until SIGTERM or SIGINT.

use super::config_file::{config_path, load_config};
use anyhow::Context;
use legate::app::{self, StartOptions};
use legate::config::{Config, LogFormat};
use std::path::Path;
use std::process::ExitCode;

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

pub(super) async fn serve(path: Option<&Path>) -> anyhow::Result<ExitCode> {
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
