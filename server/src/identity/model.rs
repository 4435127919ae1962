//! Stored principals and keys.

use super::scope::ScopeSet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Human {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: i64,
    /// Whether this human's tokens are admin tokens. Humans added only as owners of agents
    /// (`POST /v1/agents/{id}/owners`) are not: they act on the agents they own, nothing else.
    /// Records written before owners existed were all admins.
    #[serde(default = "yes")]
    pub admin: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub domain: String,
    /// Human id of its creator.
    pub created_by: String,
    pub created_at: i64,
}

impl Org {
    /// The JSON every front-end answers with (REST `/v1/orgs`, the admin socket).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "domain": self.domain,
            "created_by": self.created_by, "created_at": crate::util::rfc3339(self.created_at),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Active,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub org_id: String,
    pub local: String,
    pub domain: String,
    pub name: String,
    /// What this agent may ever do; its keys carry subsets.
    pub scopes: ScopeSet,
    /// Delegation chain, authorising human first, this agent last (`kind:id` links).
    pub chain: Vec<String>,
    /// The agent that created this one, for sub-agents.
    pub parent: Option<String>,
    pub status: AgentStatus,
    pub created_at: i64,
    pub created_by: String,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

impl Agent {
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
    pub fn is_active(&self) -> bool {
        self.status == AgentStatus::Active
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum KeyOwner {
    Human(String),
    Agent(String),
}

impl KeyOwner {
    pub fn id(&self) -> &str {
        match self {
            KeyOwner::Human(id) | KeyOwner::Agent(id) => id,
        }
    }
}

/// An API key record. The token itself is never stored: only its SHA-256.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub owner: KeyOwner,
    pub name: String,
    pub scopes: ScopeSet,
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// An admin token registered from `LEGATE_BOOTSTRAP_ADMIN_TOKEN`: it stops working as
    /// soon as any other admin token exists, unless an admin keeps it (which clears this).
    #[serde(default)]
    pub bootstrap: bool,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// A new key record for `token` (only its hash is kept), issued now.
    pub(super) fn issue(
        owner: KeyOwner,
        name: String,
        scopes: ScopeSet,
        token: &str,
        expires_at: Option<i64>,
    ) -> Self {
        Self {
            id: crate::util::new_id("key"),
            owner,
            name,
            scopes,
            hash: super::apikey::hash(token).to_vec(),
            created_at: crate::util::now_unix(),
            last_used_at: None,
            expires_at,
            revoked_at: None,
            bootstrap: false,
        }
    }

    /// The public view: never the hash.
    pub fn to_json(&self) -> serde_json::Value {
        use crate::util::rfc3339;
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "scopes": self.scopes,
            "created_at": rfc3339(self.created_at),
            "last_used_at": self.last_used_at.map(rfc3339),
            "expires_at": self.expires_at.map(rfc3339),
            "revoked_at": self.revoked_at.map(rfc3339),
            "bootstrap": self.bootstrap,
        })
    }
}
