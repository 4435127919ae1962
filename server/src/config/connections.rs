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
    /// Revoking an agent revokes all its connections at their providers at once; each
    /// connection's revocation is given at most this many seconds (its tokens are destroyed
    /// either way), so one slow provider cannot hold up the agent's revocation.
    pub revoke_timeout_secs: u64,
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
            revoke_timeout_secs: 15,
        }
    }
}

/// `[owners]`: the humans added as co-owners of agents (issue 25 §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OwnersConfig {
    /// Lifetime of an owner's API key, in seconds from its issue: a non-admin human's key
    /// stops working then (a co-owner re-adds them to send a new invite).
    pub key_ttl_secs: u64,
    /// How long an owner invite (mailed to the human) can be redeemed, in seconds. Single use.
    pub invite_ttl_secs: u64,
    /// Invites mailed for one agent per clock hour. Adding and removing owners in a loop
    /// would otherwise have the postmaster mail any address, as often as asked.
    pub max_invites_per_hour: u32,
}

impl Default for OwnersConfig {
    fn default() -> Self {
        Self {
            key_ttl_secs: 30 * 86400,
            invite_ttl_secs: 3 * 86400,
            max_invites_per_hour: 20,
        }
    }
}
