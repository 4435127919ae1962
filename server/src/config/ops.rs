//! Operator tooling settings: the admin socket the CLI talks to (`[admin]`) and what
//! `legate doctor` probes (`[doctor]`). Kept apart from `types.rs` so each file stays small.

use serde::{Deserialize, Serialize};

/// `[admin]`: the local Unix socket `<storage.path>/admin.sock` (mode 0600, same-uid peers
/// only) through which the CLI reaches a running server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen on the socket. Off: the CLI cannot reach a running server (its store is
    /// locked), so admin commands work only while the server is stopped.
    pub socket: bool,
    /// Longest request line accepted; a longer one is answered with an error and the
    /// connection closed, so a confused client cannot make the server buffer without end.
    pub max_request_bytes: usize,
    /// Connections served at once; more wait for a free slot.
    pub max_connections: usize,
    /// A connection that sends no request for this long is closed.
    pub idle_timeout_secs: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            socket: true,
            max_request_bytes: 1024 * 1024,
            max_connections: 16,
            idle_timeout_secs: 300,
        }
    }
}

/// `[doctor]`: optional probes of `legate doctor`. Each empty value skips its check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DoctorConfig {
    /// `host:port` of an NTP server to measure clock skew against (SNTP over UDP).
    pub ntp_server: String,
    /// Without an NTP server: an HTTP(S) URL whose answer's `Date` header the clock is
    /// compared with, e.g. a DNS-over-HTTPS query (the Date of a DNS answer). Second
    /// resolution, so only gross skew shows; empty with `ntp_server` empty skips the check.
    pub time_url: String,
    /// Skew beyond this many seconds is a warning (DKIM signatures, TOTP codes and token
    /// expiry all depend on the clock); beyond ten times it, a failure.
    pub max_clock_skew_secs: u64,
    /// This host's public IP: its reverse DNS (PTR) must name `server.hostname`, and that
    /// name must resolve back to the IP, or many receivers reject or junk our mail.
    pub public_ip: String,
    /// `host:port` to open a TCP connection to, proving outbound port 25 is not blocked
    /// (many clouds block it by default).
    pub outbound_test_host: String,
    /// Seconds each network probe may take.
    pub timeout_secs: u64,
    /// Free space on the data filesystem below which the disk check warns, in MiB (on
    /// top of `storage.min_free_mb`, below which it fails).
    pub disk_warn_mb: u64,
    /// Days before certificate expiry that the certificate check warns.
    pub cert_warn_days: u64,
}

impl Default for DoctorConfig {
    fn default() -> Self {
        Self {
            ntp_server: String::new(),
            time_url: String::new(),
            max_clock_skew_secs: 2,
            public_ip: String::new(),
            outbound_test_host: String::new(),
            timeout_secs: 5,
            disk_warn_mb: 1024,
            cert_warn_days: 14,
        }
    }
}
