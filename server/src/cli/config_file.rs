//! Which config file a command uses, and loading it: `--config`, else what `legate init` wrote
//! in ./data, else the embedded dev defaults.

use legate::config::{self, Config};
use std::path::{Path, PathBuf};

/// Where `legate init` puts its config when given no `--data`.
const INIT_DEFAULT_CONFIG: &str = "./data/config.toml";

/// The config file to use: `--config` (or `LEGATE_CONFIG`), else the one `legate init` writes
/// with its default `--data` when it exists. The embedded dev defaults keep their data in
/// `./data` too, so using them on a directory `init` made would plan DNS, make DKIM keys and
/// serve for `localhost` instead of the operator's domain.
pub(super) fn config_path(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(INIT_DEFAULT_CONFIG)).filter(|p| p.is_file()),
    }
}

pub(super) fn load_config(given: Option<&Path>) -> anyhow::Result<Config> {
    match config_path(given) {
        Some(p) => config::load_file(&p).map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(Config::default()),
    }
}
