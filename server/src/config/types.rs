//! The configuration schema. Field names are a contract (DESIGN §11): add keys, never rename.

use super::{DmarcConfig, ImapConfig, ReportsConfig, SendPolicyConfig, SendersConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    pub acme: AcmeConfig,
    pub vault: VaultConfig,
    pub dns: DnsConfig,
    pub log: LogConfig,
    pub api: ApiConfig,
    pub smtp: SmtpConfig,
    pub imap: ImapConfig,
    pub senders: SendersConfig,
    pub send_policy: SendPolicyConfig,
    pub reports: ReportsConfig,
    pub dmarc: DmarcConfig,
    pub identity: IdentityConfig,
    pub outbound: OutboundConfig,
    pub dkim: DkimConfig,
    pub limits: LimitsConfig,
    pub admin: super::ops::AdminConfig,
    pub doctor: super::ops::DoctorConfig,
    pub events: super::events::EventsConfig,
    pub webhooks: super::events::WebhooksConfig,
    pub breaker: super::BreakerConfig,
    pub feedback: super::FeedbackConfig,
    pub console: super::console::ConsoleConfig,
    pub oauth: super::console::OAuthConfig,
    pub connections: super::connections::ConnectionsConfig,
    pub owners: super::connections::OwnersConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The agent mail domain: addresses are `local@domain`.
    pub domain: String,
    /// This host's name: EHLO, Received headers, MX target.
    pub hostname: String,
    /// Base URL that clients use to reach the HTTP listener (did:web, links). Empty: derived
    /// from `domain` and the HTTP listener's port.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
            hostname: "localhost".into(),
            public_url: String::new(),
        }
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub path: PathBuf,
    /// The database's page cache in MiB. sled's own default (1 GiB) let memory grow with
    /// the mailbox; bodies live in the blob store (`<path>/blobs`), not in this cache.
    pub cache_mb: u64,
    /// Free space, in MiB, kept on the filesystem of `path` (postfix's `queue_minfree`):
    /// below it new mail is refused with a temporary error, so the database and the blob
    /// store never meet a full disk while mail already accepted still has room. 0 = off.
    pub min_free_mb: u64,
    /// zstd for message bodies of at least `compression_min_bytes` in the blob store and
    /// for the pages of a database created with it on (an existing database keeps the
    /// choice it was created with). Readers handle either form, so it can be turned off
    /// at any time.
    pub compression: bool,
    pub compression_min_bytes: u64,
    /// `"sled"` (embedded, the default) or `"postgres"` (several nodes on one database).
    pub backend: String,
    /// PostgreSQL connection URL (`postgres://user:password@host:port/db`). Prefer
    /// `url_file` for one holding a password. Redacted in Debug.
    #[serde(skip_serializing)]
    pub url: String,
    /// A file holding the URL (mode 0600), read when the store opens.
    pub url_file: String,
    /// Connections to PostgreSQL (each on a thread of its own).
    pub pool_size: u32,
    /// `"verify-full"` (TLS, certificate and host name verified; the default) or
    /// `"disable"` (only for loopback or a Unix socket, unless `danger_plaintext`).
    pub sslmode: String,
    /// PEM roots for verifying the database's certificate; empty: the system's.
    pub ca_file: String,
    /// Allow `sslmode = "disable"` to a database across a network.
    pub danger_plaintext: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data"),
            cache_mb: 64,
            min_free_mb: 256,
            compression: true,
            compression_min_bytes: 1024,
            backend: "sled".into(),
            url: String::new(),
            url_file: String::new(),
            pool_size: 8,
            sslmode: "verify-full".into(),
            ca_file: String::new(),
            danger_plaintext: false,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the database password.
        f.debug_struct("StorageConfig")
            .field("path", &self.path)
            .field("cache_mb", &self.cache_mb)
            .field("min_free_mb", &self.min_free_mb)
            .field("compression", &self.compression)
            .field("compression_min_bytes", &self.compression_min_bytes)
            .field("backend", &self.backend)
            .field(
                "url",
                &if self.url.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("sslmode", &self.sslmode)
            .field("ca_file", &self.ca_file)
            .field("danger_plaintext", &self.danger_plaintext)
            .finish()
    }
}

impl StorageConfig {
    /// `min_free_mb` in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1024 * 1024)
    }

    /// How the server opens its store. `sweep_on_open` is off only for tools that report
    /// orphan blobs instead of removing them.
    pub fn store_options(&self, sweep_on_open: bool) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_mb: self.cache_mb,
            sweep_on_open,
            min_free_bytes: self.min_free_bytes(),
            compress: self.compression,
            compress_min_bytes: usize::try_from(self.compression_min_bytes).unwrap_or(usize::MAX),
            backend: self.backend(),
        }
    }

    /// The engine `backend` names (validated at load: anything but "postgres" is sled).
    pub fn backend(&self) -> crate::store::Backend {
        if self.backend != "postgres" {
            return crate::store::Backend::Sled;
        }
        let opt_path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        crate::store::Backend::Postgres(crate::store::PgOptions {
            url: zeroize::Zeroizing::new(self.url.clone()),
            url_file: opt_path(&self.url_file),
            pool_size: usize::try_from(self.pool_size).unwrap_or(8),
            sslmode: if self.sslmode == "disable" {
                crate::store::SslMode::Disable
            } else {
                crate::store::SslMode::VerifyFull
            },
            ca_file: opt_path(&self.ca_file),
            danger_plaintext: self.danger_plaintext,
        })
    }
}

/// Listener addresses; `""` disables a listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    pub smtp: String,
    pub submission: String,
    pub submissions: String,
    pub imap: String,
    pub imaps: String,
    pub http: String,
    /// HTTPS with the same certificate as the mail listeners (ACME's TLS-ALPN-01 also
    /// validates here); `http` then stays plain for ACME HTTP-01 and local probes.
    pub https: String,
    /// What the plain `http` listener serves: everything (`full`, the loopback dev default),
    /// or only redirects to HTTPS and ACME HTTP-01 answers (`redirect`, production on :80).
    pub http_mode: HttpMode,
}

/// See [`ListenConfig::http_mode`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpMode {
    #[default]
    Full,
    Redirect,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            smtp: "127.0.0.1:2525".into(),
            submission: "127.0.0.1:2587".into(),
            submissions: String::new(),
            imap: "127.0.0.1:2143".into(),
            imaps: String::new(),
            http: "127.0.0.1:8080".into(),
            https: String::new(),
            http_mode: HttpMode::Full,
        }
    }
}

/// Certificate and key in PEM. Both empty: a self-signed certificate is made in the data dir.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

/// How ACME proves control of a name (RFC 8555 §8.3, RFC 8737).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A token served at `http://<name>/.well-known/acme-challenge/` (port 80).
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A special certificate on port 443 for ALPN `acme-tls/1`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

/// Certificates from an ACME CA (Let's Encrypt...). Used when `directory` is set and
/// `[tls]` is not; kept in `<storage.path>/acme/` and renewed in the background.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// Directory URL; empty disables ACME.
    pub directory: String,
    /// Contact address given to the CA (expiry warnings).
    pub email: String,
    /// Names on the certificate; empty: `server.hostname` and `server.domain`.
    pub domains: Vec<String>,
    pub challenge: AcmeChallenge,
    /// A PEM CA certificate to trust for the directory's HTTPS instead of the system roots
    /// (test CAs such as pebble).
    pub ca_file: String,
    /// Renew this many days before expiry, or at two thirds of the lifetime if earlier.
    pub renew_before_days: u64,
    /// Seconds between renewal checks (and the retry pace after a failed order).
    pub check_interval_secs: u64,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: String::new(),
            email: String::new(),
            domains: Vec::new(),
            challenge: AcmeChallenge::Http01,
            ca_file: String::new(),
            renew_before_days: 30,
            check_interval_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    /// Root key file (32 bytes, mode 0600). Empty: `LEGATE_MASTER_KEY`, else a dev key that
    /// `serve` creates under the data dir with a warning.
    pub master_key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// `host:port` nameservers; empty = the system resolver.
    pub nameservers: Vec<String>,
    pub timeout_secs: u64,
    /// TTL of every record in the DNS plan (`legate dns plan`), in seconds.
    pub ttl: u32,
    /// This host's public addresses: the plan publishes them as A/AAAA of `server.hostname`
    /// and as `ip4:`/`ip6:` terms of the SPF record. Empty: the plan only reminds you.
    pub addresses: Vec<std::net::IpAddr>,
    /// DMARC `p=` for the domain.
    pub dmarc_policy: DmarcPolicyName,
    /// DMARC `rua=`; empty: `mailto:dmarc-reports@<domain>`.
    pub dmarc_rua: String,
    /// TLS-RPT `rua=`; empty: `mailto:tls-reports@<domain>`.
    pub tlsrpt_rua: String,
    /// MTA-STS policy mode (RFC 8461): start with `testing`, move to `enforce` once the
    /// TLS-RPT reports are clean.
    pub mta_sts_mode: MtaStsMode,
    /// MTA-STS `max_age`, in seconds (RFC 8461 caps it at 31557600).
    pub mta_sts_max_age: u64,
    /// DANE for outbound mail (RFC 7672): MX and TLSA lookups through a DNSSEC-validating
    /// resolver. The nameservers must pass DNSSEC records through (most public resolvers do).
    pub dnssec: bool,
    /// DNSKEY records (zone-file form) trusted instead of the root's; "" = the root trust
    /// anchors built in. For tests with a private signed zone.
    pub trust_anchor_file: String,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout_secs: 5,
            ttl: 3600,
            addresses: Vec::new(),
            dmarc_policy: DmarcPolicyName::Quarantine,
            dmarc_rua: String::new(),
            tlsrpt_rua: String::new(),
            mta_sts_mode: MtaStsMode::Testing,
            mta_sts_max_age: 604_800,
            dnssec: false,
            trust_anchor_file: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicyName {
    None,
    #[default]
    Quarantine,
    Reject,
}

impl DmarcPolicyName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MtaStsMode {
    None,
    #[default]
    Testing,
    Enforce,
}

impl MtaStsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Testing => "testing",
            Self::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive such as `info` or `legate=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest request body accepted, in bytes (attachments arrive base64 in JSON).
    pub max_body_bytes: usize,
    /// How long in-flight HTTP requests may run after a shutdown signal, in seconds.
    pub shutdown_grace_secs: u64,
    /// Largest body of every route except message send/reply (which take attachments and
    /// get `max_body_bytes`), in bytes.
    pub max_json_body_bytes: usize,
    /// Simultaneous connections per HTTP listener, and from one IP address (IPv6: one /64).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// A client must send a request's headers within this many seconds of connecting or of
    /// its previous response (slowloris; also ends idle keep-alive connections).
    pub header_read_timeout_secs: u64,
    /// Concurrent `wait` long-polls one agent may hold (REST and MCP together).
    pub max_waits_per_agent: usize,
    /// Accept API keys over plain HTTP from non-loopback addresses. Off: such a request is
    /// refused with 403 `https_required` (a key sent in clear can be read on the way).
    pub danger_allow_plaintext: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            shutdown_grace_secs: 10,
            max_json_body_bytes: 1024 * 1024,
            max_connections: 4096,
            max_connections_per_ip: 256,
            header_read_timeout_secs: 30,
            max_waits_per_agent: 8,
            danger_allow_plaintext: false,
        }
    }
}

/// Inbound SMTP limits (RFC 5321 §4.5.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// RFC 5321 §4.5.3.2 command timeout: 5 minutes.
    pub command_timeout_secs: u64,
    /// RFC 5321 §4.5.3.2 data block timeout: 3 minutes.
    pub data_timeout_secs: u64,
    /// The whole message body (DATA, or all BDAT chunks) must arrive within this many
    /// seconds, however steadily it trickles: against slowloris clients that send a byte
    /// just before each data timeout.
    pub data_deadline_secs: u64,
    /// Per-agent mailbox quota in bytes; 0 = unlimited.
    pub mailbox_quota_bytes: u64,
    /// A message body larger than this is spooled to a temporary file in the data directory
    /// while it arrives, so slow concurrent transfers do not each hold a whole message in
    /// memory.
    pub spool_threshold_bytes: usize,
    /// Message bytes all sessions together may hold in memory while finishing messages
    /// (spooled bodies are read back, parsed, checked and stored). A message that does not
    /// fit waits for others to finish; one larger than the whole budget runs alone.
    pub max_processing_bytes: usize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_length: 65536,
            max_connections: 1000,
            max_connections_per_ip: 50,
            command_timeout_secs: 300,
            data_timeout_secs: 180,
            data_deadline_secs: 900,
            mailbox_quota_bytes: 1024 * 1024 * 1024,
            spool_threshold_bytes: 1024 * 1024,
            max_processing_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Fetch remote did:web documents to verify signatures of agents on other hosts.
    pub remote_did_resolution: bool,
    /// Largest lifetime of an identity token, in seconds (DESIGN §8: at most one hour).
    pub max_token_ttl_secs: u64,
    /// TESTS ONLY: resolve remote did:web documents over plain HTTP and allow loopback and
    /// private addresses, so one test server can resolve another on 127.0.0.1. In production
    /// this would let a verify request make the server fetch from its own private network.
    pub danger_allow_http_did_resolution: bool,
    /// Local parts, beyond the built-in role names (postmaster, abuse, ...), that only an
    /// admin may give an agent or sub-agent.
    pub reserved_locals: Vec<String>,
    /// The operator mailbox: the agent (local part on `server.domain`, or a full address)
    /// that receives `postmaster@` and `abuse@` of every hosted domain unless an agent of
    /// that name exists (RFC 5321 §4.5.1, RFC 2142). Created at start if missing.
    pub postmaster_agent: String,
    /// Answers of the public `GET /agents/{local}/reputation.jwt` per minute to each client
    /// address (an IPv6 client by its /64), so one client cannot use up everyone's answers.
    pub reputation_jwt_per_minute: u32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            remote_did_resolution: true,
            max_token_ttl_secs: 3600,
            danger_allow_http_did_resolution: false,
            reserved_locals: Vec::new(),
            postmaster_agent: "postmaster".into(),
            reputation_jwt_per_minute: 120,
        }
    }
}

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

/// Limits that apply across front-ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Failed authentications (REST, MCP, SMTP AUTH, IMAP) one source address (IPv6: one /64)
    /// may make per minute; the next attempts get `429` / `421 4.7.0` until the minute is
    /// over. 0 = no limit.
    pub auth_failures_per_minute: u32,
    /// Repeated `auth.denied` entries from one source are written once per interval, then
    /// summarised with a count, so failed attempts cannot flood the audit log.
    pub auth_denied_audit_interval_secs: u64,
    /// Source addresses the failure limiter tracks at once (its memory bound).
    pub auth_tracked_sources: usize,
    /// Threads for blocking work (body fsyncs, message parsing on read). Each one that has
    /// touched the database keeps some of its freed pages until it runs again, so this is
    /// a memory bound as much as a concurrency one: 16 kept RSS about 50 MB lower than
    /// tokio's 512 in the storage benchmark, at the same throughput.
    pub blocking_threads: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            auth_failures_per_minute: 10,
            auth_denied_audit_interval_secs: 60,
            auth_tracked_sources: 100_000,
            blocking_threads: 16,
        }
    }
}
