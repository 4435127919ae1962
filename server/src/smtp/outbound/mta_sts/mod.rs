//! MTA-STS for outbound mail (RFC 8461): find the recipient domain's policy (TXT record,
//! then the HTTPS policy file), keep it for its `max_age`, and turn it into the hops and
//! the TLS requirement of a delivery.
//!
//! The cache is in memory, by recipient domain, bounded by `outbound.mta_sts_cache_entries`,
//! and written through to a [`PolicyStore`] (the store's `mta_sts_policies` tree): RFC 8461
//! §5.1 wants policies to survive restarts, or an attacker who blocks the policy fetch right
//! after a restart would get a downgrade window. A policy read back after a restart keeps
//! its original expiry.
//!
//! The policy fetch: HTTPS only with a verified certificate (the same trust roots as SMTP),
//! no redirects (§3.3), no proxies, a deadline and a size cap, and host addresses from our
//! resolver filtered like MX addresses (public only unless
//! `outbound.danger_allow_private_destinations`).

mod parse;

pub use parse::{Mode, Policy};

use super::observe::{Observer, TlsOutcome};
use super::policy::{Failure, FailureKind, PolicySource, TlsPolicy};
use super::route::Hop;
use mail_auth::hickory_resolver::proto::rr::RData;
use mail_auth::hickory_resolver::TokioResolver;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `[outbound]` keys of MTA-STS.
#[derive(Debug, Clone)]
pub struct StsSettings {
    /// The HTTPS port of `mta-sts.<domain>` (443 but in tests).
    pub port: u16,
    /// The whole fetch.
    pub timeout: Duration,
    pub max_bytes: usize,
    pub max_entries: usize,
    /// Policy hosts may resolve to internal addresses (tests).
    pub allow_private: bool,
    /// Where policies survive restarts.
    pub persist: Persist,
}

impl Default for StsSettings {
    fn default() -> Self {
        Self {
            port: 443,
            timeout: Duration::from_secs(10),
            max_bytes: 64 * 1024,
            max_entries: 10_000,
            allow_private: false,
            persist: Persist::default(),
        }
    }
}

/// Policies kept across restarts (RFC 8461 §5.1). Implemented over the store by the
/// service wiring; errors are the implementation's to log, a cache must not fail mail.
pub trait PolicyStore: Send + Sync {
    fn load(&self, domain: &str) -> Option<StoredPolicy>;
    fn save(&self, domain: &str, policy: &StoredPolicy);
}

/// A policy as kept: its id, its text (parsed again when read) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredPolicy {
    pub id: String,
    pub text: String,
    pub expires_unix: i64,
}

/// `Option<Arc<dyn PolicyStore>>` with a Debug, for the settings.
#[derive(Clone, Default)]
pub struct Persist(pub Option<Arc<dyn PolicyStore>>);

impl std::fmt::Debug for Persist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Persist(store)"
        } else {
            "Persist(none)"
        })
    }
}

struct Cached {
    id: String,
    policy: Policy,
    expires: Instant,
}

pub(crate) struct Sts {
    resolver: TokioResolver,
    client: reqwest::Client,
    settings: StsSettings,
    /// A std mutex: held only to read or insert, never across an await.
    cache: Mutex<HashMap<String, Cached>>,
}

impl Sts {
    /// `tls` is a client config that verifies certificates against the trust roots.
    pub fn new(
        resolver: TokioResolver,
        tls: rustls::ClientConfig,
        settings: StsSettings,
    ) -> Result<Self, String> {
        let dns = Arc::new(PolicyHostDns {
            resolver: resolver.clone(),
            allow_private: settings.allow_private,
        });
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .no_proxy()
            .dns_resolver(dns)
            .user_agent(concat!("legate/", env!("CARGO_PKG_VERSION"), " mta-sts"))
            .build()
            .map_err(|e| error_chain(&e))?;
        Ok(Self {
            resolver,
            client,
            settings,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The hops a delivery to `domain` may use and the TLS they must reach; `Err` is the
    /// temporary reply when the policy leaves no host (enforce mode).
    pub async fn apply(
        &self,
        domain: &str,
        hops: Vec<Hop>,
        observer: &Observer,
    ) -> Result<(Vec<Hop>, TlsPolicy), String> {
        let Some(policy) = self.policy(domain, observer).await else {
            return Ok((hops, TlsPolicy::opportunistic()));
        };
        let (allowed, other): (Vec<Hop>, Vec<Hop>) =
            hops.into_iter().partition(|h| policy.allows(&h.host));
        if !other.is_empty() && policy.mode != Mode::None {
            let names: Vec<&str> = other.iter().map(|h| h.host.as_str()).collect();
            let failure = Failure::new(
                FailureKind::ValidationFailure,
                format!(
                    "MX host(s) {} not in the MTA-STS policy's mx ({})",
                    names.join(", "),
                    policy.mx.join(", ")
                ),
            );
            observer.record(&TlsOutcome {
                domain,
                mx: "",
                policy: PolicySource::Sts,
                result: Err(&failure),
            });
            if policy.mode == Mode::Enforce && allowed.is_empty() {
                return Err(format!(
                    "451 4.7.5 not delivered: the MTA-STS policy of {domain} is in enforce mode \
                     and {} ({})",
                    failure.detail,
                    FailureKind::ValidationFailure.as_str()
                ));
            }
        }
        match policy.mode {
            Mode::None => Ok((
                allowed.into_iter().chain(other).collect(),
                TlsPolicy::opportunistic(),
            )),
            Mode::Testing => {
                let hops = allowed.into_iter().chain(other).collect();
                let testing = TlsPolicy {
                    enforce: false,
                    ..TlsPolicy::enforced(PolicySource::Sts)
                };
                Ok((hops, testing))
            }
            Mode::Enforce => Ok((allowed, TlsPolicy::enforced(PolicySource::Sts))),
        }
    }

    /// The domain's current policy, if it has one we can use (RFC 8461 §3, §5.1).
    async fn policy(&self, domain: &str, observer: &Observer) -> Option<Policy> {
        let now = Instant::now();
        let cached = self.cached(domain, now);
        let id = match self.txt_id(domain).await {
            Ok(id) => id,
            Err(why) => {
                // No (usable) record now: a policy still in the cache stays in force, so
                // removing the record is not a way to downgrade (§5.1).
                tracing::debug!(domain, %why, "no MTA-STS record");
                if cached.is_some() {
                    observer.sts_cache("hit");
                }
                return cached.map(|(_, p)| p);
            }
        };
        if let Some((cid, p)) = &cached {
            if *cid == id {
                observer.sts_cache("hit");
                return Some(p.clone());
            }
        }
        match self.fetch(domain).await {
            Ok((p, text)) => {
                observer.sts_cache("miss");
                self.insert(domain, id, p.clone(), text, now);
                Some(p)
            }
            Err(failure) => {
                observer.record(&TlsOutcome {
                    domain,
                    mx: "",
                    policy: PolicySource::Sts,
                    result: Err(&failure),
                });
                if cached.is_some() {
                    observer.sts_cache("stale");
                }
                cached.map(|(_, p)| p)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, domain: &str, now: Instant) -> Option<(String, Policy)> {
        if let Some(c) = self.lock().get(domain).filter(|c| c.expires > now) {
            return Some((c.id.clone(), c.policy.clone()));
        }
        // Not in memory (a restart): the store's copy, with the time it has left.
        let stored = self.settings.persist.0.as_ref()?.load(domain)?;
        let left = stored.expires_unix - crate::util::now_unix();
        let policy = parse::policy(&stored.text).ok()?;
        if left <= 0 {
            return None;
        }
        let expires = now + Duration::from_secs(left as u64);
        self.remember(domain, stored.id.clone(), policy.clone(), expires, now);
        Some((stored.id, policy))
    }

    fn insert(&self, domain: &str, id: String, policy: Policy, text: String, now: Instant) {
        let expires = now + Duration::from_secs(policy.max_age);
        if let Some(store) = &self.settings.persist.0 {
            let stored = StoredPolicy {
                id: id.clone(),
                text,
                expires_unix: crate::util::now_unix() + policy.max_age as i64,
            };
            store.save(domain, &stored);
        }
        self.remember(domain, id, policy, expires, now);
    }

    fn remember(&self, domain: &str, id: String, policy: Policy, expires: Instant, now: Instant) {
        let mut cache = self.lock();
        if cache.len() >= self.settings.max_entries && !cache.contains_key(domain) {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= self.settings.max_entries {
                let soonest = cache
                    .iter()
                    .min_by_key(|(_, c)| c.expires)
                    .map(|(d, _)| d.clone());
                if let Some(d) = soonest {
                    cache.remove(&d);
                }
            }
        }
        cache.insert(
            domain.to_string(),
            Cached {
                id,
                policy,
                expires,
            },
        );
    }

    async fn txt_id(&self, domain: &str) -> Result<String, String> {
        let name = format!("_mta-sts.{}.", domain.trim_end_matches('.'));
        let lookup = self
            .resolver
            .txt_lookup(name.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let records: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        parse::txt_id(&records).map_err(|e| e.to_string())
    }

    /// The policy and its text.
    async fn fetch(&self, domain: &str) -> Result<(Policy, String), Failure> {
        let fetch_error = |m: String| Failure::new(FailureKind::StsPolicyFetchError, m);
        let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
        let url = match self.settings.port {
            443 => format!("https://{host}/.well-known/mta-sts.txt"),
            p => format!("https://{host}:{p}/.well-known/mta-sts.txt"),
        };
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| fetch_error(format!("{url}: {}", error_chain(&e))))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(fetch_error(format!(
                "{url}: HTTP {} (redirects are not followed)",
                resp.status().as_u16()
            )));
        }
        let invalid = |m: String| Failure::new(FailureKind::StsPolicyInvalid, m);
        let ctype = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/plain");
        if !ctype.to_ascii_lowercase().starts_with("text/plain") {
            return Err(invalid(format!(
                "{url}: content type {ctype}, not text/plain"
            )));
        }
        let max = self.settings.max_bytes;
        let too_big = || invalid(format!("{url}: larger than {max} bytes"));
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| fetch_error(format!("{url}: {}", error_chain(&e))))?
        {
            if body.len() + chunk.len() > max {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        let text = std::str::from_utf8(&body).map_err(|_| invalid(format!("{url}: not UTF-8")))?;
        let policy = parse::policy(text).map_err(|e| invalid(format!("{url}: {e}")))?;
        Ok((policy, text.to_string()))
    }
}

/// Addresses of `mta-sts.<domain>` from our resolver (the one MX lookups use), public only
/// unless private destinations are allowed: the fetch must not reach the operator's own
/// network because a domain's DNS says so.
struct PolicyHostDns {
    resolver: TokioResolver,
    allow_private: bool,
}

impl Resolve for PolicyHostDns {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.resolver.clone();
        let allow_private = self.allow_private;
        let host = format!("{}.", name.as_str().trim_end_matches('.'));
        Box::pin(async move {
            let ips = resolver.lookup_ip(host.as_str()).await?;
            let addrs: Vec<SocketAddr> = ips
                .iter()
                .filter(|ip| allow_private || crate::net::is_public(*ip))
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct MemoryStore(Mutex<HashMap<String, StoredPolicy>>);

    impl PolicyStore for MemoryStore {
        fn load(&self, domain: &str) -> Option<StoredPolicy> {
            self.0.lock().unwrap().get(domain).cloned()
        }
        fn save(&self, domain: &str, policy: &StoredPolicy) {
            self.0.lock().unwrap().insert(domain.into(), policy.clone());
        }
    }

    fn sts(store: &Arc<MemoryStore>) -> Sts {
        let resolver = super::super::build_resolver(&super::super::tests::no_dns()).unwrap();
        let tls = super::super::tls::TlsClient::new(super::super::TrustRoots::Webpki, &[])
            .unwrap()
            .verified_config()
            .unwrap();
        let settings = StsSettings {
            persist: Persist(Some(store.clone() as Arc<dyn PolicyStore>)),
            ..StsSettings::default()
        };
        Sts::new(resolver, tls, settings).unwrap()
    }

    #[tokio::test]
    async fn policies_survive_a_restart_until_they_expire() {
        let store = Arc::new(MemoryStore::default());
        let text = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n";
        let policy = parse::policy(text).unwrap();
        let now = Instant::now();
        sts(&store).insert("b.test", "id1".into(), policy.clone(), text.into(), now);
        // A new process: nothing in memory, the store's copy is used.
        let again = sts(&store);
        assert_eq!(again.cached("b.test", now), Some(("id1".into(), policy)));
        assert_eq!(again.cached("c.test", now), None);
        // An expired stored policy is not.
        store.save(
            "d.test",
            &StoredPolicy {
                id: "old".into(),
                text: text.into(),
                expires_unix: crate::util::now_unix() - 1,
            },
        );
        assert_eq!(sts(&store).cached("d.test", now), None);
    }
}
