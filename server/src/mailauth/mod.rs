//! Mail authentication: SPF, DKIM, ARC and DMARC on inbound mail, DKIM signing on outbound
//! (DESIGN §5). A thin layer over mail-auth 0.13.3 that owns the resolver, turns mail-auth's
//! borrowed outputs into an owned `AuthVerdict`, and renders `Authentication-Results`.
//!
//! DNS comes from one of two places: a hickory resolver (`MailAuth::new`), or a `StaticDns`
//! table answered through mail-auth's public `ResolverCache` hooks
//! (`MailAuth::with_static_records`, for tests). The test-only crate `legate-testdns` serves
//! the same table over loopback UDP/TCP so tests can exercise the real resolver path.

mod header;
mod keys;
pub mod org_domain;
mod sign;
mod spf;
pub mod spki;
mod statics;
mod verdict;
mod verify;

#[cfg(test)]
mod tests_loopback;
#[cfg(test)]
mod testutil;

pub use org_domain::{org_domain, relaxed_aligned};
pub use sign::{dkim_sign, DkimSigning, SIGNED_HEADERS};
pub use statics::{fqdn, Records, Srv, StaticDns};
pub use verdict::{
    ArcResult, AuthStatus, AuthVerdict, DkimResult, DmarcPolicy, DmarcResult, PolicyAction,
    SpfResult, SpfScope,
};
pub use verify::MAX_DKIM_SIGNATURES;

/// The key types the vault builds from sealed DER and hands to `DkimSigning`.
pub use keys::{DkimPrivateKey, RsaSha256Key};
pub use mail_auth::common::crypto::Ed25519Key;

use mail_auth::hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::MessageAuthenticator;
use statics::DnsOverride;
use std::net::SocketAddr;
use std::time::Duration;

/// How the resolver finds DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Empty: the system configuration (`/etc/resolv.conf`). Otherwise only these servers,
    /// over UDP with TCP fallback (tests point this at a `legate_testdns::TestDns`).
    pub nameservers: Vec<SocketAddr>,
    /// Per-query timeout.
    pub timeout: Duration,
}

impl ResolverConfig {
    /// hickory's configuration for this: the system's, or only the listed servers with no
    /// hosts-file answers behind their back. Every resolver we build (verification,
    /// outbound MX lookups, `legate dns check`) starts here, so they all see the same DNS.
    pub fn hickory(&self) -> Result<(HickoryConfig, ResolverOpts), String> {
        let (config, mut opts) = if self.nameservers.is_empty() {
            read_system_conf().map_err(|e| e.to_string())?
        } else {
            let servers = self
                .nameservers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for conn in &mut server.connections {
                        conn.port = addr.port();
                    }
                    server
                })
                .collect();
            let mut opts = ResolverOpts::default();
            opts.use_hosts_file = ResolveHosts::Never;
            (HickoryConfig::from_name_servers(servers), opts)
        };
        opts.timeout = self.timeout;
        Ok((config, opts))
    }
}

#[cfg(test)]
impl ResolverConfig {
    /// Only the loopback test DNS server at `addr` (`legate_testdns::TestDns::addr`). Unit
    /// tests build it here: that crate links its own copy of `legate`, whose `ResolverConfig`
    /// is another type than this one.
    pub(crate) fn test_server(addr: SocketAddr) -> Self {
        Self {
            nameservers: vec![addr],
            timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailAuthError {
    #[error("resolver setup failed: {0}")]
    Resolver(String),
    #[error("no DKIM signer was given")]
    NoSigners,
    #[error("DKIM signing failed: {0}")]
    Sign(String),
    #[error("test DNS server: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared by all sessions; cloning is cheap (the resolver is reference counted).
#[derive(Clone)]
pub struct MailAuth {
    authenticator: MessageAuthenticator,
    /// `Some` table in test mode; `None` lets every lookup through to the resolver.
    dns: DnsOverride,
}

impl std::fmt::Debug for MailAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailAuth")
            .field("static_records", &self.dns.0.is_some())
            .finish_non_exhaustive()
    }
}

impl MailAuth {
    pub fn new(cfg: &ResolverConfig) -> Result<Self, MailAuthError> {
        let (config, opts) = cfg.hickory().map_err(MailAuthError::Resolver)?;
        let authenticator = MessageAuthenticator::new(config, opts)
            .map_err(|e| MailAuthError::Resolver(e.to_string()))?;
        Ok(Self {
            authenticator,
            dns: DnsOverride(None),
        })
    }

    /// Answers every lookup from `records` and never touches the network. The resolver
    /// underneath has no nameservers, so a lookup the table does not cover fails instead of
    /// leaking out. See `statics::DnsOverride` for the one known gap (SPF `exists:`).
    pub fn with_static_records(records: StaticDns) -> Result<Self, MailAuthError> {
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.timeout = Duration::from_millis(100);
        let authenticator =
            MessageAuthenticator::new(HickoryConfig::from_name_servers(Vec::new()), opts)
                .map_err(|e| MailAuthError::Resolver(e.to_string()))?;
        Ok(Self {
            authenticator,
            dns: DnsOverride(Some(records)),
        })
    }
}
