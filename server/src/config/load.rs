//! Loading: TOML text -> [`Config`], collecting every error with its key path.
//!
//! serde stops at the first error, so a failing section is re-checked one key at a time: every
//! field has a default, hence a one-key table deserializes iff that key is known and its value
//! has the right type. Semantic checks (addresses, domains) run over the typed result.

use super::types::*;
use super::OutboundConfig;
use serde::de::DeserializeOwned;
use std::fmt;
use std::path::Path;
use toml::{Table, Value};

/// One problem, located by its dotted key path (`listen.smtp`, `outbound.route[1].next_hop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// Every problem found in one file, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse_str(&text)
}

/// Parses and validates TOML text.
pub fn parse_str(text: &str) -> Result<Config, ConfigErrors> {
    let root: Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigErrors(vec![ConfigError {
            path: "(syntax)".into(),
            message: e.to_string().trim().to_string(),
        }])
    })?;
    let mut errs = Vec::new();
    let mut cfg = Config::default();
    for (key, value) in &root {
        match key.as_str() {
            "server" => cfg.server = section(key, value, &mut errs),
            "storage" => cfg.storage = section(key, value, &mut errs),
            "listen" => cfg.listen = section(key, value, &mut errs),
            "tls" => cfg.tls = section(key, value, &mut errs),
            "acme" => cfg.acme = section(key, value, &mut errs),
            "vault" => cfg.vault = section(key, value, &mut errs),
            "dns" => cfg.dns = section(key, value, &mut errs),
            "log" => cfg.log = section(key, value, &mut errs),
            "api" => cfg.api = section(key, value, &mut errs),
            "smtp" => cfg.smtp = section(key, value, &mut errs),
            "imap" => cfg.imap = section(key, value, &mut errs),
            "senders" => cfg.senders = section(key, value, &mut errs),
            "send_policy" => cfg.send_policy = section(key, value, &mut errs),
            "reports" => cfg.reports = section(key, value, &mut errs),
            "dmarc" => cfg.dmarc = section(key, value, &mut errs),
            "identity" => cfg.identity = section(key, value, &mut errs),
            "outbound" => cfg.outbound = outbound(value, &mut errs),
            "dkim" => cfg.dkim = section(key, value, &mut errs),
            "limits" => cfg.limits = section(key, value, &mut errs),
            "admin" => cfg.admin = section(key, value, &mut errs),
            "doctor" => cfg.doctor = section(key, value, &mut errs),
            "events" => cfg.events = section(key, value, &mut errs),
            "webhooks" => cfg.webhooks = section(key, value, &mut errs),
            "breaker" => cfg.breaker = section(key, value, &mut errs),
            "feedback" => cfg.feedback = section(key, value, &mut errs),
            "console" => cfg.console = section(key, value, &mut errs),
            "oauth" => cfg.oauth = section(key, value, &mut errs),
            "connections" => cfg.connections = section(key, value, &mut errs),
            "owners" => cfg.owners = section(key, value, &mut errs),
            other => errs.push(err(other, "unknown section")),
        }
    }
    super::validate::validate(&cfg, &mut errs);
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errs))
    }
}

pub(super) fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

fn section<T: DeserializeOwned + Default>(
    path: &str,
    value: &Value,
    errs: &mut Vec<ConfigError>,
) -> T {
    if let Ok(t) = T::deserialize(value.clone()) {
        return t;
    }
    // Keep the keys that are fine so semantic checks still see the user's values.
    let good = per_key_errors::<T>(path, value, errs);
    T::deserialize(Value::Table(good)).unwrap_or_default()
}

/// Reports each bad key of a section and returns the table of the good ones.
fn per_key_errors<T: DeserializeOwned>(
    path: &str,
    value: &Value,
    errs: &mut Vec<ConfigError>,
) -> Table {
    let mut good = Table::new();
    let Some(table) = value.as_table() else {
        errs.push(err(
            path,
            format!("expected a table, found {}", value.type_str()),
        ));
        return good;
    };
    for (k, v) in table {
        let mut one = Table::new();
        one.insert(k.clone(), v.clone());
        match T::deserialize(Value::Table(one)) {
            Ok(_) => {
                good.insert(k.clone(), v.clone());
            }
            Err(e) => {
                let msg = e.to_string();
                let msg = if msg.starts_with("unknown field") {
                    "unknown key".to_string()
                } else {
                    msg.trim().to_string()
                };
                errs.push(err(format!("{path}.{k}"), msg));
            }
        }
    }
    good
}

fn outbound(value: &Value, errs: &mut Vec<ConfigError>) -> OutboundConfig {
    let Some(table) = value.as_table() else {
        errs.push(err("outbound", "expected a table"));
        return OutboundConfig::default();
    };
    // `[[outbound.route]]` items get their own paths; the scalar keys parse as a section.
    let mut rest = table.clone();
    let routes = rest.remove("route");
    let mut out: OutboundConfig = section("outbound", &Value::Table(rest), errs);
    if let Some(v) = routes {
        let Some(items) = v.as_array() else {
            errs.push(err(
                "outbound.route",
                "expected an array of tables ([[outbound.route]])",
            ));
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            out.route
                .push(section(&format!("outbound.route[{i}]"), item, errs));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_cache_mb_defaults_to_64_and_must_be_positive() {
        assert_eq!(parse_str("").unwrap().storage.cache_mb, 64);
        let c = parse_str("[storage]\ncache_mb = 16\n").unwrap();
        assert_eq!(c.storage.cache_mb, 16);
        let e = parse_str("[storage]\ncache_mb = 0\n").unwrap_err();
        assert!(e.to_string().contains("storage.cache_mb"), "{e}");
    }

    #[test]
    fn storage_min_free_mb_defaults_to_256_and_zero_is_off() {
        let c = parse_str("").unwrap();
        assert_eq!(c.storage.min_free_mb, 256);
        assert_eq!(c.storage.min_free_bytes(), 256 << 20);
        let c = parse_str("[storage]\nmin_free_mb = 0\n").unwrap();
        assert_eq!(c.storage.min_free_bytes(), 0);
        let e = parse_str("[storage]\nmin_free_mb = 2147483648\n").unwrap_err();
        assert!(e.to_string().contains("storage.min_free_mb"), "{e}");
    }

    #[test]
    fn empty_file_is_dev_defaults() {
        let c = parse_str("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.http, "127.0.0.1:8080");
        assert_eq!(c.server.domain, "localhost");
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let text = r#"
            bogus = 1
            [server]
            domain = "Not A Domain"
            colour = "blue"
            [listen]
            smtp = 25
            http = "nowhere"
            [smtp]
            max_recipients = "many"
            [[outbound.route]]
            domain = "b.test"
            next_hop = "127.0.0.1"
            extra = true
        "#;
        let e = parse_str(text).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        for want in [
            "bogus",
            "server.colour",
            "server.domain",
            "listen.smtp",
            "listen.http",
            "smtp.max_recipients",
            "outbound.route[0].extra",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        assert!(e.to_string().contains("listen.smtp"));
    }

    #[test]
    fn route_without_port_is_rejected() {
        let e = parse_str("[[outbound.route]]\ndomain='b.test'\nnext_hop='h'\n").unwrap_err();
        assert_eq!(e.0[0].path, "outbound.route[0].next_hop");
    }

    #[test]
    fn syntax_error_is_one_clear_error() {
        let e = parse_str("[server\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].path, "(syntax)");
    }

    #[test]
    fn example_file_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.toml.example");
        let c = load_file(Path::new(path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.domain, "agents.example.com");
        assert_eq!(c.listen.smtp, "0.0.0.0:25");
        assert_eq!(c.listen.https, "0.0.0.0:443");
        assert_eq!(c.acme.renew_before_days, 30);
        assert_eq!(c.send_policy, super::super::SendPolicyConfig::default());
        assert_eq!(c.owners, super::super::OwnersConfig::default());
        assert_eq!(c.connections, super::super::ConnectionsConfig::default());
    }

    #[test]
    fn send_policy_patterns_and_keys_are_checked() {
        let c = parse_str(
            "[send_policy]\nmax_per_day=10\nblock_domains=['*.bad.test']\nfirst_contact='hold'\n",
        )
        .unwrap();
        assert_eq!(c.send_policy.max_per_day, 10);
        assert_eq!(
            c.send_policy.first_contact,
            super::super::FirstContact::Hold
        );
        let e = parse_str("[send_policy]\nallow_domains=['ok.test', 'bad pattern']\n").unwrap_err();
        assert_eq!(e.0[0].path, "send_policy.allow_domains[1]");
        let e = parse_str("[send_policy]\nmax_per_hours=1\n").unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        let e = parse_str("[send_policy]\nmax_per_hour=-1\n").unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
    }

    #[test]
    fn acme_section_parses_and_conflicts_with_tls_files() {
        let c = parse_str(
            "[acme]\ndirectory='https://127.0.0.1:14000/dir'\nchallenge='tls-alpn-01'\ndomains=['mx.a.test']\n",
        )
        .unwrap();
        assert_eq!(c.acme.challenge, AcmeChallenge::TlsAlpn01);
        assert_eq!(c.acme.check_interval_secs, 3600);
        let e = parse_str("[acme]\nchallenge='dns-01'\n").unwrap_err();
        assert_eq!(e.0[0].path, "acme.challenge");
        let e = parse_str(
            "[tls]\ncert='c'\nkey='k'\n[acme]\ndirectory='http://ca.test/dir'\ndomains=['bad name']\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["acme.directory", "acme.directory", "acme.domains[0]"]
        );
    }
}
