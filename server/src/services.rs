//! The services every front-end (api, mcp, smtp, imap, the admin socket) works through, built
//! in dependency order from the configuration. Apart from `app`, which wires and starts
//! them: the front-ends import this module and it imports none of them, so no front-end
//! depends on the wiring that depends on it.

use crate::audit::Audit;
use crate::config::Config;
use crate::identity::{Bootstrap, IdentityService};
use crate::mailbox::MailboxService;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::vault::{VaultHook, VaultService};
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Every service, wired once and shared by all front-ends.
pub struct Services {
    pub config: Config,
    pub store: Store,
    pub audit: Arc<Audit>,
    pub identity: Arc<IdentityService>,
    pub vault: Arc<VaultService>,
    pub mailbox: Arc<MailboxService>,
    pub queue: Arc<crate::queue::QueueService>,
    /// Send policies (`[send_policy]` and per agent), enforced by the queue.
    pub policy: Arc<crate::policy::PolicyService>,
    /// Webhook registrations and their dispatcher (`events`).
    pub webhooks: Arc<crate::events::WebhookService>,
    /// The live event stream (SSE, WebSocket) over the outbox.
    pub streams: Arc<crate::events::EventStreams>,
    /// DMARC aggregate and TLS-RPT reports, received and sent.
    pub reports: Arc<crate::reports::ReportsService>,
    pub metrics: Arc<Metrics>,
    /// The disk reserve (`storage.min_free_mb`) of the data directory: the mailbox and
    /// queue refuse new mail below it; `/readyz` and `/metrics` report it.
    pub storage: Arc<crate::store::SpaceGuard>,
    /// Agent reputation scores and the operator-signed attestation (issue 24 §6).
    pub reputation: Arc<crate::reputation::ReputationService>,
    /// Connected OAuth accounts of agents (issue 25).
    pub connections: Arc<crate::connections::ConnectionsService>,
}

impl Services {
    /// Opens the data directory and builds the services. `did_host` is the did:web host part
    /// (see [`did_host`]).
    pub fn open(config: Config, did_host: String) -> anyhow::Result<Services> {
        let opts = config.storage.store_options(true);
        let store = Store::open_with(&config.storage.path, &opts).with_context(|| {
            format!("cannot open the store in {}", config.storage.path.display())
        })?;
        let audit = Arc::new(Audit::open(store.clone())?);
        audit.denials().configure(crate::audit::DenialSettings {
            max_failures_per_minute: config.limits.auth_failures_per_minute,
            audit_interval: Duration::from_secs(config.limits.auth_denied_audit_interval_secs),
            max_sources: config.limits.auth_tracked_sources,
        });
        let identity = Arc::new(IdentityService::new(store.clone(), audit.clone(), did_host));
        let metrics = Arc::new(Metrics::new());
        audit.denials().count_into(crate::audit::DenialCounters {
            failures: metrics.auth_failures.clone(),
            throttled: metrics.auth_throttled.clone(),
        });
        let (vault, source) = VaultService::open(
            store.clone(),
            audit.clone(),
            metrics.clone(),
            &config.vault.master_key_file,
            &config.storage.path,
        )?;
        if let crate::vault::RootKeySource::DevFile(p) = &source {
            tracing::warn!(path = %p, "using a development master key from the data directory; set vault.master_key_file for production");
        }
        let vault = Arc::new(vault);
        // From here on the writer signs head checkpoints (before anything else is appended,
        // so a truncation found on disk is not overwritten first).
        audit.set_anchor(&config.storage.path, vault.audit_head_signer());
        // Outbound signing and the DNS plan both need the keys; making them here means a
        // fresh server is ready to sign and to print its records.
        vault
            .ensure_dkim(&config.server.domain, &config.dkim.selector_prefix)
            .context("cannot create the DKIM keys")?;
        let connections = Arc::new(
            crate::connections::ConnectionsService::new(
                store.clone(),
                audit.clone(),
                identity.clone(),
                vault.clone(),
                config.connections.clone(),
            )
            .map_err(|e| anyhow::anyhow!("connections: {e}"))?,
        );
        // Before the vault's hook: an agent's connections are revoked at their providers
        // while their tokens still exist, then the vault shreds them.
        identity.add_hook(Arc::new(crate::connections::ConnectionsHook(
            Arc::downgrade(&connections),
        )));
        identity.add_hook(Arc::new(VaultHook(vault.clone())));
        identity.set_custody(vault.clone());
        identity.configure((&config.identity).into());
        identity.configure_owners(config.owners.clone());
        identity.set_public_origin(&config.server.public_url);
        let mailbox = Arc::new(MailboxService::new(
            store.clone(),
            audit.clone(),
            config.smtp.mailbox_quota_bytes,
        ));
        mailbox.set_max_waits_per_agent(config.api.max_waits_per_agent);
        mailbox.set_sender_policy((&config.senders).into());
        // Mail stored before the search index existed is indexed before anything serves a
        // search (a no-op once done; resumes where an interrupted run stopped).
        mailbox
            .build_search_index()
            .context("cannot build the search index")?;
        mailbox
            .build_thread_index()
            .context("cannot build the thread index")?;
        let reports = Arc::new(crate::reports::ReportsService::new(
            store.clone(),
            audit.clone(),
            metrics.clone(),
            crate::reports::ReportsSettings::from_config(&config),
        ));
        let policy = Arc::new(
            crate::policy::PolicyService::new(
                store.clone(),
                audit.clone(),
                identity.clone(),
                &config.send_policy,
                &config.server.domain,
            )
            .with_breaker(&config.breaker),
        );
        let queue = Arc::new(crate::queue::QueueService::new(
            store.clone(),
            audit.clone(),
            mailbox.clone(),
            identity.clone(),
            vault.clone(),
            metrics.clone(),
            crate::queue::QueueSettings::from_config(&config),
            outbound_transport(&config, &store, &metrics, reports.clone())?,
            policy.clone(),
        ));
        let interrupted = queue.recover_drafts().context("cannot recover drafts")?;
        if interrupted > 0 {
            tracing::warn!(
                drafts = interrupted,
                "drafts were being sent when the server stopped; handed back with a note"
            );
        }
        let dispatcher = Arc::new(
            crate::events::Dispatcher::new(
                store.clone(),
                audit.clone(),
                vault.clone(),
                identity.clone(),
                mailbox.clone(),
                config.webhooks.clone(),
                std::time::Duration::from_millis(config.events.gather_ms),
            )
            .map_err(|e| anyhow::anyhow!("webhooks: {e}"))?,
        );
        let streams = Arc::new(crate::events::EventStreams::new(
            store.clone(),
            audit.clone(),
            identity.clone(),
            dispatcher.clone(),
            config.events.max_streams_per_caller,
        ));
        let webhooks = Arc::new(crate::events::WebhookService::new(
            store.clone(),
            audit.clone(),
            vault.clone(),
            identity.clone(),
            config.webhooks.clone(),
            dispatcher,
        ));
        connections.set_notifier(Arc::new(crate::queue::QueueNotifier(Arc::downgrade(
            &queue,
        ))));
        identity.set_mailer(Arc::new(crate::queue::QueueNotifier(Arc::downgrade(
            &queue,
        ))));
        let storage = store.space().clone();
        let reputation = Arc::new(crate::reputation::ReputationService::new(
            store.clone(),
            audit.clone(),
            identity.clone(),
            config.identity.reputation_jwt_per_minute,
        ));
        let counted = reputation
            .backfill()
            .context("cannot build the reputation tally")?;
        if counted > 0 {
            tracing::info!(
                messages = counted,
                "counted earlier sends into the per-agent reputation tally"
            );
        }
        Ok(Services {
            connections,
            reputation,
            webhooks,
            streams,
            reports,
            config,
            storage,
            store,
            audit,
            identity,
            vault,
            mailbox,
            queue,
            policy,
            metrics,
        })
    }

    /// First start on an empty store: the admin human, the org of `server.domain`, a token.
    pub fn bootstrap(&self, token: Option<&str>) -> anyhow::Result<Option<Bootstrap>> {
        let domain = &self.config.server.domain;
        Ok(self
            .identity
            .bootstrap(&format!("admin@{domain}"), domain, domain, token)?)
    }
}

/// The SMTP client the queue delivers remote mail through.
/// MTA-STS policies kept in the store, so the outbound cache survives restarts.
struct StsPolicies(crate::store::Store);

impl crate::smtp::outbound::PolicyStore for StsPolicies {
    fn load(&self, domain: &str) -> Option<crate::smtp::outbound::StoredPolicy> {
        let tree = crate::store::Tree::MtaStsPolicies;
        match self.0.get_record(tree, domain.as_bytes()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(domain, error = %e, "cannot read a stored MTA-STS policy");
                None
            }
        }
    }

    fn save(&self, domain: &str, policy: &crate::smtp::outbound::StoredPolicy) {
        let tree = crate::store::Tree::MtaStsPolicies;
        if let Err(e) = self.0.put_record(tree, domain.as_bytes(), policy) {
            tracing::warn!(domain, error = %e, "cannot store an MTA-STS policy");
        }
    }
}

fn outbound_transport(
    config: &Config,
    store: &crate::store::Store,
    metrics: &Metrics,
    reports: Arc<crate::reports::ReportsService>,
) -> anyhow::Result<Arc<dyn crate::queue::Transport>> {
    use crate::config::TrustRootsName;
    use crate::smtp::outbound::{Observer, OutboundSettings, SmtpTransport, TrustRoots};
    let mut o = OutboundSettings::new(
        config.server.hostname.clone(),
        config.outbound.route.clone(),
        resolver_config(config)?,
    );
    o.mx_port = config.outbound.mx_port;
    o.max_message_size = config.smtp.max_message_size;
    o.connection_reuse = Duration::from_secs(config.outbound.connection_reuse_secs);
    o.danger_allow_private_destinations = config.outbound.danger_allow_private_destinations;
    o.trust_roots = match config.outbound.trust_roots {
        TrustRootsName::Webpki => TrustRoots::Webpki,
        TrustRootsName::System => TrustRoots::System,
    };
    let extra = &config.outbound.danger_extra_roots_file;
    if !extra.is_empty() {
        tracing::warn!(path = %extra, "outbound.danger_extra_roots_file: extra trust roots for outbound TLS");
        o.extra_roots = crate::tls::read_certs(std::path::Path::new(extra))
            .with_context(|| format!("outbound.danger_extra_roots_file {extra}"))?;
    }
    let counters = crate::smtp::outbound::TlsCounters {
        sessions: metrics.outbound_tls.clone(),
        failures: metrics.outbound_tls_failures.clone(),
        sts_cache: metrics.mta_sts_cache.clone(),
    };
    o.mta_sts = config
        .outbound
        .mta_sts
        .then(|| crate::smtp::outbound::StsSettings {
            port: config.outbound.mta_sts_port,
            timeout: Duration::from_secs(config.outbound.mta_sts_timeout_secs),
            max_bytes: config.outbound.mta_sts_max_bytes,
            max_entries: config.outbound.mta_sts_cache_entries,
            allow_private: config.outbound.danger_allow_private_destinations,
            persist: crate::smtp::outbound::Persist(Some(Arc::new(StsPolicies(store.clone())))),
        });
    let anchor = &config.dns.trust_anchor_file;
    o.dane = config
        .dns
        .dnssec
        .then(|| (!anchor.is_empty()).then(|| std::path::PathBuf::from(anchor)));
    o.observer = Observer::new(
        Some(counters),
        Some(Arc::new(TlsRpt(Arc::downgrade(&reports)))),
    );
    let cap = Duration::from_secs(config.outbound.timeout_secs);
    o.connect_timeout = o.connect_timeout.min(cap);
    let t = &mut o.timeouts;
    for d in [
        &mut t.greeting,
        &mut t.mail,
        &mut t.rcpt,
        &mut t.data_init,
        &mut t.data_block,
        &mut t.data_end,
    ] {
        *d = (*d).min(cap);
    }
    Ok(Arc::new(
        SmtpTransport::new(o).context("cannot set up the SMTP client")?,
    ))
}

/// The did:web host: from `server.public_url` when set, else the domain, with the HTTP port
/// appended (encoded `%3A`, as did:web requires) unless it is 443.
pub fn did_host(config: &Config, http_port: Option<u16>) -> String {
    if let Ok(u) = url::Url::parse(&config.server.public_url) {
        if let Some(h) = u.host_str() {
            return match u.port() {
                Some(p) => format!("{h}%3A{p}"),
                None => h.to_string(),
            };
        }
    }
    match http_port {
        Some(443) | None => config.server.domain.clone(),
        Some(p) => format!("{}%3A{p}", config.server.domain),
    }
}

/// The resolver settings of `[dns]`.
pub fn resolver_config(config: &Config) -> anyhow::Result<crate::mailauth::ResolverConfig> {
    let nameservers = config
        .dns
        .nameservers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<SocketAddr>, _>>()
        .context("dns.nameservers")?;
    Ok(crate::mailauth::ResolverConfig {
        nameservers,
        timeout: Duration::from_secs(config.dns.timeout_secs),
    })
}

/// Outbound TLS outcomes into the TLS-RPT recorder: the wiring knows both sides, so neither
/// the SMTP client nor the reports service imports the other. Weak: the reports service
/// sends through the queue, which owns this transport; a strong handle would be a cycle
/// that keeps the store (and its lock) alive after shutdown.
struct TlsRpt(std::sync::Weak<crate::reports::ReportsService>);

impl crate::smtp::outbound::TlsReport for TlsRpt {
    fn record(&self, o: &crate::smtp::outbound::TlsOutcome<'_>) {
        use crate::reports::{TlsFailure, TlsPolicyType as T, TlsResultType as R};
        use crate::smtp::outbound::{FailureKind as K, PolicySource as P};
        let policy = match o.policy {
            P::Sts => T::Sts,
            P::Tlsa => T::Tlsa,
            P::None => T::NoPolicyFound,
            // Our own route settings are no policy the recipient domain published.
            P::Route => return,
        };
        let result = match o.result {
            Ok(_) => Ok(()),
            Err(f) => Err(TlsFailure {
                result_type: match f.kind {
                    K::StarttlsNotSupported => R::StarttlsNotSupported,
                    K::CertificateHostMismatch => R::CertificateHostMismatch,
                    K::CertificateExpired => R::CertificateExpired,
                    K::CertificateNotTrusted => R::CertificateNotTrusted,
                    K::ValidationFailure => R::ValidationFailure,
                    K::TlsaInvalid => R::TlsaInvalid,
                    K::DnssecInvalid => R::DnssecInvalid,
                    K::StsPolicyFetchError => R::StsPolicyFetchError,
                    K::StsPolicyInvalid => R::StsPolicyInvalid,
                },
                receiving_ip: o
                    .mx
                    .rsplit_once('[')
                    .and_then(|(_, ip)| ip.trim_end_matches(']').parse().ok()),
            }),
        };
        let host = o.mx.split_once(" [").map_or(o.mx, |(h, _)| h);
        if let Some(reports) = self.0.upgrade() {
            reports.record_tls_outcome(o.domain, policy, host, result);
        }
    }
}
