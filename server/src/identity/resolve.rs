//! DID resolution for verification: a DID to the keys it authorises, or the reason it has none.
//!
//! Our own agents resolve from the store (so a revocation is seen on the very next call, with
//! no cache to expire); anything else is fetched per [`super::fetch`], when enabled.

use super::did::{self, VerificationKey};
use super::fetch::{DidFetcher, FetchLimits, Fetched};
use super::verdict::{Reason, Verdict};
use super::{Agent, IdentityError, IdentityService};

/// Resolution settings (`[identity]` in the config).
#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// Fetch documents of DIDs on other hosts.
    pub remote_did_resolution: bool,
    /// Fetch over plain HTTP and allow loopback/private addresses (tests only).
    pub danger_allow_http_did_resolution: bool,
    /// Longest identity-token lifetime, seconds (at most 3600).
    pub max_token_ttl_secs: u64,
    /// Extra reserved local parts (`identity.reserved_locals`).
    pub reserved_locals: Vec<String>,
    /// The operator mailbox agent (`identity.postmaster_agent`).
    pub postmaster_agent: String,
}

impl Default for IdentityOptions {
    fn default() -> Self {
        Self {
            remote_did_resolution: true,
            danger_allow_http_did_resolution: false,
            max_token_ttl_secs: 3600,
            reserved_locals: Vec::new(),
            postmaster_agent: "postmaster".into(),
        }
    }
}

impl From<&crate::config::IdentityConfig> for IdentityOptions {
    fn from(c: &crate::config::IdentityConfig) -> Self {
        Self {
            remote_did_resolution: c.remote_did_resolution,
            danger_allow_http_did_resolution: c.danger_allow_http_did_resolution,
            max_token_ttl_secs: c.max_token_ttl_secs,
            reserved_locals: c.reserved_locals.clone(),
            postmaster_agent: c.postmaster_agent.clone(),
        }
    }
}

impl IdentityService {
    /// The agent a local did:web path names: `agents:<local>` is an agent of the server's own
    /// domain only (never another org's agent of that local part, which would give one agent
    /// two DIDs and let a later agent take over a DID); `orgs:<domain>:agents:<local>` is
    /// the agent of another org.
    pub fn agent_by_local(&self, local: &str) -> Result<Option<Agent>, IdentityError> {
        self.agent_by_did_path(None, local)
    }

    pub fn agent_by_did_path(
        &self,
        domain: Option<&str>,
        local: &str,
    ) -> Result<Option<Agent>, IdentityError> {
        let Ok(local) = super::address::normalize_local(local) else {
            return Ok(None);
        };
        let Some(default) = self.default_domain() else {
            return Ok(None);
        };
        let domain = match domain {
            None => default,
            // The server's own agents have one DID: the short one.
            Some(d) if d.eq_ignore_ascii_case(&default) => return Ok(None),
            Some(d) => d.to_ascii_lowercase(),
        };
        let agent = self.agent_by_address(&format!("{local}@{domain}"))?;
        Ok(agent.filter(|a| a.domain == domain))
    }

    /// Whether a parsed DID names this host.
    fn is_local(&self, d: &did::DidWeb) -> bool {
        d.host == self.did_host.to_ascii_lowercase()
    }

    /// The keys `did` authorises, or a failed verdict saying why there are none.
    pub(super) async fn resolve_keys(
        &self,
        did_str: &str,
    ) -> Result<Vec<VerificationKey>, Verdict> {
        self.resolve_agent(did_str).await.map(|(keys, _)| keys)
    }

    /// `did` is a did:web of this server (resolved without a fetch).
    pub(super) fn is_local_did(&self, did_str: &str) -> bool {
        did::parse_did_web(did_str).is_ok_and(|d| self.is_local(&d))
    }

    /// The keys `did` authorises and the mail addresses its document lists as `mailto:`
    /// services (what binds a DID to a From address).
    pub(super) async fn resolve_agent(
        &self,
        did_str: &str,
    ) -> Result<(Vec<VerificationKey>, Vec<String>), Verdict> {
        let parsed =
            did::parse_did_web(did_str).map_err(|e| Verdict::fail(Reason::InvalidDid, e))?;
        if self.is_local(&parsed) {
            return self.local_keys(&parsed);
        }
        let opts = self.options();
        if !opts.remote_did_resolution {
            return Err(Verdict::fail(
                Reason::RemoteResolutionDisabled,
                "resolving DIDs of other hosts is switched off (identity.remote_did_resolution)",
            ));
        }
        let fetcher = self
            .fetcher()
            .map_err(|e| Verdict::fail(Reason::ResolutionFailed, e))?;
        let scheme = if opts.danger_allow_http_did_resolution {
            "http"
        } else {
            "https"
        };
        let url = parsed.document_url(scheme);
        let doc = match fetcher.fetch(&url).await {
            Ok(Fetched::Document(doc)) => doc,
            Ok(Fetched::Gone) => {
                return Err(Verdict::fail(
                    Reason::Revoked,
                    format!("{url} answered 410: the DID is deactivated"),
                ))
            }
            Ok(Fetched::NotFound) => {
                return Err(Verdict::fail(
                    Reason::UnknownDid,
                    format!("{url} answered 404"),
                ))
            }
            Err(e) => return Err(Verdict::fail(Reason::ResolutionFailed, e)),
        };
        // did:web: the document must be the one for this DID, not one served from elsewhere.
        let id = doc.get("id").and_then(|v| v.as_str()).unwrap_or_default();
        if did::parse_did_web(id).ok().map(|d| d.did()) != Some(parsed.did()) {
            return Err(Verdict::fail(
                Reason::DidMismatch,
                format!("the document at {url} has id {id:?}, not {did_str}"),
            ));
        }
        let emails = doc
            .get("service")
            .and_then(|s| s.as_array())
            .map(|services| {
                services
                    .iter()
                    .filter_map(|s| s.get("serviceEndpoint")?.as_str()?.strip_prefix("mailto:"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok((did::verification_keys(&doc, id), emails))
    }

    fn local_keys(
        &self,
        parsed: &did::DidWeb,
    ) -> Result<(Vec<VerificationKey>, Vec<String>), Verdict> {
        let internal = |e: IdentityError| {
            tracing::error!(error = %e, "local DID resolution failed");
            Verdict::fail(Reason::ResolutionFailed, "internal error")
        };
        let Some((domain, local)) = parsed.agent_ref() else {
            // The domain DID carries no keys of its own.
            return Ok((Vec::new(), Vec::new()));
        };
        let agent = self
            .agent_by_did_path(domain, local)
            .map_err(internal)?
            .ok_or_else(|| Verdict::fail(Reason::UnknownDid, "no such agent on this host"))?;
        if !agent.is_active() {
            return Err(Verdict::fail(Reason::Revoked, "the agent has been revoked"));
        }
        let did = self.agent_did(&agent);
        let keys = self.custody().map_err(internal)?.public_keys(&agent.id);
        let keys = keys.map_err(|e| internal(IdentityError::Keys(e)))?;
        let keys = keys
            .into_iter()
            .map(|k| VerificationKey {
                id: format!("{did}#{}", k.kid),
                aliases: Vec::new(),
                public: k.public,
            })
            .collect();
        Ok((keys, vec![agent.address()]))
    }

    /// Built on first use, after the options are set at start-up.
    pub(super) fn fetcher(&self) -> Result<&DidFetcher, String> {
        self.fetcher
            .get_or_init(|| {
                DidFetcher::new(FetchLimits {
                    danger_allow_http: self.options().danger_allow_http_did_resolution,
                    ..Default::default()
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}
