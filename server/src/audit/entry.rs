//! The audit entry and its canonical bytes.

use serde::{Deserialize, Serialize};

/// Who acted: `human`, `agent`, `anonymous` (an unauthenticated caller) or `system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRef {
    pub kind: String,
    pub id: String,
}

impl ActorRef {
    pub fn agent(id: &str) -> Self {
        Self {
            kind: "agent".into(),
            id: id.into(),
        }
    }
    pub fn human(id: &str) -> Self {
        Self {
            kind: "human".into(),
            id: id.into(),
        }
    }
    pub fn anonymous(peer: &str) -> Self {
        Self {
            kind: "anonymous".into(),
            id: peer.into(),
        }
    }
    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: "legate".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
    Error,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(Self::Ok),
            "denied" => Some(Self::Denied),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// What a service hands to [`super::Audit::append`].
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub actor: ActorRef,
    /// The delegation chain, one `kind:id` link per element, authorising human first.
    pub chain: Vec<String>,
    /// Dotted verb such as `agent.create`, `vault.get`, `auth.denied`.
    pub action: String,
    /// What was acted on (an id, a name); never a secret.
    pub target: String,
    pub outcome: Outcome,
    /// Extra facts; never a secret.
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// Unix milliseconds.
    pub ts: i64,
    pub actor: ActorRef,
    pub chain: Vec<String>,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed part of an entry, in a fixed field order. JSON (not the store encoding) so an
/// outside auditor can recompute hashes from an export with any JSON library.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    ts: i64,
    actor: &'a ActorRef,
    chain: &'a [String],
    action: &'a str,
    target: &'a str,
    outcome: Outcome,
    detail: &'a serde_json::Value,
}

impl Entry {
    pub fn compute_hash(&self) -> String {
        let body = Canonical {
            seq: self.seq,
            ts: self.ts,
            actor: &self.actor,
            chain: &self.chain,
            action: &self.action,
            target: &self.target,
            outcome: self.outcome,
            detail: &self.detail,
        };
        // Serializing plain data to JSON cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        super::sha256_hex(&[self.prev_hash.as_bytes(), &bytes])
    }

    /// The JSON shape of the API and `legate audit tail`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "ts": crate::util::rfc3339_millis(self.ts),
            "actor": self.actor,
            "chain": self.chain,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        })
    }
}
