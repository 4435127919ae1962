//! `[connections]`: connected OAuth accounts (issue 25 §1). Kept apart from `types.rs` so
//! each file stays small.

use serde::{Deserialize, Serialize};

/// `[connections]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Let provider endpoints (issuer, authorization, token, revocation) be on loopback or
    /// private addresses, and over plain `http://`. Off: public `https://` endpoints only.
    /// For tests with a provider on the same host; never for a real deployment.
    pub danger_allow_private: bool,
    /// One call to a provider (discovery, code exchange, refresh, revocation): its whole
    /// time in seconds, connect included.
    pub timeout_secs: u64,
    /// Largest answer read from a provider, in bytes; a longer one is refused.
    pub max_response_bytes: usize,
    /// How long a started grant waits for the human's consent (seconds); its `state` is
    /// refused after that, and at its second use.
    pub pending_grant_secs: u64,
    /// An access token this close to its expiry (seconds) is refreshed before it is handed
    /// out, so the agent never gets one about to die.
    pub refresh_skew_secs: u64,
    /// Most connections one agent may have (pending, active or needing consent).
    pub max_per_agent: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            danger_allow_private: false,
            timeout_secs: 10,
            max_response_bytes: 64 * 1024,
            pending_grant_secs: 600,
            refresh_skew_secs: 60,
            max_per_agent: 32,
        }
    }
}
