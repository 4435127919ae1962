//! `legate store copy --from A --to B`: opens both sides, copies, verifies the audit chain.

use super::super::offline::print_json;
use anyhow::Context;
use legate::config::Config;
use legate::store::{Backend, PgOptions, Store, StoreOptions};
use std::process::ExitCode;
use zeroize::Zeroizing;

/// A sled directory, or a PostgreSQL URL given as such or as `@FILE`.
fn options(cfg: &Config, side: &str) -> anyhow::Result<(std::path::PathBuf, StoreOptions)> {
    let base = StoreOptions {
        min_free_bytes: 0,
        ..cfg.storage.store_options(false)
    };
    let (url, url_file) = if let Some(f) = side.strip_prefix('@') {
        (
            Zeroizing::new(String::new()),
            Some(std::path::PathBuf::from(f)),
        )
    } else if side.starts_with("postgres://") || side.starts_with("postgresql://") {
        (Zeroizing::new(side.to_string()), None)
    } else {
        let opts = StoreOptions {
            backend: Backend::Sled,
            ..base
        };
        return Ok((std::path::PathBuf::from(side), opts));
    };
    let Backend::Postgres(defaults) = (Config {
        storage: legate::config::StorageConfig {
            backend: "postgres".into(),
            ..cfg.storage.clone()
        },
        ..Config::default()
    })
    .storage
    .backend() else {
        anyhow::bail!("internal: no postgres options");
    };
    let opts = StoreOptions {
        backend: Backend::Postgres(PgOptions {
            url,
            url_file,
            ..defaults
        }),
        ..base
    };
    // The node's own files stay where the config says; the database is elsewhere.
    Ok((cfg.storage.path.clone(), opts))
}

fn open(cfg: &Config, side: &str) -> anyhow::Result<Store> {
    let (path, opts) = options(cfg, side)?;
    if matches!(opts.backend, Backend::Sled) && !path.is_dir() {
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
    }
    Store::open_with(&path, &opts).with_context(|| {
        format!(
            "cannot open the store {}",
            if side.contains("://") {
                "at the PostgreSQL URL"
            } else {
                side
            }
        )
    })
}

pub(super) fn copy(cfg: &Config, from: &str, to: &str) -> anyhow::Result<ExitCode> {
    let source = open(cfg, from)?;
    let target = open(cfg, to)?;
    let report = source.copy_into(&target)?;
    // The audit chain, recomputed on the copy from its first entry.
    let src_audit = legate::audit::Audit::open(source.clone())?.verify()?;
    let dst_audit = legate::audit::Audit::open(target.clone())?.verify()?;
    let audit_ok = dst_audit.first_broken.is_none()
        && dst_audit.entries == src_audit.entries
        && dst_audit.head == src_audit.head;
    let ok = report.mismatches.is_empty() && audit_ok;
    let mut v = serde_json::to_value(&report)?;
    v["from_backend"] = source.backend_name().into();
    v["to_backend"] = target.backend_name().into();
    v["audit_entries"] = dst_audit.entries.into();
    v["audit_head"] = serde_json::to_value(&dst_audit.head)?;
    v["audit_verified"] = audit_ok.into();
    v["verified"] = ok.into();
    print_json(&v);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
