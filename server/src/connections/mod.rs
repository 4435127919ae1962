//! Connected accounts (issue 25 §1-2): the OAuth 2.0 / OIDC *client* side. A human (an admin
//! or an owner of the agent) starts a grant; legate completes it at its callback, keeps the
//! tokens sealed as the agent's vault credential of kind `oauth`, and hands the agent
//! short-lived access tokens only, refreshing them itself. Every use is audited under a chain
//! that names the granting human. Revoking a connection (or its agent) revokes the tokens at
//! the provider (RFC 7009) where it offers that, then destroys them.
//!
//! Not to be confused with `oauth/` + `identity::oauth`: legate's own authorization *server*
//! for MCP clients.

mod error;
mod grant;
pub mod model;
mod provider;
mod revoke;
mod tokens;

pub use error::ConnectionsError;
pub use grant::Callback;
pub use model::{Connection, NewConnection, Status};
pub use tokens::AccessToken;

use crate::audit::Audit;
use crate::config::ConnectionsConfig;
use crate::identity::{Agent, IdentityService, LifecycleHook};
use crate::store::{keys, Store, Tree};
use crate::vault::VaultService;
use provider::{Provider, ProviderLimits};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Sends the granting human a notice (a connection needs consent again). Implemented by the
/// queue, registered at start-up, so this module needs no import of it.
pub trait Notifier: Send + Sync {
    fn notify<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        text: &'a str,
        agent_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

pub struct ConnectionsService {
    store: Store,
    audit: Arc<Audit>,
    identity: Arc<IdentityService>,
    vault: Arc<VaultService>,
    settings: ConnectionsConfig,
    provider: Provider,
    /// One lock per connection: a token request that refreshes holds it until the rotated
    /// refresh token is stored, so two concurrent requests never both spend the old one
    /// (the second would lose the grant to the provider's replay detection).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    notifier: OnceLock<Arc<dyn Notifier>>,
}

/// This node's turn to refresh a connection; given up when dropped, whatever way the
/// request ends.
struct RefreshTurn {
    store: Store,
    key: Vec<u8>,
}

impl Drop for RefreshTurn {
    fn drop(&mut self) {
        if let Err(e) = self.store.give_lease(&self.key) {
            tracing::warn!(error = %e, "cannot give up a connection's refresh turn; it expires");
        }
    }
}

impl ConnectionsService {
    pub fn new(
        store: Store,
        audit: Arc<Audit>,
        identity: Arc<IdentityService>,
        vault: Arc<VaultService>,
        settings: ConnectionsConfig,
    ) -> Result<Self, String> {
        let provider = Provider::new(ProviderLimits {
            timeout: Duration::from_secs(settings.timeout_secs),
            max_bytes: settings.max_response_bytes,
            danger_allow_private: settings.danger_allow_private,
        })?;
        if settings.danger_allow_private {
            tracing::warn!("connections.danger_allow_private: OAuth providers may be on private addresses and plain http");
        }
        Ok(Self {
            store,
            audit,
            identity,
            vault,
            settings,
            provider,
            locks: Mutex::default(),
            notifier: OnceLock::new(),
        })
    }

    pub fn set_notifier(&self, n: Arc<dyn Notifier>) {
        let _ = self.notifier.set(n);
    }

    fn lock_for(&self, cid: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() > 10_000 {
            // Only idle locks go: one held elsewhere has another strong reference.
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(cid.to_string()).or_default().clone()
    }

    /// Waits for this node's turn to refresh connection `cid` (a store lease, so nodes
    /// sharing a database take turns: two refreshes presenting the same refresh token lose
    /// the grant to the provider's replay detection). A node that dies holding the turn
    /// loses it when the lease expires, one provider timeout (and a margin) after it began.
    async fn refresh_turn(&self, cid: &str) -> Result<RefreshTurn, ConnectionsError> {
        let key = keys::join(&["connection_refresh", cid]);
        let ttl = Duration::from_secs(self.settings.timeout_secs.saturating_add(10));
        let deadline = tokio::time::Instant::now() + ttl + Duration::from_secs(1);
        loop {
            if self.store.take_lease(&key, ttl)? {
                return Ok(RefreshTurn {
                    store: self.store.clone(),
                    key,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConnectionsError::Provider(
                    "another node is refreshing this connection; try again".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn conn_key(agent_id: &str, cid: &str) -> Vec<u8> {
        keys::join(&[agent_id, cid])
    }

    /// Every connection of an agent (any status).
    fn connections_of(&self, agent_id: &str) -> Result<Vec<Connection>, ConnectionsError> {
        self.store
            .scan_prefix(Tree::Connections, &keys::prefix(&[agent_id]))
            .map(|r| Ok(crate::store::decode::<Connection>(&r?.1)?))
            .collect()
    }

    fn put(&self, c: &Connection) -> Result<(), ConnectionsError> {
        self.store
            .put_record(Tree::Connections, &Self::conn_key(&c.agent_id, &c.id), c)?;
        Ok(())
    }

    fn get(&self, agent_id: &str, cid: &str) -> Result<Connection, ConnectionsError> {
        self.store
            .get_record(Tree::Connections, &Self::conn_key(agent_id, cid))?
            .ok_or(ConnectionsError::NotFound("connection"))
    }
}

/// Revokes an agent's connections at their providers before the vault hook shreds the
/// tokens (it is registered first).
/// Holds the service weakly: the service holds identity, which holds its hooks, and a strong
/// reference here closed that cycle (the store then stayed open after shutdown).
pub struct ConnectionsHook(pub std::sync::Weak<ConnectionsService>);

impl LifecycleHook for ConnectionsHook {
    fn agent_created(&self, _agent: &Agent) -> Result<(), String> {
        Ok(())
    }

    fn agent_revoked(&self, agent: &Agent) -> Result<(), String> {
        let Some(svc) = self.0.upgrade() else {
            return Err("the server is shutting down".into());
        };
        let agent = agent.clone();
        // The hook is synchronous; on the server's multi-threaded runtime the calls to the
        // providers are made here, before the shred. Elsewhere (a current-thread runtime in
        // tests, the command line) they run in a task with the tokens already read.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(svc.revoke_all(&agent)))
            }
            Ok(h) => {
                let pending = svc.take_all_now(&agent)?;
                h.spawn(async move { svc.revoke_taken(&agent, pending).await });
                Ok(())
            }
            Err(_) => {
                let pending = svc.take_all_now(&agent)?;
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(svc.revoke_taken(&agent, pending));
                Ok(())
            }
        }
    }
}
