//! Semantic checks over the typed [`Config`]: what serde cannot see (addresses, domains,
//! ranges, keys that only make sense together). Each problem is collected with its key path.

use super::load::err;
use super::types::*;
use super::ConfigError;
use crate::util::valid_domain;
use std::net::SocketAddr;

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

pub(super) fn validate(c: &Config, errs: &mut Vec<ConfigError>) {
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
    if o.max_invites_per_hour == 0 || o.max_invites_per_hour > 10_000 {
        errs.push(err("owners.max_invites_per_hour", "must be 1 to 10000"));
    }
    if c.senders.max_entries == 0 {
        errs.push(err("senders.max_entries", "must be at least 1"));
    }
    if let Err(e) = c.events.retention_secs() {
        errs.push(err("events.retention", e));
    }
    if c.events.gather_ms > 1000 {
        errs.push(err("events.gather_ms", "must be at most 1000"));
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
        ("fetch_batch_messages", i.fetch_batch_messages),
        ("fetch_batch_bytes", i.fetch_batch_bytes as usize),
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
