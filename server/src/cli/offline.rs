//! What the commands that work on the data directory share: opening it as the first human,
//! opening the store read-only-minded, printing JSON.

use anyhow::Context;
use legate::app::{self, Services};
use legate::config::Config;
use legate::identity::Actor;

/// Opens the data directory for an offline command, acting as the first human.
pub(super) fn open_offline(cfg: Config) -> anyhow::Result<(Services, Actor)> {
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

/// [`open_offline`] for a command that only reads what exists from the first open on (the
/// DKIM records): before any admin exists it acts as a placeholder operator, which the
/// read-only operations it runs neither check nor audit.
pub(super) fn open_offline_reader(cfg: Config) -> anyhow::Result<(Services, Actor)> {
    let api = if cfg.listen.https.is_empty() {
        &cfg.listen.http
    } else {
        &cfg.listen.https
    };
    let did = app::did_host(&cfg, api.rsplit(':').next().and_then(|p| p.parse().ok()));
    let services = Services::open(cfg, did)?;
    let actor = match services.identity.first_human()? {
        Some(h) => Actor::cli(&h.id, &h.email),
        None => Actor::cli("operator", "operator@localhost"),
    };
    Ok((services, actor))
}

pub(super) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Opens an existing data directory for a command that only reads it. It never makes one: a
/// missing or mistyped `--config` must name the problem, not leave an empty store (and new
/// keys) behind. No disk reserve, so it works on a full disk.
pub(super) fn open_existing_store(cfg: &Config) -> anyhow::Result<legate::store::Store> {
    let path = &cfg.storage.path;
    // A PostgreSQL store lives in its database, not under `path`.
    if cfg.storage.backend != "postgres" && !path.join("db").is_dir() {
        anyhow::bail!(
            "no data directory at {}: run `legate init` first, or pass the config it wrote \
             (--config <data>/config.toml)",
            path.display()
        );
    }
    let opts = legate::store::StoreOptions {
        min_free_bytes: 0,
        ..cfg.storage.store_options(false)
    };
    legate::store::Store::open_with(path, &opts).with_context(|| {
        format!(
            "cannot open the store in {} (if the server is running, ask it instead: --server \
             URL with an admin token)",
            path.display()
        )
    })
}
