//! The SMTP client the queue delivers through (DESIGN §5): route, connect, talk, classify.
//!
//! `route` picks the hosts (static route or MX), `session` holds one conversation with one
//! address (greeting, EHLO, STARTTLS), `transaction` the MAIL/RCPT/DATA part, `client` the
//! timed reads and writes, `reply` the wire parsing (smtp-proto's), `data` the DATA payload,
//! `tls` the TLS client and its certificate check, `policy` what TLS a hop must reach
//! (route, MTA-STS, DANE), `hops` which MX hosts get which policy, `mta_sts` the RFC 8461
//! policies, `secure` the DNSSEC lookups and `dane` the TLSA matching of RFC 7672, and
//! `observe` the one place TLS outcomes are counted (and, later, reported by TLS-RPT).

mod attempt;
mod client;
mod dane;
mod data;
mod hops;
mod mta_sts;
mod observe;
mod policy;
mod pool;
mod reply;
mod route;
mod secure;
mod session;
mod tls;
mod transaction;

pub use dane::spki;
pub use mta_sts::{Persist, PolicyStore, StoredPolicy, StsSettings};
pub use observe::{Observer, TlsCounters, TlsOutcome, TlsReport};
pub use policy::{Failure, FailureKind, PolicySource};
pub use tls::TrustRoots;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod loopback;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_routing;

use crate::config::RouteConfig;
use crate::mailauth::ResolverConfig;
use crate::queue::transport::{
    BoxFuture, DeliveryReport, Envelope, RcptOutcome, TlsLevel, Transport,
};
use attempt::{Attempt, Job};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::hickory_resolver::TokioResolver;
use policy::TlsPolicy;
use route::{Hop, StaticRoute};
use rustls::pki_types::CertificateDer;
use session::Reused;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// RFC 5321 §4.5.3.2 client timeouts. The defaults are the RFC's minimums; a server that is
/// slow but within them must not be cut off (end of data especially: it may be scanning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpTimeouts {
    /// The 220 greeting.
    pub greeting: Duration,
    /// MAIL (and EHLO, STARTTLS).
    pub mail: Duration,
    pub rcpt: Duration,
    /// The 354 after DATA.
    pub data_init: Duration,
    /// Each block of the body written.
    pub data_block: Duration,
    /// The reply after the final `.`.
    pub data_end: Duration,
}

impl Default for SmtpTimeouts {
    fn default() -> Self {
        Self {
            greeting: Duration::from_secs(5 * 60),
            mail: Duration::from_secs(5 * 60),
            rcpt: Duration::from_secs(5 * 60),
            data_init: Duration::from_secs(2 * 60),
            data_block: Duration::from_secs(3 * 60),
            data_end: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    /// Our EHLO name.
    pub hostname: String,
    /// `[[outbound.route]]`: these domains skip MX and go to a fixed next hop.
    pub routes: Vec<RouteConfig>,
    /// For MX and address lookups (`[dns]`; tests point it at a `TestDns`).
    pub resolver: ResolverConfig,
    /// The port MX hosts are reached on: 25, except in tests (port 25 needs root).
    pub mx_port: u16,
    /// postfix's `smtp_connect_timeout` default.
    pub connect_timeout: Duration,
    pub timeouts: SmtpTimeouts,
    /// Larger messages fail permanently without a connection (the queue should not have
    /// accepted them; this is the last guard).
    pub max_message_size: usize,
    /// How long a session that delivered a message waits for the next one to the same
    /// address (postfix's `smtp_connection_cache_time_limit`); zero closes every session.
    pub connection_reuse: Duration,
    /// `outbound.danger_allow_private_destinations`: MX/A answers may be internal addresses.
    pub danger_allow_private_destinations: bool,
    /// `outbound.trust_roots`: where verified delivery's roots come from.
    pub trust_roots: TrustRoots,
    /// `outbound.danger_extra_roots_file`, read: more trust roots (a test CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Where TLS outcomes are counted (the metrics, a TLS-RPT reporter).
    pub observer: Observer,
    /// MTA-STS for MX deliveries (`outbound.mta_sts`); `None` turns it off.
    pub mta_sts: Option<StsSettings>,
    /// DANE (`dns.dnssec`): `Some(trust anchor file)` turns it on; `Some(None)` uses the
    /// root trust anchors.
    pub dane: Option<Option<std::path::PathBuf>>,
}

impl OutboundSettings {
    /// RFC defaults: port 25, 30 s to connect, the §4.5.3.2 timeouts, 50 MB.
    pub fn new(
        hostname: impl Into<String>,
        routes: Vec<RouteConfig>,
        resolver: ResolverConfig,
    ) -> Self {
        Self {
            hostname: hostname.into(),
            routes,
            resolver,
            mx_port: 25,
            connect_timeout: Duration::from_secs(30),
            timeouts: SmtpTimeouts::default(),
            max_message_size: 50 * 1024 * 1024,
            connection_reuse: Duration::from_secs(2),
            danger_allow_private_destinations: false,
            trust_roots: TrustRoots::default(),
            extra_roots: Vec::new(),
            observer: Observer::default(),
            mta_sts: Some(StsSettings::default()),
            dane: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("outbound route for {domain}: bad next_hop {next_hop:?} (want host:port)")]
    Route { domain: String, next_hop: String },
    #[error("resolver setup failed: {0}")]
    Resolver(String),
    #[error("TLS client setup failed: {0}")]
    Tls(String),
    #[error("bad EHLO hostname {0:?}")]
    Hostname(String),
}

/// Shared by every delivery; per-connection state lives only in the pool of idle sessions.
pub struct SmtpTransport {
    hostname: String,
    routes: Vec<StaticRoute>,
    resolver: TokioResolver,
    tls: tls::TlsClient,
    observer: Observer,
    sts: Option<mta_sts::Sts>,
    /// The DNSSEC-validating resolver DANE lookups go through (`dns.dnssec`).
    dane: Option<TokioResolver>,
    mx_port: u16,
    connect_timeout: Duration,
    timeouts: SmtpTimeouts,
    max_message_size: usize,
    /// See [`OutboundSettings::danger_allow_private_destinations`].
    allow_private: bool,
    pool: Arc<pool::Pool>,
}

impl std::fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("hostname", &self.hostname)
            .field("routes", &self.routes)
            .field("mx_port", &self.mx_port)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    pub fn new(cfg: OutboundSettings) -> Result<Self, OutboundError> {
        let hostname = cfg.hostname.trim().to_string();
        if hostname.is_empty() || hostname.chars().any(|c| c.is_control() || c == ' ') {
            return Err(OutboundError::Hostname(cfg.hostname));
        }
        let routes = cfg
            .routes
            .iter()
            .map(|r| {
                let (host, port) =
                    route::parse_next_hop(&r.next_hop).ok_or_else(|| OutboundError::Route {
                        domain: r.domain.clone(),
                        next_hop: r.next_hop.clone(),
                    })?;
                Ok(StaticRoute {
                    domain: r.domain.trim().trim_end_matches('.').to_ascii_lowercase(),
                    host,
                    port,
                    require_tls: r.require_tls,
                })
            })
            .collect::<Result<Vec<_>, OutboundError>>()?;
        let resolver = build_resolver(&cfg.resolver)?;
        let tls =
            tls::TlsClient::new(cfg.trust_roots, &cfg.extra_roots).map_err(OutboundError::Tls)?;
        let sts = match &cfg.mta_sts {
            Some(settings) => {
                let config = tls.verified_config().map_err(OutboundError::Tls)?;
                Some(
                    mta_sts::Sts::new(resolver.clone(), config, settings.clone())
                        .map_err(OutboundError::Tls)?,
                )
            }
            None => None,
        };
        let dane = match &cfg.dane {
            Some(anchor) => Some(
                secure::resolver(&cfg.resolver, anchor.as_deref())
                    .map_err(OutboundError::Resolver)?,
            ),
            None => None,
        };
        Ok(Self {
            hostname,
            routes,
            resolver,
            tls,
            sts,
            dane,
            observer: cfg.observer.clone(),
            mx_port: cfg.mx_port,
            connect_timeout: cfg.connect_timeout,
            timeouts: cfg.timeouts,
            max_message_size: cfg.max_message_size,
            allow_private: cfg.danger_allow_private_destinations,
            pool: pool::Pool::new(cfg.connection_reuse),
        })
    }

    async fn deliver_all(&self, env: &Envelope, raw: &[u8]) -> DeliveryReport {
        if env.rcpts.is_empty() {
            return DeliveryReport {
                remote_host: None,
                tls: None,
                outcomes: Vec::new(),
            };
        }
        if raw.len() > self.max_message_size {
            let reply = format!(
                "552 5.3.4 message of {} bytes exceeds our {}-byte limit",
                raw.len(),
                self.max_message_size
            );
            return DeliveryReport::all(env, RcptOutcome::Permanent { reply }, None);
        }
        let domain = env.domain.trim_end_matches('.').to_ascii_lowercase();
        // What DNS answers is the remote domain's say; a static route is the operator's.
        let (hops, guarded) = match self.routes.iter().find(|r| r.domain == domain) {
            Some(r) => {
                let hop = Hop {
                    host: r.host.clone(),
                    port: r.port,
                    implicit: false,
                };
                let policy = match r.require_tls {
                    true => TlsPolicy::enforced(PolicySource::Route),
                    false => TlsPolicy::opportunistic(),
                };
                (vec![(hop, policy)], false)
            }
            None => {
                let hops = match route::mx_hops(&self.resolver, &domain, self.mx_port).await {
                    Ok(hops) => hops,
                    Err(outcome) => return DeliveryReport::all(env, outcome, None),
                };
                let planned = hops::plan(
                    &domain,
                    hops,
                    self.dane.as_ref(),
                    self.sts.as_ref(),
                    &self.observer,
                )
                .await;
                match planned {
                    Ok(hops) => (hops, !self.allow_private),
                    Err(reply) => {
                        return DeliveryReport::all(env, RcptOutcome::Temporary { reply }, None)
                    }
                }
            }
        };
        // The first internal address refused, and whether any hop was tried or failed for
        // another reason (then that outcome stands, not the refusal).
        let mut refused: Option<String> = None;
        let mut other = false;

        let body = data::encode(raw);
        let eight_bit = data::has_8bit(raw);
        let mut last = DeliveryReport::all(
            env,
            attempt::temporary(format!("451 4.4.1 no host for {domain} could be tried")),
            None,
        );
        for (hop, policy) in &hops {
            let ips = match route::addresses(&self.resolver, hop).await {
                Ok(ips) => ips,
                Err(outcome @ RcptOutcome::Permanent { .. }) if hops.len() == 1 => {
                    return DeliveryReport::all(env, outcome, None);
                }
                Err(outcome) => {
                    other = true;
                    last = DeliveryReport::all(env, outcome, None);
                    continue;
                }
            };
            let ips: Vec<IpAddr> = if guarded {
                let (public, internal): (Vec<IpAddr>, Vec<IpAddr>) =
                    ips.into_iter().partition(|ip| crate::net::is_public(*ip));
                if let Some(ip) = internal.first() {
                    let why = crate::net::non_public_reason(*ip).unwrap_or("internal");
                    tracing::warn!(host = %hop.host, %ip, why, "refusing an internal MX address");
                    refused.get_or_insert(format!("{} [{ip}] is a {why} address", hop.host));
                }
                public
            } else {
                ips
            };
            if !ips.is_empty() {
                other = true;
            }
            for ip in ips {
                let addr = SocketAddr::new(ip, hop.port);
                let remote = format!("{} [{ip}]", hop.host);
                let key: pool::Key = (addr, hop.host.clone());
                let job = |try_tls: bool| Job {
                    env,
                    raw,
                    body: &body,
                    eight_bit,
                    hostname: &self.hostname,
                    policy,
                    try_tls,
                    tls: &self.tls,
                    server_name: tls::server_name(&hop.host, ip),
                    observer: &self.observer,
                    remote: &remote,
                    timeouts: self.timeouts,
                };
                if let Some(parked) = self.pool.take(&key, policy.min_level()) {
                    match session::reuse(parked, &job(true)).await {
                        Reused::Done(attempt, again) => {
                            self.release(&key, again.map(|p| *p)).await;
                            if let Attempt::Done(outcomes, level) = attempt {
                                return report(remote, outcomes, level);
                            }
                        }
                        Reused::Stale => {
                            tracing::debug!(remote, "idle session was closed; reconnecting");
                        }
                    }
                }
                let mut try_tls = true;
                loop {
                    let (attempt, parked) = self.attempt(addr, &job(try_tls)).await;
                    self.release(&key, parked).await;
                    match attempt {
                        Attempt::Done(outcomes, level) => return report(remote, outcomes, level),
                        Attempt::RetryWithoutTls(outcome) if try_tls => {
                            tracing::info!(
                                remote,
                                reason = outcome.reply(),
                                "opportunistic TLS failed; retrying in clear"
                            );
                            try_tls = false;
                        }
                        Attempt::NextHost(outcome) | Attempt::RetryWithoutTls(outcome) => {
                            last = DeliveryReport::all(env, outcome, Some(remote.clone()));
                            break;
                        }
                    }
                }
            }
        }
        match refused {
            // Every address every hop had was internal: no retry will change that.
            Some(why) if !other => DeliveryReport::all(
                env,
                RcptOutcome::Permanent {
                    reply: format!(
                        "550 5.4.4 not delivered: the mail server of {domain} resolves only \
                         to internal addresses ({why}); only an [[outbound.route]] or \
                         outbound.danger_allow_private_destinations reaches those"
                    ),
                },
                None,
            ),
            _ => last,
        }
    }

    /// A session after a clean transaction: parked for the next message, or QUIT.
    async fn release(&self, key: &pool::Key, parked: Option<pool::Parked>) {
        if let Some(refused) = parked.and_then(|p| self.pool.park(key.clone(), p)) {
            refused.client.quit().await;
        }
    }

    async fn attempt(&self, addr: SocketAddr, job: &Job<'_>) -> (Attempt, Option<pool::Parked>) {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    let why = format!("451 4.4.1 cannot connect to {}: {e}", job.remote);
                    return (Attempt::NextHost(attempt::temporary(why)), None);
                }
                Err(_) => {
                    let why = format!("451 4.4.1 connection to {} timed out", job.remote);
                    return (Attempt::NextHost(attempt::temporary(why)), None);
                }
            };
        let _ = stream.set_nodelay(true);
        session::run(stream, job).await
    }
}

/// A transaction's outcomes as the queue's report.
fn report(remote: String, outcomes: Vec<RcptOutcome>, tls: TlsLevel) -> DeliveryReport {
    tracing::debug!(
        remote,
        delivered = outcomes
            .iter()
            .filter(|o| matches!(o, RcptOutcome::Delivered { .. }))
            .count(),
        total = outcomes.len(),
        tls = tls.as_str(),
        "smtp delivery attempt done"
    );
    DeliveryReport {
        remote_host: Some(remote),
        tls: Some(tls),
        outcomes,
    }
}

impl Transport for SmtpTransport {
    fn deliver<'a>(&'a self, env: &'a Envelope, raw: &'a [u8]) -> BoxFuture<'a, DeliveryReport> {
        Box::pin(self.deliver_all(env, raw))
    }
}

fn build_resolver(cfg: &ResolverConfig) -> Result<TokioResolver, OutboundError> {
    let (config, opts) = cfg.hickory().map_err(OutboundError::Resolver)?;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| OutboundError::Resolver(e.to_string()))
}
