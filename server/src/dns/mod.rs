//! The DNS wizard (DESIGN §10): what to publish for a mail domain, and whether it is published.
//!
//! `plan` renders `dns-templates/` from the config and the domain's DKIM keys (MX, host
//! addresses, SPF, every published DKIM selector, DMARC, MTA-STS, TLS-RPT, RFC 6186 SRV,
//! autoconfig names); `render` prints it as a zone fragment, JSON or a checklist; `resolve`
//! looks every record up live and `compare` says ok / missing / wrong with the line to publish.
//! `client` renders the documents mail clients and MTA-STS senders fetch over HTTPS.
//!
//! [`DnsWizard`] is the one door for the CLI and the API: it checks the actor is an admin.

pub mod client;
pub mod compare;
pub mod plan;
pub mod render;
pub mod resolve;
pub mod template;

pub use compare::{RecordCheck, Status};
pub use plan::{DkimPublic, Note, Plan, PlannedRecord, RecordType};
pub use render::Format;
pub use resolve::{report_text, CheckReport};

use crate::audit::Audit;
use crate::config::Config;
use crate::identity::{Actor, Denied};
use crate::store::Store;
use crate::vault::{VaultError, VaultService};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("cannot read the DKIM keys: {0}")]
    Vault(#[from] VaultError),
    /// A template in `dns-templates/` does not render; a build-time mistake.
    #[error("DNS template: {0}")]
    Template(String),
    #[error("DNS resolver: {0}")]
    Resolver(String),
}

impl From<template::TemplateError> for DnsError {
    fn from(e: template::TemplateError) -> Self {
        DnsError::Template(e.to_string())
    }
}

/// The wizard over one server's config and keys. Cheap to build per request.
pub struct DnsWizard<'a> {
    config: &'a Config,
    vault: &'a VaultService,
    audit: &'a Audit,
}

impl<'a> DnsWizard<'a> {
    pub fn new(config: &'a Config, vault: &'a VaultService, audit: &'a Audit) -> Self {
        Self {
            config,
            vault,
            audit,
        }
    }

    /// The records to publish. Admin only: the plan is public data once published, but before
    /// that it tells which selectors and keys are about to go live.
    pub fn plan(&self, actor: &Actor) -> Result<Plan, DnsError> {
        actor.require_admin(self.audit, "dns.plan", &self.config.server.domain)?;
        self.plan_unchecked()
    }

    fn plan_unchecked(&self) -> Result<Plan, DnsError> {
        let keys: Vec<DkimPublic> = self
            .vault
            .dkim_records(&self.config.server.domain)?
            .iter()
            .map(DkimPublic::from)
            .collect();
        let tlsa = crate::tls::served_spki_sha256(self.config);
        plan::build(self.config, &keys, tlsa.as_deref())
    }

    /// Looks every planned record up through `nameservers` (empty: `[dns] nameservers`, and
    /// when that is empty too, the system resolver).
    pub async fn check(
        &self,
        actor: &Actor,
        nameservers: &[SocketAddr],
    ) -> Result<CheckReport, DnsError> {
        actor.require_admin(self.audit, "dns.check", &self.config.server.domain)?;
        let plan = self.plan_unchecked()?;
        let configured;
        let servers = if nameservers.is_empty() {
            configured = configured_nameservers(self.config)?;
            &configured
        } else {
            nameservers
        };
        resolve::check(&plan, servers, timeout(self.config)).await
    }

    /// The MTA-STS policy file; public by design (RFC 8461 §3.3).
    pub fn mta_sts_policy(&self) -> Result<String, DnsError> {
        plan::mta_sts_policy(self.config)
    }
}

/// The plan from the config and the DKIM keys stored in `store`, for `legate dns plan` on a
/// stopped server: the data directory stands for the admin (whoever can read it can read the
/// keys), so no actor is checked, and nothing is written. `None` when the store holds no DKIM
/// key for `server.domain` (a data directory made for another domain, or not by `init`).
pub fn plan_from_store(config: &Config, store: &Store) -> Result<Option<Plan>, DnsError> {
    let keys: Vec<DkimPublic> = crate::vault::published_dkim(store, &config.server.domain)?
        .iter()
        .map(DkimPublic::from)
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let tlsa = crate::tls::served_spki_sha256(config);
    plan::build(config, &keys, tlsa.as_deref()).map(Some)
}

/// `[dns] nameservers` as addresses (validated at config load, so a failure here is a bug
/// report rather than an operator mistake, but still not a panic).
pub fn configured_nameservers(config: &Config) -> Result<Vec<SocketAddr>, DnsError> {
    config
        .dns
        .nameservers
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|_| DnsError::Resolver(format!("dns.nameservers: {s} is not ip:port")))
        })
        .collect()
}

/// `[dns] timeout_secs`.
pub fn timeout(config: &Config) -> Duration {
    Duration::from_secs(config.dns.timeout_secs.max(1))
}
