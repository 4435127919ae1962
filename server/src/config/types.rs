//! The configuration schema. Field names are a contract (DESIGN §11): add keys, never rename.

use super::{DkimConfig, OutboundConfig, StorageConfig};
use super::{DmarcConfig, ImapConfig, ReportsConfig, SendPolicyConfig, SendersConfig};
use serde::{Deserialize, Serialize};

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
/// `[tls]` is not; kept in the store (keys sealed by the vault, shared by the nodes on one
/// database) and renewed in the background.
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
