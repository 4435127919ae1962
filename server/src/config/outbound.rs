//! The outbound queue, its static routes and the DKIM keys it signs with (DESIGN §5).

use serde::{Deserialize, Serialize};

/// The outbound queue and SMTP client (DESIGN §5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    pub route: Vec<RouteConfig>,
    /// Delays between attempts after a temporary failure; the last repeats until
    /// `max_age_secs` (DESIGN §5: 2m, 5m, 10m, 15m, 30m, 1h, 2h, then every 2h).
    pub retry_secs: Vec<u64>,
    /// A message undelivered this long fails with a DSN (5 days, RFC 5321 §4.5.4.1).
    pub max_age_secs: u64,
    /// A still-undelivered message tells its sender once, after this long (4 hours).
    pub delay_notice_secs: u64,
    /// Simultaneous deliveries to one destination domain.
    pub max_per_domain: usize,
    /// Simultaneous deliveries in all.
    pub max_concurrent: usize,
    /// The queue rescans on this timer even if no nudge arrives.
    pub scan_interval_secs: u64,
    /// Connect and per-command timeout of the SMTP client (RFC 5321 §4.5.3.2 allows up to
    /// 10 minutes for the end of DATA; this caps every step).
    pub timeout_secs: u64,
    /// The SMTP port of MX hosts; only tests change it.
    pub mx_port: u16,
    /// A session that delivered a message waits this long for the next one to the same
    /// server before QUIT (postfix's `smtp_connection_cache_time_limit`); 0 turns reuse off.
    pub connection_reuse_secs: u64,
    /// Deliver to MX/A answers in loopback, private, link-local, CGNAT, multicast and other
    /// non-public space. Off: a hostile domain whose MX points at 127.0.0.1 or 10.0.0.5
    /// would otherwise make us talk SMTP to the operator's own network. Explicit
    /// `[[outbound.route]]` next hops are trusted either way.
    pub danger_allow_private_destinations: bool,
    /// Trust roots for verified delivery (MTA-STS enforce, DANE-TA chains' names aside,
    /// `require_tls` routes): `webpki` (compiled-in Mozilla roots) or `system` (the
    /// operating system's store).
    pub trust_roots: TrustRootsName,
    /// A PEM file of extra trust roots, added to `trust_roots`. For tests with a private
    /// CA; in production it makes that CA able to impersonate every mail server.
    pub danger_extra_roots_file: String,
    /// Apply recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// The HTTPS port of `mta-sts.<domain>` (443; only tests change it).
    pub mta_sts_port: u16,
    /// A policy fetch, whole (connect, TLS, headers, body).
    pub mta_sts_timeout_secs: u64,
    /// Largest policy body accepted (RFC 8461 §3.3: 64 KB).
    pub mta_sts_max_bytes: usize,
    /// Most policies cached (by recipient domain).
    pub mta_sts_cache_entries: usize,
    /// With several nodes on one store (PostgreSQL), a node attempting a queued message holds
    /// its lease this long; a node that dies mid-attempt has its messages taken over by the
    /// others once it expires. Longer than an attempt can take (timeouts included).
    pub lease_secs: u64,
}

/// `outbound.trust_roots`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TrustRootsName {
    #[default]
    Webpki,
    System,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            route: Vec::new(),
            retry_secs: vec![120, 300, 600, 900, 1800, 3600, 7200],
            max_age_secs: 5 * 24 * 3600,
            delay_notice_secs: 4 * 3600,
            max_per_domain: 4,
            max_concurrent: 32,
            scan_interval_secs: 30,
            timeout_secs: 300,
            mx_port: 25,
            connection_reuse_secs: 2,
            danger_allow_private_destinations: false,
            trust_roots: TrustRootsName::Webpki,
            danger_extra_roots_file: String::new(),
            mta_sts: true,
            mta_sts_port: 443,
            mta_sts_timeout_secs: 10,
            mta_sts_max_bytes: 64 * 1024,
            mta_sts_cache_entries: 10_000,
            lease_secs: 900,
        }
    }
}

/// A static next hop for one destination domain, used instead of MX lookups.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    pub domain: String,
    pub next_hop: String,
    pub require_tls: bool,
}

/// DKIM signing keys (DESIGN §3): one Ed25519 and one RSA-2048 key per domain, in vault
/// custody. Selectors are `<selector_prefix><n>ed` and `<selector_prefix><n>rsa`; `n` grows
/// with every `legate dkim rotate`, so a new selector never reuses a published name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DkimConfig {
    pub selector_prefix: String,
}

impl Default for DkimConfig {
    fn default() -> Self {
        Self {
            selector_prefix: "lg".into(),
        }
    }
}
