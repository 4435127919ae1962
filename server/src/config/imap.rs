//! `[imap]`: the IMAP listeners' limits.

use serde::{Deserialize, Serialize};

/// IMAP (`listen.imap` with STARTTLS, `listen.imaps` with implicit TLS): limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// Allow LOGIN and AUTHENTICATE before STARTTLS on `listen.imap` (keys cross the wire
    /// in clear). Off: such sessions see LOGINDISABLED until they start TLS.
    pub danger_allow_plaintext_login: bool,
    /// Largest message APPEND accepts (advertised as APPENDLIMIT); a larger literal is
    /// refused before it is read.
    pub max_append_bytes: u64,
    /// Longest command line, literals excluded.
    pub max_line_bytes: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Sessions one agent may hold at once, on every IMAP listener together.
    pub max_connections_per_agent: usize,
    /// A client that has not logged in within this many seconds is disconnected.
    pub pre_auth_timeout_secs: u64,
    /// An authenticated client silent this long is logged out (RFC 9051 asks for at least
    /// 30 minutes); IDLE re-arms it.
    pub idle_timeout_secs: u64,
    /// Failed logins for one address per minute before further attempts for it are
    /// refused for a minute (the per-IP limit is `limits.auth_failures_per_minute`).
    pub auth_failures_per_address_per_minute: u32,
    /// Folders an agent may create beside the six system ones.
    pub max_user_folders: usize,
    /// Folder creations (CREATE, RENAME) per agent per hour.
    pub max_folder_creates_per_hour: u32,
    /// Largest literal a client may send before it logs in (a LOGIN password is tiny).
    pub pre_auth_literal_bytes: u32,
    /// Failed logins one connection may make before it is closed.
    pub max_failed_logins_per_connection: u32,
    /// A client that does not take our output for this long is disconnected.
    pub write_timeout_secs: u64,
    /// Items carrying message content (sections, whole messages, structures) per FETCH.
    pub max_fetch_content_items: usize,
    /// What one message's FETCH response may be estimated at (size × content items).
    pub max_fetch_bytes_per_message: u64,
    /// Keys in one SEARCH, and the longest string it may look for.
    pub max_search_keys: usize,
    pub max_search_string_bytes: usize,
    /// Searches reading message bodies (TEXT, BODY, HEADER, BCC) that may run at once,
    /// server-wide, and how long one may run.
    pub max_body_searches: usize,
    pub search_budget_secs: u64,
    /// Messages whose subject and addresses SEARCH keeps in memory, lower-cased, across
    /// all sessions (about 200 bytes each); 0 reads the records for every search.
    pub search_cache_messages: usize,
    /// A FETCH of many messages is built this many messages, or about this many bytes, at
    /// a time; a session holds at most three such batches.
    pub fetch_batch_messages: usize,
    pub fetch_batch_bytes: u64,
}

impl Default for ImapConfig {
    fn default() -> Self {
        Self {
            danger_allow_plaintext_login: false,
            max_append_bytes: 25 * 1024 * 1024,
            max_line_bytes: 65536,
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_connections_per_agent: 20,
            pre_auth_timeout_secs: 60,
            idle_timeout_secs: 1800,
            auth_failures_per_address_per_minute: 10,
            max_user_folders: 100,
            max_folder_creates_per_hour: 100,
            pre_auth_literal_bytes: 8 * 1024,
            max_failed_logins_per_connection: 5,
            write_timeout_secs: 120,
            max_fetch_content_items: 16,
            max_fetch_bytes_per_message: 128 * 1024 * 1024,
            max_search_keys: 64,
            max_search_string_bytes: 1024,
            max_body_searches: 4,
            search_budget_secs: 60,
            search_cache_messages: 20_000,
            fetch_batch_messages: 128,
            fetch_batch_bytes: 1024 * 1024,
        }
    }
}
