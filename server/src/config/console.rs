//! `[console]` (the operator web console at `/console/`) and `[oauth]` (the OAuth 2.1
//! authorization server MCP clients sign in through). Kept apart from `types.rs`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console at `/console/` on the API listeners.
    pub enabled: bool,
    /// A session unused for this long ends (seconds).
    pub idle_timeout_secs: u64,
    /// A session ends this long after sign-in however busy it is (seconds).
    pub max_session_secs: u64,
    /// Rows per page of the console's lists (agents, mail, audit, queue).
    pub page_size: usize,
    /// Largest attachment the console serves as a download (bytes); bigger ones are
    /// refused with a pointer to the REST route.
    pub max_attachment_bytes: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout_secs: 1800,
            max_session_secs: 12 * 3600,
            page_size: 50,
            max_attachment_bytes: 25 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// Offer OAuth 2.1 to MCP clients (discovery documents, registration, authorize, token).
    /// Off: `/mcp` takes API keys only.
    pub enabled: bool,
    /// Lifetime of an access token (seconds): short, since a bearer token cannot be
    /// recalled from a client's memory, only refused at its next use.
    pub access_token_secs: u64,
    /// Lifetime of a refresh token (seconds); each use replaces it with a new one.
    pub refresh_token_secs: u64,
    /// Lifetime of an authorization code (seconds).
    pub code_secs: u64,
    /// Most clients dynamic registration keeps; past it registration answers 503.
    pub max_clients: usize,
    /// A registered client no human has consented to is deleted after this many seconds
    /// (checked at each registration): anyone may register, so without it unconsented
    /// registrations could hold `max_clients` full for good. 0 keeps them forever.
    pub unused_client_ttl: u64,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            access_token_secs: 900,
            refresh_token_secs: 30 * 24 * 3600,
            code_secs: 60,
            max_clients: 1000,
            unused_client_ttl: 24 * 3600,
        }
    }
}

/// The origin (`scheme://host[:port]`) clients reach this server at: `server.public_url`
/// when set, else the request's `Host` over https (plain http only for a loopback host, where
/// local development runs). OAuth metadata, the MCP resource URL (the audience of access
/// tokens) and the `WWW-Authenticate` challenge are built from it.
pub fn public_origin(config: &super::Config, host: Option<&str>) -> String {
    if let Ok(u) = url::Url::parse(&config.server.public_url) {
        if u.host_str().is_some() {
            return u.origin().ascii_serialization();
        }
    }
    let host = host
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or(&config.server.domain)
        .to_ascii_lowercase();
    let name = host.rsplit_once(':').map_or(host.as_str(), |(n, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            n
        } else {
            host.as_str()
        }
    });
    let loopback = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
    format!("{}://{host}", if loopback { "http" } else { "https" })
}
