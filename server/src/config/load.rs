//! Loading: TOML text -> [`Config`], collecting every error with its key path.
//!
//! serde stops at the first error, so a failing section is re-checked one key at a time: every
//! field has a default, hence a one-key table deserializes iff that key is known and its value
//! has the right type. Semantic checks (addresses, domains) run over the typed result.

use super::types::*;
use crate::util::valid_domain;
use serde::de::DeserializeOwned;
use std::fmt;
use std::net::SocketAddr;
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
    validate(&cfg, &mut errs);
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errs))
    }
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
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

fn check_addr(path: &str, s: &str, errs: &mut Vec<ConfigError>) {
    if !s.is_empty() && s.parse::<SocketAddr>().is_err() {
        errs.push(err(
            path,
            format!("\"{s}\" is not an ip:port address (use \"\" to disable)"),
        ));
    }
}

/// What the DNS plan publishes must be valid record data.
fn check_dns(d: &DnsConfig, errs: &mut Vec<ConfigError>) {
    if d.ttl == 0 {
        errs.push(err("dns.ttl", "must be greater than 0"));
    }
    if !(1..=31_557_600).contains(&d.mta_sts_max_age) {
        errs.push(err(
            "dns.mta_sts_max_age",
            "must be between 1 and 31557600 seconds (RFC 8461 §3.2)",
        ));
    }
    for (name, v) in [("dmarc_rua", &d.dmarc_rua), ("tlsrpt_rua", &d.tlsrpt_rua)] {
        let ok = v.is_empty()
            || ((v.starts_with("mailto:") || v.starts_with("https:"))
                && !v.contains([';', '"', ' ', '\\']));
        if !ok {
            errs.push(err(
                format!("dns.{name}"),
                "must be a mailto: or https: URI without spaces, quotes or ';'",
            ));
        }
    }
}

fn validate(c: &Config, errs: &mut Vec<ConfigError>) {
    if c.reports.max_zip_files == 0 {
        errs.push(err("reports.max_zip_files", "must be at least 1"));
    }
    if c.reports.tls_report_interval_secs < 60 || c.dmarc.report_interval_secs < 60 {
        errs.push(err(
            "dmarc.report_interval_secs",
            "report intervals must be at least 60 seconds",
        ));
    }
    validate_send_policy(c, errs);
    validate_console(c, errs);
    let k = &c.connections;
    if k.timeout_secs == 0
        || k.max_response_bytes < 1024
        || k.pending_grant_secs < 60
        || k.max_per_agent == 0
    {
        errs.push(err(
            "connections",
            "timeout_secs and max_per_agent must be at least 1, max_response_bytes at least 1024, pending_grant_secs at least 60",
        ));
    }
    if k.revoke_timeout_secs == 0 || k.revoke_timeout_secs > 3600 {
        errs.push(err(
            "connections.revoke_timeout_secs",
            "must be 1 to 3600 seconds",
        ));
    }
    let o = &c.owners;
    if o.key_ttl_secs == 0 || o.key_ttl_secs > 10 * 365 * 86400 {
        errs.push(err("owners.key_ttl_secs", "must be 1 second to 10 years"));
    }
    if o.invite_ttl_secs == 0 || o.invite_ttl_secs > 30 * 86400 {
        errs.push(err("owners.invite_ttl_secs", "must be 1 second to 30 days"));
    }
    if c.senders.max_entries == 0 {
        errs.push(err("senders.max_entries", "must be at least 1"));
    }
    if let Err(e) = c.events.retention_secs() {
        errs.push(err("events.retention", e));
    }
    for a in &c.webhooks.allow_private {
        if let Err(e) = crate::net::AllowPrivate::parse_entry(a) {
            errs.push(err("webhooks.allow_private", e));
        }
    }
    if !valid_domain(&c.server.domain) || c.server.domain != c.server.domain.to_ascii_lowercase() {
        errs.push(err(
            "server.domain",
            format!("\"{}\" is not a lowercase domain name", c.server.domain),
        ));
    }
    if !valid_domain(&c.server.hostname) {
        errs.push(err(
            "server.hostname",
            format!("\"{}\" is not a host name", c.server.hostname),
        ));
    }
    let url = &c.server.public_url;
    if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
        errs.push(err(
            "server.public_url",
            "must start with https:// or http://",
        ));
    }
    if c.storage.path.as_os_str().is_empty() {
        errs.push(err("storage.path", "must not be empty"));
    }
    if c.limits.blocking_threads == 0 || c.limits.blocking_threads > 4096 {
        errs.push(err("limits.blocking_threads", "must be between 1 and 4096"));
    }
    let st = &c.storage;
    if !matches!(st.backend.as_str(), "sled" | "postgres") {
        errs.push(err("storage.backend", "must be \"sled\" or \"postgres\""));
    }
    if !matches!(st.sslmode.as_str(), "verify-full" | "disable") {
        errs.push(err(
            "storage.sslmode",
            "must be \"verify-full\" or \"disable\"",
        ));
    }
    if st.backend == "postgres" && st.url.is_empty() == st.url_file.is_empty() {
        errs.push(err(
            "storage.url",
            "backend = \"postgres\" needs exactly one of url and url_file",
        ));
    }
    if st.pool_size < 2 || st.pool_size > 1024 {
        errs.push(err("storage.pool_size", "must be between 2 and 1024"));
    }
    if c.storage.cache_mb == 0 || c.storage.cache_mb > 1 << 20 {
        errs.push(err("storage.cache_mb", "must be between 1 and 1048576"));
    }
    if c.storage.min_free_mb > 1 << 30 {
        errs.push(err(
            "storage.min_free_mb",
            "must be at most 1073741824 (1 PiB); 0 turns the reserve off",
        ));
    }
    let l = &c.listen;
    for (name, v) in [
        ("smtp", &l.smtp),
        ("submission", &l.submission),
        ("submissions", &l.submissions),
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("http", &l.http),
        ("https", &l.https),
    ] {
        check_addr(&format!("listen.{name}"), v, errs);
    }
    if c.tls.cert.is_empty() != c.tls.key.is_empty() {
        errs.push(err("tls", "set both cert and key, or neither"));
    }
    validate_acme(c, errs);
    for (i, ns) in c.dns.nameservers.iter().enumerate() {
        if ns.parse::<SocketAddr>().is_err() {
            errs.push(err(
                format!("dns.nameservers[{i}]"),
                format!("\"{ns}\" is not an ip:port address"),
            ));
        }
    }
    check_dns(&c.dns, errs);
    if tracing_subscriber::EnvFilter::try_new(&c.log.level).is_err() {
        errs.push(err(
            "log.level",
            format!("\"{}\" is not a log filter", c.log.level),
        ));
    }
    if c.api.max_body_bytes < 1024 {
        errs.push(err("api.max_body_bytes", "must be at least 1024"));
    }
    for (name, v) in [
        ("api.max_json_body_bytes", c.api.max_json_body_bytes as u64),
        ("api.max_connections", c.api.max_connections as u64),
        (
            "api.max_connections_per_ip",
            c.api.max_connections_per_ip as u64,
        ),
        (
            "api.header_read_timeout_secs",
            c.api.header_read_timeout_secs,
        ),
        ("api.max_waits_per_agent", c.api.max_waits_per_agent as u64),
        (
            "limits.auth_denied_audit_interval_secs",
            c.limits.auth_denied_audit_interval_secs,
        ),
        (
            "limits.auth_tracked_sources",
            c.limits.auth_tracked_sources as u64,
        ),
        ("admin.max_request_bytes", c.admin.max_request_bytes as u64),
        ("admin.max_connections", c.admin.max_connections as u64),
        ("admin.idle_timeout_secs", c.admin.idle_timeout_secs),
        ("doctor.timeout_secs", c.doctor.timeout_secs),
    ] {
        if v == 0 {
            errs.push(err(name, "must be at least 1"));
        }
    }
    let s = &c.smtp;
    for (name, v) in [
        ("max_message_size", s.max_message_size),
        ("max_recipients", s.max_recipients),
        ("max_line_length", s.max_line_length),
        ("max_connections", s.max_connections),
        ("max_connections_per_ip", s.max_connections_per_ip),
        ("spool_threshold_bytes", s.spool_threshold_bytes),
        ("max_processing_bytes", s.max_processing_bytes),
        ("data_deadline_secs", s.data_deadline_secs as usize),
    ] {
        if v == 0 {
            errs.push(err(format!("smtp.{name}"), "must be greater than 0"));
        }
    }
    if s.max_line_length < 1000 {
        errs.push(err(
            "smtp.max_line_length",
            "must be at least 1000 (RFC 5321 §4.5.3.1.6)",
        ));
    }
    let i = &c.imap;
    for (name, v) in [
        ("max_append_bytes", i.max_append_bytes as usize),
        ("max_connections", i.max_connections),
        ("max_connections_per_ip", i.max_connections_per_ip),
        ("max_connections_per_agent", i.max_connections_per_agent),
        ("pre_auth_literal_bytes", i.pre_auth_literal_bytes as usize),
        (
            "max_failed_logins_per_connection",
            i.max_failed_logins_per_connection as usize,
        ),
        ("write_timeout_secs", i.write_timeout_secs as usize),
        ("max_fetch_content_items", i.max_fetch_content_items),
        (
            "max_fetch_bytes_per_message",
            i.max_fetch_bytes_per_message as usize,
        ),
        ("max_search_keys", i.max_search_keys),
        ("max_search_string_bytes", i.max_search_string_bytes),
        ("max_body_searches", i.max_body_searches),
        ("search_budget_secs", i.search_budget_secs as usize),
        ("pre_auth_timeout_secs", i.pre_auth_timeout_secs as usize),
        (
            "auth_failures_per_address_per_minute",
            i.auth_failures_per_address_per_minute as usize,
        ),
    ] {
        if v == 0 {
            errs.push(err(format!("imap.{name}"), "must be greater than 0"));
        }
    }
    if i.max_line_bytes < 1000 {
        errs.push(err("imap.max_line_bytes", "must be at least 1000"));
    }
    if i.idle_timeout_secs < 1800 {
        errs.push(err(
            "imap.idle_timeout_secs",
            "must be at least 1800 (RFC 9051 §5.4: 30 minutes)",
        ));
    }
    if i.max_append_bytes > u64::from(u32::MAX) {
        errs.push(err(
            "imap.max_append_bytes",
            "must fit in 32 bits (IMAP literal sizes)",
        ));
    }
    if !(1..=3600).contains(&c.identity.max_token_ttl_secs) {
        errs.push(err(
            "identity.max_token_ttl_secs",
            "must be between 1 and 3600",
        ));
    }
    let prefix = &c.dkim.selector_prefix;
    if prefix.is_empty()
        || prefix.len() > 32
        || !prefix
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
    {
        errs.push(err(
            "dkim.selector_prefix",
            "must be 1-32 letters, digits or '-' (it starts a DNS label)",
        ));
    }
    let o = &c.outbound;
    if o.retry_secs.is_empty() || o.retry_secs.contains(&0) {
        errs.push(err(
            "outbound.retry_secs",
            "needs at least one delay, each greater than 0",
        ));
    }
    for (name, v) in [
        ("max_age_secs", o.max_age_secs),
        ("max_per_domain", o.max_per_domain as u64),
        ("max_concurrent", o.max_concurrent as u64),
        ("scan_interval_secs", o.scan_interval_secs),
        ("timeout_secs", o.timeout_secs),
    ] {
        if v == 0 {
            errs.push(err(format!("outbound.{name}"), "must be greater than 0"));
        }
    }
    for (i, r) in c.outbound.route.iter().enumerate() {
        let p = format!("outbound.route[{i}]");
        if !valid_domain(&r.domain) {
            errs.push(err(format!("{p}.domain"), "required: a domain name"));
        }
        let ok = r
            .next_hop
            .rsplit_once(':')
            .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            errs.push(err(format!("{p}.next_hop"), "required: host:port"));
        }
    }
}

fn validate_console(c: &Config, errs: &mut Vec<ConfigError>) {
    let k = &c.console;
    if k.idle_timeout_secs < 60 || k.idle_timeout_secs > k.max_session_secs {
        errs.push(err(
            "console.idle_timeout_secs",
            "must be at least 60 and at most console.max_session_secs",
        ));
    }
    if k.page_size == 0 || k.page_size > 500 {
        errs.push(err("console.page_size", "must be between 1 and 500"));
    }
    let o = &c.oauth;
    if o.access_token_secs < 60 || o.access_token_secs > 86_400 {
        errs.push(err(
            "oauth.access_token_secs",
            "must be between 60 and 86400",
        ));
    }
    if o.code_secs < 10 || o.code_secs > 600 {
        errs.push(err("oauth.code_secs", "must be between 10 and 600"));
    }
    if o.refresh_token_secs < o.access_token_secs {
        errs.push(err(
            "oauth.refresh_token_secs",
            "must be at least oauth.access_token_secs",
        ));
    }
    if o.unused_client_ttl != 0 && o.unused_client_ttl < 600 {
        // A human needs time to reach the consent page after the client registers.
        errs.push(err(
            "oauth.unused_client_ttl",
            "must be 0 (never) or at least 600",
        ));
    }
}

fn validate_send_policy(c: &Config, errs: &mut Vec<ConfigError>) {
    let p = &c.send_policy;
    if p.approval_ttl_secs == 0 {
        errs.push(err("send_policy.approval_ttl_secs", "must be at least 1"));
    }
    let b = &c.breaker;
    if b.window == 0 || b.window > 10_000 {
        errs.push(err("breaker.window", "must be between 1 and 10000"));
    }
    if b.min_sends > b.window {
        errs.push(err("breaker.min_sends", "must not exceed breaker.window"));
    }
    if b.max_hard_bounce_percent > 100 {
        errs.push(err(
            "breaker.max_hard_bounce_percent",
            "must be at most 100",
        ));
    }
    if b.max_complaints == 0 {
        errs.push(err("breaker.max_complaints", "must be at least 1"));
    }
    if p.max_domain_patterns == 0 {
        errs.push(err("send_policy.max_domain_patterns", "must be at least 1"));
    }
    for (name, list) in [
        ("allow_domains", &p.allow_domains),
        ("block_domains", &p.block_domains),
    ] {
        if list.len() > p.max_domain_patterns {
            errs.push(err(
                format!("send_policy.{name}"),
                format!("at most {} patterns", p.max_domain_patterns),
            ));
        }
        for (i, d) in list.iter().enumerate() {
            if let Err(e) = crate::policy::DomainPattern::parse(d) {
                errs.push(err(format!("send_policy.{name}[{i}]"), e));
            }
        }
    }
}

fn validate_acme(c: &Config, errs: &mut Vec<ConfigError>) {
    let a = &c.acme;
    if a.directory.is_empty() {
        return;
    }
    if !c.tls.cert.is_empty() {
        errs.push(err("acme.directory", "use [tls] files or [acme], not both"));
    }
    if !a.directory.starts_with("https://") {
        errs.push(err(
            "acme.directory",
            "must be an https:// URL (RFC 8555 §6.1)",
        ));
    }
    for (i, d) in a.domains.iter().enumerate() {
        if !valid_domain(d) {
            errs.push(err(
                format!("acme.domains[{i}]"),
                format!("\"{d}\" is not a domain name"),
            ));
        }
    }
    if !a.email.is_empty() && !a.email.contains('@') {
        errs.push(err("acme.email", "must be an email address"));
    }
    if a.check_interval_secs == 0 {
        errs.push(err("acme.check_interval_secs", "must be greater than 0"));
    }
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
