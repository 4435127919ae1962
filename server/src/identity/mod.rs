//! Humans, orgs, agents, API keys, scopes and delegation (DESIGN §2); did:web documents,
//! identity tokens and signatures (DESIGN §8).
//!
//! [`IdentityService`] is the one door for every principal operation: each method takes the
//! acting [`Actor`], checks it, does the work in one store transaction, audits, and commits
//! durably before returning.

mod actor;
pub mod address;
mod admin_tokens;
mod agents;
pub mod apikey;
mod auth;
pub mod card;
mod custody;
pub mod did;
pub mod envelope;
mod error;
pub mod fetch;
pub mod httpsig;
mod keys;
mod login;
pub mod mailsig;
pub mod multibase;
mod operator;
pub mod owners;
mod publish;
mod resolve;
mod roles;
pub mod sfv;
mod signing;
mod token;
mod verdict;
mod webbot;
mod webbot_verify;
pub use agents::CreatedAgent;
pub use keys::NewKey;
pub use orgs::Bootstrap;
mod console_ops;
mod human_keys;
pub mod invites;
mod model;
pub mod oauth;
mod orgs;
pub mod passwords;
mod requests;
pub mod scope;
mod sessions;
pub use sessions::{session_label, ConsoleSession, SessionLimits, SessionStage};

pub use actor::{Actor, Principal};
pub use admin_tokens::NewAdminToken;
pub use agents::{AgentPatch, NewAgent};
pub use error::{AuthFailure, Denied, IdentityError};
pub use model::{Agent, AgentStatus, ApiKey, Human, KeyOwner, Org};
pub use scope::{Scope, ScopeSet};

pub use custody::{IdentityKey, KeyCustody};
pub use login::{sasl_plain, RcptDecision};
pub use requests::{b64_field, AuditParams, VerifyRequest};
pub use resolve::IdentityOptions;
pub use signing::{
    decode_b64, PublicDoc, Signed, DEFAULT_ROTATION_OVERLAP_SECS, MAX_ROTATION_OVERLAP_SECS,
};
pub use token::{act_claim, IssuedToken, DEFAULT_TTL_SECS};
pub use verdict::{Reason, Verdict};
pub use webbot::{Directory, HttpSignatureRequest, HttpVerifyRequest, DIRECTORY_CONTENT_TYPE};

use crate::audit::Audit;
use crate::store::{self, Store};
use std::sync::{Arc, OnceLock, RwLock};

/// Something other services must do when an agent is born or revoked (make its identity key;
/// crypto-shred its vault). Registered at start-up, so identity needs no upward imports.
pub trait LifecycleHook: Send + Sync {
    fn agent_created(&self, agent: &Agent) -> Result<(), String>;
    fn agent_revoked(&self, agent: &Agent) -> Result<(), String>;
}

/// Mails a human (an owner invite): implemented by the queue (the postmaster's notice),
/// registered at start-up, so identity needs no upward import.
pub trait HumanMailer: Send + Sync {
    fn mail_human<'a>(
        &'a self,
        to: &'a str,
        subject: &'a str,
        text: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

pub struct IdentityService {
    store: Store,
    audit: Arc<Audit>,
    /// `did:web` host part, port already encoded as `%3A`.
    did_host: String,
    hooks: RwLock<Vec<Arc<dyn LifecycleHook>>>,
    /// Recently authenticated keys, valid only while `epoch` is unchanged.
    auth_cache: auth::AuthCache,
    /// The org key directory as last built, with the epoch it was built at.
    org_directory: webbot::DirectoryCache,
    /// Holder of agents' private identity keys (the vault), registered at start-up.
    custody: RwLock<Option<Arc<dyn KeyCustody>>>,
    options: RwLock<IdentityOptions>,
    /// The remote did:web client, built on first use from `options`.
    fetcher: OnceLock<Result<fetch::DidFetcher, String>>,
    /// The bootstrap org's domain, whose agents have the short DIDs.
    default_domain: OnceLock<String>,
    /// `server.public_url`'s origin, for URLs we hand out (key directories, agent cards).
    public_origin: OnceLock<String>,
    /// Owner key and invite lifetimes (`[owners]`).
    owners: RwLock<crate::config::OwnersConfig>,
    /// Sends owner invites, registered at start-up.
    mailer: OnceLock<Arc<dyn HumanMailer>>,
}

impl IdentityService {
    pub fn new(store: Store, audit: Arc<Audit>, did_host: String) -> Self {
        Self {
            store,
            audit,
            did_host,
            hooks: RwLock::new(Vec::new()),
            auth_cache: auth::AuthCache::default(),
            org_directory: webbot::DirectoryCache::default(),
            custody: RwLock::new(None),
            options: RwLock::new(IdentityOptions::default()),
            fetcher: OnceLock::new(),
            default_domain: OnceLock::new(),
            public_origin: OnceLock::new(),
            owners: RwLock::new(crate::config::OwnersConfig::default()),
            mailer: OnceLock::new(),
        }
    }

    /// Set once at start-up (`[owners]`).
    pub fn configure_owners(&self, owners: crate::config::OwnersConfig) {
        *self.owners.write().unwrap_or_else(|p| p.into_inner()) = owners;
    }

    fn owners_config(&self) -> crate::config::OwnersConfig {
        self.owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_mailer(&self, m: Arc<dyn HumanMailer>) {
        let _ = self.mailer.set(m);
    }

    /// Set once at start-up, before the first remote resolution.
    pub fn configure(&self, options: IdentityOptions) {
        *self.options.write().unwrap_or_else(|p| p.into_inner()) = options;
    }

    pub fn options(&self) -> IdentityOptions {
        self.options
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_custody(&self, custody: Arc<dyn KeyCustody>) {
        *self.custody.write().unwrap_or_else(|p| p.into_inner()) = Some(custody);
    }

    fn custody(&self) -> Result<Arc<dyn KeyCustody>, IdentityError> {
        self.custody
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| IdentityError::Keys("no key custody is registered".into()))
    }

    pub fn add_hook(&self, hook: Arc<dyn LifecycleHook>) {
        self.hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    /// Called after any change to keys or agents: every cached authentication (and the
    /// cached org key directory) is void, so revocations and scope changes hold on the very
    /// next request.
    pub(crate) fn invalidate_auth(&self) {
        self.auth_cache.invalidate();
    }

    fn hooks(&self) -> Vec<Arc<dyn LifecycleHook>> {
        self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn audit_log(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// `did:web:<host>:agents:<local>` for agents of the server's own domain (the org made at
    /// bootstrap); `did:web:<host>:orgs:<domain>:agents:<local>` for agents of other orgs, so
    /// `ops@a.test` and `ops@b.test` never share a DID (or a DID document).
    pub fn agent_did(&self, agent: &Agent) -> String {
        match self.default_domain() {
            Some(d) if d != agent.domain => format!(
                "did:web:{}:orgs:{}:agents:{}",
                self.did_host, agent.domain, agent.local
            ),
            _ => format!("did:web:{}:agents:{}", self.did_host, agent.local),
        }
    }

    /// The domain of the org made at bootstrap; it never changes once set, so it is read
    /// from the store once.
    pub(crate) fn default_domain(&self) -> Option<String> {
        if let Some(d) = self.default_domain.get() {
            return Some(d.clone());
        }
        let id = self
            .store
            .get(store::Tree::Meta, agents::DEFAULT_ORG)
            .ok()??;
        let org = self.org(&String::from_utf8_lossy(&id)).ok()??;
        Some(self.default_domain.get_or_init(|| org.domain).clone())
    }

    /// The domain's own DID, controller of its agents' documents.
    pub fn domain_did(&self) -> String {
        format!("did:web:{}", self.did_host)
    }

    pub fn did_host(&self) -> &str {
        &self.did_host
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_did;
